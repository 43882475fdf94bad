package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"

	"xcatbm/internal/httpretry"
	"xcatbm/internal/testkit/testhttp"
)

type thing struct{ ID string }

func TestCreate(t *testing.T) {
	dropped := &httpretry.DroppedError{Method: "POST", URL: "http://svc/things", Attempts: 1, Err: errors.New("connection reset by peer")}
	conflict := gophercloud.ErrUnexpectedResponseCode{Method: "POST", URL: "http://svc/things", Expected: []int{201}, Actual: 409}
	refused := gophercloud.ErrUnexpectedResponseCode{Method: "POST", URL: "http://svc/things", Expected: []int{201}, Actual: 400}
	for _, c := range []struct {
		name string
		// creates and finds are what each call answers, in order ("" for nothing found).
		creates   []error
		finds     []string
		findErr   error
		wantID    string
		wantFound bool
		wantErr   error
		wantCalls string // c for a create, f for a find
	}{
		{name: "made", creates: []error{nil}, wantID: "new", wantCalls: "c"},
		{name: "answer lost, it was made", creates: []error{dropped}, finds: []string{"t1"}, wantID: "t1", wantFound: true, wantCalls: "cf"},
		{name: "answer lost, it was not made", creates: []error{dropped, nil}, finds: []string{""}, wantID: "new", wantCalls: "cfc"},
		{name: "409 for what an earlier attempt made", creates: []error{conflict}, finds: []string{"t1"}, wantID: "t1", wantFound: true, wantCalls: "cf"},
		{name: "409 for something else", creates: []error{conflict}, finds: []string{""}, wantErr: conflict, wantCalls: "cf"},
		{name: "refused: no lookup", creates: []error{refused}, wantErr: refused, wantCalls: "c"},
		{name: "connection keeps breaking", creates: []error{dropped, dropped, dropped}, finds: []string{"", "", ""}, wantErr: dropped, wantCalls: "cfcfcf"},
		{name: "lookup fails", creates: []error{dropped}, findErr: errors.New("GET failed"), wantErr: dropped, wantCalls: "cf"},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls := ""
			create := func(context.Context) (*thing, error) {
				err := c.creates[strings.Count(calls, "c")]
				calls += "c"
				if err != nil {
					return nil, fmt.Errorf("create: %w", err)
				}
				return &thing{ID: "new"}, nil
			}
			find := func(context.Context) (*thing, error) {
				i := strings.Count(calls, "f")
				calls += "f"
				if c.findErr != nil {
					return nil, c.findErr
				}
				if c.finds[i] == "" {
					return nil, nil
				}
				return &thing{ID: c.finds[i]}, nil
			}
			got, found, err := Create(context.Background(), create, find)
			if calls != c.wantCalls {
				t.Errorf("calls %q, want %q", calls, c.wantCalls)
			}
			if c.wantErr != nil {
				same := errors.Is(err, c.wantErr)
				if ue, ok := c.wantErr.(gophercloud.ErrUnexpectedResponseCode); ok {
					same = gophercloud.ResponseCodeIs(err, ue.Actual)
				}
				if got != nil || !same {
					t.Errorf("got %+v, %v; want error %v", got, err, c.wantErr)
				}
				return
			}
			if err != nil || got == nil || got.ID != c.wantID || found != c.wantFound {
				t.Errorf("got %+v found %v err %v; want %s found %v", got, found, err, c.wantID, c.wantFound)
			}
		})
	}
}

// TestOpenKeptConnectionsClosed opens a Keystone cloud whose identity and image
// services close every connection after the answer, the token request's answer lost
// once: the token is asked for again, and the image client's first request to go
// out on a kept connection is dropped and resent; from then on the client sends to
// that server on connections of their own (httpretry learns it closes them), so
// nothing else is dropped.
func TestOpenKeptConnectionsClosed(t *testing.T) {
	var srv *testhttp.Server
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "POST" && r.URL.Path == "/v3/auth/tokens":
			w.Header().Set("X-Subject-Token", "tok-1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(201)
			fmt.Fprint(w, `{"token": {"expires_at": "2099-01-01T00:00:00.000000Z", "methods": ["password"], "catalog": []}}`)
		case r.Header.Get("X-Auth-Token") != "tok-1":
			w.WriteHeader(401)
		case r.Method == "PUT" && r.URL.Path == "/v2/images/i1/file":
			w.WriteHeader(204)
		case r.Method == "DELETE" && r.URL.Path == "/v2/images/i1":
			w.WriteHeader(204)
		default:
			w.WriteHeader(404)
		}
	})
	srv = testhttp.Start(t, testhttp.Config{Handler: handler, LoseAnswer: func(r *http.Request, n int) bool {
		return r.URL.Path == "/v3/auth/tokens" && n == 1
	}})
	file := filepath.Join(t.TempDir(), "clouds.yaml")
	body := fmt.Sprintf(`clouds:
  prod:
    auth:
      auth_url: %s/v3
      username: admin
      password: s3cret
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    image_endpoint_override: %s
`, srv.URL, srv.URL)
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := Open(ctx, Options{File: file, Name: "prod", Getenv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatalf("open: %v (requests %v)", err, srv.Requests())
	}
	ic, err := c.Image()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := ic.Put(ctx, ic.ServiceURL("images", "i1", "file"), strings.NewReader("data"), nil, &gophercloud.RequestOpts{OkCodes: []int{204}}); err != nil {
			t.Fatalf("PUT: %v (requests %v)", err, srv.Requests())
		}
		if _, err := ic.Delete(ctx, ic.ServiceURL("images", "i1"), nil); err != nil {
			t.Fatalf("DELETE: %v (requests %v)", err, srv.Requests())
		}
	}
	want := []string{"POST /v3/auth/tokens", "POST /v3/auth/tokens", "PUT /v2/images/i1/file", "DELETE /v2/images/i1",
		"PUT /v2/images/i1/file", "DELETE /v2/images/i1"}
	if got := srv.Handled(); !slices.Equal(got, want) || srv.Dropped() != 1 {
		t.Errorf("handled %v (dropped %d), want %v: %v", got, srv.Dropped(), want, srv.Requests())
	}
	for _, r := range srv.Requests() {
		if r.Path == "/v3/auth/tokens" && !r.Dropped && !strings.Contains(r.Body, "s3cret") {
			t.Errorf("token request without the password: %q", r.Body)
		}
	}
}

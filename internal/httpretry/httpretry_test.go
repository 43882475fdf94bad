package httpretry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"xcatbm/internal/httpretry"
	"xcatbm/internal/testkit/testhttp"
)

// echo answers every request with its method and body.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "%s %s", r.Method, b)
})

// TestTransportKeptConnectionClosed sends two requests in a row to a server that
// closes each connection after its answer and drops, unread, any request sent on
// the kept connection. Resendable requests go out on the kept connection, are
// dropped and resent; the others never use a kept connection. Either way each
// arrives once, with its body.
func TestTransportKeptConnectionClosed(t *testing.T) {
	for _, c := range []struct {
		name        string
		method      string
		body        func() io.Reader
		ctx         func(context.Context) context.Context
		wantDropped int // requests the server dropped on the kept connection
		wantRetries int // resends the Transport reported
	}{
		{name: "GET", method: http.MethodGet, wantDropped: 1}, // Go resends a GET on its own
		{name: "PUT with a body", method: http.MethodPut, body: func() io.Reader { return strings.NewReader(`{"generation": 3}`) }, wantDropped: 1, wantRetries: 1},
		{name: "DELETE", method: http.MethodDelete, wantDropped: 1, wantRetries: 1},
		{name: "POST marked idempotent", method: http.MethodPost, body: func() io.Reader { return strings.NewReader(`{"auth": {}}`) },
			ctx: httpretry.Idempotent, wantDropped: 1, wantRetries: 1},
		{name: "POST on a connection of its own", method: http.MethodPost, body: func() io.Reader { return strings.NewReader(`{"name": "n"}`) }},
		{name: "PATCH on a connection of its own", method: http.MethodPatch, body: func() io.Reader { return strings.NewReader(`[]`) }},
		{name: "PUT whose body cannot be read again, on a connection of its own", method: http.MethodPut,
			body: func() io.Reader { return io.NopCloser(strings.NewReader("data")) }},
	} {
		for _, mode := range []testhttp.Close{testhttp.Reset, testhttp.EOF} {
			t.Run(c.name+"/"+mode.String(), func(t *testing.T) {
				t.Parallel()
				srv := testhttp.Start(t, testhttp.Config{Handler: echo, Close: mode})
				retries := 0
				tr := httpretry.New(nil)
				tr.OnRetry = func(*http.Request, int, error) { retries++ }
				client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
				ctx := context.Background()
				if c.ctx != nil {
					ctx = c.ctx(ctx)
				}
				for i := 1; i <= 2; i++ {
					var body io.Reader
					if c.body != nil {
						body = c.body()
					}
					req, err := http.NewRequestWithContext(ctx, c.method, fmt.Sprintf("%s/r%d", srv.URL, i), body)
					if err != nil {
						t.Fatal(err)
					}
					resp, err := client.Do(req)
					if err != nil {
						t.Fatalf("request %d: %v", i, err)
					}
					b, err := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					if want := c.method + " "; err != nil || !strings.HasPrefix(string(b), want) {
						t.Errorf("answer %d: %q %v, want %q...", i, b, err, want)
					}
				}
				if srv.Dropped() != c.wantDropped || retries != c.wantRetries {
					t.Errorf("dropped %d, resent %d; want %d, %d: %v", srv.Dropped(), retries, c.wantDropped, c.wantRetries, srv.Requests())
				}
				for _, path := range []string{"/r1", "/r2"} {
					handled := 0
					for _, r := range srv.Requests() {
						if r.Path == path && !r.Dropped {
							handled++
							if c.body != nil && r.Body == "" {
								t.Errorf("%s %s arrived without its body", r.Method, path)
							}
						}
					}
					if handled != 1 {
						t.Errorf("%s handled %d times, want once: %v", path, handled, srv.Requests())
					}
				}
			})
		}
	}
}

// TestTransportLearnsTheServerCloses: once a host has closed a kept connection under
// a request, every later request to it goes out on a connection of its own. Sent 16
// at a time, 320 PUTs to a server that closes every connection after its answer all
// arrive once; only requests sent before the first drop was seen can find a kept
// connection, so at most one per sender is dropped, and none after the first wave.
func TestTransportLearnsTheServerCloses(t *testing.T) {
	const senders, each = 16, 20
	srv := testhttp.Start(t, testhttp.Config{Handler: echo, Linger: 2 * time.Second})
	client := &http.Client{Transport: httpretry.New(nil), Timeout: 30 * time.Second}
	put := func(path string) error {
		req, err := http.NewRequest(http.MethodPut, srv.URL+path, strings.NewReader("v"))
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && string(b) != "PUT v" {
			err = fmt.Errorf("answer %q", b)
		}
		return err
	}
	// Two in a row: the second finds the kept connection closed.
	for _, path := range []string{"/first", "/second"} {
		if err := put(path); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if srv.Dropped() != 1 {
		t.Fatalf("dropped %d of the first two, want 1: %v", srv.Dropped(), srv.Requests())
	}
	errs := make(chan error, senders*each)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				errs <- put(fmt.Sprintf("/s%d/%d", s, i))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if srv.Dropped() != 1 {
		t.Errorf("dropped %d in all, want only the first one: later requests must not use kept connections", srv.Dropped())
	}
	handled := map[string]int{}
	for _, r := range srv.Requests() {
		if !r.Dropped {
			handled[r.Path]++
		}
	}
	if len(handled) != 2+senders*each {
		t.Errorf("%d paths handled, want %d", len(handled), 2+senders*each)
	}
	for path, n := range handled {
		if n != 1 {
			t.Errorf("%s handled %d times", path, n)
		}
	}
}

// TestTransportLostAnswer: the server acts on the request and the connection breaks
// before the answer. A resendable request is sent again; the others come back as a
// *DroppedError, sent once, for the caller to check what happened.
func TestTransportLostAnswer(t *testing.T) {
	for _, c := range []struct {
		method  string
		ctx     func(context.Context) context.Context
		resends bool
	}{
		{method: http.MethodPut, resends: true},
		{method: http.MethodDelete, resends: true},
		{method: http.MethodPost, ctx: httpretry.Idempotent, resends: true},
		{method: http.MethodPost},
		{method: http.MethodPatch},
	} {
		t.Run(c.method+fmt.Sprint(c.ctx != nil), func(t *testing.T) {
			t.Parallel()
			srv := testhttp.Start(t, testhttp.Config{Handler: echo, LoseAnswer: func(_ *http.Request, n int) bool { return n == 1 }})
			client := &http.Client{Transport: httpretry.New(nil), Timeout: 10 * time.Second}
			ctx := context.Background()
			if c.ctx != nil {
				ctx = c.ctx(ctx)
			}
			req, _ := http.NewRequestWithContext(ctx, c.method, srv.URL+"/x", strings.NewReader("body"))
			resp, err := client.Do(req)
			if resp != nil {
				_ = resp.Body.Close()
			}
			handled := len(srv.Handled())
			if c.resends {
				if err != nil || handled != 2 {
					t.Errorf("err %v, handled %d; want an answer after 2", err, handled)
				}
				return
			}
			var de *httpretry.DroppedError
			if !errors.As(err, &de) || de.Resendable || de.Attempts != 1 || handled != 1 {
				t.Errorf("err %v, handled %d; want a *DroppedError after 1, not resent", err, handled)
			}
		})
	}
}

// TestTransportGivesUp: a server that acts on every request and never answers gets a
// resendable request Attempts times, then the caller gets a *DroppedError.
func TestTransportGivesUp(t *testing.T) {
	t.Parallel()
	srv := testhttp.Start(t, testhttp.Config{Handler: echo, LoseAnswer: func(*http.Request, int) bool { return true }})
	tr := httpretry.New(nil)
	tr.Attempts = 3
	tr.Delay = func(int) time.Duration { return time.Millisecond }
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/allocations/x", nil)
	_, err := client.Do(req)
	var de *httpretry.DroppedError
	if !errors.As(err, &de) || !de.Resendable || de.Attempts != 3 {
		t.Fatalf("err %v, want a *DroppedError after 3 attempts", err)
	}
	if got := srv.Handled(); !slices.Equal(got, []string{"DELETE /allocations/x", "DELETE /allocations/x", "DELETE /allocations/x"}) {
		t.Errorf("server handled %v", got)
	}
}

// TestTransportDoesNotResendTimeouts: a request that timed out is not sent again.
func TestTransportDoesNotResendTimeouts(t *testing.T) {
	t.Parallel()
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) })
	srv := testhttp.Start(t, testhttp.Config{Handler: slow})
	client := &http.Client{Transport: httpretry.New(nil), Timeout: 100 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/slow", strings.NewReader("x"))
	if _, err := client.Do(req); err == nil || httpretry.IsDropped(err) {
		t.Fatalf("err %v, want the client's timeout", err)
	}
	time.Sleep(400 * time.Millisecond)
	if got := srv.Handled(); len(got) != 1 {
		t.Errorf("server handled %v, want one request", got)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestDropped(t *testing.T) {
	op := func(e error) error { return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", e)} }
	wrapped := func(e error) error { return &url.Error{Op: "Put", URL: "http://p/x", Err: e} }
	for _, c := range []struct {
		name   string
		err    error
		reused bool
		want   bool
	}{
		{"reset by peer", wrapped(op(syscall.ECONNRESET)), false, true},
		{"broken pipe", wrapped(op(syscall.EPIPE)), false, true},
		{"connection aborted", op(syscall.ECONNABORTED), false, true},
		{"EOF", wrapped(io.EOF), false, true},
		{"unexpected EOF", fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), false, true},
		{"closed connection", wrapped(net.ErrClosed), false, true},
		{"kept connection closed (no typed error)", wrapped(errors.New("http: server closed idle connection")), true, true},
		{"other error on a fresh connection", wrapped(errors.New("malformed HTTP response")), false, false},
		{"refused (nothing sent, not a broken connection)", wrapped(op(syscall.ECONNREFUSED)), false, false},
		{"timeout", wrapped(&net.OpError{Op: "read", Err: timeoutErr{}}), true, false},
		{"cancelled", wrapped(context.Canceled), true, false},
		{"deadline", wrapped(context.DeadlineExceeded), true, false},
		{"nil", nil, true, false},
	} {
		if got := httpretry.Dropped(c.err, c.reused); got != c.want {
			t.Errorf("%s: Dropped(%v, reused %v) = %v, want %v", c.name, c.err, c.reused, got, c.want)
		}
	}
}

func TestResendable(t *testing.T) {
	for _, c := range []struct {
		method string
		body   io.Reader
		ctx    context.Context
		want   bool
	}{
		{http.MethodGet, nil, context.Background(), true},
		{http.MethodHead, nil, context.Background(), true},
		{http.MethodPut, strings.NewReader("x"), context.Background(), true},
		{http.MethodDelete, nil, context.Background(), true},
		{http.MethodPost, strings.NewReader("x"), context.Background(), false},
		{http.MethodPatch, strings.NewReader("x"), context.Background(), false},
		{http.MethodPost, strings.NewReader("x"), httpretry.Idempotent(context.Background()), true},
		{http.MethodPut, io.NopCloser(strings.NewReader("x")), context.Background(), false},
	} {
		req, err := http.NewRequestWithContext(c.ctx, c.method, "http://p/x", c.body)
		if err != nil {
			t.Fatal(err)
		}
		if got := httpretry.Resendable(req); got != c.want {
			t.Errorf("Resendable(%s, body %T, ctx marked %v) = %v, want %v", c.method, c.body, c.ctx != context.Background(), got, c.want)
		}
	}
}

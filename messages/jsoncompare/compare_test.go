package jsoncompare

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"xcatbm/messages"
)

var casts = []string{"cast-stop_instance.json", "cast-build_and_run_instance.json"}

// vectorBody returns the body of a captured vector (messages/testdata).
func vectorBody(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Body string }
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return []byte(v.Body)
}

// TestDecodersAgree: every decoder reads the same fields from every cast, so the
// benchmark compares the same work.
func TestDecodersAgree(t *testing.T) {
	for _, c := range casts {
		body := vectorBody(t, c)
		want, err := xcatbmDecode(body)
		if err != nil || want.UUID == "" || want.Method == "" {
			t.Fatalf("%s: xcatbm read %v, %v", c, want, err)
		}
		for _, d := range Decoders {
			got, err := d.Decode(body)
			if err != nil || got != want {
				t.Errorf("%s: %s read %v (%v), want %v", c, d.Name, got, err, want)
			}
		}
	}
}

// notifyInput builds the create.end notification input of the captured build cast,
// and the message dict of that notification as encoding/json reads it.
func notifyInput(t testing.TB) (map[string]any, messages.NotifyInput) {
	req, err := messages.DecodeRequest(vectorBody(t, "cast-build_and_run_instance.json"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := req.BuildAndRunInstance()
	if err != nil {
		t.Fatal(err)
	}
	in := messages.NotifyInput{Instance: a.Instance, Host: "xcat-mn1", Action: "create", Phase: "end",
		VMState: "active", PowerState: messages.Running, Time: time.Date(2026, 11, 25, 2, 37, 8, 711531000, time.UTC),
		Context: req.Context.ForNotification()}
	n, err := messages.NewVersionedInstanceNotification(in)
	if err != nil {
		t.Fatal(err)
	}
	body, err := n.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]string
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := json.Unmarshal([]byte(env["oslo.message"]), &tree); err != nil {
		t.Fatal(err)
	}
	return tree, in
}

// TestEncodersAgree: every encoder writes the same JSON value (the libraries without
// Python's spacing, which nova's vectors have and xcatbm writes), ids aside.
func TestEncodersAgree(t *testing.T) {
	tree, in := notifyInput(t)
	for _, e := range Encoders {
		body, err := e.Encode(tree, in)
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		var env map[string]string
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(env["oslo.message"]), &got); err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		// Every notification xcatbm builds has ids of its own.
		want := map[string]any{}
		for k, v := range tree {
			want[k] = v
		}
		for _, id := range []string{"message_id", "_unique_id"} {
			if _, ok := got[id]; !ok {
				t.Errorf("%s wrote no %s", e.Name, id)
			}
			delete(got, id)
			delete(want, id)
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(want)
		if string(a) != string(b) {
			t.Errorf("%s wrote another value:\n%s\nwant\n%s", e.Name, a, b)
		}
	}
}

func BenchmarkDecodeCast(b *testing.B) {
	for _, c := range casts {
		body := vectorBody(b, c)
		for _, d := range Decoders {
			b.Run(c+"/"+d.Name, func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := d.Decode(body); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkEncodeNotification(b *testing.B) {
	tree, in := notifyInput(b)
	for _, e := range Encoders {
		b.Run(e.Name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Encode(tree, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package messages

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// seedVectors adds every captured body to f.
func seedVectors(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		var v vector
		if err := json.Unmarshal(data, &v); err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(v.Body))
	}
	for _, s := range []string{
		`{}`, `null`, `[]`, `{"oslo.version": "2.0", "oslo.message": 1}`,
		`{"oslo.version": "2.1", "oslo.message": "{}"}`, `{"method": "ping", "args": {"arg": 1}}`,
		`{"oslo.version": "2.0", "oslo.message": "{\"method\": \"x\", \"args\": []}"}`,
	} {
		f.Add([]byte(s))
	}
}

// checkRejection fails unless err is a *FieldError that names a field and a problem.
func checkRejection(t *testing.T, err error) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FieldError", err, err)
	}
	if fe.Problem == "" || err.Error() == "" {
		t.Fatalf("error %#v says nothing", fe)
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	seedVectors(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		msg, err := DecodeEnvelope(body)
		if err != nil {
			checkRejection(t, err)
			return
		}
		// A decoded message re-wraps and decodes to the same dict.
		again, err := EncodeEnvelope(msg)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		msg2, err := DecodeEnvelope(again)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if len(msg2) != len(msg) {
			t.Fatalf("re-decoded %d keys, had %d", len(msg2), len(msg))
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	seedVectors(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRequest(body)
		if err != nil {
			checkRejection(t, err)
			return
		}
		for _, decode := range []func() error{
			func() error { _, err := req.BuildAndRunInstance(); return err },
			func() error { _, err := req.TerminateInstance(); return err },
			func() error { _, err := req.StopInstance(); return err },
			func() error { _, err := req.RebootInstance(); return err },
			func() error { _, err := req.GetConsoleOutput(); return err },
			func() error { _, err := req.ExternalInstanceEvent(); return err },
			func() error { _, err := req.RegisterImages(); return err },
		} {
			if err := decode(); err != nil {
				checkRejection(t, err)
			}
		}
		out, err := EncodeRequest(req)
		if err != nil {
			t.Fatalf("re-encode a decoded request: %v", err)
		}
		req2, err := DecodeRequest(out)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if req2.Method != req.Method || req2.MsgID != req.MsgID || req2.Version != req.Version ||
			!reflect.DeepEqual(req2.Context.Keys(), req.Context.Keys()) || len(req2.Args) != len(req.Args) {
			t.Fatalf("round trip changed the request: %+v vs %+v", req2, req)
		}
	})
}

func FuzzDecodeObject(f *testing.F) {
	req, err := DecodeRequest([]byte(loadVector(f, "cast-build_and_run_instance.json").Body))
	if err != nil {
		f.Fatal(err)
	}
	for _, raw := range req.Args {
		f.Add([]byte(raw))
	}
	f.Add([]byte(`{"nova_object.name": "Instance", "nova_object.namespace": "nova", "nova_object.version": "2.8", "nova_object.data": {"uuid": "u", "power_state": 5}}`))
	f.Add([]byte(`{"nova_object.name": "TagList", "nova_object.namespace": "nova", "nova_object.version": "1.1", "nova_object.data": {"objects": [1]}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		o, err := DecodeObject(raw)
		if err != nil {
			checkRejection(t, err)
			return
		}
		if o.IsList() {
			if _, err := o.Objects(); err != nil {
				checkRejection(t, err)
			}
		}
		if _, err := InstanceFromObject(o); err != nil {
			checkRejection(t, err)
		}
		if _, err := NetworkRequestsFromObject(o); err != nil {
			checkRejection(t, err)
		}
		out, err := json.Marshal(o)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		o2, err := DecodeObject(out)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if o2.Name != o.Name || len(o2.Data) != len(o.Data) || (o2.Changes == nil) != (o.Changes == nil) {
			t.Fatalf("round trip changed the object")
		}
	})
}

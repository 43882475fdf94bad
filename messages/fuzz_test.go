package messages

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
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

// roundTrip decodes body and, when it decodes, encodes the value and decodes that
// again. A rejection must be a *FieldError. A value that decoded must re-encode and
// re-decode, except that when mayRefuse the encoder may refuse it with a
// *FieldError. ok is false when there is nothing more to compare.
func roundTrip[T any](t *testing.T, body []byte, decode func([]byte) (T, error), encode func(T) ([]byte, error), mayRefuse bool) (first, again T, ok bool) {
	t.Helper()
	first, err := decode(body)
	if err != nil {
		checkRejection(t, err)
		return first, again, false
	}
	out, err := encode(first)
	if err != nil {
		if mayRefuse {
			checkRejection(t, err)
			return first, again, false
		}
		t.Fatalf("re-encode a decoded %T: %v", first, err)
	}
	if again, err = decode(out); err != nil {
		t.Fatalf("re-decode: %v", err)
	}
	return first, again, true
}

func FuzzDecodeEnvelope(f *testing.F) {
	seedVectors(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		// A decoded message re-wraps and decodes to the same dict.
		encode := func(m map[string]json.RawMessage) ([]byte, error) { return EncodeEnvelope(m) }
		msg, msg2, ok := roundTrip(t, body, DecodeEnvelope, encode, false)
		if ok && len(msg2) != len(msg) {
			t.Fatalf("re-decoded %d keys, had %d", len(msg2), len(msg))
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	seedVectors(f)
	for _, job := range []struct {
		method string
		args   JobArgs
	}{
		{MethodRegisterNodes, &RegisterNodesArgs{NodeRange: "n[001-010]", ComputeHost: "mn1", ResourceClass: "gpu"}},
		{MethodRegisterImages, &RegisterImagesArgs{Images: []ImageRegistration{{XCATName: "rhels9-x86_64-install-compute", Name: "rhel9"}}, Cloud: "site"}},
		{MethodRemoveNodes, &RemoveNodesArgs{NodeRange: "n001"}},
	} {
		req, err := NewJobRequest(job.method, job.args, nil)
		if err != nil {
			f.Fatal(err)
		}
		body, err := EncodeRequest(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	for _, rec := range readJSONL(f, "to-compute-tenant.jsonl") {
		body, err := EncodeEnvelope(rec["msg"])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, req2, ok := roundTrip(t, body, DecodeRequest, EncodeRequest, false)
		if !ok {
			return
		}
		for _, decode := range []func() error{
			func() error { _, err := req.BuildAndRunInstance(); return err },
			func() error { _, err := req.TerminateInstance(); return err },
			func() error { _, err := req.StartInstance(); return err },
			func() error { _, err := req.StopInstance(); return err },
			func() error { _, err := req.RebootInstance(); return err },
			func() error { _, err := req.RebuildInstance(); return err },
			func() error { _, err := req.RescueInstance(); return err },
			func() error { _, err := req.UnrescueInstance(); return err },
			func() error { _, err := req.GetConsoleOutput(); return err },
			func() error { _, err := req.ExternalInstanceEvent(); return err },
			func() error { _, err := req.Ping(); return err },
			func() error { _, err := req.RegisterNodes(); return err },
			func() error { _, err := req.RegisterImages(); return err },
			func() error { _, err := req.RemoveNodes(); return err },
		} {
			if err := decode(); err != nil {
				checkRejection(t, err)
			}
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
		o, o2, ok := roundTrip(t, raw, DecodeObject, func(o *Object) ([]byte, error) { return json.Marshal(o) }, false)
		if !ok {
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
		if o2.Name != o.Name || len(o2.Data) != len(o.Data) || (o2.Changes == nil) != (o.Changes == nil) {
			t.Fatalf("round trip changed the object")
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	seedVectors(f)
	f.Add([]byte(`{"result": null, "failure": null, "ending": false, "_msg_id": "m"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		// A decoded reply re-encodes, the way a server sends it, to the same reply.
		encode := func(r *Reply) ([]byte, error) {
			switch {
			case r.Failure != nil:
				return EncodeFailureReply(r.MsgID, r.Failure)
			case !r.Ending:
				return EncodeHeartbeatReply(r.MsgID)
			}
			return EncodeReply(r.MsgID, r.Result)
		}
		r, r2, ok := roundTrip(t, body, DecodeReply, encode, false)
		if !ok {
			return
		}
		if r2.MsgID != r.MsgID || r2.Ending != r.Ending || (r2.Failure == nil) != (r.Failure == nil) {
			t.Fatalf("round trip changed the reply: %+v vs %+v", r2, r)
		}
		if r.Failure != nil {
			if r2.Failure.Error() != r.Failure.Error() || len(r2.Failure.Args) != len(r.Failure.Args) || len(r2.Failure.Kwargs) != len(r.Failure.Kwargs) {
				t.Fatalf("round trip changed the failure: %+v vs %+v", r2.Failure, r.Failure)
			}
		} else if r.Ending && !jsonEqual(r2.Result, r.Result) {
			t.Fatalf("round trip changed the result: %s vs %s", r2.Result, r.Result)
		}
	})
}

func FuzzDecodeNotification(f *testing.F) {
	seedVectors(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		// Decoding takes what oslo's notifier may send; Encode checks what xcatbm
		// sends. What it accepts decodes back to the same notification.
		n, n2, ok := roundTrip(t, body, DecodeNotification, (*Notification).Encode, true)
		if !ok {
			return
		}
		if n2.MessageID != n.MessageID || n2.PublisherID != n.PublisherID || n2.EventType != n.EventType ||
			n2.Priority != n.Priority || n2.UniqueID != n.UniqueID ||
			!n2.Timestamp.Equal(n.Timestamp.Truncate(time.Microsecond)) || !jsonEqual(n2.Payload, n.Payload) {
			t.Fatalf("round trip changed the notification: %+v vs %+v", n2, n)
		}
	})
}

func FuzzDecodeJobPayload(f *testing.F) {
	f.Add([]byte(`{"job_id": "j1", "kind": "register_nodes", "results": [{"name": "n001", "status": "ok", "message": ""}], "done": 1, "total": 2}`))
	f.Add([]byte(`{"job_id": "j1", "kind": "register_images", "results": [], "done": 0, "total": 0}`))
	f.Add([]byte(`{"job_id": "j1", "kind": "x", "results": [{"name": "", "status": "lost"}], "done": 3, "total": 2}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		decode := func(b []byte) (*JobPayload, error) { return DecodeJobPayload(b) }
		encode := func(p *JobPayload) ([]byte, error) { return json.Marshal(p) }
		if p, p2, ok := roundTrip(t, raw, decode, encode, false); ok && !reflect.DeepEqual(p2, p) {
			t.Fatalf("round trip changed the payload: %+v vs %+v", p2, p)
		}
	})
}

// jsonEqual reports whether a and b hold the same JSON value.
func jsonEqual(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

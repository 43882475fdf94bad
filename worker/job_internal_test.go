package worker

import (
	"encoding/json"
	"reflect"
	"testing"

	"xcatbm/messages"
	"xcatbm/messages/novacast"
)

// TestRequestEncode: the stored form of a request, written with its instance put in
// as it is, reads back as the request, and its instance as the same JSON value.
func TestRequestEncode(t *testing.T) {
	inst := json.RawMessage(`{"nova_object.name": "Instance", "nova_object.data": {"uuid": "u1", "user_data": null}}`)
	for _, tc := range []struct {
		name string
		req  request
	}{
		{"instance only", request{Instance: inst}},
		{"no instance", request{Method: "register_nodes", JobID: "j1"}},
		{"nothing", request{}},
		{"all", request{Method: "stop_instance", Instance: inst, InstanceUUID: "u1", Node: "n1", CleanShutdown: true,
			Call: &callInfo{ReplyQueue: "reply_1", MsgID: "m1"}, Context: map[string]json.RawMessage{"request_id": json.RawMessage(`"req-1"`)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.req.encode()
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(b) {
				t.Fatalf("not JSON: %s", b)
			}
			var got request
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			var gotInst, wantInst any
			if len(tc.req.Instance) > 0 {
				if err := json.Unmarshal(got.Instance, &gotInst); err != nil {
					t.Fatalf("instance read back: %v", err)
				}
				_ = json.Unmarshal(tc.req.Instance, &wantInst)
			}
			if !reflect.DeepEqual(gotInst, wantInst) {
				t.Errorf("instance %v, want %v", gotInst, wantInst)
			}
			got.Instance, tc.req.Instance = nil, nil
			if !reflect.DeepEqual(got, tc.req) {
				t.Errorf("read back %+v, want %+v", got, tc.req)
			}
		})
	}
}

// fullRequest is a request with every field set, so that a field decode forgets
// shows.
func fullRequest(t testing.TB) request {
	var r request
	v := reflect.ValueOf(&r).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch {
		case f.Type() == reflect.TypeFor[json.RawMessage]():
			f.SetBytes([]byte(`{"k":[1,"x\u00e9"],"n":null}`)) // compact: encode compacts all but the instance
		case f.Kind() == reflect.String:
			f.SetString("v-" + v.Type().Field(i).Name + ` "q" \ é`)
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.Type() == reflect.TypeFor[*callInfo]():
			f.Set(reflect.ValueOf(&callInfo{ReplyQueue: "reply_1", MsgID: "m1"}))
		case f.Type() == reflect.TypeFor[map[string]json.RawMessage]():
			f.Set(reflect.ValueOf(map[string]json.RawMessage{"request_id": json.RawMessage(`"req-1"`)}))
		default:
			t.Fatalf("fullRequest does not know how to fill %s (%s): teach it", v.Type().Field(i).Name, f.Type())
		}
	}
	return r
}

// TestRequestDecode: decode reads what encoding/json reads, for every field of the
// stored form, for the same text with PostgreSQL's jsonb spacing, and for nulls.
func TestRequestDecode(t *testing.T) {
	full := fullRequest(t)
	stored, err := full.encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		text string
	}{
		{"every field", string(stored)},
		{"jsonb spacing", `{"ip": "10.0.0.1", "call": {"msg_id": "m1", "reply_q": "r"}, "method": "stop_instance", "instance": {"a": 1}, "clean_shutdown": true}`},
		{"nulls", `{"method": null, "instance": null, "call": null, "context": null, "clean_shutdown": null}`},
		{"unknown members", `{"method": "m", "later_field": {"x": 1}}`},
		{"empty", `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want, got request
			if err := json.Unmarshal([]byte(tc.text), &want); err != nil {
				t.Fatal(err)
			}
			if err := got.decode([]byte(tc.text)); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decode gave\n%+v\nencoding/json gives\n%+v", got, want)
			}
		})
	}
	var full2 request
	if err := full2.decode(stored); err != nil || !reflect.DeepEqual(full2, full) {
		t.Errorf("a request with every field set did not read back (%v):\n%+v\nwant\n%+v", err, full2, full)
	}
	for _, bad := range []string{``, `[]`, `{"method": 5}`, `{"call": "x"}`, `{"method": "m"`} {
		var r request
		if err := r.decode([]byte(bad)); err == nil {
			t.Errorf("decode(%q) succeeded", bad)
		}
	}
}

// FuzzRequestDecode: whatever request encoding/json reads from the input, its stored
// form reads back through decode as encoding/json reads it.
func FuzzRequestDecode(f *testing.F) {
	full := fullRequest(f)
	stored, err := full.encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(stored)
	f.Add([]byte(`{"method":"stop_instance","instance":{"a":[1,2]},"context":{"x":"y"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var in request
		if json.Unmarshal(data, &in) != nil {
			return
		}
		b, err := in.encode()
		if err != nil {
			return
		}
		var want, got request
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("encoding/json cannot read the stored form %q: %v", b, err)
		}
		if err := got.decode(b); err != nil {
			t.Fatalf("decode(%q): %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decode(%q) gave %+v, encoding/json %+v", b, got, want)
		}
	})
}

// BenchmarkRequestDecode reads the stored request of a stop_instance cast from the
// captured vector, with encoding/json and with decode.
func BenchmarkRequestDecode(b *testing.B) {
	body, err := novacast.Vector("cast-stop_instance.json")
	if err != nil {
		b.Fatal(err)
	}
	req, err := messages.DecodeRequest(body)
	if err != nil {
		b.Fatal(err)
	}
	a, err := req.StopInstance()
	if err != nil {
		b.Fatal(err)
	}
	inst, err := a.Instance.EncodeWithoutSecrets()
	if err != nil {
		b.Fatal(err)
	}
	stored, err := (&request{Method: "stop_instance", Instance: inst, InstanceUUID: a.Instance.UUID, Node: a.Instance.Node, CleanShutdown: true}).encode()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(stored)))
		b.ReportAllocs()
		for b.Loop() {
			var r request
			if err := json.Unmarshal(stored, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(stored)))
		b.ReportAllocs()
		for b.Loop() {
			var r request
			if err := r.decode(stored); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package worker

import (
	"encoding/json"
	"reflect"
	"testing"
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

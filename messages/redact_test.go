package messages

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

const canary = "CANARY-redact-9b1e"

func envelopeOf(t testing.TB, msg map[string]any) []byte {
	t.Helper()
	inner, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{"oslo.version": "2.0", "oslo.message": string(inner)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRedactBody(t *testing.T) {
	t.Parallel()
	cast := map[string]any{
		"method": "build_and_run_instance", "version": "6.0", "_unique_id": "u1",
		"_context_auth_token": canary, "_context_request_id": "req-1", "_context_service_token": canary,
		"args": map[string]any{
			"admin_password": canary, "node": "n01",
			"instance": map[string]any{"nova_object.name": "Instance", "nova_object.data": map[string]any{
				"uuid": "u-1", "user_data": "I2Nsb3VkLWNvbmZpZwo=" + canary, "key_data": "ssh-ed25519 AAAA tenant",
			}},
			"injected_files":  []any{[]any{"/etc/motd", canary}},
			"rescue_password": canary, "new_pass": nil,
			"context": map[string]any{"X-Auth-Token": canary, "credentials": map[string]any{"access": canary}},
		},
	}
	cases := []struct {
		name string
		body []byte
		keep []string // what the operator still sees
	}{
		{"oslo envelope", envelopeOf(t, cast), []string{"build_and_run_instance", "req-1", "u-1", "n01", "ssh-ed25519 AAAA tenant", `"new_pass\":null`}},
		{"bare message", func() []byte { b, _ := json.Marshal(cast); return b }(), []string{"build_and_run_instance", "req-1", "ssh-ed25519"}},
		{"password in the envelope itself", []byte(`{"oslo.version":"2.0","oslo.message":"{}","password":"` + canary + `"}`), []string{"oslo.version"}},
		{"inner message not JSON", []byte(`{"oslo.version":"2.0","oslo.message":"admin_password=` + canary + `"}`), []string{"withheld"}},
		{"not JSON at all", []byte(`method=x&token=` + canary), []string{"withheld"}},
		// A rebuild's new password is named new_pass: no secret word in it (the fault
		// suite found it verbatim in a dead-lettered rebuild cast).
		{"rebuild's new_pass", envelopeOf(t, map[string]any{"method": "rebuild_instance", "version": "99.0",
			"args": map[string]any{"new_pass": canary, "image_ref": "img-1"}}), []string{"rebuild_instance", "img-1", `new_pass\":\"[REDACTED]`}},
		{"the API's adminPass", []byte(`{"server":{"adminPass":"` + canary + `","name":"s1"}}`), []string{`"adminPass":"[REDACTED]"`, "s1"}},
		{"new_pass in a body that is no JSON", []byte(`new_pass=` + canary), []string{"withheld"}},
	}
	for _, tc := range cases {
		got := RedactBody(tc.body)
		if bytes.Contains(got, []byte(canary)) {
			t.Errorf("%s: the secret survived:\n%s", tc.name, got)
		}
		if !json.Valid(got) {
			t.Errorf("%s: not JSON: %s", tc.name, got)
		}
		for _, k := range tc.keep {
			if !strings.Contains(string(got), k) {
				t.Errorf("%s: lost %q:\n%s", tc.name, k, got)
			}
		}
	}
	if harmless := []byte("just some bytes"); !bytes.Equal(RedactBody(harmless), harmless) {
		t.Errorf("a body with nothing secret in it is kept as it is")
	}
	// The redacted envelope still decodes as the request it was, for diagnosis.
	req, err := DecodeRequest(RedactBody(envelopeOf(t, cast)))
	if err != nil || req.Method != "build_and_run_instance" || req.Context.RequestID() != "req-1" {
		t.Fatalf("redacted cast decodes as %+v, %v", req, err)
	}
}

// FuzzRedactBody: redaction never fails, keeps JSON JSON, is idempotent, and a
// secret-named member planted anywhere in a message never survives.
func FuzzRedactBody(f *testing.F) {
	seedVectors(f)
	f.Add([]byte(`{"args":{"admin_password":"x"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		once := RedactBody(body)
		if json.Valid(body) && !json.Valid(once) {
			t.Fatalf("JSON in, not JSON out: %q -> %q", body, once)
		}
		if twice := RedactBody(once); json.Valid(once) && !bytes.Equal(once, twice) {
			t.Fatalf("not idempotent:\n%s\n%s", once, twice)
		}
		if bytes.Contains(body, []byte(canary)) {
			return
		}
		// Plant the canary next to whatever the input holds, inside the envelope.
		var v any
		if json.Unmarshal(body, &v) != nil {
			v = string(body)
		}
		planted := envelopeOf(t, map[string]any{"method": "x", "args": map[string]any{"payload": v, "a_Secret_b": canary,
			"nested": []any{map[string]any{"_context_auth_token": canary}}}})
		if got := RedactBody(planted); bytes.Contains(got, []byte(canary)) {
			t.Fatalf("planted secret survived:\n%s", got)
		}
	})
}

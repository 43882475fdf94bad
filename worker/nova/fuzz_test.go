package nova

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeActionResult checks that any object_action result either decodes into
// [updates, result] or is refused, never panics.
func FuzzDecodeActionResult(f *testing.F) {
	f.Add([]byte(`[{"id": 4, "uuid": "8245f619-0264-4a37-b515-0a08a97af561"}, null]`))
	f.Add([]byte(`[{}, true]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[1]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		upd, ret, err := decodeActionResult(b)
		if err == nil && (upd == nil && string(ret) == "") {
			t.Fatalf("accepted %q without a result", b)
		}
		if err == nil && !json.Valid(ret) {
			t.Fatalf("result %q is not JSON", ret)
		}
	})
}

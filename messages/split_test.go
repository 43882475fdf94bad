package messages

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// splitAgrees checks that decodeObject gives exactly what json.Unmarshal into a
// map[string]json.RawMessage gives, error or not.
func splitAgrees(t *testing.T, data []byte) {
	t.Helper()
	var want map[string]json.RawMessage
	werr := json.Unmarshal(data, &want)
	got, gerr := decodeObject(data)
	if werr != nil || want == nil {
		if gerr == nil {
			t.Errorf("%.60q: decoded %v, encoding/json refuses it (%v)", data, got, werr)
		}
		return
	}
	if gerr != nil {
		t.Errorf("%.60q: %v, encoding/json decodes it", data, gerr)
		return
	}
	if !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return slices.Equal(a, b) }) {
		t.Errorf("%.60q: got %q, want %q", data, got, want)
	}
}

func TestSplitObjectAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`{}`, ` { } `, `{"a":1}`, `{"a" : 1 , "b":"x"}`, `{"a":{"b":[1,{"c":"}"}]},"d":null}`,
		`{"a":"\"}"}`, `{"a\"b":1}`, `{"é":1}`, `{"\u00e9":2}`, `{"a":1,"a":2}`, `{"a":true,"b":false,"c":-1.5e3}`,
		"{\"a\":\"\xff\"}", "{\"\xff\":1}", `{"a":1,}`, `{"a"}`, `[1]`, `null`, `"x"`, ``, `{"a":1} x`, `{"a":[1,2,]}`,
		"{\n\t\"a\" :\r\n [ ] }",
	} {
		splitAgrees(t, []byte(s))
	}
	// Every captured vector, at every level where the package decodes an object.
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var walk func(json.RawMessage)
		walk = func(v json.RawMessage) {
			splitAgrees(t, v)
			var m map[string]json.RawMessage
			if json.Unmarshal(v, &m) == nil {
				for _, c := range m {
					walk(c)
					var text string
					if json.Unmarshal(c, &text) == nil && json.Valid([]byte(text)) {
						walk(json.RawMessage(text))
					}
				}
			}
		}
		walk(raw)
	}
}

func FuzzSplitObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":{"b":[1,"]"]}}`, `{"a\u0041":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { splitAgrees(t, data) })
}

package messages

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"
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

// unquoteAgrees checks that unquote reads a valid JSON string token as json.Unmarshal
// does, and refuses anything else that is valid JSON.
func unquoteAgrees(t *testing.T, data []byte) {
	t.Helper()
	if !json.Valid(data) {
		return // unquote is only given valid JSON
	}
	var want string
	werr := json.Unmarshal(data, &want)
	got, ok := unquote(data)
	switch {
	case werr != nil && ok && string(data) != "null":
		t.Errorf("%.60q: unquote gave %q, encoding/json refuses it as a string", data, got)
	case werr == nil && !ok && string(data) != "null":
		t.Errorf("%.60q: unquote refused it, encoding/json gives %q", data, want)
	case werr == nil && ok && got != want:
		t.Errorf("%.60q: unquote gave %q, want %q", data, got, want)
	}
}

func TestUnquoteAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`""`, `"a"`, `"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\u00e9"`, `"é"`, `"\ud83d\ude00"`, `"\ud83d"`,
		`"\ud83dx"`, `"\ude00\ud83d"`, `"\ud83d\u0041"`, "\"\xff\"", "\"a\xe2\x82\"", `1`, `null`, `{}`, `[]`,
		` "x" `, `"\u2028"`,
	} {
		unquoteAgrees(t, []byte(s))
	}
}

func FuzzUnquote(f *testing.F) {
	for _, s := range []string{`"a"`, `"\ud83d\ude00"`, `"\u00e9\n"`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { unquoteAgrees(t, data) })
}

// appendStringAgrees checks that appendString writes valid JSON that reads back as
// the string json.Marshal's encoding reads back as.
func appendStringAgrees(t *testing.T, s string) {
	t.Helper()
	out := appendString(nil, s)
	var got, want string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%.60q: appendString wrote %q, not a JSON string: %v", s, out, err)
	}
	std, _ := json.Marshal(s)
	_ = json.Unmarshal(std, &want)
	if got != want {
		t.Errorf("%.60q: reads back as %q, encoding/json's as %q", s, got, want)
	}
}

func TestAppendStringAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "a", `"`, `\`, "\n\r\t\x00\x1f", "<&>", "é", "\u2028\u2029", "\xff", "a\xe2\x82", "😀"} {
		appendStringAgrees(t, s)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"a", "\"\\\n", "\xff\u2028"} {
		f.Add(s)
	}
	f.Fuzz(appendStringAgrees)
}

// validAgrees checks that validJSON says what json.Valid says.
func validAgrees(t *testing.T, data []byte) {
	t.Helper()
	if got, want := validJSON(data), json.Valid(data); got != want {
		t.Errorf("%.80q: validJSON %v, json.Valid %v", data, got, want)
	}
}

func TestValidAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range []string{
		``, ` `, `{}`, `[]`, ` { } `, `{"a":1}`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{,}`, `[1,]`, `[,1]`, `[1 2]`,
		`{"a":1 "b":2}`, `{"a":[1,{"b":null}],"c":"d"}`, `{"a":1}}`, `[[]]]`, `{"a":[}`, `[{]}`,
		`0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e`, `1e-`, `-1.5e-10`, `+1`, `0x1`,
		`true`, `tru`, `truex`, `false`, `null`, `nul`, `"a"`, `"a`, `"\"`, `"\u00e9"`, `"\u00g9"`, `"\x"`,
		"\"\x01\"", "\"\xff\"", "\"a\tb\"", `"\/"`, `1 2`, `"a" "b"`, "{\n\t\"a\" :\r\n [ ] }",
		strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
		strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
		strings.Repeat(`{"a":`, maxDepth) + "1" + strings.Repeat("}", maxDepth),
		strings.Repeat(`{"a":`, maxDepth+1) + "1" + strings.Repeat("}", maxDepth+1),
	} {
		validAgrees(t, []byte(s))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i <= len(raw); i += 1 + len(raw)/200 { // whole, and cut short everywhere
			validAgrees(t, raw[:i])
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e3,"x\u0041"],"b":{"c":null}}`, `[1,]`, `"\ud83d"`, `-0.0E+1`} {
		f.Add([]byte(s))
	}
	f.Fuzz(validAgrees)
}

// TestInternKey checks that a member name met before comes back as the same string
// (no new allocation), that a long name is not kept, and that names made up by a
// sender stop growing the table at its bound.
func TestInternKey(t *testing.T) {
	a := internKey([]byte("intern_test_power_state"))
	b := internKey([]byte("intern_test_power_state"))
	if a != "intern_test_power_state" || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Errorf("a name met twice gave two strings")
	}
	long := strings.Repeat("k", maxInternedLen+1)
	internKey([]byte(long))
	if _, kept := (*interned.Load())[long]; kept {
		t.Errorf("a name of %d bytes was kept", len(long))
	}
	for i := range 2 * maxInterned {
		internKey([]byte(fmt.Sprintf("made_up_%d", i)))
	}
	if n := len(*interned.Load()); n > maxInterned {
		t.Errorf("the table holds %d names, more than %d", n, maxInterned)
	}
	if allocs := testing.AllocsPerRun(100, func() { internKey([]byte("intern_test_power_state")) }); allocs != 0 {
		t.Errorf("a known name cost %v allocations", allocs)
	}
}

package configdrive

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"xcatbm/internal/config"
	"xcatbm/messages"
)

// FuzzDecodeUserData: any text either decodes to what Go's base64 decoder makes of
// it without whitespace, or is refused; never a panic.
func FuzzDecodeUserData(f *testing.F) {
	for _, s := range []string{"", "IyEvYmluL3NoCg==", "IyEv\nYmlu\r\nL3NoCg==", "AP8", "====", "#!/bin/sh", " \t\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := DecodeUserData(config.NewSecret(s))
		if err != nil {
			if u.IsSet() || u.Bytes() != nil {
				t.Fatalf("refused but set: %q", s)
			}
			return
		}
		if s == "" {
			if u.IsSet() {
				t.Fatal("empty text is user data")
			}
			return
		}
		if len(s) > MaxUserDataBase64 {
			t.Fatalf("%d bytes accepted", len(s))
		}
		if !u.IsSet() {
			t.Fatalf("accepted but not set: %q", s)
		}
		// Re-encoding gives the text back, less the ignored whitespace.
		clean := bytes.Map(func(r rune) rune {
			if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, []byte(s))
		if got := base64.StdEncoding.EncodeToString(u.Bytes()); got != string(clean) {
			t.Fatalf("%q decoded to %q, which encodes as %q", s, u.Bytes(), got)
		}
	})
}

// FuzzPyJSON: any JSON value parses into the ordered tree, and its Python form is
// JSON that means the same; anything else is refused without a panic.
func FuzzPyJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a": "1", "b": [1, 2.5, null, true]}`, `{"é": "\u2603 \ud834\udd1e"}`, `{"a": 1, "a": 2}`, `[[[[]]]]`, `"x"`, `{"a":`, `1 2`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, err := parseOrdered(raw)
		if err != nil {
			return
		}
		// Numbers are compared as written: like Python's json, the tree keeps
		// numbers too large for a float64 (1e400) rather than refusing them.
		want, wantErr := decodeNumbers(raw)
		if wantErr != nil {
			t.Fatalf("parsed what encoding/json refuses: %q (%v)", raw, wantErr)
		}
		out, err := pyJSON(v)
		if err != nil {
			t.Fatalf("cannot encode %q: %v", raw, err)
		}
		for _, c := range out {
			if c >= 0x7f || (c < 0x20) {
				t.Fatalf("output not printable ASCII: %q", out)
			}
		}
		got, err := decodeNumbers(out)
		if err != nil {
			t.Fatalf("output %q of %q is not JSON: %v", out, raw, err)
		}
		if !reflect.DeepEqual(got, want) && !hasInvalidUTF8OrSurrogate(raw) {
			t.Fatalf("%q became %q", raw, out)
		}
	})
}

// decodeNumbers decodes one JSON document with numbers kept as written.
func decodeNumbers(raw []byte) (any, error) {
	if !json.Valid(raw) {
		return nil, errors.New("not one valid JSON value")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// hasInvalidUTF8OrSurrogate reports inputs whose strings Go's decoder maps to
// U+FFFD in ways a round trip need not reproduce (lone surrogate escapes).
func hasInvalidUTF8OrSurrogate(raw []byte) bool {
	return bytes.Contains(raw, []byte(`\ud`)) || bytes.Contains(raw, []byte(`\uD`)) || !json.Valid(raw)
}

// FuzzNetworkFromVIFs: any network_info either is refused or lays out a
// network_data.json that is JSON with links, networks and services.
func FuzzNetworkFromVIFs(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "nova", "network_info.json")); err == nil {
		f.Add(b)
	}
	for _, s := range []string{`[]`, `[{"network": {"subnets": [{"cidr": "10.0.0.0/8", "version": 4, "ips": [{"address": "x"}]}]}}]`,
		`[{"network": {"subnets": [{"cidr": "nope", "version": 6, "ips": [{}]}]}}]`, `[{"network": {"meta": {"mtu": 1.5}, "subnets": [{"version": 4, "meta": {"dhcp_server": ""}, "ips": [{}]}]}}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		vifs, err := messages.ParseNetworkInfo(raw)
		if err != nil {
			return
		}
		n, err := NetworkFromVIFs(vifs)
		if err != nil {
			return
		}
		var doc map[string]any
		if err := json.Unmarshal(n.JSON(), &doc); err != nil {
			t.Fatalf("network_data.json of %q is not JSON: %v", raw, err)
		}
		if len(vifs) == 0 {
			if len(doc) != 0 {
				t.Fatalf("no VIFs gave %s", n.JSON())
			}
			return
		}
		for _, k := range []string{"links", "networks", "services"} {
			if _, ok := doc[k].([]any); !ok {
				t.Fatalf("%s missing in %s", k, n.JSON())
			}
		}
	})
}

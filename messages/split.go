package messages

import (
	"bytes"
	"encoding/json"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf16"
	"unicode/utf8"
)

// The package reads JSON in two passes at most: a body (or the JSON text an envelope's
// oslo.message string holds) is validated once, where it enters, and everything
// within it — the members of its objects, an object's data, the items of a list — is
// then split without being validated again: a part of valid JSON is valid JSON.
// Object.Data and Request.Args hold such parts, so their readers (Str, Child,
// Objects, ...) take the fast paths below. What comes from outside the package as
// bytes (DecodeObject, DecodeInstance and the other Decode functions) is validated
// first.

// splitObject is the fast path of decodeObject: data, already known to be valid JSON
// whose first non-space byte is '{', split into its members' raw values in one pass,
// without encoding/json's reflection. The result is what json.Unmarshal into a
// map[string]json.RawMessage gives: each value's exact bytes, the last of duplicate
// keys winning, and keys with escapes or non-ASCII bytes decoded by encoding/json
// itself. The values are copies when copyValues is set, else parts of data (their
// capacity cut at their end, so an append to one never writes into data). ok is false
// when data is not shaped as expected; the caller then takes encoding/json's path.
func splitObject(data []byte, copyValues bool) (m map[string]json.RawMessage, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return map[string]json.RawMessage{}, true
	}
	// The members are gathered first, so that the map is made at its size (an
	// Instance has some 70) rather than grown by rehashing.
	var stack [80]member
	members := stack[:0]
	for i < len(data) {
		if data[i] != '"' {
			return nil, false
		}
		end, plain := stringEnd(data, i)
		if end < 0 {
			return nil, false
		}
		var key string
		if plain {
			key = internKey(data[i+1 : end-1])
		} else if key, ok = escapedKey(data[i:end]); !ok {
			return nil, false
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return nil, false
		}
		i = skipSpace(data, i+1)
		vend := valueEnd(data, i)
		if vend < 0 {
			return nil, false
		}
		if copyValues {
			members = append(members, member{key, append(json.RawMessage(nil), data[i:vend]...)})
		} else {
			members = append(members, member{key, json.RawMessage(data[i:vend:vend])})
		}
		i = skipSpace(data, vend)
		if i >= len(data) {
			return nil, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			m = make(map[string]json.RawMessage, len(members))
			for _, mb := range members {
				m[mb.key] = mb.raw // in order: the last of duplicate keys wins
			}
			return m, true
		default:
			return nil, false
		}
	}
	return nil, false
}

// escapedKey decodes a member name with escapes or bytes outside ASCII as
// encoding/json does. It is a function of its own so that splitObject's key does not
// escape to the heap for the common, plain names (inlined, it would).
//
//go:noinline
func escapedKey(quoted []byte) (string, bool) {
	var key string
	if json.Unmarshal(quoted, &key) != nil {
		return "", false
	}
	return key, true
}

// internKey returns name as a string, the same string each time for the member names
// the process has met before: an Instance's seventy names are then not allocated
// again for every cast. The table is read without locks (a map replaced, never
// changed, once written) and holds at most maxInterned names, so names a sender
// makes up cannot grow it without bound.
func internKey(name []byte) string {
	if s, ok := (*interned.Load())[string(name)]; ok {
		return s
	}
	s := string(name)
	if len(name) > maxInternedLen {
		return s
	}
	internMu.Lock()
	defer internMu.Unlock()
	old := *interned.Load()
	if _, ok := old[s]; ok || len(old) >= maxInterned {
		return s
	}
	next := make(map[string]string, len(old)+1)
	maps.Copy(next, old)
	next[s] = s
	interned.Store(&next)
	return s
}

const (
	maxInterned    = 1024 // names kept by internKey
	maxInternedLen = 64   // longer names are not kept
)

var (
	internMu sync.Mutex // serializes the writers of interned
	interned atomic.Pointer[map[string]string]
)

func init() {
	empty := map[string]string{}
	interned.Store(&empty)
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the string starting at data[i] (a '"'), and
// whether it has neither escapes nor bytes outside ASCII (so its bytes are its value).
func stringEnd(data []byte, i int) (int, bool) {
	plain := true
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return j + 1, plain
		case c == '\\':
			plain = false
			j++
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	return -1, false
}

// valueEnd returns the index just past the JSON value starting at data[i], which is
// known to be valid.
func valueEnd(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		end, _ := stringEnd(data, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				end, _ := stringEnd(data, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default: // number, true, false, null
		j := i
		for j < len(data) {
			switch data[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return j
			}
			j++
		}
		return j
	}
}

// splitArray splits data, known to be valid JSON, into its items when it is an
// array; ok is false otherwise. The items are parts of data, as splitObject's.
func splitArray(data []byte) (items []json.RawMessage, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return nil, false
	}
	i = skipSpace(data, i+1)
	items = []json.RawMessage{}
	if i < len(data) && data[i] == ']' {
		return items, true
	}
	for i < len(data) {
		end := valueEnd(data, i)
		if end < 0 {
			return nil, false
		}
		items = append(items, json.RawMessage(data[i:end:end]))
		i = skipSpace(data, end)
		if i >= len(data) {
			return nil, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case ']':
			return items, true
		default:
			return nil, false
		}
	}
	return nil, false
}

// unquote returns the value of raw, a JSON string token known to be valid JSON, as
// json.Unmarshal into a string gives it (invalid UTF-8 and lone surrogates become
// U+FFFD); ok is false when raw is not a string.
func unquote(raw []byte) (s string, ok bool) {
	b, ok := unquoteBytes(raw)
	return string(b), ok
}

// unquoteBytes is unquote returning bytes: a part of raw when the string has neither
// escapes nor invalid UTF-8, else a new slice. Runs between escapes are copied
// whole.
func unquoteBytes(raw []byte) ([]byte, bool) {
	raw = raw[skipSpace(raw, 0):]
	for len(raw) > 0 && (raw[len(raw)-1] == ' ' || raw[len(raw)-1] == '\t' || raw[len(raw)-1] == '\n' || raw[len(raw)-1] == '\r') {
		raw = raw[:len(raw)-1]
	}
	if len(raw) < 2 || raw[0] != '"' || validStringEnd(raw, 0) != len(raw) {
		return nil, false
	}
	body := raw[1 : len(raw)-1]
	if bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body) {
		return body, true
	}
	out := make([]byte, 0, len(body))
	for i := 0; i < len(body); {
		k := bytes.IndexByte(body[i:], '\\')
		if k < 0 {
			k = len(body) - i
		}
		out = appendValidUTF8(out, body[i:i+k])
		if i += k; i >= len(body) {
			break
		}
		e := body[i+1] // validStringEnd saw a complete escape
		i += 2
		switch e {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n := hex4(body, i)
			i = n
			if utf16.IsSurrogate(r) {
				// A pair when a \u low surrogate follows; else U+FFFD.
				if r2, n2 := hex4(body, i+2); i+1 < len(body) && body[i] == '\\' && body[i+1] == 'u' && n2 > 0 {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						out = utf8.AppendRune(out, dec)
						i = n2
						continue
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default: // '"', '\\', '/'
			out = append(out, e)
		}
	}
	return out, true
}

// appendValidUTF8 appends b with each byte of invalid UTF-8 written as U+FFFD, as
// encoding/json reads it.
func appendValidUTF8(out, b []byte) []byte {
	if utf8.Valid(b) {
		return append(out, b...)
	}
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return out
}

// hex4 reads the four hex digits at b[i:], returning their value and the index after
// them, or n < 0.
func hex4(b []byte, i int) (r rune, n int) {
	if i+4 > len(b) {
		return 0, -1
	}
	v, err := strconv.ParseUint(string(b[i:i+4]), 16, 32)
	if err != nil {
		return 0, -1
	}
	return rune(v), i + 4
}

package messages

import (
	"encoding/json"
	"unicode/utf8"
)

// splitObject is the fast path of decodeObject: data, already known to be valid JSON
// whose first non-space byte is '{', split into its members' raw values in one pass,
// without encoding/json's reflection. The result is what json.Unmarshal into a
// map[string]json.RawMessage gives: each value's exact bytes (copied), the last of
// duplicate keys winning, and keys with escapes or non-ASCII bytes decoded by
// encoding/json itself. ok is false when data is not shaped as expected; the caller
// then takes encoding/json's path.
func splitObject(data []byte) (m map[string]json.RawMessage, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	i = skipSpace(data, i+1)
	m = make(map[string]json.RawMessage, 8)
	if i < len(data) && data[i] == '}' {
		return m, true
	}
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
			key = string(data[i+1 : end-1])
		} else if json.Unmarshal(data[i:end], &key) != nil {
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
		m[key] = append(json.RawMessage(nil), data[i:vend]...)
		i = skipSpace(data, vend)
		if i >= len(data) {
			return nil, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return m, true
		default:
			return nil, false
		}
	}
	return nil, false
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

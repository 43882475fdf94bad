package messages

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The package writes the JSON of its own messages (objects, notifications,
// envelopes) itself, without encoding/json's reflection: keys in sorted order, as
// json.Marshal of a map writes them, and raw values (Object.Data, a payload, a
// context value) as they are. Those raw values are valid JSON by the package's
// invariant (split.go: parts of validated input, or json.Marshal's output); they are
// not compacted, so a value that came with Python's spaces keeps them, which changes
// no value a JSON reader sees.

// appendString appends s as a JSON string: '"', '\\' and control characters escaped,
// U+2028 and U+2029 too (as encoding/json does, for JavaScript readers), and invalid
// UTF-8 written as U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				const hex = "0123456789abcdef"
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', byte('8'+r-'\u2028'))
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// member is one key and raw value of an object being written.
type member struct {
	key string
	raw []byte
}

// appendMembers appends {"key":raw,...} with the members, whose keys are distinct (a
// map's), sorted by key.
func appendMembers(dst []byte, ms []member) []byte {
	slices.SortFunc(ms, byKey)
	return appendSortedMembers(dst, ms)
}

func byKey(a, b member) int { return strings.Compare(a.key, b.key) }

// appendSortedMembers appends {"key":raw,...} with the members in the order given.
func appendSortedMembers(dst []byte, ms []member) []byte {
	dst = append(dst, '{')
	for i, m := range ms {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, m.key)
		dst = append(dst, ':')
		if len(m.raw) == 0 { // as json.Marshal writes an empty RawMessage
			dst = append(dst, "null"...)
			continue
		}
		dst = append(dst, m.raw...)
	}
	return append(dst, '}')
}

// appendJSON appends the primitive: its five keys in sorted order, data's members
// sorted, each value as held.
func (o *Object) appendJSON(dst []byte) []byte {
	ms := make([]member, 0, len(o.Data))
	for k, v := range o.Data {
		ms = append(ms, member{k, v})
	}
	slices.SortFunc(ms, byKey)
	return appendPrimitive(dst, o.Changes, ms, o.Name, o.Namespace, o.Version)
}

// appendPrimitive appends a NovaObject primitive: its keys in sorted order (changes
// only when not nil), data's members in the order given (sorted, distinct).
func appendPrimitive(dst []byte, changes []string, data []member, name, namespace, version string) []byte {
	dst = append(dst, '{')
	if changes != nil {
		dst = append(dst, `"nova_object.changes":[`...)
		for i, c := range changes {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, c)
		}
		dst = append(dst, "],"...)
	}
	dst = append(dst, `"nova_object.data":`...)
	dst = appendSortedMembers(dst, data)
	dst = append(dst, `,"nova_object.name":`...)
	dst = appendString(dst, name)
	dst = append(dst, `,"nova_object.namespace":`...)
	dst = appendString(dst, namespace)
	dst = append(dst, `,"nova_object.version":`...)
	dst = appendString(dst, version)
	return append(dst, '}')
}

// rawJSON encodes v for a field or payload: the kinds the package's own messages
// are made of are written directly, anything else by json.Marshal.
func rawJSON(v any) (json.RawMessage, error) {
	switch x := v.(type) {
	case nil:
		return json.RawMessage("null"), nil
	case json.RawMessage:
		if x == nil {
			return json.RawMessage("null"), nil
		}
		return x, nil
	case string:
		return appendString(nil, x), nil
	case bool:
		return strconv.AppendBool(nil, x), nil
	case int:
		return strconv.AppendInt(nil, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(nil, x, 10), nil
	case *Object:
		if x == nil {
			return json.RawMessage("null"), nil
		}
		return x.appendJSON(nil), nil
	case []*Object:
		return appendArray(x, func(dst []byte, o *Object) []byte {
			if o == nil {
				return append(dst, "null"...)
			}
			return o.appendJSON(dst)
		}), nil
	case []json.RawMessage:
		return appendArray(x, func(dst []byte, r json.RawMessage) []byte {
			if r == nil {
				return append(dst, "null"...)
			}
			return append(dst, r...)
		}), nil
	case []string:
		return appendArray(x, appendString), nil
	case []any:
		if len(x) == 0 && x != nil {
			return json.RawMessage("[]"), nil
		}
	}
	return json.Marshal(v)
}

// appendArray encodes items as a JSON array, each written by appendItem; a nil slice
// is null, as json.Marshal writes it.
func appendArray[T any](items []T, appendItem func([]byte, T) []byte) json.RawMessage {
	if items == nil {
		return json.RawMessage("null")
	}
	out := []byte{'['}
	for i, x := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendItem(out, x)
	}
	return append(out, ']')
}

// wrapEnvelope wraps inner, the JSON text of an object, in a v2.0 envelope.
func wrapEnvelope(inner []byte) []byte {
	out := make([]byte, 0, len(inner)+len(inner)/8+48)
	out = append(out, `{"oslo.message":`...)
	out = appendString(out, string(inner))
	out = append(out, `,"oslo.version":"`+EnvelopeVersion+`"}`...)
	return out
}

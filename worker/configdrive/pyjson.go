package configdrive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// nova writes the drive's JSON files with Python's json.dumps (oslo's jsonutils):
// ", " and ": " separators, keys in the dict's insertion order, every character
// outside printable ASCII escaped as \uXXXX (UTF-16 surrogate pairs beyond the BMP).
// pyjson reproduces that form byte for byte from an ordered value tree.

// member is one key of an ordered JSON object.
type member struct {
	key   string
	value any
}

// object is a JSON object whose keys keep their order.
type object []member

// add appends a key.
func (o *object) add(key string, value any) { *o = append(*o, member{key, value}) }

// pyJSON encodes v as Python's json.dumps does. v is built from nil, bool, int,
// int64, string, json.Number, []any, []string and object.
func pyJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := encodeValue(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func encodeValue(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case int:
		b.WriteString(strconv.Itoa(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case json.Number:
		b.WriteString(x.String())
	case string:
		encodeString(b, x)
	case []string:
		b.WriteByte('[')
		for i, s := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			encodeString(b, s)
		}
		b.WriteByte(']')
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := encodeValue(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case object:
		b.WriteByte('{')
		for i, m := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			encodeString(b, m.key)
			b.WriteString(": ")
			if err := encodeValue(b, m.value); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("configdrive: cannot encode %T as JSON", v)
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// encodeString writes s as Python's ensure_ascii encoder does. Invalid UTF-8 bytes
// become U+FFFD, as Go's JSON decoder would have made them.
func encodeString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r > 0xffff:
			r -= 0x10000
			writeU(b, 0xd800+(r>>10))
			writeU(b, 0xdc00+(r&0x3ff))
		default:
			if r == utf8.RuneError {
				r = 0xfffd
			}
			writeU(b, r)
		}
	}
	b.WriteByte('"')
}

func writeU(b *bytes.Buffer, r rune) {
	b.WriteString(`\u`)
	for shift := 12; shift >= 0; shift -= 4 {
		b.WriteByte(hexDigits[(r>>shift)&0xf])
	}
}

// maxDepth bounds the nesting parseOrdered accepts.
const maxDepth = 64

// parseOrdered decodes one JSON value into the tree pyJSON encodes, keeping the
// order of object keys (a repeated key keeps its first place and its last value, as
// Python's json.loads does). Numbers stay as written.
func parseOrdered(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := parseValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("configdrive: trailing data after the JSON value")
	}
	return v, nil
}

func parseValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("configdrive: JSON nested deeper than %d", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("configdrive: invalid JSON: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := object{}
			index := map[string]int{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("configdrive: invalid JSON: %w", err)
				}
				key, ok := kt.(string)
				if !ok {
					return nil, errors.New("configdrive: invalid JSON: object key is not a string")
				}
				v, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				if i, dup := index[key]; dup {
					obj[i].value = v
					continue
				}
				index[key] = len(obj)
				obj.add(key, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("configdrive: invalid JSON: %w", err)
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("configdrive: invalid JSON: %w", err)
			}
			return arr, nil
		}
		return nil, fmt.Errorf("configdrive: invalid JSON: unexpected %v", t)
	case nil, bool, string, json.Number:
		return t, nil
	}
	return nil, fmt.Errorf("configdrive: invalid JSON token %T", tok)
}

package messages

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Envelope keys and the version this package writes and accepts (major 2, minor <= 0).
const (
	EnvelopeVersionKey = "oslo.version"
	EnvelopeMessageKey = "oslo.message"
	EnvelopeVersion    = "2.0"
)

// DecodeEnvelope returns the message dict carried by body. A body with both
// "oslo.version" and "oslo.message" is a v2.0 envelope: the version must have major 2
// and minor 0, and the message must be a JSON string holding a JSON object. A body
// lacking either key is an unenveloped (v1.0) message and is returned as it is. The
// map values are the raw JSON of each key. Errors are *FieldError.
func DecodeEnvelope(body []byte) (map[string]json.RawMessage, error) {
	outer, err := splitValidated(body)
	if err != nil {
		return nil, within("body", err)
	}
	rawVer, hasVer := outer[EnvelopeVersionKey]
	rawMsg, hasMsg := outer[EnvelopeMessageKey]
	if !hasVer || !hasMsg {
		// An unenveloped message: its members are kept, so they become copies
		// rather than parts of the caller's body.
		for k, v := range outer {
			outer[k] = slices.Clone(v)
		}
		return outer, nil
	}
	ver, ok := unquote(rawVer)
	if !ok {
		return nil, fieldErr(EnvelopeVersionKey, "not a string", nil)
	}
	if err := checkEnvelopeVersion(ver); err != nil {
		return nil, err
	}
	text, ok := unquoteBytes(rawMsg)
	if !ok {
		return nil, fieldErr(EnvelopeMessageKey, "not a string", nil)
	}
	inner, err := splitValidated(text) // text is a new slice: its parts are ours to keep
	if err != nil {
		return nil, within(EnvelopeMessageKey, err)
	}
	return inner, nil
}

func checkEnvelopeVersion(ver string) error {
	major, minor, err := ParseVersion(ver)
	if err != nil {
		return fieldErr(EnvelopeVersionKey, fmt.Sprintf("%q is not a version", ver), err)
	}
	if major != 2 || minor > 0 {
		return fieldErr(EnvelopeVersionKey, fmt.Sprintf("unsupported envelope version %q (want 2.0)", ver), nil)
	}
	return nil
}

// decodeObject parses data as a JSON object: it validates data and splits it, the
// members' values copied. Errors are *FieldError with an empty Field, to be re-rooted
// by the caller.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	if validJSON(data) {
		if m, ok := splitObject(data, true); ok {
			return m, nil
		}
	}
	return unmarshalObject(data)
}

// Members returns the members of the JSON object data, each as its raw value: what
// json.Unmarshal into a map[string]json.RawMessage gives, from one validating pass
// and one split. The values are parts of data, which must not change afterwards;
// MemberString reads a string among them.
func Members(data []byte) (map[string]json.RawMessage, error) {
	return splitValidated(data)
}

// MemberString returns the string a value of Members holds, as json.Unmarshal into a
// string gives it; ok is false when the value is not a string (null among others).
func MemberString(raw json.RawMessage) (s string, ok bool) {
	return unquote(raw)
}

// splitValidated is decodeObject whose values are parts of data, not copies.
func splitValidated(data []byte) (map[string]json.RawMessage, error) {
	if validJSON(data) {
		return validObject(data)
	}
	return unmarshalObject(data)
}

// validObject is decodeObject for data known to be valid JSON (a part of what was
// validated): it splits without validating, the values parts of data.
func validObject(data []byte) (map[string]json.RawMessage, error) {
	if m, ok := splitObject(data, false); ok {
		return m, nil
	}
	return unmarshalObject(data)
}

// unmarshalObject is encoding/json's path of decodeObject, and its errors.
func unmarshalObject(data []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fieldErr("", "not a JSON object", err)
	}
	if m == nil {
		return nil, fieldErr("", "not a JSON object (null)", nil)
	}
	return m, nil
}

// EncodeEnvelope wraps msg (anything json.Marshal accepts that encodes to a JSON
// object) in a v2.0 envelope.
func EncodeEnvelope(msg any) ([]byte, error) {
	inner, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode oslo.message: %w", err)
	}
	if len(inner) == 0 || inner[0] != '{' {
		return nil, fmt.Errorf("encode oslo.message: %s is not a JSON object", firstBytes(inner))
	}
	return json.Marshal(map[string]string{
		EnvelopeVersionKey: EnvelopeVersion,
		EnvelopeMessageKey: string(inner),
	})
}

func firstBytes(b []byte) string {
	if len(b) > 20 {
		return string(b[:20]) + "..."
	}
	return string(b)
}

// ParseVersion splits an oslo "major.minor" version string. A bare "major" means
// minor 0, as in oslo.
func ParseVersion(v string) (major, minor int, err error) {
	majStr, minStr, hasMinor := strings.Cut(v, ".")
	major, err = strconv.Atoi(majStr)
	if err != nil || major < 0 {
		return 0, 0, fmt.Errorf("version %q: bad major", v)
	}
	if !hasMinor {
		return major, 0, nil
	}
	minor, err = strconv.Atoi(minStr)
	if err != nil || minor < 0 {
		return 0, 0, fmt.Errorf("version %q: bad minor", v)
	}
	return major, minor, nil
}

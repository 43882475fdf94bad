package messages

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// NovaObject primitive keys.
const (
	objName      = "nova_object.name"
	objNamespace = "nova_object.namespace"
	objVersion   = "nova_object.version"
	objData      = "nova_object.data"
	objChanges   = "nova_object.changes"
)

// NovaNamespace is the namespace of nova's objects and notification payloads.
const NovaNamespace = "nova"

// Object is a NovaObject primitive (oslo.versionedobjects serialization):
// {"nova_object.name", "nova_object.namespace", "nova_object.version",
// "nova_object.data", optional "nova_object.changes"}. Data keeps each field's raw
// JSON so that a decoded object re-encodes unchanged. A `*List` object has data
// {"objects": [...]}: see Objects and NewList.
type Object struct {
	Name      string
	Namespace string
	Version   string
	Data      map[string]json.RawMessage
	// Changes lists fields changed but not saved; nil means the key is absent, which
	// differs from an empty list on the wire.
	Changes []string
}

// DecodeObject decodes a NovaObject primitive. Errors are *FieldError naming the
// primitive key that is missing or of the wrong kind. The object's data values are
// parts of raw, not copies: raw must not be changed afterwards.
func DecodeObject(raw []byte) (*Object, error) {
	m, err := splitValidated(raw)
	if err != nil {
		return nil, err
	}
	return objectFromMembers(m)
}

// validObjectPrimitive is DecodeObject for raw known to be valid JSON (a part of a
// validated body, a value of Object.Data).
func validObjectPrimitive(raw []byte) (*Object, error) {
	m, err := validObject(raw)
	if err != nil {
		return nil, err
	}
	return objectFromMembers(m)
}

func objectFromMembers(m map[string]json.RawMessage) (*Object, error) {
	o := &Object{}
	for _, s := range []struct {
		key string
		dst *string
	}{{objName, &o.Name}, {objNamespace, &o.Namespace}, {objVersion, &o.Version}} {
		v, ok := m[s.key]
		if !ok {
			return nil, fieldErr(s.key, "missing", nil)
		}
		if !stringOrNull(v, s.dst) {
			return nil, fieldErr(s.key, "not a string", nil)
		}
	}
	if o.Name == "" {
		return nil, fieldErr(objName, "empty", nil)
	}
	v, ok := m[objData]
	if !ok {
		return nil, fieldErr(objData, "missing", nil)
	}
	var err error
	if o.Data, err = validObject(v); err != nil {
		return nil, within(objData, err)
	}
	if v, ok := m[objChanges]; ok {
		if err := json.Unmarshal(v, &o.Changes); err != nil {
			return nil, fieldErr(objChanges, "not a list of strings", nil)
		}
		if o.Changes == nil {
			o.Changes = []string{}
		}
	}
	return o, nil
}

// stringOrNull sets *dst to the string raw holds and reports true; null leaves *dst
// as it is and reports true; anything else reports false. raw is valid JSON.
func stringOrNull(raw json.RawMessage, dst *string) bool {
	if string(raw) == "null" {
		return true
	}
	s, ok := unquote(raw)
	if ok {
		*dst = s
	}
	return ok
}

// MarshalJSON encodes the primitive (encode.go): keys sorted, data's values as held.
func (o *Object) MarshalJSON() ([]byte, error) { return o.appendJSON(nil), nil }

// NewObject returns an object in nova's namespace whose data are the given fields,
// each encoded as JSON.
func NewObject(name, version string, fields map[string]any) (*Object, error) {
	o := &Object{Name: name, Namespace: NovaNamespace, Version: version, Data: map[string]json.RawMessage{}}
	for k, v := range fields {
		if err := o.Set(k, v); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Set sets data field key to v encoded as JSON.
func (o *Object) Set(key string, v any) error {
	raw, err := rawJSON(v)
	if err != nil {
		return fmt.Errorf("%s.%s: %w", o.Name, key, err)
	}
	if o.Data == nil {
		o.Data = map[string]json.RawMessage{}
	}
	o.Data[key] = raw
	return nil
}

// Clone returns a deep copy.
func (o *Object) Clone() *Object {
	out := *o
	out.Data = make(map[string]json.RawMessage, len(o.Data))
	for k, v := range o.Data {
		out.Data[k] = slices.Clone(v)
	}
	out.Changes = slices.Clone(o.Changes)
	return &out
}

// Keys returns the data keys, sorted.
func (o *Object) Keys() []string { return slices.Sorted(maps.Keys(o.Data)) }

// IsList reports whether the object is a `*List` object.
func (o *Object) IsList() bool { return strings.HasSuffix(o.Name, "List") }

// Objects decodes the members of a `*List` object (data {"objects": [...]}).
func (o *Object) Objects() ([]*Object, error) {
	raw, ok := o.Data["objects"]
	if !ok {
		return nil, fieldErr(objData+".objects", "missing", nil)
	}
	items, ok := splitArray(raw)
	if !ok {
		return nil, fieldErr(objData+".objects", "not a list", nil)
	}
	out := make([]*Object, 0, len(items))
	for i, item := range items {
		obj, err := validObjectPrimitive(item)
		if err != nil {
			return nil, within(fmt.Sprintf("%s.objects.%d", objData, i), err)
		}
		out = append(out, obj)
	}
	return out, nil
}

// NewList returns a `*List` object of the given members.
func NewList(name, version string, items []*Object) (*Object, error) {
	if items == nil {
		items = []*Object{}
	}
	return NewObject(name, version, map[string]any{"objects": items})
}

// The typed field readers below treat an absent key like null. Their errors are
// *FieldError whose Field is the data key.

func (o *Object) has(key string) bool {
	raw, ok := o.Data[key]
	return ok && string(raw) != "null"
}

// Str reads a string field; absent or null is "".
func (o *Object) Str(key string) (string, error) {
	raw, ok := o.Data[key]
	if !ok {
		return "", nil
	}
	var s string
	if !stringOrNull(raw, &s) {
		return "", fieldErr(key, "not a string or null", nil)
	}
	return s, nil
}

// Int reads an integer field; absent or null is 0. A float with an integral value
// (Python's 1.0) is accepted.
func (o *Object) Int(key string) (int64, error) {
	raw, ok := o.Data[key]
	if !ok || string(raw) == "null" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil && n >= -1<<53 && n <= 1<<53 {
		return n, nil // what the float path below gives, without it
	}
	var f *float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, fieldErr(key, "not a number or null", nil)
	}
	if f == nil {
		return 0, nil
	}
	if *f != float64(int64(*f)) {
		return 0, fieldErr(key, fmt.Sprintf("%v is not an integer", *f), nil)
	}
	return int64(*f), nil
}

// Float reads a number field; absent or null is 0.
func (o *Object) Float(key string) (float64, error) {
	raw, ok := o.Data[key]
	if !ok {
		return 0, nil
	}
	var f *float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, fieldErr(key, "not a number or null", nil)
	}
	if f == nil {
		return 0, nil
	}
	return *f, nil
}

// Bool reads a boolean field; absent or null is false.
func (o *Object) Bool(key string) (bool, error) {
	raw, ok := o.Data[key]
	if !ok {
		return false, nil
	}
	switch string(raw) {
	case "true":
		return true, nil
	case "false", "null":
		return false, nil
	}
	var b *bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, fieldErr(key, "not a boolean or null", nil)
	}
	return b != nil && *b, nil
}

// Time reads a datetime field; absent or null is nil.
func (o *Object) Time(key string) (*time.Time, error) {
	s, err := o.Str(key)
	if err != nil || s == "" {
		return nil, err
	}
	t, err := ParseNovaTime(s)
	if err != nil {
		return nil, fieldErr(key, fmt.Sprintf("%q is not a datetime", s), err)
	}
	return &t, nil
}

// StringMap reads a dict of strings (metadata, extra_specs); absent or null is nil.
// Non-string values (nova stores strings, but JSON does not insist) are kept as their
// JSON text.
func (o *Object) StringMap(key string) (map[string]string, error) {
	raw, ok := o.Data[key]
	if !ok {
		return nil, nil
	}
	return decodeStringMap(key, raw)
}

func decodeStringMap(key string, raw json.RawMessage) (map[string]string, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	m, ok := splitObject(raw, false)
	if !ok {
		return nil, fieldErr(key, "not an object or null", nil)
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if s, ok := unquote(v); ok {
			out[k] = s
		} else {
			out[k] = string(v)
		}
	}
	return out, nil
}

// Child decodes a nested object field; absent or null is nil.
func (o *Object) Child(key string) (*Object, error) {
	if !o.has(key) {
		return nil, nil
	}
	c, err := validObjectPrimitive(o.Data[key])
	if err != nil {
		return nil, within(key, err)
	}
	return c, nil
}

package messages

import (
	"encoding/json"
	"fmt"
	"slices"
)

// payloadData is the data of a notification payload object being built. Each value
// is encoded (rawJSON) as it is set, and object writes the members sorted by key, the
// last set of a key winning: the bytes NewObject's object encodes to, without the two
// maps NewObject fills (the fields, then their JSON) for each of the some forty
// fields of every instance notification.
type payloadData struct {
	ms     []member
	errKey string
	err    error
}

func newPayloadData(n int) *payloadData { return &payloadData{ms: make([]member, 0, n)} }

// set encodes v as the value of key.
func (d *payloadData) set(key string, v any) {
	if d.err != nil {
		return
	}
	raw, err := rawJSON(v)
	if err != nil {
		d.errKey, d.err = key, err
		return
	}
	d.ms = append(d.ms, member{key, raw})
}

// object returns the payload's NovaObject primitive in nova's namespace.
func (d *payloadData) object(name, version string) (json.RawMessage, error) {
	if d.err != nil {
		return nil, fmt.Errorf("build %s: %s.%s: %w", name, name, d.errKey, d.err)
	}
	slices.SortStableFunc(d.ms, byKey)
	ms := d.ms[:0]
	size := 128 + len(name) + len(version)
	for i, m := range d.ms {
		if i+1 < len(d.ms) && d.ms[i+1].key == m.key {
			continue // set again later: the later value wins
		}
		ms = append(ms, m)
		size += len(m.key) + len(m.raw) + 4
	}
	return appendPrimitive(make([]byte, 0, size), nil, ms, name, NovaNamespace, version), nil
}

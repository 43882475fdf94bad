package messages

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestPayloadDataMatchesNewObject: a payload built field by field encodes to the
// bytes of NewObject's object with the same fields, a key set twice keeping its last
// value (as a map literal updated afterwards does), and a value rawJSON cannot encode
// fails the payload naming its field.
func TestPayloadDataMatchesNewObject(t *testing.T) {
	type kv struct {
		k string
		v any
	}
	cases := []struct {
		name   string
		fields []kv
	}{
		{"empty", nil},
		{"kinds", []kv{{"z", "s\"\\é"}, {"a", 1}, {"m", true}, {"b", nil}, {"raw", json.RawMessage(`{"x":[1,2]}`)},
			{"list", []string{"a", "b"}}, {"none", []any{}}, {"map", map[string]string{}}, {"int64", int64(-7)},
			{"raws", []json.RawMessage{json.RawMessage(`1`), nil}}, {"nilraw", json.RawMessage(nil)}}},
		{"set twice, last wins", []kv{{"extra_specs", json.RawMessage(`null`)}, {"a", "x"}, {"extra_specs", map[string]string{}}}},
		{"keys that sort by bytes", []kv{{"b_c", 1}, {"b", 2}, {"B", 3}, {"ba", 4}, {"_", 5}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newPayloadData(0)
			m := map[string]any{}
			for _, f := range c.fields {
				d.set(f.k, f.v)
				m[f.k] = f.v
			}
			got, err := d.object("TestPayload", "1.2")
			if err != nil {
				t.Fatal(err)
			}
			o, err := NewObject("TestPayload", "1.2", m)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := o.MarshalJSON()
			if string(got) != string(want) {
				t.Errorf("payload\n %s\nNewObject\n %s", got, want)
			}
		})
	}
	d := newPayloadData(1)
	d.set("ok", 1)
	d.set("bad", make(chan int))
	d.set("after", 2)
	if _, err := d.object("P", "1.0"); err == nil || !strings.HasPrefix(err.Error(), "build P: P.bad: ") {
		t.Errorf("error %v, want one naming P.bad", err)
	}
}

// TestFlavorPayloadWithoutExtraSpecs: a flavor that has no extra_specs is written
// with an empty object, as nova writes it, not null.
func TestFlavorPayloadWithoutExtraSpecs(t *testing.T) {
	o, err := NewObject("Flavor", "1.2", map[string]any{"flavorid": "bm1", "name": "bm.small", "extra_specs": nil})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := flavorPayload(&Instance{Flavor: &Flavor{Object: o}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := DecodeObject(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.Data["extra_specs"]); got != "{}" {
		t.Errorf("extra_specs %s, want {}", got)
	}
	if got := string(p.Data["name"]); got != `"bm.small"` {
		t.Errorf("name %s", got)
	}
}

// TestRawJSONAgreesWithEncodingJSON: rawJSON's own encodings read back as
// json.Marshal's of the same value: nil slices and nil items as null, empty ones as [].
func TestRawJSONAgreesWithEncodingJSON(t *testing.T) {
	o, err := NewObject("P", "1.0", map[string]any{"a": 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{
		nil, "é\"<x>", true, 7, int64(-7), json.RawMessage(`{"b":[1]}`), json.RawMessage(nil), o, (*Object)(nil),
		[]*Object{o, nil}, []*Object{}, []*Object(nil),
		[]json.RawMessage{json.RawMessage(`1`), nil, json.RawMessage(`"x"`)}, []json.RawMessage{}, []json.RawMessage(nil),
		[]string{"a", "b\\"}, []string{}, []string(nil), []any{}, map[string]string{},
	} {
		got, err := rawJSON(v)
		if err != nil {
			t.Fatalf("%#v: %v", v, err)
		}
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("%#v: rawJSON wrote %s: %v", v, got, err)
		}
		_ = json.Unmarshal(want, &w)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%#v: rawJSON %s, json.Marshal %s", v, got, want)
		}
	}
}

package jsoncompare

import (
	"encoding/json"
	"errors"
	"fmt"

	goccy "github.com/goccy/go-json"
	jsoniter "github.com/json-iterator/go"
	segment "github.com/segmentio/encoding/json"

	"xcatbm/messages"
)

// Fields is what the comparison reads out of a cast: its method, and the uuid, host
// and node of its instance argument (args.instance's nova_object.data).
type Fields struct {
	Method, UUID, Host, Node string
}

// Decoder reads a cast's Fields.
type Decoder struct {
	Name   string
	Decode func(body []byte) (Fields, error)
}

// unmarshalFunc is the json.Unmarshal of a library with encoding/json's API.
type unmarshalFunc func(data []byte, v any) error

// viaRawMaps reads a cast with unmarshal into map[string]json.RawMessage at every
// level, as a program that keeps the parts it does not read as raw JSON does.
func viaRawMaps(unmarshal unmarshalFunc) func([]byte) (Fields, error) {
	return func(body []byte) (Fields, error) {
		var outer map[string]json.RawMessage
		if err := unmarshal(body, &outer); err != nil {
			return Fields{}, err
		}
		var text string
		if err := unmarshal(outer["oslo.message"], &text); err != nil {
			return Fields{}, err
		}
		var msg, args, inst, data map[string]json.RawMessage
		if err := unmarshal([]byte(text), &msg); err != nil {
			return Fields{}, err
		}
		if err := unmarshal(msg["args"], &args); err != nil {
			return Fields{}, err
		}
		if err := unmarshal(args["instance"], &inst); err != nil {
			return Fields{}, err
		}
		if err := unmarshal(inst["nova_object.data"], &data); err != nil {
			return Fields{}, err
		}
		var f Fields
		for _, s := range []struct {
			raw json.RawMessage
			dst *string
		}{{msg["method"], &f.Method}, {data["uuid"], &f.UUID}, {data["host"], &f.Host}, {data["node"], &f.Node}} {
			if err := unmarshal(s.raw, s.dst); err != nil {
				return Fields{}, err
			}
		}
		return f, nil
	}
}

// xcatbmDecode reads a cast with xcatbm's messages package: the envelope validated
// and split once (DecodeEnvelope), every object below split without validating again.
func xcatbmDecode(body []byte) (Fields, error) {
	msg, err := messages.DecodeEnvelope(body)
	if err != nil {
		return Fields{}, err
	}
	args, err := messages.Members(msg["args"])
	if err != nil {
		return Fields{}, err
	}
	inst, err := messages.Members(args["instance"])
	if err != nil {
		return Fields{}, err
	}
	data, err := messages.Members(inst["nova_object.data"])
	if err != nil {
		return Fields{}, err
	}
	var f Fields
	for _, s := range []struct {
		raw json.RawMessage
		dst *string
	}{{msg["method"], &f.Method}, {data["uuid"], &f.UUID}, {data["host"], &f.Host}, {data["node"], &f.Node}} {
		v, ok := messages.MemberString(s.raw)
		if !ok {
			return Fields{}, errors.New("not a string")
		}
		*s.dst = v
	}
	return f, nil
}

// Decoders are the compared ways of reading a cast; jsonv2.go adds encoding/json/v2
// when built with GOEXPERIMENT=jsonv2.
var Decoders = []Decoder{
	{"encoding/json", viaRawMaps(json.Unmarshal)},
	{"goccy/go-json", viaRawMaps(goccy.Unmarshal)},
	{"segmentio/encoding", viaRawMaps(segment.Unmarshal)},
	{"json-iterator", viaRawMaps(jsoniter.ConfigCompatibleWithStandardLibrary.Unmarshal)},
	{"xcatbm messages", xcatbmDecode},
}

func (f Fields) String() string {
	return fmt.Sprintf("%s %s %s %s", f.Method, f.UUID, f.Host, f.Node)
}

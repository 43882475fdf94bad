package jsoncompare

import (
	"encoding/json"

	goccy "github.com/goccy/go-json"
	jsoniter "github.com/json-iterator/go"
	segment "github.com/segmentio/encoding/json"

	"xcatbm/messages"
)

// Encoder writes the oslo envelope of a versioned notification.
type Encoder struct {
	Name string
	// Encode writes tree (the notification's message dict, as encoding/json reads
	// it into map[string]any) or, for xcatbm, builds it from in.
	Encode func(tree map[string]any, in messages.NotifyInput) ([]byte, error)
}

// viaMarshal writes the message dict with marshal and then the envelope around its
// text, as messages.EncodeEnvelope does with encoding/json. The libraries get the
// notification already built; xcatbm's encoder below builds it too.
func viaMarshal(marshal func(any) ([]byte, error)) func(map[string]any, messages.NotifyInput) ([]byte, error) {
	return func(tree map[string]any, _ messages.NotifyInput) ([]byte, error) {
		inner, err := marshal(tree)
		if err != nil {
			return nil, err
		}
		return marshal(map[string]string{"oslo.version": "2.0", "oslo.message": string(inner)})
	}
}

// xcatbmEncode is the worker's path: the notification built from the decoded
// instance (its payload object among it) and encoded without reflection.
func xcatbmEncode(_ map[string]any, in messages.NotifyInput) ([]byte, error) {
	n, err := messages.NewVersionedInstanceNotification(in)
	if err != nil {
		return nil, err
	}
	return n.Encode()
}

// Encoders are the compared ways of writing a notification.
var Encoders = []Encoder{
	{"encoding/json", viaMarshal(json.Marshal)},
	{"goccy/go-json", viaMarshal(goccy.Marshal)},
	{"segmentio/encoding", viaMarshal(segment.Marshal)},
	{"json-iterator", viaMarshal(jsoniter.ConfigCompatibleWithStandardLibrary.Marshal)},
	{"xcatbm messages (builds it too)", xcatbmEncode},
	{"xcatbm messages (encode only)", xcatbmEncodeOnly()},
}

// xcatbmEncodeOnly writes a notification built once, on the first call: the part of
// xcatbmEncode the libraries' rows do.
func xcatbmEncodeOnly() func(map[string]any, messages.NotifyInput) ([]byte, error) {
	var built *messages.Notification
	return func(_ map[string]any, in messages.NotifyInput) ([]byte, error) {
		if built == nil {
			n, err := messages.NewVersionedInstanceNotification(in)
			if err != nil {
				return nil, err
			}
			built = n
		}
		return built.Encode()
	}
}

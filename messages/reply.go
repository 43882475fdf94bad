package messages

import (
	"encoding/json"
	"fmt"
)

// Failure is an exception as oslo serializes it into a reply's `failure` member
// (itself carried as a JSON string). nova's client re-raises it as the named class
// when Module is "builtins"/"exceptions" or one it allows ("nova.exception"), and as
// a RemoteError otherwise. Failure implements error.
type Failure struct {
	Class     string         `json:"class"`
	Module    string         `json:"module"`
	Message   string         `json:"message"`
	Traceback []string       `json:"tb"`
	Args      []any          `json:"args"`
	Kwargs    map[string]any `json:"kwargs"`
}

// Error implements error: "<module>.<class>: <message>".
func (f *Failure) Error() string {
	return fmt.Sprintf("%s.%s: %s", f.Module, f.Class, f.Message)
}

// Module names used by the Failure constructors.
const (
	DispatcherModule    = "oslo_messaging.rpc.dispatcher"
	NovaExceptionModule = "nova.exception"
)

// NoSuchMethod is the failure oslo's dispatcher answers when an endpoint with a
// compatible version lacks the method. The message is oslo's; a non-empty namespace
// is added to it so an operator sees which endpoint was asked.
func NoSuchMethod(namespace, method string) *Failure {
	msg := "Endpoint does not support RPC method " + method
	if namespace != "" {
		msg += " in namespace " + namespace
	}
	return &Failure{Class: "NoSuchMethod", Module: DispatcherModule, Message: msg, Args: []any{msg}}
}

// UnsupportedVersion is the failure oslo's dispatcher answers when no endpoint
// supports the requested version.
func UnsupportedVersion(version string) *Failure {
	return UnsupportedVersionOf(version, "")
}

// UnsupportedVersionOf is UnsupportedVersion naming the attempted method, as oslo
// does when it knows it.
func UnsupportedVersionOf(version, method string) *Failure {
	msg := "Endpoint does not support RPC version " + version
	if method != "" {
		msg += ". Attempted method: " + method
	}
	return &Failure{Class: "UnsupportedVersion", Module: DispatcherModule, Message: msg, Args: []any{msg}}
}

// InstanceNotFound is nova's exception for an unknown instance; nova's client
// re-raises it as nova.exception.InstanceNotFound.
func InstanceNotFound(uuid string) *Failure {
	return &Failure{
		Class:   "InstanceNotFound",
		Module:  NovaExceptionModule,
		Message: "Instance " + uuid + " could not be found.",
		Kwargs:  map[string]any{"instance_id": uuid},
	}
}

// normalized returns f with nil lists and maps as empty ones, as oslo sends them.
func (f *Failure) normalized() Failure {
	out := *f
	if out.Traceback == nil {
		out.Traceback = []string{}
	}
	if out.Args == nil {
		out.Args = []any{}
	}
	if out.Kwargs == nil {
		out.Kwargs = map[string]any{}
	}
	return out
}

// Reply is the answer to a call.
type Reply struct {
	Result   json.RawMessage // `result`: raw JSON, "null" when none
	Failure  *Failure        // decoded `failure`; nil when null
	Ending   bool            // `ending`: false only on a call-monitor heartbeat
	MsgID    string          // `_msg_id` of the request answered
	UniqueID string          // `_unique_id`
}

type replyWire struct {
	Result   json.RawMessage `json:"result"`
	Failure  *string         `json:"failure"`
	Ending   bool            `json:"ending"`
	MsgID    string          `json:"_msg_id"`
	UniqueID string          `json:"_unique_id,omitempty"`
}

// EncodeReply encodes a successful reply carrying result (any JSON-encodable value,
// nil for null) to the call msgID. Publish it with ReplyProperties to the default
// exchange with the request's `_reply_q` as routing key.
func EncodeReply(msgID string, result any) ([]byte, error) {
	raw, err := json.Marshal(result)
	if err != nil {
		return nil, fmt.Errorf("encode reply result: %w", err)
	}
	return encodeReply(replyWire{Result: raw, Ending: true, MsgID: msgID})
}

// EncodeFailureReply encodes a failed reply to the call msgID: `result` null and
// `failure` the JSON string of f.
func EncodeFailureReply(msgID string, f *Failure) ([]byte, error) {
	if f == nil {
		return nil, fieldErr("failure", "nil", nil)
	}
	text, err := json.Marshal(f.normalized())
	if err != nil {
		return nil, fmt.Errorf("encode failure: %w", err)
	}
	s := string(text)
	return encodeReply(replyWire{Result: json.RawMessage("null"), Failure: &s, Ending: true, MsgID: msgID})
}

// EncodeHeartbeatReply encodes the call-monitor heartbeat for msgID (`ending` false,
// no result), sent every `_timeout`/2 s while a call with integral `_timeout` >= 2 is
// being worked on.
func EncodeHeartbeatReply(msgID string) ([]byte, error) {
	return encodeReply(replyWire{Result: json.RawMessage("null"), Ending: false, MsgID: msgID})
}

func encodeReply(w replyWire) ([]byte, error) {
	if w.MsgID == "" {
		return nil, fieldErr("_msg_id", "empty", nil)
	}
	w.UniqueID = NewUniqueID()
	return EncodeEnvelope(w)
}

// DecodeReply decodes a reply body. Errors are *FieldError: `failure` must be null
// or a JSON string holding an object with string `class`, `module` and `message`.
func DecodeReply(body []byte) (*Reply, error) {
	msg, err := DecodeEnvelope(body)
	if err != nil {
		return nil, err
	}
	r := &Reply{Result: json.RawMessage("null"), Ending: true}
	if raw, ok := msg["result"]; ok {
		r.Result = raw
	}
	if raw, ok := msg["ending"]; ok {
		var b *bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, fieldErr("ending", "not a boolean", nil)
		}
		r.Ending = b == nil || *b
	}
	raw, ok := msg["_msg_id"]
	if !ok {
		return nil, fieldErr("_msg_id", "missing", nil)
	}
	if err := json.Unmarshal(raw, &r.MsgID); err != nil || r.MsgID == "" {
		return nil, fieldErr("_msg_id", "not a non-empty string", nil)
	}
	if raw, ok := msg["_unique_id"]; ok {
		if err := json.Unmarshal(raw, &r.UniqueID); err != nil {
			return nil, fieldErr("_unique_id", "not a string", nil)
		}
	}
	if raw, ok := msg["failure"]; ok {
		var text *string
		if err := json.Unmarshal(raw, &text); err != nil {
			return nil, fieldErr("failure", "not a string or null", nil)
		}
		if text != nil {
			f, err := decodeFailure([]byte(*text))
			if err != nil {
				return nil, within("failure", err)
			}
			r.Failure = f
		}
	}
	return r, nil
}

func decodeFailure(text []byte) (*Failure, error) {
	obj, err := decodeObject(text)
	if err != nil {
		return nil, err
	}
	f := &Failure{}
	for _, s := range []struct {
		key string
		dst *string
	}{{"class", &f.Class}, {"module", &f.Module}, {"message", &f.Message}} {
		raw, ok := obj[s.key]
		if !ok {
			return nil, fieldErr(s.key, "missing", nil)
		}
		if err := json.Unmarshal(raw, s.dst); err != nil {
			return nil, fieldErr(s.key, "not a string", nil)
		}
	}
	if raw, ok := obj["tb"]; ok {
		if err := json.Unmarshal(raw, &f.Traceback); err != nil {
			return nil, fieldErr("tb", "not a list of strings", nil)
		}
	}
	if raw, ok := obj["args"]; ok {
		if err := json.Unmarshal(raw, &f.Args); err != nil {
			return nil, fieldErr("args", "not a list", nil)
		}
	}
	if raw, ok := obj["kwargs"]; ok {
		if err := json.Unmarshal(raw, &f.Kwargs); err != nil {
			return nil, fieldErr("kwargs", "not an object", nil)
		}
	}
	return f, nil
}

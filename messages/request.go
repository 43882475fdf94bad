package messages

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// DefaultRequestVersion is the version of a request that names none.
const DefaultRequestVersion = "1.0"

// Request is an oslo RPC request, cast or call. A call has MsgID and ReplyQueue set
// (and a `_timeout`, possibly null); a cast has neither and is never answered. As
// in oslo, `_msg_id` alone makes a call: a request without it is a cast, and any
// `_reply_q` or `_timeout` it carries is kept in Extra.
type Request struct {
	Method    string                     // `method`
	Args      map[string]json.RawMessage // `args`: keyword arguments, raw JSON each
	Version   string                     // `version`; "1.0" when the message had none
	Namespace string                     // `namespace`; "" when absent
	UniqueID  string                     // `_unique_id`: uuid4 hex, the dedupe key

	MsgID      string   // `_msg_id` (call only): correlates the reply
	ReplyQueue string   // `_reply_q` (call only): queue to answer to
	Timeout    *float64 // `_timeout` (call only): call-monitor timeout in s; nil is null

	Context *Context // the `_context_*` members

	// Extra holds any other top-level member (and a cast's stray call members),
	// kept so that a request re-encodes as received.
	Extra map[string]json.RawMessage
}

// IsCall reports whether the request is a call (expects a reply).
func (r *Request) IsCall() bool { return r.MsgID != "" }

// Arg returns the raw JSON of argument name and whether it was sent.
func (r *Request) Arg(name string) (json.RawMessage, bool) {
	raw, ok := r.Args[name]
	return raw, ok
}

// SetArg sets argument name to v encoded as JSON (an *Object or json.RawMessage is
// kept as its JSON).
func (r *Request) SetArg(name string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode argument %s: %w", name, err)
	}
	if r.Args == nil {
		r.Args = make(map[string]json.RawMessage)
	}
	r.Args[name] = raw
	return nil
}

// requestKeys are the members Request has fields for; callKeys those only a call
// reads (a cast keeps them in Extra).
var (
	requestKeys = []string{"method", "args", "version", "namespace", "_unique_id"}
	callKeys    = []string{"_msg_id", "_reply_q", "_timeout"}
)

// DecodeRequest decodes an RPC request from an AMQP body (v2.0 envelope or
// unenveloped v1 dict). Errors are *FieldError naming the field: a missing or
// non-string `method`, `args` not an object, a `_context_*` of the wrong kind, ...
func DecodeRequest(body []byte) (*Request, error) {
	msg, err := DecodeEnvelope(body)
	if err != nil {
		return nil, err
	}
	return requestFromMessage(msg)
}

func requestFromMessage(msg map[string]json.RawMessage) (*Request, error) {
	r := &Request{Version: DefaultRequestVersion}
	rawMethod, ok := msg["method"]
	if !ok {
		return nil, fieldErr("method", "missing", nil)
	}
	if !stringOrNull(rawMethod, &r.Method) {
		return nil, fieldErr("method", "not a string", nil)
	}
	if r.Method == "" {
		return nil, fieldErr("method", "empty", nil)
	}
	if rawArgs, ok := msg["args"]; ok {
		args, err := validObject(rawArgs)
		if err != nil {
			return nil, within("args", err)
		}
		r.Args = args
	} else {
		r.Args = make(map[string]json.RawMessage)
	}
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"version", &r.Version}, {"namespace", &r.Namespace}, {"_unique_id", &r.UniqueID},
		{"_msg_id", &r.MsgID},
	} {
		if err := stringMember(msg, f.key, f.dst); err != nil {
			return nil, err
		}
	}
	if r.Version == "" {
		r.Version = DefaultRequestVersion
	}
	// Only `_msg_id` makes a call: oslo's server answers a request only when it
	// has one, and serves one without it as a cast whatever `_reply_q` or
	// `_timeout` say. Those members on a cast are kept, as received, in Extra.
	if r.MsgID != "" {
		if err := stringMember(msg, "_reply_q", &r.ReplyQueue); err != nil {
			return nil, err
		}
		if r.ReplyQueue == "" {
			return nil, fieldErr("_reply_q", "missing on a call (`_msg_id` is set)", nil)
		}
		if raw, ok := msg["_timeout"]; ok {
			if err := json.Unmarshal(raw, &r.Timeout); err != nil {
				return nil, fieldErr("_timeout", "not a number or null", nil)
			}
		}
	}
	ctx, err := contextFrom(msg)
	if err != nil {
		return nil, err
	}
	r.Context = ctx
	for k, v := range msg {
		if strings.HasPrefix(k, ContextPrefix) || slices.Contains(requestKeys, k) || (r.IsCall() && slices.Contains(callKeys, k)) {
			continue
		}
		if r.Extra == nil {
			r.Extra = make(map[string]json.RawMessage)
		}
		r.Extra[k] = v
	}
	return r, nil
}

// stringMember sets *dst to msg[key] when that member is a string; a null leaves
// *dst as it was.
func stringMember(msg map[string]json.RawMessage, key string, dst *string) error {
	raw, ok := msg[key]
	if !ok {
		return nil
	}
	if !stringOrNull(raw, dst) {
		return fieldErr(key, "not a string", nil)
	}
	return nil
}

// EncodeRequest encodes r as a v2.0 envelope body, the way oslo's RPC client does.
// A request without UniqueID gets a fresh one in the output (r is not modified); a
// call (MsgID set) must have ReplyQueue and always carries `_timeout` (null when
// Timeout is nil). The AMQP properties to publish it with are CastProperties or
// CallProperties.
func EncodeRequest(r *Request) ([]byte, error) {
	if r == nil {
		return nil, fieldErr("request", "nil", nil)
	}
	if r.Method == "" {
		return nil, fieldErr("method", "empty", nil)
	}
	if r.MsgID != "" && r.ReplyQueue == "" {
		return nil, fieldErr("_reply_q", "empty on a call", nil)
	}
	if r.MsgID == "" && (r.ReplyQueue != "" || r.Timeout != nil) {
		return nil, fieldErr("_msg_id", "empty while _reply_q or _timeout is set", nil)
	}
	msg := make(map[string]json.RawMessage, len(r.Extra)+8+r.Context.Len())
	maps.Copy(msg, r.Extra)
	putContext(msg, r.Context)
	put := func(key string, v any) error {
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		msg[key] = raw
		return nil
	}
	args := r.Args
	if args == nil {
		args = map[string]json.RawMessage{}
	}
	uniqueID := r.UniqueID
	if uniqueID == "" {
		uniqueID = NewUniqueID()
	}
	if err := put("method", r.Method); err != nil {
		return nil, err
	}
	if err := put("args", args); err != nil {
		return nil, err
	}
	if r.Version != "" {
		if err := put("version", r.Version); err != nil {
			return nil, err
		}
	}
	if r.Namespace != "" {
		if err := put("namespace", r.Namespace); err != nil {
			return nil, err
		}
	}
	if err := put("_unique_id", uniqueID); err != nil {
		return nil, err
	}
	if r.IsCall() {
		if err := put("_msg_id", r.MsgID); err != nil {
			return nil, err
		}
		if err := put("_reply_q", r.ReplyQueue); err != nil {
			return nil, err
		}
		if err := put("_timeout", r.Timeout); err != nil {
			return nil, err
		}
	}
	return EncodeEnvelope(msg)
}

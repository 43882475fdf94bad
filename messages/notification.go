package messages

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Notification priorities (upper case on the wire, lower case in routing keys).
const (
	PriorityInfo  = "INFO"
	PriorityWarn  = "WARN"
	PriorityError = "ERROR"
)

// Notification topics (the routing key is "<topic>.<priority lower-case>").
const (
	VersionedTopic = "versioned_notifications"
	LegacyTopic    = "notifications"
	XCATBMTopic    = "xcatbm_notifications"
)

// Notification is a notifier message (oslo "messagingv2" driver).
type Notification struct {
	Topic       string          // not on the wire: selects the routing key
	MessageID   string          // `message_id`: uuid4 with dashes
	PublisherID string          // `publisher_id`
	EventType   string          // `event_type`
	Priority    string          // `priority`: upper case
	Payload     json.RawMessage // `payload`
	Timestamp   time.Time       // `timestamp`, written as "2026-11-25 02:37:08.711531"
	UniqueID    string          // `_unique_id`
	Context     *Context        // `_context_*`; Encode keeps only whitelisted keys
}

// RoutingKey returns "<topic>.<priority lower-case>", the key to publish the
// notification with on the notification exchange.
func (n *Notification) RoutingKey() string {
	return n.Topic + "." + strings.ToLower(n.Priority)
}

// Encode returns the notification as a v2.0 envelope body. Only the notifier's
// whitelisted context keys are written (never auth_token). MessageID and UniqueID
// must be set (NewNotification sets them).
func (n *Notification) Encode() ([]byte, error) {
	switch {
	case n.MessageID == "":
		return nil, fieldErr("message_id", "empty", nil)
	case n.EventType == "":
		return nil, fieldErr("event_type", "empty", nil)
	case n.PublisherID == "":
		return nil, fieldErr("publisher_id", "empty", nil)
	case n.Priority == "" || n.Priority != strings.ToUpper(n.Priority):
		return nil, fieldErr("priority", fmt.Sprintf("%q is not upper case", n.Priority), nil)
	case n.Timestamp.IsZero():
		return nil, fieldErr("timestamp", "zero", nil)
	case len(n.Payload) == 0:
		return nil, fieldErr("payload", "empty", nil)
	}
	ctx := n.Context.ForNotification()
	ms := make([]member, 0, 8+ctx.Len())
	for k, v := range ctx.fields {
		ms = append(ms, member{ContextPrefix + k, v})
	}
	for _, f := range [...]struct{ k, v string }{
		{"message_id", n.MessageID}, {"publisher_id", n.PublisherID}, {"event_type", n.EventType},
		{"priority", n.Priority}, {"timestamp", FormatTimestamp(n.Timestamp)}, {"_unique_id", n.UniqueID},
	} {
		ms = append(ms, member{f.k, appendString(nil, f.v)})
	}
	ms = append(ms, member{"payload", n.Payload})
	return wrapEnvelope(appendMembers(make([]byte, 0, 512+len(n.Payload)), ms)), nil
}

// NewNotification returns a notification with fresh message and unique ids.
func NewNotification(topic, publisherID, eventType, priority string, payload any, at time.Time, ctx *Context) (*Notification, error) {
	raw, err := rawJSON(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", eventType, err)
	}
	return &Notification{
		Topic: topic, MessageID: NewMessageID(), PublisherID: publisherID, EventType: eventType,
		Priority: priority, Payload: raw, Timestamp: at, UniqueID: NewUniqueID(), Context: ctx,
	}, nil
}

// DecodeNotification decodes a notification body. Topic is left empty (it is not
// on the wire). Errors are *FieldError.
func DecodeNotification(body []byte) (*Notification, error) {
	msg, err := DecodeEnvelope(body)
	if err != nil {
		return nil, err
	}
	n := &Notification{}
	for _, s := range []struct {
		key string
		dst *string
	}{
		{"message_id", &n.MessageID}, {"publisher_id", &n.PublisherID}, {"event_type", &n.EventType},
		{"priority", &n.Priority}, {"_unique_id", &n.UniqueID},
	} {
		raw, ok := msg[s.key]
		if !ok {
			if s.key == "_unique_id" {
				continue
			}
			return nil, fieldErr(s.key, "missing", nil)
		}
		if err := json.Unmarshal(raw, s.dst); err != nil {
			return nil, fieldErr(s.key, "not a string", nil)
		}
	}
	raw, ok := msg["timestamp"]
	if !ok {
		return nil, fieldErr("timestamp", "missing", nil)
	}
	var ts string
	if err := json.Unmarshal(raw, &ts); err != nil {
		return nil, fieldErr("timestamp", "not a string", nil)
	}
	if n.Timestamp, err = time.Parse("2006-01-02 15:04:05.999999", ts); err != nil {
		return nil, fieldErr("timestamp", fmt.Sprintf("%q is not oslo's format", ts), err)
	}
	if n.Payload, ok = msg["payload"]; !ok {
		return nil, fieldErr("payload", "missing", nil)
	}
	if n.Context, err = contextFrom(msg); err != nil {
		return nil, err
	}
	return n, nil
}

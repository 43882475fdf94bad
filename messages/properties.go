package messages

import (
	"strconv"
	"time"
)

// Properties are the AMQP basic properties oslo.messaging publishes with, as plain
// data (the AMQP client maps them onto its own type).
type Properties struct {
	ContentType     string
	ContentEncoding string
	DeliveryMode    uint8 // 2: persistent, on every oslo publish
	Priority        uint8
	Expiration      string // milliseconds as a decimal string; only on calls
	Headers         map[string]any
}

// Measured property values of the real library (WIRE.md §1).
const (
	ContentType     = "application/json"
	ContentEncoding = "utf-8"
	Persistent      = 2
)

func baseProperties() Properties {
	return Properties{
		ContentType:     ContentType,
		ContentEncoding: ContentEncoding,
		DeliveryMode:    Persistent,
		Priority:        0,
		Headers:         map[string]any{},
	}
}

// CastProperties returns the properties of a cast: no expiration.
func CastProperties() Properties { return baseProperties() }

// CallProperties returns the properties of a call with the given timeout: the
// expiration is the timeout in whole milliseconds ("30000" for 30 s). A timeout <= 0
// leaves the expiration unset.
func CallProperties(timeout time.Duration) Properties {
	p := baseProperties()
	if ms := timeout.Milliseconds(); ms > 0 {
		p.Expiration = strconv.FormatInt(ms, 10)
	}
	return p
}

// ReplyProperties returns the properties of a reply: no expiration (publish it
// mandatory to the default exchange).
func ReplyProperties() Properties { return baseProperties() }

// NotificationProperties returns the properties of a notification: no expiration.
func NotificationProperties() Properties { return baseProperties() }

package messages

import (
	"strings"
	"time"

	"github.com/google/uuid"
)

// NewUniqueID returns a fresh random uuid4 as 32 hex digits, the form oslo uses for
// `_unique_id`, `_msg_id` and reply queue suffixes.
func NewUniqueID() string {
	return strings.ReplaceAll(uuid.NewString(), "-", "")
}

// NewMessageID returns a fresh random uuid4 in its dashed form, as notifications
// carry in `message_id`.
func NewMessageID() string { return uuid.NewString() }

// TimestampLayout is the layout of a notification's `timestamp`: Python's
// str(datetime.utcnow()), UTC, no zone.
const TimestampLayout = "2006-01-02 15:04:05.000000"

// NovaTimeLayout is the layout of datetimes inside NovaObject primitives and versioned
// notification payloads (oslo.versionedobjects DateTimeField).
const NovaTimeLayout = "2006-01-02T15:04:05Z"

// FormatTimestamp formats t (converted to UTC, truncated to the microsecond) as oslo's
// notifier does: "2026-11-25 02:37:08.711531". Like Python's str(datetime), a time
// with zero microseconds has no fraction: "2026-11-25 02:37:08".
func FormatTimestamp(t time.Time) string {
	t = t.UTC().Truncate(time.Microsecond)
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02 15:04:05")
	}
	return t.Format(TimestampLayout)
}

// FormatNovaTime formats t (converted to UTC, to the second) as NovaObject datetimes:
// "2012-10-29T13:42:11Z".
func FormatNovaTime(t time.Time) string { return t.UTC().Format(NovaTimeLayout) }

// ParseNovaTime parses a NovaObject datetime. Besides "2012-10-29T13:42:11Z" it
// accepts RFC 3339 with fractions or offsets and nova's strtime form without zone
// ("2026-11-25T02:37:05.027101", taken as UTC).
func ParseNovaTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse("2006-01-02T15:04:05.999999999", s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

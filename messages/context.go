package messages

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"xcatbm/internal/config"
)

// ContextPrefix is the prefix of the flattened request-context keys in a message.
const ContextPrefix = "_context_"

// Context is nova's request context as it travels flattened into `_context_<key>`
// members of a request or notification. It keeps every key it was given, known or
// not, as raw JSON so that a decoded context re-encodes unchanged; typed accessors read
// the common ones. Keys are stored without the prefix. The zero value is an empty
// context ready to use.
//
// `auth_token` is a secret: AuthToken returns it as a config.Secret, and a Context
// never prints it (String redacts it). Encode it onto the wire only through
// EncodeRequest.
type Context struct {
	fields map[string]json.RawMessage
}

// Expected JSON kinds of the context keys nova sends; any other key is kept unchecked.
var (
	contextStringKeys = []string{
		"user", "user_id", "project", "project_id", "project_name", "user_name",
		"system_scope", "domain", "user_domain", "project_domain", "auth_token",
		"request_id", "global_request_id", "resource_uuid", "user_identity",
		"read_deleted", "remote_address", "timestamp", "quota_class",
	}
	contextBoolKeys = []string{"is_admin", "read_only", "show_deleted", "is_admin_project"}
)

// notificationContextKeys is oslo.messaging's notifier whitelist; keys with the
// prefixes in notificationContextPrefixes are kept too.
var (
	notificationContextKeys = []string{
		"user_id", "project_id", "domain_id", "user_domain_id", "project_domain_id",
		"is_admin", "request_id", "roles", "user_name", "project_name", "domain_name",
		"user_domain_name", "project_domain_name", "service_roles", "global_request_id",
		"system_scope", "user", "domain", "user_domain", "project_domain",
	}
	notificationContextPrefixes = []string{"service_user_", "service_project_"}
)

// NewContext returns an empty context.
func NewContext() *Context { return &Context{} }

// checkContextValue checks that raw has the JSON kind nova uses for key.
func checkContextValue(key string, raw json.RawMessage) error {
	switch {
	case slices.Contains(contextStringKeys, key):
		// unquoteBytes takes exactly the valid JSON strings.
		if _, ok := unquoteBytes(raw); !ok && string(raw) != "null" {
			return fieldErr(ContextPrefix+key, "not a string or null", nil)
		}
	case slices.Contains(contextBoolKeys, key):
		if s := string(raw); s != "true" && s != "false" && s != "null" {
			return fieldErr(ContextPrefix+key, "not a boolean or null", nil)
		}
	case key == "roles":
		var r []string
		if err := json.Unmarshal(raw, &r); err != nil {
			return fieldErr(ContextPrefix+key, "not a list of strings or null", nil)
		}
	default:
		if !json.Valid(raw) {
			return fieldErr(ContextPrefix+key, "not JSON", nil)
		}
	}
	return nil
}

// SetRaw sets key (without the `_context_` prefix) to the raw JSON value, checking
// its kind for the keys nova defines (strings, booleans, roles a list of strings).
func (c *Context) SetRaw(key string, raw json.RawMessage) error {
	if err := checkContextValue(key, raw); err != nil {
		return err
	}
	if c.fields == nil {
		c.fields = make(map[string]json.RawMessage)
	}
	c.fields[key] = slices.Clone(raw)
	return nil
}

// Set sets key (without the `_context_` prefix) to v encoded as JSON. Use
// SetAuthToken for the token: Set refuses a config.Secret, which would encode as
// "[REDACTED]".
func (c *Context) Set(key string, v any) error {
	if _, ok := v.(config.Secret); ok {
		return fieldErr(ContextPrefix+key, "use SetAuthToken for a secret", nil)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fieldErr(ContextPrefix+key, "cannot encode", err)
	}
	return c.SetRaw(key, raw)
}

// SetAuthToken sets `auth_token`; an empty secret sets it to null.
func (c *Context) SetAuthToken(token config.Secret) {
	raw := json.RawMessage("null")
	if !token.IsZero() {
		raw, _ = json.Marshal(token.Reveal()) // a string always encodes
	}
	_ = c.SetRaw("auth_token", raw) // a string or null always passes the check
}

// Get returns the raw JSON of key (without prefix) and whether it is present.
func (c *Context) Get(key string) (json.RawMessage, bool) {
	if c == nil {
		return nil, false
	}
	raw, ok := c.fields[key]
	return raw, ok
}

// Keys returns the context's keys (without prefix), sorted.
func (c *Context) Keys() []string {
	if c == nil {
		return nil
	}
	keys := make([]string, 0, len(c.fields))
	for k := range c.fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Len returns the number of keys.
func (c *Context) Len() int {
	if c == nil {
		return 0
	}
	return len(c.fields)
}

func (c *Context) str(key string) string {
	raw, ok := c.Get(key)
	if !ok {
		return ""
	}
	s, _ := unquote(raw) // set through SetRaw: a string or null
	return s
}

func (c *Context) boolean(key string) bool {
	raw, ok := c.Get(key)
	if !ok {
		return false
	}
	var b bool
	_ = json.Unmarshal(raw, &b) // kind checked when set; null leaves false
	return b
}

// UserID returns `user_id` ("" when absent or null).
func (c *Context) UserID() string { return c.str("user_id") }

// ProjectID returns `project_id`.
func (c *Context) ProjectID() string { return c.str("project_id") }

// UserName returns `user_name`.
func (c *Context) UserName() string { return c.str("user_name") }

// ProjectName returns `project_name`.
func (c *Context) ProjectName() string { return c.str("project_name") }

// RequestID returns `request_id` ("req-<uuid>").
func (c *Context) RequestID() string { return c.str("request_id") }

// GlobalRequestID returns `global_request_id`.
func (c *Context) GlobalRequestID() string { return c.str("global_request_id") }

// UserIdentity returns `user_identity`.
func (c *Context) UserIdentity() string { return c.str("user_identity") }

// RemoteAddress returns `remote_address`.
func (c *Context) RemoteAddress() string { return c.str("remote_address") }

// IsAdmin returns `is_admin` (false when absent or null).
func (c *Context) IsAdmin() bool { return c.boolean("is_admin") }

// ReadOnly returns `read_only`.
func (c *Context) ReadOnly() bool { return c.boolean("read_only") }

// AuthToken returns `auth_token` as a secret (empty when absent or null).
func (c *Context) AuthToken() config.Secret { return config.NewSecret(c.str("auth_token")) }

// Roles returns `roles` (nil when absent or null).
func (c *Context) Roles() []string {
	raw, ok := c.Get("roles")
	if !ok {
		return nil
	}
	var r []string
	_ = json.Unmarshal(raw, &r) // kind checked when set
	return r
}

// Timestamp parses `timestamp` (nova strtime "2026-11-25T02:37:05.027101", UTC). It
// returns the zero time and nil when the key is absent or null.
func (c *Context) Timestamp() (time.Time, error) {
	s := c.str("timestamp")
	if s == "" {
		return time.Time{}, nil
	}
	t, err := ParseNovaTime(s)
	if err != nil {
		return time.Time{}, fieldErr(ContextPrefix+"timestamp", fmt.Sprintf("%q is not a time", s), err)
	}
	return t, nil
}

// ForNotification returns a copy holding only the keys oslo.messaging's notifier
// keeps (its whitelist: user_id, project_id, request_id, roles, is_admin, user,
// domain, ... and service_user_*/service_project_*); in particular no auth_token.
func (c *Context) ForNotification() *Context {
	out := &Context{fields: make(map[string]json.RawMessage)}
	if c == nil {
		return out
	}
	for k, v := range c.fields {
		if notificationContextKey(k) {
			out.fields[k] = v
		}
	}
	return out
}

func notificationContextKey(k string) bool {
	if slices.Contains(notificationContextKeys, k) {
		return true
	}
	for _, p := range notificationContextPrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// Clone returns a deep copy.
func (c *Context) Clone() *Context {
	out := &Context{fields: make(map[string]json.RawMessage, c.Len())}
	if c == nil {
		return out
	}
	for k, v := range c.fields {
		out.fields[k] = slices.Clone(v)
	}
	return out
}

// String lists the context's keys and values with auth_token redacted, for logs.
func (c *Context) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range c.Keys() {
		if i > 0 {
			b.WriteString(", ")
		}
		v := string(c.fields[k])
		if k == "auth_token" && v != "null" {
			v = config.Redacted
		}
		b.WriteString(k + ": " + v)
	}
	b.WriteByte('}')
	return b.String()
}

// contextFrom collects the `_context_*` members of a message dict.
func contextFrom(msg map[string]json.RawMessage) (*Context, error) {
	c := &Context{fields: make(map[string]json.RawMessage)}
	for k, v := range msg {
		key, ok := strings.CutPrefix(k, ContextPrefix)
		if !ok {
			continue
		}
		if err := c.SetRaw(key, v); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// putContext writes c's keys into msg with the `_context_` prefix.
func putContext(msg map[string]json.RawMessage, c *Context) {
	if c == nil {
		return
	}
	for k, v := range c.fields {
		msg[ContextPrefix+k] = v
	}
}

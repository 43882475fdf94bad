package cloud

import (
	"encoding/json"
	"regexp"
	"strings"
)

var (
	tagRE   = regexp.MustCompile(`<[^>]*>`)
	spaceRE = regexp.MustCompile(`\s+`)
)

// maxMessage bounds a service message kept in an error.
const maxMessage = 500

// serviceMessage extracts a service's message from an error body: the "message" (or
// "faultstring", "detail") of a JSON error such as {"NeutronError": {"message": ...}}
// or {"badRequest": {"message": ...}}, else the body's text without HTML tags.
func serviceMessage(body []byte) string {
	var v any
	msg := ""
	if json.Unmarshal(body, &v) == nil {
		msg = findMessage(v, 0)
	}
	if msg == "" {
		msg = tagRE.ReplaceAllString(string(body), " ")
	}
	msg = strings.TrimSpace(spaceRE.ReplaceAllString(msg, " "))
	if msg == "" {
		return "(no message)"
	}
	if r := []rune(msg); len(r) > maxMessage {
		msg = string(r[:maxMessage]) + "…"
	}
	return msg
}

func findMessage(v any, depth int) string {
	if depth > 8 {
		return ""
	}
	switch t := v.(type) {
	case string:
		if depth == 0 {
			return t
		}
	case map[string]any:
		for _, k := range []string{"message", "faultstring", "detail", "title"} {
			if s, ok := t[k].(string); ok && s != "" {
				return s
			}
		}
		for _, x := range t {
			if s := findMessage(x, depth+1); s != "" {
				return s
			}
		}
	case []any:
		for _, x := range t {
			if s := findMessage(x, depth+1); s != "" {
				return s
			}
		}
	}
	return ""
}

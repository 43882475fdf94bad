package messages

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"xcatbm/internal/config"
)

// Secret-bearing members of a message, by name: any member whose lower-cased name
// contains one of secretWords (auth and service tokens, admin and rescue passwords,
// credentials, ...), and the members in secretNames (a tenant's user data, and the
// passwords whose names say only "pass": a rebuild's new_pass, the API's adminPass).
var (
	secretWords = []string{"password", "passwd", "token", "secret", "credential", "private_key"}
	secretNames = map[string]bool{"user_data": true, "userdata": true, "injected_files": true, "new_pass": true, "adminpass": true}
)

// IsSecretName reports whether a message member of this name carries a secret, by
// the rule RedactBody applies.
func IsSecretName(name string) bool {
	n := strings.ToLower(name)
	if secretNames[n] {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// RedactBody returns a copy of an RPC message body fit to keep where operators look
// (a dead-letter queue): every secret-bearing member (IsSecretName), at any depth,
// in the oslo envelope's message or a bare message, has its value replaced by
// "[REDACTED]" (null stays null). What an operator needs to diagnose — the method,
// the version, the instance, the request id, the shape of the arguments — is kept.
//
// A body that is not JSON cannot be searched member by member: it is kept only when
// it holds none of the secret words; otherwise a short JSON note replaces it.
// RedactBody never fails.
func RedactBody(body []byte) []byte {
	var outer any
	if err := decodeAny(body, &outer); err != nil {
		return redactOpaque(body)
	}
	if env, ok := outer.(map[string]any); ok {
		if inner, ok := env[EnvelopeMessageKey].(string); ok {
			var msg any
			if err := decodeAny([]byte(inner), &msg); err != nil {
				env[EnvelopeMessageKey] = string(redactOpaque([]byte(inner)))
			} else {
				redactValue(msg)
				b, err := json.Marshal(msg)
				if err != nil {
					return redactOpaque(body)
				}
				env[EnvelopeMessageKey] = string(b)
			}
			redactValue(env)
			return marshalOr(env, body)
		}
	}
	redactValue(outer)
	return marshalOr(outer, body)
}

func decodeAny(b []byte, v *any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}

func marshalOr(v any, orig []byte) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return redactOpaque(orig)
	}
	return b
}

// redactValue replaces, in place, the values of secret-bearing members.
func redactValue(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if val != nil && IsSecretName(k) {
				x[k] = config.Redacted
				continue
			}
			redactValue(val)
		}
	case []any:
		for _, e := range x {
			redactValue(e)
		}
	}
}

// redactOpaque keeps a body that is no JSON when none of the secret words occur in
// it; otherwise it says what was withheld.
func redactOpaque(b []byte) []byte {
	lower := strings.ToLower(string(b))
	words := append([]string(nil), secretWords...)
	for n := range secretNames {
		words = append(words, n)
	}
	for _, w := range words {
		if strings.Contains(lower, w) {
			note, _ := json.Marshal(map[string]string{"xcatbm.redacted": fmt.Sprintf("a body of %d bytes that is not JSON and may hold a secret (%q) was withheld", len(b), w)})
			return note
		}
	}
	return b
}

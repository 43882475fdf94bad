package config

import "strings"

// RedactURL returns raw fit for a log line: every password replaced by Redacted. It
// takes the connection strings xcatbm is given: URLs such as
// "amqp://user:pass@host/vhost" or "postgres://u:p@h/db?password=p", oslo's
// multi-host transport URL "rabbit://u:p@h1:5672,u:p@h2:5672/vhost", and libpq's
// "host=h password=p" form.
//
// It reads a URL the way that leaks least when the input is malformed, not the way
// url.Parse does: a password holding a raw ',', '/', '?', '#' or '@' is hidden
// whole (with all that follows when it holds '/', '?' or '#'), and a query
// parameter whose name holds "pass", "token" or "secret" loses its value. A
// password with both a raw '@' and a raw ',' is ambiguous (oslo reads "u:a@b,c@h"
// as two hosts) and is read as oslo reads it.
//
// A string that is neither a URL nor a key=value list but holds ':' or '@', or
// holds "://" after no scheme, is replaced entirely.
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if ok && !isScheme(scheme) {
		return Redacted // "x=://u:p@h" reads as neither a URL nor key=value pairs
	}
	if !ok {
		if strings.Contains(raw, "=") {
			return redactKeyValues(raw)
		}
		if strings.ContainsAny(raw, ":@") {
			return Redacted
		}
		return raw
	}
	// The authority ends at the first '/', '?' or '#'. An '@' after that with a ':'
	// before it may be a password holding one of them ("u:pa/ss@h") as well as a
	// query's ("h:5432/db?password=a@b"): no reading is safe, so none is shown.
	end := len(rest)
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		end = i
	}
	if at := strings.LastIndexByte(rest, '@'); at > end && strings.Contains(rest[:at], ":") {
		return scheme + "://" + Redacted
	}
	return scheme + "://" + redactAuthority(rest[:end]) + redactQuery(rest[end:])
}

// redactAuthority hides the passwords of "u:p@h1,u:p@h2:5672". Host names hold
// neither ',' nor '@', so a segment between two '@' is the previous entry's hosts up
// to its first ',' and the next entry's user part after it; a segment without ',',
// or whose text before the ',' is no host, belongs to the user part before it (a
// password holding '@').
func redactAuthority(a string) string {
	segs := strings.Split(a, "@")
	if len(segs) == 1 {
		return a
	}
	var b strings.Builder
	user := segs[0]
	for i, s := range segs[1:] {
		if i == len(segs)-2 {
			b.WriteString(redactUser(user) + "@" + s)
			break
		}
		hosts, next, ok := strings.Cut(s, ",")
		if !ok || !isHost(hosts) {
			user += "@" + s
			continue
		}
		b.WriteString(redactUser(user) + "@" + hosts + ",")
		user = next
	}
	return b.String()
}

// redactUser keeps the user name of "user:password" and hides the rest. A user
// part without ':' is a name; one that holds what no name holds is hidden whole.
func redactUser(u string) string {
	if name, _, ok := strings.Cut(u, ":"); ok {
		return name + ":" + Redacted
	}
	if strings.ContainsAny(u, "/?#&=") {
		return Redacted
	}
	return u
}

// isScheme reports whether s is a URL scheme: a letter, then letters, digits, '+',
// '-' and '.'.
func isScheme(s string) bool {
	return alnumOr(s, "+-.") && !strings.ContainsRune("0123456789+-.", rune(s[0]))
}

// isHost reports whether h can be a host[:port] of a URL's authority (a name, an
// IPv4 or a bracketed IPv6 address).
func isHost(h string) bool { return alnumOr(h, ".-_:[]%") }

// alnumOr reports whether s is not empty and holds only ASCII letters, digits and
// the bytes of extra.
func alnumOr(s, extra string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(extra, r))
	})
}

// redactQuery hides the values of the secret-looking parameters in the query of
// s, the part of a URL after its authority.
func redactQuery(s string) string {
	path, query, ok := strings.Cut(s, "?")
	if !ok {
		return s
	}
	query, frag, hasFrag := strings.Cut(query, "#")
	params := strings.Split(query, "&")
	for i, p := range params {
		if k, _, ok := strings.Cut(p, "="); ok && secretKey(k) {
			params[i] = k + "=" + Redacted
		}
	}
	out := path + "?" + strings.Join(params, "&")
	if hasFrag {
		out += "#" + frag
	}
	return out
}

// secretKey reports whether a connection parameter named k holds a secret.
func secretKey(k string) bool {
	k = strings.ToLower(k)
	return strings.Contains(k, "pass") || strings.Contains(k, "token") || strings.Contains(k, "secret")
}

// redactKeyValues redacts libpq's "key=value key='quoted \' value'" form. It keeps
// the layout of what it can read and gives Redacted for the whole string when it
// cannot read it, since a password might then sit anywhere.
func redactKeyValues(s string) string {
	var b strings.Builder
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return strings.TrimSpace(b.String())
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq <= 0 {
			return Redacted
		}
		key := strings.TrimSpace(s[i : i+eq])
		if !isKeyword(key) {
			return Redacted
		}
		i += eq + 1
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		start := i
		if i < len(s) && s[i] == '\'' {
			i++
			for i < len(s) && s[i] != '\'' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				return Redacted // an unclosed quote
			}
			i++
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			i = min(i, len(s))
			if strings.Contains(s[start:i], "=") {
				return Redacted // "host= password=p": libpq's host would be "password=p"
			}
		}
		value := s[start:i]
		if secretKey(key) {
			value = Redacted
		}
		b.WriteString(key + "=" + value + " ")
	}
}

// isKeyword reports whether k can be a libpq keyword: letters, digits and '_'.
func isKeyword(k string) bool { return alnumOr(k, "_") }

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestParseEnvAndFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantHost string
		wantN    int
		wantWait time.Duration
		wantPW   string
		wantErr  string
	}{
		{name: "defaults", wantHost: "h0", wantN: 1, wantWait: time.Second},
		{name: "env", env: map[string]string{"XCATBM_COMPUTE_HOST": "h1", "XCATBM_CONCURRENCY": "7", "XCATBM_DB_PASSWORD": "pw"}, wantHost: "h1", wantN: 7, wantWait: time.Second, wantPW: "pw"},
		{name: "flag wins over env", args: []string{"--compute-host", "h2"}, env: map[string]string{"XCATBM_COMPUTE_HOST": "h1"}, wantHost: "h2", wantN: 1, wantWait: time.Second},
		{name: "secret from file", env: map[string]string{"XCATBM_DB_PASSWORD_FILE": pwFile}, wantHost: "h0", wantN: 1, wantWait: time.Second, wantPW: "from-file"},
		{name: "bad env value names the variable", env: map[string]string{"XCATBM_POLL_WAIT": "soon"}, wantErr: "XCATBM_POLL_WAIT"},
		{name: "missing secret file", env: map[string]string{"XCATBM_DB_PASSWORD_FILE": filepath.Join(dir, "nope")}, wantErr: "XCATBM_DB_PASSWORD_FILE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(&bytes.Buffer{})
			host := fs.String("compute-host", "h0", "host")
			n := fs.Int("concurrency", 1, "n")
			wait := fs.Duration("poll-wait", time.Second, "wait")
			var pw Secret
			fs.Var(&pw, "db-password", "password")
			err := Parse(fs, tc.args, func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *host != tc.wantHost || *n != tc.wantN || *wait != tc.wantWait || pw.Reveal() != tc.wantPW {
				t.Fatalf("got host=%q n=%d wait=%v pw=%q", *host, *n, *wait, pw.Reveal())
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	const canary = "canary-s3cr3t-value"
	s := NewSecret(canary)
	type holder struct {
		Password Secret
		Ptr      *Secret
	}
	h := holder{Password: s, Ptr: &s}
	var logBuf bytes.Buffer
	zl := zerolog.New(&logBuf)
	zl.Info().Interface("h", h).Stringer("s", s).Msg("x")
	j, _ := json.Marshal(h)
	outputs := map[string]string{
		"%v":      fmt.Sprintf("%v", s),
		"%s":      fmt.Sprintf("%s", s),
		"%q":      fmt.Sprintf("%q", s),
		"%#v":     fmt.Sprintf("%#v", s),
		"%+v":     fmt.Sprintf("%+v", h),
		"%#v hol": fmt.Sprintf("%#v", h),
		"json":    string(j),
		"zerolog": logBuf.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, canary) {
			t.Errorf("%s revealed the secret: %s", name, out)
		}
		if !strings.Contains(out, Redacted) {
			t.Errorf("%s does not say %s: %s", name, Redacted, out)
		}
	}
	if s.Reveal() != canary {
		t.Fatalf("Reveal = %q", s.Reveal())
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:[REDACTED]@127.0.0.1:5672/"},
		{"rabbit://u:p1@h1:5672,u:p2@h2:5672/nova", "rabbit://u:[REDACTED]@h1:5672,u:[REDACTED]@h2:5672/nova"},
		{"postgres://root@127.0.0.1/test?sslmode=disable", "postgres://root@127.0.0.1/test?sslmode=disable"},
		{"postgres://127.0.0.1/test?password=hunter2", "postgres://127.0.0.1/test?password=[REDACTED]"},
		{"::not a url::pw", "[REDACTED]"},
		{"localhost", "localhost"},
		// What url.Parse reads otherwise: a raw ',', '/', '?', '#' or '@' in a password.
		{"rabbit://u:hunter2,p1@h/", "rabbit://u:[REDACTED]@h/"},
		{"rabbit://u:1234,5678@h/v", "rabbit://u:[REDACTED]@h/v"},
		{"rabbit://u:hun/ter2@h1,u:p@2@h2:5672/nova", "rabbit://[REDACTED]"},
		{"rabbit://u:hunter2@h1,u:p@2@h2:5672/nova", "rabbit://u:[REDACTED]@h1,u:[REDACTED]@h2:5672/nova"},
		{"amqp://u:hun?ter#2@h/v?ssl=1", "amqp://[REDACTED]"},
		{"rabbit://u:p1@h1,h2,u:p2@h3/", "rabbit://u:[REDACTED]@h1,h2,u:[REDACTED]@h3/"},
		{"postgres://u@h/db?sslmode=disable&PassWord=hunter2#frag", "postgres://u@h/db?sslmode=disable&PassWord=[REDACTED]#frag"},
		{"postgres://h/db?auth_token=hunter2&sslpassword=p1", "postgres://h/db?auth_token=[REDACTED]&sslpassword=[REDACTED]"},
		// libpq's key=value form.
		{"host=127.0.0.1 password=hunter2 dbname=test", "host=127.0.0.1 password=[REDACTED] dbname=test"},
		{"host = h  password = 'hun ter2\\' p1' user=root", "host=h password=[REDACTED] user=root"},
		{"host=h password='hunter2", "[REDACTED]"},
		{"host=h hunter2", "[REDACTED]"},
		{"postgres://u@h/db?password=hunter2@p1", "postgres://u@h/db?password=[REDACTED]"},
		{"postgres://u:p1@h/db?a=1,2&password=hunter2@dbhost", "postgres://[REDACTED]"},
		{"postgres://h:5432/db?password=hunter2@dbhost", "postgres://[REDACTED]"},
		{"host= password=hunter2", "[REDACTED]"},
		{"host=:// password='hunter2' user=x", "[REDACTED]"},
		{"0=://0:hunter2@00", "[REDACTED]"},
		{"9x://u:hunter2@h/", "[REDACTED]"},
		{"0://0:hunter2@0=", "[REDACTED]"},
	}
	for _, tc := range tests {
		got := RedactURL(tc.in)
		if strings.Contains(got, "hunter2") || strings.Contains(got, "p1") || strings.Contains(got, "p2") || strings.Contains(got, ":guest@") ||
			strings.Contains(got, "5678") || strings.Contains(got, "ter") {
			t.Errorf("RedactURL(%q) = %q leaks a password", tc.in, got)
		}
		if got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestUsageNamesEnv(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.String("amqp-url", "amqp://guest:guest@127.0.0.1:5672/", "the `url` of the broker")
	var pw Secret
	_ = pw.Set("topsecret")
	fs.Var(&pw, "db-password", "the database password")
	Usage(fs, "usage: x [flags]", "more")()
	s := out.String()
	for _, want := range []string{"--amqp-url url", "XCATBM_AMQP_URL", "XCATBM_DB_PASSWORD_FILE", "usage: x", "more"} {
		if !strings.Contains(s, want) {
			t.Errorf("usage lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "topsecret") {
		t.Errorf("usage prints a secret:\n%s", s)
	}
}

func TestOneLetterFlagsHaveNoVariable(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	host := fs.String("s", "", "compute `host`")
	if err := Parse(fs, nil, func(k string) (string, bool) { return "from-env", k == "XCATBM_S" }); err != nil {
		t.Fatal(err)
	}
	if *host != "" {
		t.Errorf("-s took %q from the environment", *host)
	}
	Usage(fs, "usage: x", "")()
	if !strings.Contains(out.String(), "  -s host") || strings.Contains(out.String(), "XCATBM_S") {
		t.Errorf("help of a one-letter flag:\n%s", out.String())
	}
}

// markerless returns out with each Redacted marker replaced by a byte pass does not
// hold, so that text the marker spells together with its neighbours ("u:" then
// "[REDACTED]" reads "u:[") is not taken for a password that shows.
func markerless(out, pass string) string {
	for _, c := range []string{"\x00", "\x01", "\x02", "\x03", "\x04"} {
		if !strings.Contains(pass, c) {
			return strings.ReplaceAll(out, Redacted, c)
		}
	}
	return out // pass holds all five: compared as it is
}

// FuzzRedactURL checks that a password put in any of the forms RedactURL takes never
// shows in its output, however the other parts are spelled.
func FuzzRedactURL(f *testing.F) {
	f.Add("rabbit", "guest", "s3cret", "127.0.0.1:5672", "/nova?ssl=1")
	f.Add("postgres", "root", "p,a/s?s#w@rd", "h1,h2:5432", "/db?sslmode=disable")
	f.Add("amqp", "u:x", "1234", "h", "")
	f.Fuzz(func(t *testing.T, scheme, user, pass, host, rest string) {
		if len(pass) < 4 || strings.Contains(Redacted, pass) {
			return
		}
		// After a raw '@' in the user part, a ',' starts a new host entry, as oslo
		// reads it: "u:a@b,c@h" is user u, password a at b, then user c at h.
		if userinfo := user + ":" + pass; strings.Contains(userinfo, "@") &&
			strings.Contains(userinfo[strings.Index(userinfo, "@"):], ",") {
			return
		}
		forms := map[string]func(p string) string{
			"url": func(p string) string { return scheme + "://" + user + ":" + p + "@" + host + rest },
			"second url": func(p string) string {
				return scheme + "://" + user + ":" + user + "@" + host + "," + user + ":" + p + "@" + host + rest
			},
		}
		if !strings.ContainsAny(pass+host, "&#") && !strings.ContainsAny(scheme+host, "?") {
			// Otherwise the password would not be the parameter's whole value.
			forms["query"] = func(p string) string { return scheme + "://" + host + "/db?x=1&password=" + p }
		}
		if !strings.ContainsAny(pass+host, "'\\") {
			forms["key=value"] = func(p string) string {
				return "host=" + strings.Join(strings.Fields(host), "_") + " password='" + p + "' user=x"
			}
		}
		for name, form := range forms {
			if strings.Contains(form(""), pass) {
				continue // the password is spelled by the other parts too
			}
			if got := RedactURL(form(pass)); strings.Contains(markerless(got, pass), pass) {
				t.Errorf("%s form %q: RedactURL = %q shows the password %q", name, form(pass), got, pass)
			}
		}
	})
}

// Package testamqp gives each test its own RabbitMQ virtual host on the real broker,
// deleted when the test ends, so that tests can declare oslo's fixed queue and
// exchange names (nova, compute, compute.<host>) without seeing each other.
//
// The broker is the one named by XCATBM_TEST_AMQP_URL, by default
// amqp://guest:guest@127.0.0.1:5672/. Vhosts are managed with rabbitmqctl, which must
// run on the same machine as the broker.
package testamqp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// DefaultURL is the broker used when XCATBM_TEST_AMQP_URL is unset.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// ServerURL returns the URL of the test broker's default vhost.
func ServerURL() string {
	if u := os.Getenv("XCATBM_TEST_AMQP_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Vhost is a fresh virtual host on the test broker.
type Vhost struct {
	// Name of the vhost.
	Name string
	// URL connects to the vhost with the test broker's credentials.
	URL string
}

// New creates a vhost named for the test, grants the test user full rights on it and
// registers its deletion with t.Cleanup.
func New(t testing.TB) *Vhost {
	t.Helper()
	u, err := url.Parse(ServerURL())
	if err != nil {
		t.Fatalf("testamqp: parse broker URL: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "xcatbm-test-" + sanitize(t.Name()) + "-" + hex.EncodeToString(b[:])
	user := u.User.Username()
	if user == "" {
		user = "guest"
	}
	ctl(t, "add_vhost", name)
	t.Cleanup(func() { ctl(t, "delete_vhost", name) })
	ctl(t, "set_permissions", "-p", name, user, ".*", ".*", ".*")
	u.Path = "/" + name
	u.RawPath = "/" + url.PathEscape(name)
	return &Vhost{Name: name, URL: u.String()}
}

// Ctl runs rabbitmqctl with args and fails the test on error; tests use it for broker
// faults such as close_all_connections.
func Ctl(t testing.TB, args ...string) string {
	t.Helper()
	return ctl(t, args...)
}

func ctl(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("testamqp: rabbitmqctl %s: %v: %s (is RabbitMQ up? run make services)", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func sanitize(name string) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(name) {
		if sb.Len() >= 40 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			sb.WriteRune(r)
		default:
			sb.WriteByte('-')
		}
	}
	return sb.String()
}

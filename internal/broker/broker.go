// Package broker keeps AMQP connections to RabbitMQ alive and gives xcatbm the two
// things it does there: consume in batches with acks after the work is committed, and
// publish with publisher confirms.
//
// One Conn supervises one connection: it dials (trying each URL of an oslo multi-host
// transport URL in turn), notices the connection closing, and redials with capped,
// jittered backoff until its context ends. Consumers and publishers each take their own
// Conn, so a blocked publisher never stalls consumption.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"xcatbm/internal/config"
)

// ParseTransportURL turns an oslo.messaging transport URL
// ("rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost") into one AMQP URL per
// host. amqp:// and amqps:// URLs are accepted too; "rabbit" with ?ssl=1 (or
// rabbit+tls) becomes amqps. Hosts without credentials take the first host's.
func ParseTransportURL(raw string) ([]string, error) {
	if raw == "" {
		return nil, errors.New("transport URL is empty")
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("transport URL %s: no scheme (want rabbit://user:pass@host:5672/vhost)", config.RedactURL(raw))
	}
	tlsOn := false
	switch scheme {
	case "rabbit", "amqp":
	case "rabbit+tls", "amqps":
		tlsOn = true
	default:
		return nil, fmt.Errorf("transport URL %s: scheme %q not supported (want rabbit, amqp or amqps)", config.RedactURL(raw), scheme)
	}
	hostsPart, pathPart := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		hostsPart, pathPart = rest[:i], rest[i:]
	}
	path, query, _ := strings.Cut(pathPart, "?")
	if q, err := url.ParseQuery(query); err == nil {
		if v := q.Get("ssl"); v == "1" || strings.EqualFold(v, "true") {
			tlsOn = true
		}
	}
	vhost := strings.TrimPrefix(path, "/")
	var urls []string
	var firstUser *url.Userinfo
	for _, h := range strings.Split(hostsPart, ",") {
		if h == "" {
			return nil, fmt.Errorf("transport URL %s: empty host", config.RedactURL(raw))
		}
		u, err := url.Parse("amqp://" + h)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("transport URL %s: host entry %d does not read as user:password@host:port (percent-encode a ',', '/', '?', '#' or '@' in a password)", config.RedactURL(raw), len(urls)+1)
		}
		if u.User == nil {
			u.User = firstUser
		} else if firstUser == nil {
			firstUser = u.User
		}
		if tlsOn {
			u.Scheme = "amqps"
		}
		if u.Port() == "" {
			if tlsOn {
				u.Host += ":5671"
			} else {
				u.Host += ":5672"
			}
		}
		u.Path = "/" + vhost
		if vhost != "" {
			u.RawPath = "/" + url.PathEscape(vhost)
		}
		urls = append(urls, u.String())
	}
	return urls, nil
}

// Backoff is a capped exponential backoff with full jitter.
type Backoff struct {
	Min, Max time.Duration
}

// Delay returns the wait before attempt n (0-based).
func (b Backoff) Delay(n int) time.Duration {
	minD, maxD := b.Min, b.Max
	if minD <= 0 {
		minD = 100 * time.Millisecond
	}
	if maxD < minD {
		maxD = 30 * time.Second
	}
	d := minD << min(n, 30)
	if d <= 0 || d > maxD {
		d = maxD
	}
	return d/2 + rand.N(d/2+1)
}

// ConnConfig configures a Conn.
type ConnConfig struct {
	// URLs are tried in turn on every dial.
	URLs []string
	// Name is sent as the connection_name client property (shown by rabbitmqctl).
	Name string
	// TLS configures amqps connections; nil uses the system roots.
	TLS *tls.Config
	// Heartbeat is the AMQP heartbeat; 0 means 60 s, as oslo requests.
	Heartbeat time.Duration
	// Backoff between redials.
	Backoff Backoff
	// OnReconnect is called after each successful redial (not the first dial).
	OnReconnect func()
	Log         zerolog.Logger
}

// Conn supervises one AMQP connection. It is safe for concurrent use.
type Conn struct {
	cfg  ConnConfig
	mu   sync.Mutex
	conn *amqp.Connection
	up   chan struct{} // closed while conn is usable; replaced when it goes down
}

// NewConn returns a Conn; Run must be running for Get to return.
func NewConn(cfg ConnConfig) *Conn {
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 60 * time.Second
	}
	return &Conn{cfg: cfg, up: make(chan struct{})}
}

// Run dials and keeps the connection up until ctx ends, then closes it.
func (c *Conn) Run(ctx context.Context) {
	attempt := 0
	first := true
	for ctx.Err() == nil {
		conn, err := c.dial()
		if err != nil {
			d := c.cfg.Backoff.Delay(attempt)
			attempt++
			c.cfg.Log.Warn().Err(err).Stringer("retry_in", d).Msg("amqp connect failed")
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
			continue
		}
		attempt = 0
		if !first && c.cfg.OnReconnect != nil {
			c.cfg.OnReconnect()
		}
		if !first {
			c.cfg.Log.Info().Msg("amqp reconnected")
		}
		first = false
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		c.mu.Lock()
		c.conn = conn
		close(c.up)
		c.mu.Unlock()
		select {
		case <-ctx.Done():
		case err := <-closed:
			c.cfg.Log.Warn().Str("reason", fmt.Sprint(err)).Msg("amqp connection closed")
		}
		c.mu.Lock()
		c.conn = nil
		c.up = make(chan struct{})
		c.mu.Unlock()
		_ = conn.Close()
	}
}

func (c *Conn) dial() (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	name := c.cfg.Name
	if name == "" {
		name = fmt.Sprintf("%s:%d", os.Args[0], os.Getpid())
	}
	props.SetClientConnectionName(name)
	var errs []error
	for _, u := range c.cfg.URLs {
		conn, err := amqp.DialConfig(u, amqp.Config{Heartbeat: c.cfg.Heartbeat, TLSClientConfig: c.cfg.TLS, Properties: props, Locale: "en_US"})
		if err == nil {
			return conn, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", config.RedactURL(u), err))
	}
	if len(errs) == 0 {
		return nil, errors.New("no broker URL configured")
	}
	return nil, errors.Join(errs...)
}

// Get waits until the connection is up and returns it.
func (c *Conn) Get(ctx context.Context) (*amqp.Connection, error) {
	for {
		c.mu.Lock()
		conn, up := c.conn, c.up
		c.mu.Unlock()
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-up:
		case <-time.After(time.Second):
		}
	}
}

package testhttp

import (
	"net/http"
	"sync/atomic"
	"time"

	"xcatbm/internal/httpretry"
)

// Count counts the requests a client sends: writes (every method but GET) and
// reads. Every attempt counts, resends included.
type Count struct{ writes, reads atomic.Int64 }

// Writes is the number of requests sent that were not GETs.
func (c *Count) Writes() int64 { return c.writes.Load() }

// Reads is the number of GETs sent.
func (c *Count) Reads() int64 { return c.reads.Load() }

// Client returns the client xcatbm's OpenStack clients use in production,
// httpretry.Client (a kept-alive transport, and one without keep-alives for what
// cannot be resent), with every request counted in c.
func (c *Count) Client(timeout time.Duration) *http.Client {
	client := httpretry.Client(nil, timeout)
	t := client.Transport.(*httpretry.Transport)
	t.Base = &counting{base: t.Base, count: c}
	t.Fresh = &counting{base: t.Fresh, count: c}
	return client
}

// counting sends through base and counts in count.
type counting struct {
	base  http.RoundTripper
	count *Count
}

func (t *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet {
		t.count.reads.Add(1)
	} else {
		t.count.writes.Add(1)
	}
	return t.base.RoundTrip(r)
}

// CloseIdleConnections closes base's idle connections, as http.Client asks of a
// transport.
func (t *counting) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

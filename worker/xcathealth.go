package worker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"xcatbm/xcat"
)

// Kinds of xCAT failure, the label of xcatbm_xcat_failures_total.
const (
	XCATFailConnect = "connect" // xcatd refused or could not be reached
	XCATFailTLS     = "tls"     // the TLS handshake failed: a certificate not accepted either way
	XCATFailTimeout = "timeout" // no complete answer in time
	XCATFailCommand = "command" // xcatd answered, refusing the request
	XCATFailBroken  = "broken"  // the connection broke before the answer ended
)

// ClassifyXCATError names the kind of an xCAT request's failure ("" for nil): what an
// operator fixes differs for each (the daemon, the certificates, the network, the
// request).
func ClassifyXCATError(err error) string {
	var (
		cmdErr   *xcat.CommandError
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		verify   *tls.CertificateVerificationError
		header   tls.RecordHeaderError
		opErr    *net.OpError
		netErr   net.Error
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &cmdErr):
		return XCATFailCommand
	case errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &hostname),
		errors.As(err, &verify), errors.As(err, &header), errors.As(err, &opErr) && opErr.Op == "remote error":
		return XCATFailTLS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return XCATFailTimeout
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return XCATFailConnect
	default:
		return XCATFailBroken
	}
}

// XCATHealth watches every xCAT request's outcome: it counts failures by kind, logs
// the start and the end of a run of failures, and declares xCAT down once no request
// reached xcatd for OutageAfter. Safe for concurrent use.
type XCATHealth struct {
	// OutageAfter is how long requests must fail without xcatd answering any before
	// the worker reports itself not ready (default 1m).
	OutageAfter time.Duration

	log      zerolog.Logger
	failures *prometheus.CounterVec
	down     prometheus.Gauge
	now      func() time.Time

	mu       sync.Mutex
	since    time.Time // first failure of the current run; zero when healthy
	count    int       // failures in the run
	last     error
	lastKind string
	declared bool
}

// NewXCATHealth returns a health watch registering its metrics on reg (nil: none).
func NewXCATHealth(reg Registerer, log zerolog.Logger, outageAfter time.Duration) *XCATHealth {
	if outageAfter <= 0 {
		outageAfter = time.Minute
	}
	h := &XCATHealth{OutageAfter: outageAfter, log: log, now: time.Now,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xcatbm_xcat_failures_total",
			Help: "xCAT requests that failed, by kind: connect, tls, timeout, command, broken."}, []string{"kind"}),
		down: prometheus.NewGauge(prometheus.GaugeOpts{Name: "xcatbm_xcat_down",
			Help: "1 while no xCAT request has reached xcatd for the outage period (the worker is not ready)."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{h.failures, h.down} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if errors.As(err, &are) {
					continue
				}
			}
		}
	}
	return h
}

// Observe records one request's outcome. An answer from xcatd, even a refusal,
// shows xcatd is reachable and ends a run of failures.
func (h *XCATHealth) Observe(command string, err error) {
	kind := ClassifyXCATError(err)
	if kind != "" {
		h.failures.WithLabelValues(kind).Inc()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if kind == "" || kind == XCATFailCommand {
		if !h.since.IsZero() {
			h.log.Info().Dur("after", now.Sub(h.since)).Int("failures", h.count).Msg("xCAT reachable again")
		}
		h.since, h.count, h.last, h.declared = time.Time{}, 0, nil, false
		h.down.Set(0)
		return
	}
	if h.since.IsZero() {
		h.since = now
		h.log.Warn().Err(err).Str("kind", kind).Str("command", command).Msg("xCAT request failed")
	}
	h.count++
	h.last, h.lastKind = err, kind
	if !h.declared && now.Sub(h.since) >= h.OutageAfter {
		h.declared = true
		h.down.Set(1)
		h.log.Error().Err(err).Str("kind", kind).Int("failures", h.count).Str("since", h.since.UTC().Format(time.RFC3339)).
			Msg("xCAT unreachable; the worker reports not ready until a request gets through")
	}
}

// Down returns why xCAT counts as down (no request reached xcatd for OutageAfter), or
// "" when it does not.
func (h *XCATHealth) Down() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.since.IsZero() || h.now().Sub(h.since) < h.OutageAfter {
		return ""
	}
	return fmt.Sprintf("xCAT unreachable since %s (%d failures, last %s: %v)", h.since.UTC().Format(time.RFC3339), h.count, h.lastKind, h.last)
}

// Watch wraps b so that every request's outcome reaches h.
func (h *XCATHealth) Watch(b xcat.Backend) xcat.Backend { return &watchedBackend{b: b, h: h} }

type watchedBackend struct {
	b xcat.Backend
	h *XCATHealth
}

func (w *watchedBackend) Do(ctx context.Context, req xcat.Request) (*xcat.Response, error) {
	resp, err := w.b.Do(ctx, req)
	// A request its caller gave up on says nothing of xCAT; one that ran out of
	// time does.
	if err == nil || !errors.Is(ctx.Err(), context.Canceled) {
		w.h.Observe(req.Command, err)
	}
	return resp, err
}

// Package httpretry makes xcatbm's OpenStack HTTP clients survive servers that close
// kept-alive connections.
//
// OpenStack services are often served by uwsgi with --http-socket: it answers
// HTTP/1.1 without "Connection: close" and then closes the socket. Go's client keeps
// the connection for the next request, and when that request is written before the
// close has been noticed it fails with "connection reset by peer", EOF or "server
// closed idle connection". Go resends such requests on its own only when they are GET,
// HEAD, OPTIONS or TRACE; a PUT, DELETE or POST fails.
//
// Transport resends a request whose connection broke (Dropped) when resending cannot
// do harm: GET, HEAD, OPTIONS, PUT and DELETE, and any request made with a context
// from Idempotent. Other requests (a POST that creates something) are never sent on
// a kept connection, where the server's close would leave their outcome unknown:
// each opens a connection of its own. When such a connection still breaks before the
// answer, they are not resent: their error is a *DroppedError, and the caller checks
// what the server did before trying again (looks the created thing up by the id it
// chose, for instance).
//
// Once a host has closed a kept connection under a request, Transport sends every
// later request to that host on a connection of its own: under many requests at
// once, each answer puts a connection back in the pool that the server is about to
// close, and resends would keep picking such connections up.
package httpretry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"syscall"
	"time"
)

// DefaultAttempts is how many times Transport sends a request at most.
const DefaultAttempts = 4

// Transport is an http.RoundTripper that resends, on a fresh connection, a request
// whose connection broke, when resending is safe. It is safe for concurrent use; the
// zero value sends through http.DefaultTransport.
type Transport struct {
	// Base sends each attempt (nil: http.DefaultTransport).
	Base http.RoundTripper
	// Fresh sends the requests that are not resendable, each on a new connection
	// (nil: Base). New sets it to a clone of Base without keep-alives.
	Fresh http.RoundTripper
	// Attempts is how many times one request is sent at most (0: DefaultAttempts).
	Attempts int
	// Delay is the pause before resend n (1, 2, ...); nil: 25 ms doubling, at most
	// 400 ms.
	Delay func(n int) time.Duration
	// OnRetry, when set, is told of each resend with the error that caused it. It
	// must not block; it must not log the request's headers (they carry tokens).
	OnRetry func(req *http.Request, attempt int, err error)

	// closers are the hosts (host:port) seen closing a kept connection; their
	// requests go through Fresh.
	closers sync.Map
}

// New returns a Transport over base (nil: a clone of http.DefaultTransport). When
// base is an *http.Transport, requests that are not resendable go through a clone of
// it without keep-alives.
func New(base http.RoundTripper) *Transport {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	t := &Transport{Base: base}
	if ht, ok := base.(*http.Transport); ok {
		fresh := ht.Clone()
		fresh.DisableKeepAlives = true
		t.Fresh = fresh
	}
	return t
}

// CloseIdleConnections closes the idle connections of Base and Fresh.
func (t *Transport) CloseIdleConnections() {
	type closer interface{ CloseIdleConnections() }
	for _, rt := range []http.RoundTripper{t.Base, t.Fresh} {
		if c, ok := rt.(closer); ok {
			c.CloseIdleConnections()
		}
	}
}

// Client returns an HTTP client with the given overall timeout (retries included)
// whose transport is a Transport over base (nil: a clone of http.DefaultTransport).
func Client(base http.RoundTripper, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: New(base)}
}

type idempotentKey struct{}

// Idempotent returns a context that marks the requests made with it as safe to
// resend whatever their method: a POST that gets a token, a PATCH that sets absolute
// values.
func Idempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey{}, true)
}

// Resendable reports whether Transport resends req after its connection broke: its
// method is GET, HEAD, OPTIONS, PUT or DELETE, or its context came from Idempotent;
// and its body, if any, can be had again (Request.GetBody).
func Resendable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	marked, _ := req.Context().Value(idempotentKey{}).(bool)
	return marked
}

// DroppedError is a request whose connection broke before its answer came: either
// not resendable (the server may or may not have acted on it) or still failing after
// the last attempt.
type DroppedError struct {
	// Method and URL are the request's (the URL without its query).
	Method, URL string
	// Attempts is how many times the request was sent.
	Attempts int
	// Resendable says whether Transport would resend it (false: a POST, whose
	// outcome the caller must check).
	Resendable bool
	// Err is the last attempt's error.
	Err error
}

// Error says which request the connection dropped and how.
func (e *DroppedError) Error() string {
	what := "connection closed before the answer; not resent, the server may have acted on it"
	if e.Resendable {
		what = fmt.Sprintf("connection closed before the answer, %d attempts", e.Attempts)
	}
	return fmt.Sprintf("%s %s: %s: %v", e.Method, e.URL, what, e.Err)
}

// Unwrap returns the last attempt's error.
func (e *DroppedError) Unwrap() error { return e.Err }

// IsDropped reports whether err is or wraps a *DroppedError.
func IsDropped(err error) bool {
	var de *DroppedError
	return errors.As(err, &de)
}

// Dropped reports whether err says the connection broke under a request: reset by
// the peer, closed (EOF, a broken pipe, an aborted or closed connection). reused says
// the request went out on a kept-alive connection; then any transport error other
// than a timeout or a cancelled context counts (Go reports a kept connection the
// server closed as "http: server closed idle connection", an error without a type of
// its own). Timeouts and cancellations never count: the server may still be working
// on the request, and the caller's deadline is what it is.
func Dropped(err error, reused bool) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	for _, target := range []error{syscall.ECONNRESET, syscall.EPIPE, syscall.ECONNABORTED, io.EOF, io.ErrUnexpectedEOF, net.ErrClosed} {
		if errors.Is(err, target) {
			return true
		}
	}
	return reused
}

// RoundTrip sends req, and sends it again on a broken connection when Resendable,
// up to Attempts times. A broken connection it does not (or no longer) resend is
// returned as a *DroppedError; other errors and every answer are returned as they
// are.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	attempts := t.Attempts
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	resend := Resendable(req)
	_, closer := t.closers.Load(req.URL.Host)
	if (!resend || closer) && t.Fresh != nil {
		base = t.Fresh
	}
	for n := 1; ; n++ {
		try := req
		if n > 1 {
			try = req.Clone(req.Context())
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, fmt.Errorf("%s %s: rewind the body to resend: %w", req.Method, redact(req), err)
				}
				try.Body = body
			}
		}
		var reused bool
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
		try = try.WithContext(httptrace.WithClientTrace(try.Context(), trace))
		resp, err := base.RoundTrip(try)
		if err == nil {
			return resp, nil
		}
		if !Dropped(err, reused) {
			return nil, err
		}
		if reused && t.Fresh != nil {
			t.closers.Store(req.URL.Host, true)
			base = t.Fresh
		}
		if !resend || n >= attempts || req.Context().Err() != nil {
			return nil, &DroppedError{Method: req.Method, URL: redact(req), Attempts: n, Resendable: resend, Err: err}
		}
		if t.OnRetry != nil {
			t.OnRetry(req, n, err)
		}
		select {
		case <-req.Context().Done():
			return nil, &DroppedError{Method: req.Method, URL: redact(req), Attempts: n, Resendable: resend, Err: err}
		case <-time.After(t.delay(n)):
		}
	}
}

func (t *Transport) delay(n int) time.Duration {
	if t.Delay != nil {
		return t.Delay(n)
	}
	return min(25*time.Millisecond<<(n-1), 400*time.Millisecond)
}

// redact is the request's URL without query and user information.
func redact(req *http.Request) string {
	u := *req.URL
	u.RawQuery, u.ForceQuery, u.Fragment, u.User = "", false, "", nil
	return u.String()
}

// Package testhttp serves HTTP the way an OpenStack service behind uwsgi
// --http-socket does: every answer is HTTP/1.1 without "Connection: close", and then
// the server closes the connection. A client that keeps the connection and sends its
// next request on it gets a reset (or EOF) instead of an answer: the request was
// never read.
//
// Real clients mostly notice the close before they reuse the connection, so the
// failure is a race. The server here makes it certain: after an answer it waits for
// the client's next request on the same connection (Config.Linger) and only then
// closes, unread. Every request sent on a kept connection is thereby dropped, which
// is what a client must survive; Dropped counts them so a test can assert the client
// was exposed to the failure and not merely lucky.
//
// It also loses answers on request (Config.LoseAnswer): the handler runs, then the
// connection closes without the answer, as when a server acts on a request and the
// connection breaks before its answer arrives. That is the case a client must check
// for after a POST.
package testhttp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Close says how the server closes a connection it will not answer on.
type Close int

const (
	// Reset closes with a TCP reset (unread data, or SO_LINGER 0): the client reads
	// "connection reset by peer", as from uwsgi.
	Reset Close = iota
	// EOF closes cleanly (FIN): the client reads EOF.
	EOF
)

// String names the way the connection is closed.
func (c Close) String() string {
	if c == EOF {
		return "eof"
	}
	return "reset"
}

// Config configures a Server.
type Config struct {
	// Handler answers each request that is read.
	Handler http.Handler
	// LoseAnswer, when it returns true for a request, has the server run Handler and
	// then close the connection without sending the answer. n counts the requests of
	// that method and path so far, from 1.
	LoseAnswer func(r *http.Request, n int) bool
	// Linger is how long after an answer the server waits for the client's next
	// request on the connection before closing it (default 500 ms). A request that
	// arrives is dropped unread.
	Linger time.Duration
	// Close is how connections are closed (default Reset).
	Close Close
}

// Request is a request the server saw.
type Request struct {
	Method string
	// Path is the path with its query.
	Path string
	// Body is the request body (empty for dropped requests).
	Body string
	// Status is the handler's answer (0 for dropped requests).
	Status int
	// Answered is false when the answer was lost (LoseAnswer) or the request was
	// dropped unread.
	Answered bool
	// Dropped says the request came on a kept connection and was closed unread.
	Dropped bool
}

// String is the request as a log line.
func (r Request) String() string {
	switch {
	case r.Dropped:
		return r.Method + " " + r.Path + " (dropped)"
	case !r.Answered:
		return fmt.Sprintf("%s %s %d (answer lost)", r.Method, r.Path, r.Status)
	}
	return fmt.Sprintf("%s %s %d", r.Method, r.Path, r.Status)
}

// Server is a running server; Start returns it and t.Cleanup stops it.
type Server struct {
	// URL is http://127.0.0.1:<port>.
	URL string

	cfg  Config
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	seen []Request
	nth  map[string]int
}

// Start starts a server on a free loopback port; it stops when the test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Handler == nil {
		t.Fatal("testhttp: Config.Handler is required")
	}
	if cfg.Linger == 0 {
		cfg.Linger = 500 * time.Millisecond
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testhttp: %v", err)
	}
	s := &Server{URL: "http://" + ln.Addr().String(), cfg: cfg, ln: ln, nth: map[string]int{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(c.(*net.TCPConn))
		}()
	}
}

// serve answers one request on c, then waits for a next one and drops it.
func (s *Server) serve(c *net.TCPConn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	body, _ := io.ReadAll(req.Body)
	req.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	s.cfg.Handler.ServeHTTP(rec, req)
	s.mu.Lock()
	key := req.Method + " " + req.URL.Path
	s.nth[key]++
	n := s.nth[key]
	s.mu.Unlock()
	seen := Request{Method: req.Method, Path: req.URL.RequestURI(), Body: string(body), Status: rec.Code, Answered: true}
	if s.cfg.LoseAnswer != nil && s.cfg.LoseAnswer(req, n) {
		seen.Answered = false
		s.record(seen)
		s.closeUnanswered(c)
		return
	}
	s.record(seen)
	if err := writeAnswer(c, rec); err != nil {
		return
	}
	// uwsgi closes now. Wait for the client to send its next request on this
	// connection, then close without reading it.
	_ = c.SetReadDeadline(time.Now().Add(s.cfg.Linger))
	if _, err := br.Peek(1); err != nil {
		return
	}
	time.Sleep(5 * time.Millisecond) // let the rest of the request arrive, for the record
	method, path := requestLine(br)
	s.record(Request{Method: method, Path: path, Dropped: true})
	s.closeUnanswered(c)
}

// closeUnanswered closes c as Config.Close says.
func (s *Server) closeUnanswered(c *net.TCPConn) {
	if s.cfg.Close == Reset {
		_ = c.SetLinger(0)
		return
	}
	_ = c.CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = io.Copy(io.Discard, c) // read what the client sent, so the close is a FIN
}

// writeAnswer writes rec as an HTTP/1.1 answer with a Content-Length and without
// "Connection: close".
func writeAnswer(c net.Conn, rec *httptest.ResponseRecorder) error {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", rec.Code, http.StatusText(rec.Code))
	h := rec.Header().Clone()
	h.Del("Connection")
	h.Set("Content-Length", strconv.Itoa(rec.Body.Len()))
	if err := h.Write(&b); err != nil {
		return err
	}
	b.WriteString("\r\n")
	b.Write(rec.Body.Bytes())
	_, err := io.WriteString(c, b.String())
	return err
}

// requestLine reads the method and target of the buffered request without
// consuming it.
func requestLine(br *bufio.Reader) (method, path string) {
	buf, _ := br.Peek(br.Buffered())
	line, _, _ := bytes.Cut(buf, []byte("\r\n"))
	f := strings.Fields(string(line))
	if len(f) < 2 {
		return "?", "?"
	}
	return f[0], f[1]
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	s.seen = append(s.seen, r)
	s.mu.Unlock()
}

// Requests returns every request seen so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.seen...)
}

// Handled returns the requests the handler ran (answered or with the answer lost),
// as "METHOD path" strings, in order.
func (s *Server) Handled() []string {
	var out []string
	for _, r := range s.Requests() {
		if !r.Dropped {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	return out
}

// Dropped returns how many requests came on a kept connection and were closed
// unread.
func (s *Server) Dropped() int {
	n := 0
	for _, r := range s.Requests() {
		if r.Dropped {
			n++
		}
	}
	return n
}

package xcat

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// keptServer is an xcatd stand-in that answers the first request of every connection
// and then, as configured, either reads the next request and closes without a byte
// of answer (xcatd leaving its loop as the request arrives) or closes the connection
// a while after the answer (xcatd's close of an idle kept connection).
type keptServer struct {
	addr string

	mu       sync.Mutex
	requests []string // every request read, in order
	answered []string // the requests answered
}

func startKeptServer(t *testing.T, p *testPKI, closeAfter time.Duration) *keptServer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{p.server}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &keptServer{addr: ln.Addr().String()}
	readReq := func(conn net.Conn) (string, bool) {
		var req strings.Builder
		buf := make([]byte, 4096)
		for !strings.Contains(req.String(), "</xcatrequest>") {
			n, err := conn.Read(buf)
			req.Write(buf[:n])
			if err != nil {
				return "", false
			}
		}
		return req.String(), true
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func(conn net.Conn) {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				req, ok := readReq(conn)
				if !ok {
					return
				}
				s.mu.Lock()
				s.requests = append(s.requests, req)
				s.answered = append(s.answered, req)
				s.mu.Unlock()
				_, _ = conn.Write([]byte(`<xcatresponse><node><name>n1</name><data><contents>on</contents></data></node></xcatresponse><xcatresponse><serverdone></serverdone></xcatresponse>`))
				if closeAfter > 0 {
					time.Sleep(closeAfter)
					return
				}
				if req, ok := readReq(conn); ok {
					s.mu.Lock()
					s.requests = append(s.requests, req)
					s.mu.Unlock()
				}
			}(conn)
		}
	}()
	return s
}

func (s *keptServer) counts(command string) (read, answered int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.requests {
		if strings.Contains(r, "<command>"+command+"</command>") {
			read++
		}
	}
	for _, r := range s.answered {
		if strings.Contains(r, "<command>"+command+"</command>") {
			answered++
		}
	}
	return read, answered
}

// TestNativeKeptConnectionClosedUnanswered: a read-only request on a kept connection
// that ends without a byte of answer goes again on a new connection and is answered;
// a request that changes state never goes on a kept connection.
func TestNativeKeptConnectionClosedUnanswered(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	s := startKeptServer(t, p, 0)
	n, err := NewNative(NativeConfig{Addr: s.addr, CredFile: p.credFile, CAFile: p.caFile, ReuseIdle: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	stat := Request{Command: "rpower", Noderange: "n1", Args: []string{"stat"}}
	for i := 0; i < 2; i++ {
		resp, err := n.Do(ctx, stat)
		if err != nil || resp.Nodes["n1"] == nil || resp.Nodes["n1"].Data[0] != "on" {
			t.Fatalf("rpower stat #%d: %v %+v", i+1, err, resp)
		}
	}
	if st := n.Stats(); st != (NativeStats{Dials: 2, Reused: 1, Resent: 1}) {
		t.Errorf("after two rpower stat: %+v, want 2 dials, 1 reuse, 1 resend", st)
	}
	if read, answered := s.counts("rpower"); read != 3 || answered != 2 {
		t.Errorf("rpower stat read %d, answered %d; want 3 and 2", read, answered)
	}
	// A kept connection is waiting, but rpower boot gets a connection of its own.
	if _, err := n.Do(ctx, Request{Command: "rpower", Noderange: "n1", Args: []string{"boot"}}); err != nil {
		t.Fatalf("rpower boot: %v", err)
	}
	if st := n.Stats(); st.Dials != 3 || st.Reused != 1 {
		t.Errorf("after rpower boot: %+v, want a third dial and no more reuse", st)
	}
	s.mu.Lock()
	boots := 0
	for _, r := range s.requests {
		if strings.Contains(r, "<arg>boot</arg>") {
			boots++
		}
	}
	s.mu.Unlock()
	if boots != 1 {
		t.Errorf("rpower boot read %d times, want 1", boots)
	}
}

// TestNativeKeptConnectionClosedWhileIdle: a kept connection the server closed while
// it was idle is noticed and not used.
func TestNativeKeptConnectionClosedWhileIdle(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	s := startKeptServer(t, p, 10*time.Millisecond)
	n, err := NewNative(NativeConfig{Addr: s.addr, CredFile: p.credFile, CAFile: p.caFile, ReuseIdle: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	req := Request{Command: "nodels", Noderange: "n1", Args: []string{"nodelist.status"}}
	for i := 0; i < 3; i++ {
		if _, err := n.Do(context.Background(), req); err != nil {
			t.Fatalf("nodels #%d: %v", i+1, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := n.Stats(); st != (NativeStats{Dials: 3}) {
		t.Errorf("stats %+v, want 3 dials, no reuse, no resend", st)
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		req  Request
		want bool
	}{
		{Request{Command: "nodels", Noderange: "all", Args: []string{"nodelist.status"}}, true},
		{Request{Command: "lsdef", Args: []string{"-t", "osimage"}}, true},
		{Request{Command: "tabdump", Args: []string{"site"}}, true},
		{Request{Command: "tabdump", Args: []string{"-f", "/tmp/site.csv", "site"}}, false},
		{Request{Command: "nodestat", Noderange: "n1"}, true},
		{Request{Command: "nodestat", Noderange: "n1", Args: []string{"-u"}}, false},
		{Request{Command: "rpower", Noderange: "n1", Args: []string{"stat"}}, true},
		{Request{Command: "rpower", Noderange: "n1", Args: []string{"status"}}, true},
		{Request{Command: "rpower", Noderange: "n1", Args: []string{"boot"}}, false},
		{Request{Command: "rpower", Noderange: "n1", Args: []string{"stat", "-V"}}, false},
		{Request{Command: "rsetboot", Noderange: "n1", Args: []string{"stat"}}, true},
		{Request{Command: "rsetboot", Noderange: "n1", Args: []string{"net"}}, false},
		{Request{Command: "nodeset", Noderange: "n1", Args: []string{"stat"}}, true},
		{Request{Command: "nodeset", Noderange: "n1", Args: []string{"osimage=img"}}, false},
		{Request{Command: "chdef", Args: []string{"-t", "node", "-p", "-o", "n1", "postbootscripts=x"}}, false},
		{Request{Command: "makehosts", Noderange: "n1"}, false},
		{Request{Command: "frobnicate", Noderange: "n1"}, false},
	}
	for _, tt := range tests {
		if got := ReadOnly(tt.req); got != tt.want {
			t.Errorf("ReadOnly(%s) = %v, want %v", tt.req, got, tt.want)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServerCredentialsNeverInHome: without --cred-dir the credentials go to a new
// temporary directory, removed at exit; nothing is written under $HOME.
func TestServerCredentialsNeverInHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan int)
	go func() { done <- runServer(ctx, []string{"--listen", "127.0.0.1:0"}, &out, &out) }()
	re := regexp.MustCompile(`credentials in (\S+)`)
	var dir string
	for deadline := time.Now().Add(10 * time.Second); dir == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			dir = m[1]
		}
	}
	if dir == "" {
		cancel()
		t.Fatalf("no credential directory announced:\n%s", out.String())
	}
	if strings.HasPrefix(dir, home) {
		t.Errorf("credentials written under $HOME: %s", dir)
	}
	for _, f := range []string{"ca.pem", "client-cred.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d:\n%s", code, out.String())
	}
	if _, err := os.Stat(filepath.Join(home, ".xcat")); !os.IsNotExist(err) {
		t.Errorf("$HOME/.xcat exists after a run without --cred-dir (%v)", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary credential directory %s left behind (%v)", dir, err)
	}
}

func TestServerHelpDescribesClusterFile(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if code := runServer(context.Background(), []string{"--help"}, &out, io.Discard); code != 0 {
		t.Errorf("--help exit %d", code)
	}
	for _, want := range []string{"Cluster file (--cluster", "nodes:", "groups:", "attrs:", "cpucount", "memory", "disksize",
		"osimages:", "passwd:", "timeline:", "latency:", "fault:", "--xcat-cred-dir", "never give it a real ~/.xcat", "-close-kept", "-shuffle", "-xcat-cred-dir", "deprecated name of --xcat-cred-dir"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestParseKeptClose(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"": "<nil>", "xcatd": "120ms..190ms", "0s..5ms": "0s..5ms", "5ms..1ms": "error", "1ms": "error", "x..1ms": "error"} {
		k, err := parseKeptClose(in)
		got := "<nil>"
		switch {
		case err != nil:
			got = "error"
		case k != nil:
			got = k.Min.String() + ".." + k.Max.String()
		}
		if got != want {
			t.Errorf("parseKeptClose(%q) = %s, want %s", in, got, want)
		}
	}
}

// FuzzParseKeptClose: --close-kept never panics, and what it accepts is a valid
// closing window.
func FuzzParseKeptClose(f *testing.F) {
	for _, s := range []string{"", "xcatd", "0s..5ms", "120ms..190ms", "5ms..1ms", "..", "-1s..1s", "1h..1h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		k, err := parseKeptClose(in)
		if err != nil || k == nil {
			return
		}
		if k.Min < 0 || k.Max < k.Min {
			t.Fatalf("parseKeptClose(%q) = %+v", in, *k)
		}
	})
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"encoding/xml"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// transcriptDir holds copies of the real xcatd's transcripts: what xCAT's client sent,
// what xcatd answered and what the client printed.
const transcriptDir = "../../xcat/testdata/xcatd"

// replayServer is an xcatd that answers each connection's request with a recorded
// answer, and keeps the requests it got.
type replayServer struct {
	addr, credDir string

	mu       sync.Mutex
	answer   []byte
	requests []string
}

// startReplayServer makes a CA with a server and a client certificate (the client's
// in credDir as ca.pem and client-cred.pem) and serves until the test ends.
func startReplayServer(t *testing.T) *replayServer {
	t.Helper()
	now := time.Now()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "xCAT CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
		key := newKey()
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(serial),
			Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}}, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
	}
	srvCert, srvKey := issue(2, "mn1", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := issue(3, "root", x509.ExtKeyUsageClientAuth)
	s := &replayServer{credDir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(s.credDir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.credDir, "client-cred.pem"), append(cliKey, cliCert...), 0o600); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s.addr = ln.Addr().String()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(conn)
				var req strings.Builder
				for !strings.Contains(req.String(), "</xcatrequest>") {
					chunk, err := br.ReadString('>')
					req.WriteString(chunk)
					if err != nil {
						return
					}
				}
				s.mu.Lock()
				s.requests = append(s.requests, req.String())
				answer := s.answer
				s.mu.Unlock()
				_, _ = conn.Write(answer)
			}()
		}
	}()
	return s
}

func (s *replayServer) setAnswer(b []byte) {
	s.mu.Lock()
	s.answer = b
	s.mu.Unlock()
}

func (s *replayServer) takeRequests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.requests
	s.requests = nil
	return r
}

// transcript is one client.txt: the command line, exit code, stdout and stderr.
type transcript struct {
	argv           []string
	code           int
	stdout, stderr string
}

func readTranscript(t *testing.T, path string) transcript {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	cmdline, rest, ok1 := strings.Cut(s, "\n")
	codeLine, rest, ok2 := strings.Cut(rest, "\n")
	stdoutPart, stderr, ok3 := strings.Cut(strings.TrimPrefix(rest, "--- stdout ---\n"), "--- stderr ---\n")
	code, err := strconv.Atoi(strings.TrimPrefix(codeLine, "exit code: "))
	if !ok1 || !ok2 || !ok3 || err != nil || !strings.HasPrefix(cmdline, "$ ") {
		t.Fatalf("%s: not a transcript", path)
	}
	return transcript{argv: strings.Fields(strings.TrimPrefix(cmdline, "$ ")), code: code, stdout: stdoutPart, stderr: stderr}
}

// requestFields reads the command, noderange and arguments of a request.
func requestFields(t *testing.T, req string) (command, noderange string, args []string) {
	t.Helper()
	var r struct {
		Command   string   `xml:"command"`
		Noderange string   `xml:"noderange"`
		Args      []string `xml:"arg"`
	}
	if err := xml.Unmarshal([]byte(req), &r); err != nil {
		t.Fatalf("request %q: %v", req, err)
	}
	return r.Command, r.Noderange, r.Args
}

// deliberateDifferences are the transcripts where `xcatbm xcat` adds to what xCAT's
// client printed, on stderr, with its own exit code.
var deliberateDifferences = map[string]struct {
	extraStderr string
	code        int
}{
	// xCAT's client exits 0 with only "Error: Unsupported request".
	"unknown-command": {"xcatbm xcat: xcatd has no command \"frobnicate\" (see 'xcatbm xcat --help')\n", 1},
}

// TestXCATGoldenTranscripts: for every transcript of the real xcatd, `xcatbm xcat`
// run with the transcript's command line sends the request xCAT's client sent
// (command, noderange, arguments) and, given xcatd's recorded answer, prints exactly
// what xCAT's client printed, on the same streams, with the same exit code, except
// for deliberateDifferences.
func TestXCATGoldenTranscripts(t *testing.T) {
	t.Parallel()
	srv := startReplayServer(t)
	dirs, err := os.ReadDir(transcriptDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		n++
		dir := filepath.Join(transcriptDir, d.Name())
		tr := readTranscript(t, filepath.Join(dir, "client.txt"))
		if d, ok := deliberateDifferences[d.Name()]; ok {
			tr.stderr += d.extraStderr
			tr.code = d.code
		}
		answer, err := os.ReadFile(filepath.Join(dir, "response.xml"))
		if err != nil {
			t.Fatal(err)
		}
		sent, err := os.ReadFile(filepath.Join(dir, "request.xml"))
		if err != nil {
			t.Fatal(err)
		}
		srv.setAnswer(answer)
		argv := tr.argv
		if argv[0] == "xcatclient" {
			argv = argv[1:] // xCAT's generic client: the command comes first
		}
		var stdout, stderr bytes.Buffer
		env := &environment{stdout: &stdout, stderr: &stderr, getenv: func(string) (string, bool) { return "", false }}
		code := run(context.Background(), env, append([]string{"xcatbm", "xcat", "--xcat-host", srv.addr, "--xcat-cred-dir", srv.credDir}, argv...))
		if stdout.String() != tr.stdout || stderr.String() != tr.stderr || code != tr.code {
			t.Errorf("%s: stdout %q stderr %q exit %d\nxCAT's client: stdout %q stderr %q exit %d",
				d.Name(), stdout.String(), stderr.String(), code, tr.stdout, tr.stderr, tr.code)
		}
		reqs := srv.takeRequests()
		if len(reqs) != 1 {
			t.Errorf("%s: %d requests sent, want 1", d.Name(), len(reqs))
			continue
		}
		gc, gn, ga := requestFields(t, reqs[0])
		wc, wn, wa := requestFields(t, string(sent))
		if gc != wc || gn != wn || !slices.Equal(ga, wa) {
			t.Errorf("%s: sent %s %q %q, xCAT's client sent %s %q %q", d.Name(), gc, gn, ga, wc, wn, wa)
		}
	}
	if n != 33 {
		t.Errorf("%d transcripts, want the 33 of xcatd's capture", n)
	}
}

// TestXCATRefusesBeforeSending: `xcatbm xcat` refuses, with the check the worker's
// calls use, node names with shell metacharacters and noderanges over --max-nodes,
// and sends nothing.
func TestXCATRefusesBeforeSending(t *testing.T) {
	t.Parallel()
	srv := startReplayServer(t)
	srv.setAnswer([]byte("<xcatresponse>\n<serverdone></serverdone>\n</xcatresponse>\n"))
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"rpower", "node;rm", "stat"}, "character ';' not allowed"},
		{[]string{"rpower", "node01`id`", "stat"}, "character '`' not allowed"},
		{[]string{"nodels", "node01$(id)"}, "character '$' not allowed"},
		{[]string{"rpower", "node01|x", "boot"}, "character '|' not allowed"},
		{[]string{"lsdef", "node01;reboot"}, "character ';' not allowed"},
		{[]string{"chdef", "-t", "node", "-o", "node01|x", "groups=all"}, "character '|' not allowed"},
		{[]string{"rpower", "n[1-10001]", "stat"}, "names more than 10000 nodes"},
		{[]string{"--max-nodes", "10", "nodels", "n[1-11]"}, "names more than 10 nodes"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		env := &environment{stdout: &stdout, stderr: &stderr, getenv: func(string) (string, bool) { return "", false }}
		code := run(context.Background(), env, append([]string{"xcatbm", "xcat", "--xcat-host", srv.addr, "--xcat-cred-dir", srv.credDir}, tt.args...))
		if code != 1 || !strings.Contains(stderr.String(), tt.want) || stdout.Len() != 0 {
			t.Errorf("%q: exit %d stdout %q stderr %q; want exit 1 and %q", tt.args, code, stdout.String(), stderr.String(), tt.want)
		}
	}
	if reqs := srv.takeRequests(); len(reqs) != 0 {
		t.Fatalf("refused commands reached xcatd: %q", reqs)
	}
	var stdout, stderr bytes.Buffer
	env := &environment{stdout: &stdout, stderr: &stderr, getenv: func(string) (string, bool) { return "", false }}
	if code := run(context.Background(), env, []string{"xcatbm", "xcat", "--xcat-host", srv.addr, "--xcat-cred-dir", srv.credDir, "--max-nodes", "0", "rpower", "n[1-10001]", "stat"}); code != 0 {
		t.Errorf("--max-nodes 0: exit %d, stderr %q", code, stderr.String())
	}
	if reqs := srv.takeRequests(); len(reqs) != 1 {
		t.Errorf("--max-nodes 0: %d requests sent, want 1", len(reqs))
	}
}

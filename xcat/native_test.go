package xcat

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI is a CA, a server certificate for a name clients will not dial (as on an
// xCAT management node) and a client credential file.
type testPKI struct {
	caFile, credFile string
	server           tls.Certificate
	caPool           *x509.CertPool
}

func newCert(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, der
}

func keyPEM(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: b})
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	ca, caKey, caDER := newCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "xCAT CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	_, srvKey, srvDER := newCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "mgmt-node.example"},
		DNSNames:  []string{"mgmt-node.example"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, caKey)
	_, cliKey, cliDER := newCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, caKey)
	p := &testPKI{caFile: filepath.Join(dir, "ca.pem"), credFile: filepath.Join(dir, "client-cred.pem")}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := os.WriteFile(p.caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cred := append(keyPEM(t, cliKey), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cliDER})...)
	if err := os.WriteFile(p.credFile, cred, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}), keyPEM(t, srvKey))
	if err != nil {
		t.Fatal(err)
	}
	p.server = srv
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(ca)
	return p
}

// xmlServer is a one-shot xcatd stand-in: for each connection it reads a request up to
// </xcatrequest>, hands it to the test and writes the literal answer.
type xmlServer struct {
	addr     string
	requests chan string
	clientCN chan string
}

func startXMLServer(t *testing.T, p *testPKI, answer func(req string) string) *xmlServer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    p.caPool,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &xmlServer{addr: ln.Addr().String(), requests: make(chan string, 16), clientCN: make(chan string, 16)}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func(conn net.Conn) {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				var req strings.Builder
				buf := make([]byte, 4096)
				for !strings.Contains(req.String(), "</xcatrequest>") {
					n, err := conn.Read(buf)
					req.Write(buf[:n])
					if err != nil {
						return
					}
				}
				if tc, ok := conn.(*tls.Conn); ok {
					cs := tc.ConnectionState()
					if len(cs.PeerCertificates) > 0 {
						s.clientCN <- cs.PeerCertificates[0].Subject.CommonName
					}
				}
				s.requests <- req.String()
				_, _ = io.WriteString(conn, answer(req.String()))
			}(conn)
		}
	}()
	return s
}

func newTestNative(t *testing.T, p *testPKI, addr string) *Native {
	t.Helper()
	n, err := NewNative(NativeConfig{Addr: addr, CredFile: p.credFile, CAFile: p.caFile, Cwd: "/root"})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNativeRequestAndResponse(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	// IPMI power answers one xcatresponse per node; the errored node carries its code.
	answer := `<xcatresponse>
<node><name>node1</name><data><contents>on</contents></data></node>
</xcatresponse><xcatresponse>
<node><name>node2</name><errorcode>1</errorcode><error>Error: timeout</error></node>
</xcatresponse>
<xcatresponse><node><name>node3</name><data><desc>BMC Firmware</desc><contents>1.2</contents></data><warning>slow BMC</warning></node></xcatresponse>
<xcatresponse><warning>top warn</warning><info>some info</info><data>plain data &amp; more</data></xcatresponse>
<xcatresponse>
<serverdone></serverdone>
</xcatresponse>`
	s := startXMLServer(t, p, func(string) string { return answer })
	n := newTestNative(t, p, s.addr)
	resp, err := n.Do(context.Background(), Request{Command: "rpower", Noderange: "node[1-3]", Args: []string{"stat", "a<b&c"}, Env: map[string]string{"XCAT_X": "1"}, Stdin: "n1:\n    a=<b>\n"})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	req := <-s.requests
	for _, want := range []string{
		"<command>rpower</command>", "<noderange>node[1-3]</noderange>", "<arg>stat</arg>",
		"<arg>a&lt;b&amp;c</arg>", "<clienttype>cli</clienttype>", "<cwd>/root</cwd>",
		"<environment><XCAT_X>1</XCAT_X>", "<stdin>n1:&#xA;    a=&lt;b&gt;&#xA;</stdin>",
	} {
		if !strings.Contains(req, want) {
			t.Errorf("request %q lacks %q", req, want)
		}
	}
	if strings.Index(req, "<arg>stat</arg>") > strings.Index(req, "<arg>a&lt;b") {
		t.Errorf("arguments out of order: %s", req)
	}
	if cn := <-s.clientCN; cn != "root" {
		t.Errorf("client CN = %q, want root", cn)
	}
	if got := strings.Join(resp.Order, ","); got != "node1,node2,node3" {
		t.Errorf("Order = %s", got)
	}
	if d := resp.Nodes["node1"].Data; len(d) != 1 || d[0] != "on" {
		t.Errorf("node1 data = %q", d)
	}
	if n2 := resp.Nodes["node2"]; n2.ErrorCode != 1 || len(n2.Errors) != 1 || n2.Errors[0] != "Error: timeout" {
		t.Errorf("node2 = %+v", n2)
	}
	if n3 := resp.Nodes["node3"]; n3.Data[0] != "BMC Firmware: 1.2" || n3.Warnings[0] != "slow BMC" || len(n3.Errors) != 0 {
		t.Errorf("node3 = %+v", n3)
	}
	if resp.ErrorCode != 1 {
		t.Errorf("ErrorCode = %d", resp.ErrorCode)
	}
	if strings.Join(resp.Data, "|") != "some info|plain data & more" || strings.Join(resp.Warnings, "|") != "top warn" || len(resp.Errors) != 0 {
		t.Errorf("top level = %+v", resp)
	}
}

func TestNativeTopLevelError(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	s := startXMLServer(t, p, func(string) string {
		return `<xcatresponse><error>Invalid nodes and/or groups in noderange: foo</error><errorcode>1</errorcode><serverdone></serverdone></xcatresponse>`
	})
	n := newTestNative(t, p, s.addr)
	resp, err := n.Do(context.Background(), Request{Command: "rpower", Noderange: "foo", Args: []string{"stat"}})
	var ce *CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *CommandError", err)
	}
	if ce.Code != 1 || len(ce.Messages) != 1 || ce.Messages[0] != "Invalid nodes and/or groups in noderange: foo" || ce.Request.Noderange != "foo" {
		t.Errorf("CommandError = %+v", ce)
	}
	if resp == nil || len(resp.Errors) != 1 {
		t.Errorf("response = %+v, want it returned with the error", resp)
	}
}

func TestNativePrematureEnd(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	for name, answer := range map[string]string{
		"between elements": `<xcatresponse><node><name>node1</name><data><contents>on</contents></data></node></xcatresponse>`,
		"inside element":   `<xcatresponse><node><name>node1</name><data><conte`,
		"nothing":          ``,
	} {
		t.Run(name, func(t *testing.T) {
			s := startXMLServer(t, p, func(string) string { return answer })
			n := newTestNative(t, p, s.addr)
			_, err := n.Do(context.Background(), Request{Command: "rpower", Noderange: "node1", Args: []string{"stat"}})
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
		})
	}
}

func TestNativeDialFailure(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	n := newTestNative(t, p, addr)
	if _, err := n.Do(context.Background(), Request{Command: "nodels", Noderange: "all"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestNativeRejectsUnknownCA(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	other := newTestPKI(t)
	s := startXMLServer(t, other, func(string) string { return `<xcatresponse><serverdone/></xcatresponse>` })
	n := newTestNative(t, p, s.addr)
	_, err := n.Do(context.Background(), Request{Command: "nodels", Noderange: "all"})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a certificate verification failure", err)
	}
}

func TestNativeContextTimeout(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	s := startXMLServer(t, p, func(string) string { <-block; return "" })
	n := newTestNative(t, p, s.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := n.Do(ctx, Request{Command: "rpower", Noderange: "node1", Args: []string{"stat"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Do took %v after the deadline", time.Since(start))
	}
}

func TestNativeRefusesBadRequest(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	n := newTestNative(t, p, "127.0.0.1:1")
	for _, req := range []Request{
		{Command: "rpower", Noderange: "node1\n", Args: []string{"stat"}},
		{Command: "rpower", Noderange: "node1", Args: []string{"st\x00at"}},
		{Command: "../rpower", Noderange: "node1"},
		{Command: "rpower", Noderange: "-node1"},
		{Command: "nodels", Env: map[string]string{"PATH": "/tmp"}},
		{Command: "nodels", Env: map[string]string{"XCAT_A>": "x"}},
		{Command: "chdef", Args: []string{"-z"}, Stdin: "n1:\r\n    ip=1\r\n"},
		{Command: "chdef", Args: []string{"-z"}, Stdin: "n1:\n    ip=\x00\n"},
		{Command: "chdef", Args: []string{"-z"}, Stdin: "n1:\n    note=\xc3\xa9\n"},
		{Command: "chdef", Args: []string{"-z"}, Stdin: strings.Repeat("x", MaxStdinBytes+1)},
	} {
		if _, err := n.Do(context.Background(), req); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("Do(%q) = %v, want ErrInvalidInput", req.String(), err)
		}
	}
}

func TestReadResponseRobust(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want func(*Response) bool
	}{
		{"non-printable bytes", "<xcatresponse><node><name>n1</name><data><contents>a\x01b\xffc\x0bd</contents></data></node></xcatresponse><xcatresponse><serverdone/></xcatresponse>",
			func(r *Response) bool { return r.Nodes["n1"].Data[0] == "a?b?c?d" }},
		{"unknown entity", "<xcatresponse><data>x&nbsp;y</data><serverdone></serverdone></xcatresponse>",
			func(r *Response) bool { return len(r.Data) == 1 }},
		{"several nodes in one element", "<xcatresponse><node><name>n1</name><data><contents>booted</contents></data></node><node><name>n2</name><data><contents></contents></data></node></xcatresponse><xcatresponse><serverdone/></xcatresponse>",
			func(r *Response) bool {
				return r.Nodes["n2"] != nil && r.Nodes["n2"].Data[0] == "" && r.Nodes["n1"].Data[0] == "booted"
			}},
		{"desc without contents", "<xcatresponse><node><name>n1</name><data><desc>nodelist.status</desc></data></node><serverdone/></xcatresponse>",
			func(r *Response) bool { return r.Nodes["n1"].Data[0] == "nodelist.status" }},
		{"plain string node data", "<xcatresponse><node><name>n1</name><data>install img</data></node><serverdone/></xcatresponse>",
			func(r *Response) bool { return r.Nodes["n1"].Data[0] == "install img" }},
		{"indented lsdef data kept", "<xcatresponse><data>Object name: n1</data><data>    arch=x86_64</data><serverdone/></xcatresponse>",
			func(r *Response) bool { return len(r.Data) == 2 && r.Data[1] == "    arch=x86_64" }},
		{"errorcode summed", "<xcatresponse><node><name>n1</name><errorcode>1</errorcode><error>x</error></node><node><name>n2</name><errorcode>2</errorcode><error>y</error></node><errorcode>4</errorcode><serverdone/></xcatresponse>",
			func(r *Response) bool { return r.ErrorCode == 7 }},
		{"data after serverdone ignored", "<xcatresponse><serverdone/></xcatresponse><xcatresponse><data>late</data></xcatresponse>",
			func(r *Response) bool { return len(r.Data) == 0 }},
		{"xcatdsource prefix", "<xcatresponse><xcatdsource>sn1</xcatdsource><error>boom</error><serverdone/></xcatresponse>",
			func(r *Response) bool { return r.Errors[0] == "[sn1]: boom" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := readResponse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("readResponse: %v", err)
			}
			if !tt.want(r) {
				t.Errorf("unexpected response %+v (nodes %+v)", r, r.Nodes)
			}
		})
	}
}

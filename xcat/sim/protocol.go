package sim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"time"

	"xcatbm/xcat"
)

// MaxRequestBytes bounds one <xcatrequest>: room for the largest standard input the
// client sends (xcat.MaxStdinBytes) even with its newlines escaped.
const MaxRequestBytes = 16 << 20

// ErrNotXCATRequest is returned by ReadRequest when the peer sent more than 15 bytes
// without "<xcatrequest>"; xcatd closes the connection then.
var ErrNotXCATRequest = errors.New("not an xcatrequest")

type wireEnv struct {
	Vars []struct {
		XMLName xml.Name
		Value   string `xml:",chardata"`
	} `xml:",any"`
}

type wireRequest struct {
	XMLName    xml.Name  `xml:"xcatrequest"`
	Command    string    `xml:"command"`
	Noderange  string    `xml:"noderange"`
	Args       []string  `xml:"arg"`
	Cwd        string    `xml:"cwd"`
	ClientType string    `xml:"clienttype"`
	Env        []wireEnv `xml:"environment"`
	Stdin      string    `xml:"stdin"`
}

// ReadRequest reads one <xcatrequest> from r, up to and including "</xcatrequest>",
// as xcatd does: element order does not matter, arg repeats, environment children
// become Env and stdin becomes Stdin as sent. It returns io.EOF when r ends cleanly
// before a request starts, ErrNotXCATRequest for other input, and a parse error for a
// malformed request.
func ReadRequest(r *bufio.Reader) (xcat.Request, error) {
	var buf bytes.Buffer
	const open, end = "<xcatrequest>", "</xcatrequest>"
	started := false
	for {
		line, err := r.ReadSlice('>')
		buf.Write(line)
		if !started {
			if i := bytes.Index(buf.Bytes(), []byte(open)); i >= 0 {
				started = true
				rest := append([]byte(nil), buf.Bytes()[i:]...)
				buf.Reset()
				buf.Write(rest)
			} else if len(bytes.TrimSpace(buf.Bytes())) > 15 {
				return xcat.Request{}, ErrNotXCATRequest
			}
		}
		if started && bytes.HasSuffix(buf.Bytes(), []byte(end)) {
			break
		}
		if buf.Len() > MaxRequestBytes {
			return xcat.Request{}, fmt.Errorf("xcatrequest larger than %d bytes", MaxRequestBytes)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) && len(bytes.TrimSpace(buf.Bytes())) == 0 {
				return xcat.Request{}, io.EOF
			}
			if errors.Is(err, io.EOF) {
				return xcat.Request{}, io.ErrUnexpectedEOF
			}
			return xcat.Request{}, err
		}
	}
	var w wireRequest
	if err := xml.Unmarshal(buf.Bytes(), &w); err != nil {
		return xcat.Request{}, fmt.Errorf("xcatrequest: %w", err)
	}
	req := xcat.Request{
		Command:   strings.TrimSpace(w.Command),
		Noderange: strings.TrimSpace(w.Noderange),
		Args:      w.Args,
		Stdin:     w.Stdin,
	}
	for _, e := range w.Env {
		for _, v := range e.Vars {
			if req.Env == nil {
				req.Env = map[string]string{}
			}
			req.Env[v.XMLName.Local] = v.Value
		}
	}
	return req, nil
}

// WriteRequest writes req as xCAT's CLI sends it (clienttype cli), with a <stdin>
// element when req has standard input.
func WriteRequest(w io.Writer, req xcat.Request) error {
	var b strings.Builder
	b.WriteString("<xcatrequest>\n")
	elem := func(name, v string) {
		b.WriteString("<" + name + ">")
		_ = xml.EscapeText(&b, []byte(v))
		b.WriteString("</" + name + ">\n")
	}
	elem("clienttype", "cli")
	elem("command", req.Command)
	if req.Noderange != "" {
		elem("noderange", req.Noderange)
	}
	for _, a := range req.Args {
		elem("arg", a)
	}
	if req.Stdin != "" {
		elem("stdin", req.Stdin)
	}
	if len(req.Env) > 0 {
		keys := make([]string, 0, len(req.Env))
		for k := range req.Env {
			if isXMLName(k) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		b.WriteString("<environment>")
		for _, k := range keys {
			elem(k, req.Env[k])
		}
		b.WriteString("</environment>\n")
	}
	b.WriteString("</xcatrequest>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func isXMLName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '.')
		if !ok {
			return false
		}
	}
	return true
}

// WireData is one data element: contents with an optional desc, or a plain string
// (Text, when Contents and Desc are nil), as xcatd's plugins send them.
type WireData struct {
	Contents *string `xml:"contents"`
	Desc     *string `xml:"desc"`
	Text     string  `xml:",chardata"`
}

// ptr returns a pointer to a copy of s.
func ptr(s string) *string { return &s }

// descContents is data with contents and, when desc is not empty, a desc.
func descContents(desc, contents string) WireData {
	d := WireData{Contents: ptr(contents)}
	if desc != "" {
		d.Desc = ptr(desc)
	}
	return d
}

// plain is data as a plain string.
func plain(text string) WireData { return WireData{Text: text} }

// WireNode is one <node> element of a response. Its fields, like WireResponse's, are
// in the alphabetical order xcatd's XML writer puts the elements in.
type WireNode struct {
	Data      []WireData `xml:"data,omitempty"`
	Destiny   []string   `xml:"destiny,omitempty"`
	Errors    []string   `xml:"error,omitempty"`
	ErrorCode []int      `xml:"errorcode,omitempty"`
	ImgServer []string   `xml:"imgserver,omitempty"`
	Name      string     `xml:"name"`
	Warnings  []string   `xml:"warning,omitempty"`
}

// WireResponse is one <xcatresponse> element.
type WireResponse struct {
	XMLName    xml.Name   `xml:"xcatresponse"`
	Data       []string   `xml:"data,omitempty"`
	Errors     []string   `xml:"error,omitempty"`
	ErrorCode  []int      `xml:"errorcode,omitempty"`
	Info       []string   `xml:"info,omitempty"`
	Nodes      []WireNode `xml:"node,omitempty"`
	NumOfNodes []int      `xml:"numofnodes,omitempty"`
	ServerDone *struct{}  `xml:"serverdone"`
	Warnings   []string   `xml:"warning,omitempty"`
	// Source is xcatdsource: the name of the server whose plugin answered.
	Source string `xml:"xcatdsource,omitempty"`
}

// Done reports whether this element ends the answer.
func (r *WireResponse) Done() bool { return r.ServerDone != nil }

// sanitize replaces bytes outside tab..DEL with '?', as xcatd does.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < '\t' || c > 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}

// marshalResponses renders responses as xcatd writes them.
func marshalResponses(rs []WireResponse) ([]byte, error) {
	var out bytes.Buffer
	for _, r := range rs {
		b, err := xml.MarshalIndent(r, "", "  ")
		if err != nil {
			return nil, err
		}
		out.WriteString(sanitize(string(b)))
		out.WriteByte('\n')
	}
	return out.Bytes(), nil
}

// ErrPremature is returned by Exchange when the stream ended before serverdone.
var ErrPremature = errors.New("communication with the xCAT server seems to have been ended prematurely")

// Exchange sends req on conn and reads <xcatresponse> elements until serverdone. It
// returns the elements received; when the stream ends first it returns them with an
// error wrapping ErrPremature. It does not close conn, so further requests may follow.
func Exchange(ctx context.Context, conn net.Conn, dec *xml.Decoder, req xcat.Request) ([]WireResponse, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
		defer conn.SetDeadline(timeZero)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(timePast) })
	defer stop()
	if err := WriteRequest(conn, req); err != nil {
		return nil, fmt.Errorf("%s: sending: %w", req.Command, err)
	}
	var out []WireResponse
	for {
		var r WireResponse
		if err := dec.Decode(&r); err != nil {
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			return out, fmt.Errorf("%s: %w (%v)", req.Command, ErrPremature, err)
		}
		out = append(out, r)
		if r.Done() {
			return out, nil
		}
	}
}

// Call dials addr with tlsConf, sends one request and closes the connection.
func Call(ctx context.Context, addr string, tlsConf *tls.Config, req xcat.Request) ([]WireResponse, error) {
	d := tls.Dialer{Config: tlsConf}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to xcatd at %s: %w", addr, err)
	}
	defer conn.Close()
	return Exchange(ctx, conn, xml.NewDecoder(conn), req)
}

// ToResponse reads wire responses as xcatbm's native client reads xcatd's answer
// (xcat.ReadResponse): grouped by node, node data rendered as xCAT's CLI prints it,
// top-level errors prefixed with "[source]: " when they carry one. A stream without
// serverdone gives what it holds.
func ToResponse(rs []WireResponse) *xcat.Response {
	b, err := marshalResponses(rs)
	if err != nil {
		return &xcat.Response{}
	}
	resp, _ := xcat.ReadResponse(bytes.NewReader(b))
	if resp == nil {
		return &xcat.Response{}
	}
	return resp
}

var (
	timeZero time.Time
	timePast = time.Unix(1, 0)
)

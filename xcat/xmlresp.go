package xcat

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// xmlResponse is one <xcatresponse> element of xcatd's answer stream.
type xmlResponse struct {
	Data       []xmlData `xml:"data"`
	Info       []string  `xml:"info"`
	SInfo      []string  `xml:"sinfo"`
	Warning    []string  `xml:"warning"`
	Error      []string  `xml:"error"`
	ErrorCode  []string  `xml:"errorcode"`
	Node       []xmlNode `xml:"node"`
	ServerDone *struct{} `xml:"serverdone"`
	Source     []string  `xml:"xcatdsource"`
	// Host and the No*Prefix flags are keys a plugin may set to change how xCAT's
	// client prints the element; only their presence counts.
	Host          []string `xml:"host"`
	NoErrorPrefix []string `xml:"NoErrorPrefix"`
	NoWarnPrefix  []string `xml:"NoWarnPrefix"`
	NoSvrPrefix   []string `xml:"NoSvrPrefix"`
}

// xmlData is a data element: either a plain string or desc/contents children.
type xmlData struct {
	Text     string   `xml:",chardata"`
	Desc     []string `xml:"desc"`
	Contents []string `xml:"contents"`
	// Other holds any other child element; with one, xCAT's client reads the
	// element as a structure, not as a string.
	Other []struct {
		XMLName xml.Name
	} `xml:",any"`
}

// xmlNode is a per-node element.
type xmlNode struct {
	Text      string    `xml:",chardata"`
	Name      []string  `xml:"name"`
	Data      []xmlData `xml:"data"`
	Error     []string  `xml:"error"`
	ErrorCode []string  `xml:"errorcode"`
	Warning   []string  `xml:"warning"`
}

// render returns a data element as xCAT's CLI prints it: "desc: contents", "contents",
// "desc", or the plain string. Only the first desc and contents count, as in the CLI.
func (d xmlData) render() string {
	if len(d.Desc) == 0 && len(d.Contents) == 0 {
		return d.Text
	}
	desc, contents := "", ""
	if len(d.Desc) > 0 {
		desc = d.Desc[0]
	}
	if len(d.Contents) > 0 {
		contents = d.Contents[0]
	}
	switch {
	case desc != "" && contents != "":
		return desc + ": " + contents
	case desc != "":
		return desc
	default:
		return contents
	}
}

// sanitizer replaces every byte xcatd would not send (anything but tab, newline,
// carriage return and printable ASCII) with '?', as xcatd does itself, so that a stray
// byte cannot stop the XML decoder. It remembers the underlying read error so that an
// answer cut short can be told from malformed XML.
type sanitizer struct {
	r   io.Reader
	err error
}

func (s *sanitizer) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	for i := 0; i < n; i++ {
		c := p[i]
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c > 0x7e {
			p[i] = '?'
		}
	}
	if err != nil {
		s.err = err
	}
	return n, err
}

// errPremature is the message xCAT's CLI prints when the answer ends before serverdone.
const errPremature = "communication with the xCAT server seems to have been ended prematurely"

// ReadResponse reads an answer of xcatd from r, as Native does from its connection:
// <xcatresponse> elements up to and including the one that carries serverdone. The
// Response keeps the elements in order, so PrintResponse prints it as xCAT's client
// would. An answer that ends before serverdone is an error wrapping ErrUnavailable
// (with what was read before it in the Response); XML that does not parse is an
// error of its own. Top-level errors are not turned into a *CommandError here.
func ReadResponse(r io.Reader) (*Response, error) {
	return readResponse(r)
}

// readResponse reads <xcatresponse> elements from r into a Response until one carries
// serverdone. An answer that ends (or breaks) before serverdone is an error wrapping
// ErrUnavailable; XML that does not parse is an error of its own. Whatever was read
// before the failure is kept in the returned Response.
func readResponse(r io.Reader) (*Response, error) {
	resp := &Response{Nodes: map[string]*NodeOutput{}}
	src := &sanitizer{r: bufio.NewReader(r)}
	dec := xml.NewDecoder(src)
	// Lenient: xCAT's own client parses with XML::Simple after mangling bytes; an
	// unknown entity or a stray tag should not lose the rest of the answer.
	dec.Strict = false
	dec.Entity = xml.HTMLEntity
	for {
		tok, err := dec.Token()
		if err != nil {
			if src.err != nil && !errors.Is(src.err, io.EOF) {
				return resp, fmt.Errorf("%s: %w: %w", errPremature, ErrUnavailable, src.err)
			}
			if src.err != nil || errors.Is(err, io.EOF) {
				return resp, fmt.Errorf("%s: %w", errPremature, ErrUnavailable)
			}
			return resp, fmt.Errorf("xcatd answer: %w", err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue // whitespace, comments, the XML declaration, stray end tags
		}
		if start.Name.Local != "xcatresponse" {
			if err := dec.Skip(); err != nil {
				continue // the next Token call reports the failure
			}
			continue
		}
		var x xmlResponse
		if err := dec.DecodeElement(&x, &start); err != nil {
			if src.err != nil {
				if !errors.Is(src.err, io.EOF) {
					return resp, fmt.Errorf("%s: %w: %w", errPremature, ErrUnavailable, src.err)
				}
				return resp, fmt.Errorf("%s: %w", errPremature, ErrUnavailable)
			}
			return resp, fmt.Errorf("xcatd answer: %w", err)
		}
		x.addTo(resp)
		resp.elems = append(resp.elems, x)
		if x.ServerDone != nil {
			return resp, nil
		}
	}
}

// addTo merges one xcatresponse element into resp.
func (x *xmlResponse) addTo(resp *Response) {
	for _, c := range x.ErrorCode {
		resp.ErrorCode |= parseCode(c)
	}
	src := ""
	if len(x.Source) > 0 && x.Source[0] != "" {
		src = "[" + x.Source[0] + "]: "
	}
	for _, e := range x.Error {
		resp.Errors = append(resp.Errors, src+e)
	}
	for _, w := range x.Warning {
		resp.Warnings = append(resp.Warnings, src+w)
	}
	resp.Data = append(resp.Data, x.Info...)
	for _, d := range x.Data {
		resp.Data = append(resp.Data, d.render())
	}
	for _, n := range x.Node {
		name := ""
		if len(n.Name) > 0 {
			name = strings.TrimSpace(n.Name[0])
		} else {
			// The noderange pseudo-command answers bare <node>name</node> elements.
			name = strings.TrimSpace(n.Text)
		}
		if name == "" {
			// A node element without a name: keep what it said at the top level.
			for _, d := range n.Data {
				resp.Data = append(resp.Data, d.render())
			}
			resp.Errors = append(resp.Errors, n.Error...)
			resp.Warnings = append(resp.Warnings, n.Warning...)
			for _, c := range n.ErrorCode {
				resp.ErrorCode |= parseCode(c)
			}
			continue
		}
		out := resp.Node(name)
		for _, d := range n.Data {
			out.Data = append(out.Data, d.render())
		}
		out.Errors = append(out.Errors, n.Error...)
		out.Warnings = append(out.Warnings, n.Warning...)
		for _, c := range n.ErrorCode {
			code := parseCode(c)
			out.ErrorCode |= code
			resp.ErrorCode |= code
		}
	}
}

// parseCode reads an errorcode; anything that is not a number counts as 1 when it is
// not empty, since xCAT's CLI would exit non-zero on it.
func parseCode(s string) int {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 1
	}
	return n
}

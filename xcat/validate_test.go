package xcat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRawRefusesWhatTypedCallsRefuse: Raw, the path of `xcatbm xcat`, refuses the node
// names and values the typed calls refuse, with the same check, before sending.
func TestRawRefusesWhatTypedCallsRefuse(t *testing.T) {
	t.Parallel()
	b := &recordingBackend{answer: func(Request) (*Response, error) { return &Response{}, nil }}
	c := NewClient(b)
	ctx := context.Background()
	for _, nr := range []string{"node;rm", "node01`id`", "node01$(id)", "node01|x", "node01&", "n1>x", `n1"`, "n1'", `n1\x`} {
		_, rawErr := c.Raw(ctx, Request{Command: "rpower", Noderange: nr, Args: []string{"stat"}})
		_, typedErr := c.Power(ctx, nr, PowerStat)
		if !errors.Is(rawErr, ErrInvalidInput) || !errors.Is(typedErr, ErrInvalidInput) {
			t.Errorf("noderange %q: raw %v, typed %v; want both refused", nr, rawErr, typedErr)
		}
		if rawErr != nil && typedErr != nil && rawErr.Error() != typedErr.Error() {
			t.Errorf("noderange %q: raw and typed refusals differ: %q, %q", nr, rawErr, typedErr)
		}
		if err := ValidateNoderange(nr); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("ValidateNoderange(%q) = %v", nr, err)
		}
	}
	objects := []Request{
		{Command: "lsdef", Args: []string{"node01$(id)"}},
		{Command: "lsdef", Args: []string{"-t", "node", "-o", "node;rm", "-l"}},
		{Command: "chdef", Args: []string{"node01|x", "postbootscripts=x"}},
		{Command: "chdef", Args: []string{"-t", "node", "-o", "node01", "postbootscripts=x;reboot"}},
		{Command: "lsdef", Args: []string{"-t", "node", "-w", "mac=`id`"}},
		{Command: "rmdef", Args: []string{"-t", "node", "n1`id`"}},
	}
	for _, req := range objects {
		if _, err := c.Raw(ctx, req); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("Raw(%s) = %v, want ErrInvalidInput", req, err)
		}
	}
	if len(b.sent) != 0 {
		t.Fatalf("refused requests were sent: %+v", b.sent)
	}
	// The noderange syntax and ordinary object commands pass.
	for _, req := range []Request{
		{Command: "rpower", Noderange: "node[01-10],-node05,compute@rack1", Args: []string{"stat"}},
		{Command: "nodels", Noderange: "/n0[1-3]", Args: []string{"nodelist.status"}},
		{Command: "lsdef", Args: []string{"-t", "node", "-w", "groups=~compute", "-i", "mac,ip"}},
		{Command: "chdef", Args: []string{"node01", "postbootscripts=a,b c"}},
		{Command: "tabdump", Args: []string{"-w", "key==master", "site"}},
	} {
		if _, err := c.Raw(ctx, req); err != nil {
			t.Errorf("Raw(%s) = %v, want it sent", req, err)
		}
	}
	if len(b.sent) != 5 {
		t.Errorf("%d requests sent, want 5", len(b.sent))
	}
}

func TestCheckNoderangeSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		nr      string
		max     int
		refused bool
	}{
		{"n[1-10000]", 10000, false},
		{"n[1-10001]", 10000, true},
		{"n1-n10001", 10000, true},
		{"n[00001-10000],n10001", 10000, true},
		{"f[1-200]n[1-200]", 10000, true},
		{"f[1-20]n[1-200]", 10000, false},
		{"node10+10000", 10000, true},
		{"10-10009", 10000, false},
		{"n[1-1000000]", 10000, true},
		{"n[1-10000000000]", 10000, true},
		{"n[1-6000],-n[1-6000]", 10000, true},
		{"(n[1-6000])@n[1-6000]", 10000, true},
		{"all", 1, false},
		{"all,compute", 1, true},
		{"/n.*", 1, false},
		{"nodelist.status==booted", 1, false},
		{"^/nonexistent/file", 1, false},
		{"n[1-1000000]", 0, false},
		{"n[1-", 1, false},
		{"", 1, false},
	}
	for _, tt := range tests {
		start := time.Now()
		err := CheckNoderangeSize(tt.nr, tt.max)
		var tl *NoderangeTooLargeError
		if refused := errors.As(err, &tl); refused != tt.refused || (err != nil && !refused) {
			t.Errorf("CheckNoderangeSize(%q, %d) = %v, refused want %v", tt.nr, tt.max, err, tt.refused)
			continue
		}
		if tt.refused {
			if !errors.Is(err, ErrInvalidInput) || tl.Max != tt.max || !strings.Contains(err.Error(), "more than") {
				t.Errorf("CheckNoderangeSize(%q, %d): %v (%+v)", tt.nr, tt.max, err, tl)
			}
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("CheckNoderangeSize(%q) took %v", tt.nr, d)
		}
	}
}

// TestClientMaxNodes: with WithMaxNodes a call naming too many nodes is refused before
// any request; without it, the same call is sent.
func TestClientMaxNodes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := &recordingBackend{answer: func(Request) (*Response, error) { return &Response{}, nil }}
	limited := NewClient(b, WithMaxNodes(100))
	calls := map[string]func(Client) error{
		"rpower":  func(c Client) error { _, err := c.Power(ctx, "n[1-101]", PowerStat); return err },
		"nodeset": func(c Client) error { _, err := c.NodeSet(ctx, "n[1-101]", "boot"); return err },
		"nodels":  func(c Client) error { _, _, err := c.NodeLs(ctx, "n[1-101]", "nodelist.status"); return err },
		"lsdef":   func(c Client) error { _, err := c.LsDefNodes(ctx, "n[1-101]", nil); return err },
		"raw": func(c Client) error {
			_, err := c.Raw(ctx, Request{Command: "rinv", Noderange: "n[1-101]"})
			return err
		},
		"raw lsdef object": func(c Client) error {
			_, err := c.Raw(ctx, Request{Command: "lsdef", Args: []string{"n[1-101]"}})
			return err
		},
		"chdef -z": func(c Client) error {
			each := map[string]Attrs{}
			for i := range 101 {
				each[fmt.Sprintf("n%d", i)] = Attrs{"ip": "1"}
			}
			_, err := c.ChDefEach(ctx, ChDefSet, each)
			return err
		},
	}
	for name, call := range calls {
		var tl *NoderangeTooLargeError
		if err := call(limited); !errors.As(err, &tl) || !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s with a limit of 100: %v, want a *NoderangeTooLargeError", name, err)
		}
	}
	if len(b.sent) != 0 {
		t.Fatalf("refused calls sent %d requests", len(b.sent))
	}
	if _, err := limited.Power(ctx, "n[1-100]", PowerStat); err != nil || len(b.sent) != 1 {
		t.Errorf("100 nodes under a limit of 100: %v, sent %d", err, len(b.sent))
	}
	if _, err := NewClient(b).Power(ctx, "n[1-101]", PowerStat); err != nil || len(b.sent) != 2 {
		t.Errorf("no limit: %v, sent %d", err, len(b.sent))
	}
}

func TestValidateOSImageName(t *testing.T) {
	t.Parallel()
	for name, ok := range map[string]bool{
		"rhels7.5-x86_64-install-compute": true,
		"sles15.4_ppc64le-netboot-gpu":    true,
		"":                                false,
		"-rhels":                          false,
		".hidden":                         false,
		"img;reboot":                      false,
		"img$(id)":                        false,
		"img a":                           false,
		"img,other":                       false,
		"img=x":                           false,
		"../../etc":                       false,
		"img\n":                           false,
		strings.Repeat("a", MaxOSImageNameLength):   true,
		strings.Repeat("a", MaxOSImageNameLength+1): false,
	} {
		if err := ValidateOSImageName(name); (err == nil) != ok || (err != nil && !errors.Is(err, ErrInvalidInput)) {
			t.Errorf("ValidateOSImageName(%q) = %v, want ok %v", name, err, ok)
		}
	}
	// The typed calls use it.
	b := &recordingBackend{answer: func(Request) (*Response, error) { return &Response{}, nil }}
	c := NewClient(b)
	if _, err := c.NodeSet(context.Background(), "n1", "osimage=img,other"); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("nodeset osimage=img,other: %v", err)
	}
	if _, err := c.LsDefOSImages(context.Background(), []string{".img"}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("lsdef osimage .img: %v", err)
	}
	if len(b.sent) != 0 {
		t.Errorf("refused calls sent %d requests", len(b.sent))
	}
}

// FuzzCheckNoderangeSize: the size check never panics, and a noderange it lets
// through expands (as written, without the cluster) to no more nodes than the limit.
func FuzzCheckNoderangeSize(f *testing.F) {
	for _, s := range []string{"n[1-10]", "f[1-3]n[1-4]", "n01-n20,-n05", "node10+5", "(a,b)@c", "10-20", "n[1-99999999999]", "a[1-2]b[3-4]c[5-6]"} {
		f.Add(s, 20)
	}
	f.Fuzz(func(t *testing.T, nr string, max int) {
		if strings.Contains(nr, "^") || max > 1000 {
			return // no files; keep expansions small
		}
		err := CheckNoderangeSize(nr, max)
		var tl *NoderangeTooLargeError
		if err != nil && !errors.As(err, &tl) {
			t.Fatalf("CheckNoderangeSize(%q, %d): unexpected error %v", nr, max, err)
		}
		if err != nil || max <= 0 {
			return
		}
		nodes, xerr := ExpandNoderange(context.Background(), nr, nil)
		if xerr == nil && len(nodes) > max {
			t.Fatalf("CheckNoderangeSize(%q, %d) passed %d nodes", nr, max, len(nodes))
		}
	})
}

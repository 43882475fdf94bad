package xcat

import (
	"errors"
	"maps"
	"testing"
)

func TestFormatStanza(t *testing.T) {
	t.Parallel()
	got, err := FormatStanza([]StanzaObject{
		{Name: "n002", Attrs: Attrs{"postbootscripts": "config_ops_bmnode 10.0.0.6/24", "objtype": "node", "ip": "10.0.0.6"}},
		{Name: "n001", Attrs: Attrs{"objtype": "node", "ip": ""}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "# <xCAT data object stanza file>\n\n" +
		"n002:\n    objtype=node\n    ip=10.0.0.6\n    postbootscripts=config_ops_bmnode 10.0.0.6/24\n\n" +
		"n001:\n    objtype=node\n    ip=\n\n"
	if got != want {
		t.Errorf("FormatStanza:\n%s\nwant:\n%s", got, want)
	}
}

func TestFormatStanzaRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		objs []StanzaObject
	}{
		{"empty name", []StanzaObject{{Name: "", Attrs: Attrs{"ip": "1"}}}},
		{"name with colon", []StanzaObject{{Name: "n1:x", Attrs: Attrs{"ip": "1"}}}},
		{"name with newline", []StanzaObject{{Name: "n1\nn2", Attrs: Attrs{"ip": "1"}}}},
		{"defaults stanza", []StanzaObject{{Name: "default-node", Attrs: Attrs{"ip": "1"}}}},
		{"twice", []StanzaObject{{Name: "n1", Attrs: Attrs{"ip": "1"}}, {Name: "n1", Attrs: Attrs{"ip": "2"}}}},
		{"attr with =", []StanzaObject{{Name: "n1", Attrs: Attrs{"a=b": "1"}}}},
		{"attr empty", []StanzaObject{{Name: "n1", Attrs: Attrs{"": "1"}}}},
		{"value newline", []StanzaObject{{Name: "n1", Attrs: Attrs{"ip": "1\nn2:"}}}},
		{"value CR", []StanzaObject{{Name: "n1", Attrs: Attrs{"ip": "1\r"}}}},
		{"value shell", []StanzaObject{{Name: "n1", Attrs: Attrs{"ip": "$(reboot)"}}}},
		{"value quote", []StanzaObject{{Name: "n1", Attrs: Attrs{"ip": `"1"`}}}},
		{"value leading space", []StanzaObject{{Name: "n1", Attrs: Attrs{"ip": " 1"}}}},
		{"value trailing space", []StanzaObject{{Name: "n1", Attrs: Attrs{"ip": "1 "}}}},
		{"value trailing colon", []StanzaObject{{Name: "n1", Attrs: Attrs{"ip": "fe80::"}}}},
		{"value non-ASCII", []StanzaObject{{Name: "n1", Attrs: Attrs{"ip": "é"}}}},
	}
	for _, tt := range tests {
		if _, err := FormatStanza(tt.objs); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: err = %v, want ErrInvalidInput", tt.name, err)
		}
	}
}

func TestParseStanza(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []StanzaObject
	}{
		{"lsdef -z output", "# <xCAT data object stanza file>\n\nn1:\n    objtype=node\n    ip=10.0.0.5\n    postbootscripts=otherpkgs,config_ops_bmnode h1\n\nn2:\n    objtype=node\n    ip=\n",
			[]StanzaObject{
				{Name: "n1", Attrs: Attrs{"objtype": "node", "ip": "10.0.0.5", "postbootscripts": "otherpkgs,config_ops_bmnode h1"}},
				{Name: "n2", Attrs: Attrs{"objtype": "node", "ip": ""}},
			}},
		// What readFileInput tolerates: CRLF, spaces around names and '=', quotes,
		// comments anywhere, '=' inside a value, no blank line between objects.
		{"loose", "  n1  : \r\n\tobjtype = node\r\n  # comment\n  ip = \" 10.0.0.5 \"\nn2:\nnote=a=b#c\n",
			[]StanzaObject{
				{Name: "n1", Attrs: Attrs{"objtype": "node", "ip": "10.0.0.5"}},
				{Name: "n2", Attrs: Attrs{"note": "a=b#c"}},
			}},
		// An object named twice collects both stanzas; the later value wins.
		{"merged", "n1:\n ip=1\n ip=2\nn2:\n ip=3\nn1:\n mac=aa\n",
			[]StanzaObject{
				{Name: "n1", Attrs: Attrs{"ip": "2", "mac": "aa"}},
				{Name: "n2", Attrs: Attrs{"ip": "3"}},
			}},
		{"header without attributes", "n1:\n", []StanzaObject{{Name: "n1", Attrs: Attrs{}}}},
		{"empty", "\n# nothing\n", nil},
	}
	for _, tt := range tests {
		got, err := ParseStanza(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !equalObjects(got, tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestParseStanzaRefuses(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"attribute first":     "ip=1\nn1:\n",
		"neither":             "n1:\n    objtype node\n",
		"header with junk":    "n1: x\n",
		"header with =":       "n1:\n    ip=fe80::\n",
		"defaults stanza":     "default-node:\n    groups=all\n",
		"bad name":            "n;1:\n    ip=1\n",
		"bad attribute":       "n1:\n    i p=1\n",
		"value with shell":    "n1:\n    ip=`reboot`\n",
		"value with control":  "n1:\n    ip=1\x00\n",
		"value ending in ':'": "n1:\n    ip=a:\"\n",
	}
	for name, in := range tests {
		if objs, err := ParseStanza(in); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: %+v, %v; want ErrInvalidInput", name, objs, err)
		}
	}
}

// TestStanzaRoundTrip: what FormatStanza writes, ParseStanza reads back unchanged.
func TestStanzaRoundTrip(t *testing.T) {
	t.Parallel()
	objs := []StanzaObject{
		{Name: "node-01.rack_2", Attrs: Attrs{"objtype": "node", "postbootscripts": "otherpkgs,config_ops_bmnode h1 192.168.1.5 255.255.255.0", "ip": "10.0.0.1"}},
		{Name: "n2", Attrs: Attrs{"objtype": "node", "ip": "", "groups": "all,compute", "note": "a=b #not a comment"}},
		{Name: "default", Attrs: Attrs{"objtype": "node", "mac": "52:54:00:00:00:01"}},
	}
	text, err := FormatStanza(objs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseStanza(text)
	if err != nil {
		t.Fatalf("ParseStanza(%q): %v", text, err)
	}
	if !equalObjects(got, objs) {
		t.Errorf("round trip:\n%+v\nwant\n%+v\ntext:\n%s", got, objs, text)
	}
}

func equalObjects(a, b []StanzaObject) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !maps.Equal(a[i].Attrs, b[i].Attrs) {
			return false
		}
	}
	return true
}

package xcat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testCluster is a small cluster: node1..node20, node001..node010 (padded), f1n1..f3n3,
// rack1-ib..rack4-ib, gpu07, a group "compute" and a node that shadows a group name.
func testCluster(t testing.TB) *StaticResolver {
	t.Helper()
	var nodes []string
	for i := 1; i <= 20; i++ {
		nodes = append(nodes, fmt.Sprintf("node%d", i))
	}
	for i := 1; i <= 10; i++ {
		nodes = append(nodes, fmt.Sprintf("node%03d", i))
	}
	for f := 1; f <= 3; f++ {
		for n := 1; n <= 3; n++ {
			nodes = append(nodes, fmt.Sprintf("f%dn%d", f, n))
		}
	}
	for i := 1; i <= 4; i++ {
		nodes = append(nodes, fmt.Sprintf("rack%d-ib", i))
	}
	nodes = append(nodes, "gpu07", "storage", "a01", "a02", "a03", "a10")
	groups := map[string][]string{
		"compute": {"node1", "node2", "node3", "node4"},
		"rack1":   {"node3", "node4", "node5"},
		"gpu":     {"gpu07"},
		"storage": {"node9", "node10"}, // shadowed by the node "storage"
		"empty":   {},
	}
	attrs := map[string]map[string]string{
		"node1": {"nodelist.status": "booted", "nodehm.mgt": "ipmi"},
		"node2": {"nodelist.status": "installing", "nodehm.mgt": "ipmi"},
		"node3": {"nodelist.status": "booted", "nodehm.mgt": "hmc"},
	}
	return NewStaticResolver(nodes, groups, attrs)
}

func seq(prefix string, from, to int, format string) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, prefix+fmt.Sprintf(format, i))
	}
	return out
}

func TestExpandNoderange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	listFile := filepath.Join(dir, "nodes")
	if err := os.WriteFile(listFile, []byte("# comment line\nnode1\nnode5: trailing text\n^ignored\n\nf1n[1-2]\tcomment\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := testCluster(t)
	tests := []struct {
		nr   string
		want []string
	}{
		{"", nil},
		{"node1", []string{"node1"}},
		{"node1,node3,node2", []string{"node1", "node3", "node2"}},
		{"node1,node1", []string{"node1"}},
		{"node1-node4", seq("node", 1, 4, "%d")},
		{"node1:node4", seq("node", 1, 4, "%d")},
		{"node8-node10", []string{"node8", "node9", "node10"}},
		{"node001-node003", seq("node", 1, 3, "%03d")},
		{"node[1-4]", seq("node", 1, 4, "%d")},
		{"node[1:4]", seq("node", 1, 4, "%d")},
		{"node[001-010]", seq("node", 1, 10, "%03d")},
		{"node[1-3,7,9-10]", []string{"node1", "node2", "node3", "node7", "node9", "node10"}},
		{"a[01-03]", []string{"a01", "a02", "a03"}},
		{"a01-a03", []string{"a01", "a02", "a03"}},
		{"f[1-2]n[1-3]", []string{"f1n1", "f1n2", "f1n3", "f2n1", "f2n2", "f2n3"}},
		{"rack[1-3]-ib", []string{"rack1-ib", "rack2-ib", "rack3-ib"}},
		{"rack1-ib-rack4-ib", []string{"rack1-ib", "rack2-ib", "rack3-ib", "rack4-ib"}},
		{"node10+3", []string{"node10", "node11", "node12", "node13"}},
		{"node001+2", []string{"node001", "node002", "node003"}},
		{"10-12", []string{"node10", "node11", "node12"}},
		{"10+2", []string{"node10", "node11", "node12"}},
		{"7", []string{"node7"}},
		{"/node1[0-2]", []string{"node10", "node11", "node12"}},
		{"/f.n1", []string{"f1n1", "f2n1", "f3n1"}},
		{"compute", []string{"node1", "node2", "node3", "node4"}},
		{"compute,-node2", []string{"node1", "node3", "node4"}},
		{"-node2,compute", []string{"node1", "node3", "node4"}},
		{"node[1-10],-node[2-9]", []string{"node1", "node10"}},
		{"compute@rack1", []string{"node3", "node4"}},
		{"node[1-10]@rack1@compute", []string{"node3", "node4"}},
		{"node20,compute@rack1", []string{"node20", "node3", "node4"}},
		{"(node1,node2),node3", []string{"node1", "node2", "node3"}},
		{"(compute,rack1)@node[4-5]", []string{"node4", "node5"}},
		{"compute,-(node1,node2)", []string{"node3", "node4"}},
		{"storage", []string{"storage"}},
		{"empty", nil},
		{"nodelist.status==booted", []string{"node1", "node3"}},
		{"nodelist.status=booted", []string{"node1", "node3"}},
		{"nodelist.status!=booted@compute", []string{"node2", "node4"}},
		{"nodelist.status=~/^inst/", []string{"node2"}},
		{"nodelist.status!~boot@compute", []string{"node2", "node4"}},
		{"mgt==hmc", []string{"node3"}},
		{"groups=~gpu", []string{"gpu07"}},
		{"^" + listFile, []string{"node1", "node5", "f1n1", "f1n2"}},
		{"compute,-^" + listFile, []string{"node2", "node3", "node4"}},
	}
	for _, tt := range tests {
		t.Run(tt.nr, func(t *testing.T) {
			got, err := ExpandNoderange(context.Background(), tt.nr, r)
			if err != nil {
				t.Fatalf("ExpandNoderange(%q): %v", tt.nr, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ExpandNoderange(%q) = %v, want %v", tt.nr, got, tt.want)
			}
		})
	}
}

func TestExpandNoderangeUnknown(t *testing.T) {
	t.Parallel()
	r := testCluster(t)
	tests := []struct {
		nr      string
		unknown []string
	}{
		{"foo", []string{"foo"}},
		{"node1,foo,bar", []string{"foo", "bar"}},
		{"node[19-22]", []string{"node21", "node22"}},
		{"a01-b03", []string{"a01-b03"}},
		{"node1-ib-x", []string{"node1-ib-x"}},
		{"rack1-ib-node", []string{"rack1-ib-node"}},
		{"-ghost,node1", []string{"ghost"}},
	}
	for _, tt := range tests {
		t.Run(tt.nr, func(t *testing.T) {
			_, err := ExpandNoderange(context.Background(), tt.nr, r)
			var unk *UnknownNodesError
			if !errors.As(err, &unk) {
				t.Fatalf("ExpandNoderange(%q) error = %v, want *UnknownNodesError", tt.nr, err)
			}
			if !slices.Equal(unk.Names, tt.unknown) {
				t.Errorf("unknown = %v, want %v", unk.Names, tt.unknown)
			}
			want := "Invalid nodes and/or groups in noderange: " + strings.Join(tt.unknown, ",")
			if unk.Error() != want {
				t.Errorf("message %q, want %q", unk.Error(), want)
			}
		})
	}
}

func TestExpandNoderangeInvalid(t *testing.T) {
	t.Parallel()
	r := testCluster(t)
	for _, nr := range []string{
		"node[1-3", "node1]", "(node1", "node1)", "node[a-c]", "[1-3]", "node[5-1]",
		"node[1-99999999999]", "node1\nnode2", "/[", "nodelist.status=~[", "a@",
		"node1@-node2", "bogus==x", "node(1)", "^",
	} {
		t.Run(nr, func(t *testing.T) {
			_, err := ExpandNoderange(context.Background(), nr, r)
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("ExpandNoderange(%q) error = %v, want ErrInvalidInput", nr, err)
			}
		})
	}
}

func TestExpandNoderangeNoResolver(t *testing.T) {
	t.Parallel()
	tests := []struct {
		nr   string
		want []string
	}{
		{"n[1-3],x", []string{"n1", "n2", "n3", "x"}},
		{"rack-a", []string{"rack-a"}},
		{"n1-n3,-n2", []string{"n1", "n3"}},
		{"gpu07", []string{"gpu07"}},
	}
	for _, tt := range tests {
		got, err := ExpandNoderange(context.Background(), tt.nr, nil)
		if err != nil {
			t.Fatalf("ExpandNoderange(%q, nil): %v", tt.nr, err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("ExpandNoderange(%q, nil) = %v, want %v", tt.nr, got, tt.want)
		}
	}
	for _, nr := range []string{"/n.*", "nodelist.status==booted"} {
		if _, err := ExpandNoderange(context.Background(), nr, nil); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("ExpandNoderange(%q, nil) error = %v, want ErrInvalidInput", nr, err)
		}
	}
}

func TestExpandNoderangeCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ExpandNoderange(ctx, "node1", testCluster(t)); !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
}

func TestCompressNoderange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		nodes []string
		want  string
	}{
		{nil, ""},
		{[]string{"node1"}, "node1"},
		{seq("node", 1, 100, "%03d"), "node[001-100]"},
		{append(seq("node", 1, 100, "%03d"), "gpu07"), "gpu07,node[001-100]"},
		{seq("node", 8, 12, "%d"), "node[8-12]"},
		{[]string{"node1", "node2", "node3", "node7", "node9", "node10"}, "node[1-3,7,9-10]"},
		{[]string{"node3", "node1", "node2", "node2"}, "node[1-3]"},
		{[]string{"rack1-ib", "rack2-ib", "rack3-ib", "login"}, "rack[1-3]-ib,login"},
		{[]string{"f1n1", "f1n2", "f2n1", "f2n2"}, "f1n[1-2],f2n[1-2]"},
		{[]string{"n01", "n1", "n2", "n02"}, "n[01-02,1-2]"},
		{[]string{"n098", "n099", "n100", "n101"}, "n[098-101]"},
		{[]string{"12", "13"}, "12,13"},
	}
	r := NewStaticResolver([]string{"12", "13"}, nil, nil)
	for _, tt := range tests {
		got := CompressNoderange(tt.nodes)
		if got != tt.want {
			t.Errorf("CompressNoderange(%v) = %q, want %q", tt.nodes, got, tt.want)
		}
		var res Resolver
		if len(tt.nodes) > 0 && tt.nodes[0] == "12" {
			res = r
		}
		back, err := ExpandNoderange(context.Background(), got, res)
		if err != nil {
			t.Fatalf("expanding %q: %v", got, err)
		}
		if !sameSet(back, tt.nodes) {
			t.Errorf("ExpandNoderange(%q) = %v, want the set %v", got, back, tt.nodes)
		}
	}
}

func sameSet(a, b []string) bool {
	as, bs := slices.Clone(a), slices.Clone(b)
	slices.Sort(as)
	slices.Sort(bs)
	return slices.Equal(slices.Compact(as), slices.Compact(bs))
}

func TestValidateNodeName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"node1", "n01.cluster", "rack1-ib", "gpu_07", "7"} {
		if err := ValidateNodeName(ok); err != nil {
			t.Errorf("ValidateNodeName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{
		"", "-node", ".node", "node 1", "node\n1", "node;reboot", "a&b", "a|b", "$(x)", "`x`",
		"a<b", "a>b", "a'b", `a"b`, "a,b", "a[1]", "a@b", "a*", "a\\b", "nöde",
		strings.Repeat("n", MaxNodeNameLength+1),
	} {
		if err := ValidateNodeName(bad); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("ValidateNodeName(%q) = %v, want ErrInvalidInput", bad, err)
		}
	}
}

func FuzzExpandNoderange(f *testing.F) {
	for _, s := range []string{
		"node1", "node[1-10],-node5", "f[1-2]n[1-3]", "node10+3", "10-20", "/node1.*",
		"compute@rack1", "(a,b),c", "nodelist.status==booted", "rack1-ib-rack3-ib", "a01:a10",
		"node[001-100],gpu07", "^/nonexistent", "((((a))))", "n[1-3,5]x[2-3]",
	} {
		f.Add(s)
	}
	r := testCluster(f)
	f.Fuzz(func(t *testing.T, nr string) {
		ctx := context.Background()
		nodes, err := ExpandNoderange(ctx, nr, r)
		if err != nil {
			return
		}
		// Whatever expanded must compress and expand back to the same set.
		c := CompressNoderange(nodes)
		back, err := ExpandNoderange(ctx, c, r)
		if err != nil {
			t.Fatalf("%q expanded to %v; its compression %q fails: %v", nr, nodes, c, err)
		}
		if !sameSet(back, nodes) {
			t.Fatalf("%q: %v compressed to %q expands to %v", nr, nodes, c, back)
		}
		_, _ = ExpandNoderange(ctx, nr, nil)
	})
}

func FuzzCompressNoderange(f *testing.F) {
	f.Add("node1 node2 node3")
	f.Add("n01 n1 n099 n100 gpu07 rack1-ib rack2-ib")
	f.Add("a1b2 a1b3 a2b2")
	f.Fuzz(func(t *testing.T, list string) {
		var nodes []string
		for _, n := range strings.Fields(list) {
			if ValidateNodeName(n) == nil {
				nodes = append(nodes, n)
			}
		}
		c := CompressNoderange(nodes)
		// Every name is a node, so node names win over range syntax.
		r := NewStaticResolver(nodes, nil, nil)
		back, err := ExpandNoderange(context.Background(), c, r)
		if err != nil {
			t.Fatalf("%v compressed to %q: %v", nodes, c, err)
		}
		if !sameSet(back, nodes) {
			t.Fatalf("%v compressed to %q expands to %v", nodes, c, back)
		}
	})
}

func BenchmarkNoderange100k(b *testing.B) {
	nodes := seq("node", 1, 100000, "%06d")
	r := NewStaticResolver(nodes, nil, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		got, err := ExpandNoderange(ctx, "node[000001-100000]", r)
		if err != nil || len(got) != 100000 {
			b.Fatalf("expand: %d nodes, %v", len(got), err)
		}
		if c := CompressNoderange(got); c != "node[000001-100000]" {
			b.Fatalf("compress: %q", c)
		}
	}
}

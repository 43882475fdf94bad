package configdrive

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"xcatbm/internal/config"
	"xcatbm/messages"
)

// cyclicRand yields 0, 1, ..., 255, 0, 1, ... : the bytes the golden trees' random
// seeds were made from.
type cyclicRand struct{ n int }

func (c *cyclicRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c.n)
		c.n++
	}
	return len(p), nil
}

// tenantBuilds decodes the build_and_run_instance casts of the tenant capture (in
// messages' testdata), in order.
func tenantBuilds(t testing.TB) []*messages.BuildAndRunInstanceArgs {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "messages", "testdata", "nova-live", "to-compute-tenant.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*messages.BuildAndRunInstanceArgs
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var rec struct {
			Msg json.RawMessage `json:"msg"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		var msg any
		if err := json.Unmarshal(rec.Msg, &msg); err != nil {
			t.Fatal(err)
		}
		body, err := messages.EncodeEnvelope(msg)
		if err != nil {
			t.Fatal(err)
		}
		req, err := messages.DecodeRequest(body)
		if err != nil {
			t.Fatal(err)
		}
		if req.Method != messages.MethodBuildAndRunInstance {
			continue
		}
		a, err := req.BuildAndRunInstance()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 {
		t.Fatalf("%d builds in the tenant capture, want 3", len(out))
	}
	return out
}

// editedInstance applies the golden e2e case's edits to an Instance primitive:
// metadata with characters JSON must escape, a display name outside ASCII, launch
// index 2, no availability zone, and the network_info of testdata/nova.
func editedInstance(t testing.TB, in *messages.Instance) *messages.Instance {
	t.Helper()
	o := in.Object.Clone()
	set := func(k string, v any) {
		if err := o.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	// Keys in the order the golden tree was made with (Go's map order is sorted).
	set("metadata", map[string]string{"role": "web", "zeta": "1", "ümlaut": "ünïcode ☃ 𝄞 \"q\" \\ \n\t\x7f\x01"})
	set("display_name", "s1 ☃")
	set("launch_index", 2)
	set("availability_zone", nil)
	ni, err := os.ReadFile(filepath.Join("testdata", "nova", "network_info.json"))
	if err != nil {
		t.Fatal(err)
	}
	ic, err := o.Child("info_cache")
	if err != nil {
		t.Fatal(err)
	}
	if err := ic.Set("network_info", string(ni)); err != nil {
		t.Fatal(err)
	}
	set("info_cache", ic)
	out, err := messages.InstanceFromObject(o)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readTree maps every file under dir (relative, slash-separated) to its content.
func readTree(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLayoutMatchesNova compares the drive with the trees Debian's nova 26 wrote
// for the same instances (testdata/nova/README.md says how they were made): the
// same files, byte for byte.
func TestLayoutMatchesNova(t *testing.T) {
	t.Parallel()
	builds := tenantBuilds(t)
	cases := []struct {
		golden   string
		instance *messages.Instance
		password config.Secret
	}{
		{"s1-admin-pass", builds[0].Instance, builds[0].AdminPassword},
		{"s2-no-key", builds[1].Instance, config.Secret{}},
		{"e2e-network-unicode", editedInstance(t, builds[2].Instance), config.Secret{}},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			t.Parallel()
			in, err := FromInstance(c.instance, c.password)
			if err != nil {
				t.Fatal(err)
			}
			nw, err := NetworkFromVIFs(c.instance.NetworkInfo)
			if err != nil {
				t.Fatal(err)
			}
			files, err := Layout(in, nw, Options{DHCPDomain: DefaultDHCPDomain, Rand: &cyclicRand{}})
			if err != nil {
				t.Fatal(err)
			}
			want := readTree(t, filepath.Join("testdata", "nova", c.golden))
			got := map[string][]byte{}
			for _, f := range files {
				if _, dup := got[f.Path]; dup {
					t.Errorf("%s laid out twice", f.Path)
				}
				got[f.Path] = f.Data
			}
			for p, w := range want {
				g, ok := got[p]
				switch {
				case !ok:
					t.Errorf("%s missing", p)
				case !bytes.Equal(g, w):
					t.Errorf("%s differs:\n got %s\nwant %s", p, g, w)
				}
			}
			for p := range got {
				if _, ok := want[p]; !ok {
					t.Errorf("%s is not in nova's drive", p)
				}
			}
		})
	}
}

func TestLayoutSecretsMarked(t *testing.T) {
	t.Parallel()
	a := tenantBuilds(t)[0]
	in, err := FromInstance(a.Instance, a.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	files, err := Layout(in, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pw, ud := a.AdminPassword.Reveal(), string(in.UserData.Bytes())
	for _, f := range files {
		holds := bytes.Contains(f.Data, []byte(pw)) || bytes.Contains(f.Data, []byte(ud))
		if holds != f.Secret {
			t.Errorf("%s: holds a secret %v, marked secret %v", f.Path, holds, f.Secret)
		}
		for _, s := range []string{f.String(), fmt.Sprintf("%v %+v %#v %s", f, f, f, f)} {
			if strings.Contains(s, pw) || strings.Contains(s, "hello-from-user-data") {
				t.Errorf("%s prints its content: %s", f.Path, s)
			}
		}
	}
	for _, s := range []string{fmt.Sprintf("%v %+v %#v", *in, *in, *in), fmt.Sprint(in.UserData)} {
		if strings.Contains(s, pw) || strings.Contains(s, "hello-from-user-data") {
			t.Errorf("the instance prints a secret: %s", s)
		}
	}
	if b, err := json.Marshal(in); err != nil || strings.Contains(string(b), pw) || strings.Contains(string(b), "aGVsbG8") || strings.Contains(string(b), "hello-from") {
		t.Errorf("the instance's JSON holds a secret: %s %v", b, err)
	}
	// Random seeds differ between versions, as nova draws one per file.
	seeds := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f.Path, "meta_data.json") {
			var md map[string]any
			if err := json.Unmarshal(f.Data, &md); err != nil {
				t.Fatal(err)
			}
			if s, ok := md["random_seed"].(string); ok {
				seeds[s] = true
			}
		}
	}
	if len(seeds) != 9 {
		t.Errorf("%d distinct random seeds, want 9 (one per version from 2013-04-04)", len(seeds))
	}
}

func TestNetworkFiles(t *testing.T) {
	t.Parallel()
	b := tenantBuilds(t)[2]
	edited := editedInstance(t, b.Instance)
	// The worker keeps the instance without its secrets; the network files need
	// nothing more.
	scrubbed, err := messages.InstanceFromObject(messages.WithoutInstanceSecrets(edited.Object))
	if err != nil {
		t.Fatal(err)
	}
	in, err := FromInstance(scrubbed, config.Secret{})
	if err != nil {
		t.Fatal(err)
	}
	nw, err := NetworkFromVIFs(edited.NetworkInfo)
	if err != nil {
		t.Fatal(err)
	}
	files, err := NetworkFiles(in, nw, Options{DHCPDomain: DefaultDHCPDomain})
	if err != nil {
		t.Fatal(err)
	}
	want := readTree(t, filepath.Join("testdata", "nova", "e2e-network-unicode"))
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
		if f.Secret {
			t.Errorf("%s marked secret", f.Path)
		}
		if !bytes.Equal(f.Data, want[f.Path]) {
			t.Errorf("%s differs from nova's:\n got %s\nwant %s", f.Path, f.Data, want[f.Path])
		}
	}
	slices.Sort(paths)
	wantPaths := []string{"ec2/2009-04-04/meta-data.json", "ec2/latest/meta-data.json"}
	for p := range want {
		if strings.HasSuffix(p, "network_data.json") {
			wantPaths = append(wantPaths, p)
		}
	}
	slices.Sort(wantPaths)
	if !slices.Equal(paths, wantPaths) {
		t.Errorf("network files %v, want %v", paths, wantPaths)
	}
}

func TestBuildAuthorizedKeys(t *testing.T) {
	t.Parallel()
	builds := tenantBuilds(t)
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICympHXpUTGkr/k6ikER7ej/1JJ+qTG20PJzBuKUQpmZ mi-test\n"
	for _, c := range []struct {
		name string
		edit func(in *Instance)
		want string
		err  bool
	}{
		{"the key pair", func(*Instance) {}, key, false},
		{"key_data when keypairs are not loaded", func(in *Instance) { in.Keypairs = nil }, key, false},
		{"no key name", func(in *Instance) { in.KeyName = "" }, "", false},
		{"x509 key pair", func(in *Instance) { in.Keypairs[0].Type = "x509" }, "", false},
		{"CRLF ending", func(in *Instance) { in.Keypairs[0].Data = strings.TrimSuffix(key, "\n") + "\r\n" }, key, false},
		{"two lines", func(in *Instance) { in.Keypairs[0].Data = key + "command=\"x\" " + key }, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			in, err := FromInstance(builds[0].Instance, config.Secret{})
			if err != nil {
				t.Fatal(err)
			}
			c.edit(in)
			tree, err := Build(in, nil, Options{})
			if (err != nil) != c.err {
				t.Fatalf("err = %v, want error %v", err, c.err)
			}
			if err == nil && string(tree.AuthorizedKeys) != c.want {
				t.Errorf("authorized_keys %q, want %q", tree.AuthorizedKeys, c.want)
			}
		})
	}
}

func TestDecodeUserData(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, text string
		want       string
		set        bool
		err        string
	}{
		{"none", "", "", false, ""},
		{"script", "IyEvYmluL3NoCmVjaG8gaGkK", "#!/bin/sh\necho hi\n", true, ""},
		{"wrapped lines", "IyEvYmluL3No\nCmVjaG8gaGkK\n", "#!/bin/sh\necho hi\n", true, ""},
		{"binary", "AP8A/w==", "\x00\xff\x00\xff", true, ""},
		{"not base64", "#!/bin/sh", "", false, "not valid base64"},
		{"bad padding", "AP8", "", false, "not valid base64"},
		{"too large", strings.Repeat("A", MaxUserDataBase64+1), "", false, "more than nova's 65535"},
		{"at the limit", strings.Repeat("A", 65532), strings.Repeat("\x00", 49149), true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			u, err := DecodeUserData(config.NewSecret(c.text))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				if len(c.text) > 3 && strings.Contains(err.Error(), c.text[:4]) {
					t.Errorf("the error quotes the user data: %v", err)
				}
				return
			}
			if err != nil || u.IsSet() != c.set || string(u.Bytes()) != c.want {
				t.Errorf("= %q set %v, %v; want %q set %v", u.Bytes(), u.IsSet(), err, c.want, c.set)
			}
		})
	}
}

func TestFromInstanceErrors(t *testing.T) {
	t.Parallel()
	in := tenantBuilds(t)[0].Instance
	if _, err := FromInstance(nil, config.Secret{}); err == nil {
		t.Error("nil instance accepted")
	}
	bad := *in
	bad.UserData = config.NewSecret("%%%%")
	if _, err := FromInstance(&bad, config.Secret{}); err == nil || !strings.Contains(err.Error(), in.UUID) {
		t.Errorf("bad user data: %v", err)
	}
	o := in.Object.Clone()
	o.Data["metadata"] = json.RawMessage(`["not", "a", "dict"]`)
	bad = *in
	bad.Object = o
	if _, err := FromInstance(&bad, config.Secret{}); err == nil || !strings.Contains(err.Error(), "metadata") {
		t.Errorf("metadata list: %v", err)
	}
}

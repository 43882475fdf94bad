package main

// The tenant's side of the demo: a key pair whose public key nova hands to the
// worker, and, once a server is ACTIVE, which node fetched which key in its config
// drive (what the simulated node's postscript fetched from the management node).

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"

	"xcatbm/xcat/sim"
)

// demoKey returns a new ed25519 public key in OpenSSH's authorized_keys form.
func demoKey(comment string) (string, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("tenant key: %w", err)
	}
	var blob []byte
	for _, part := range [][]byte{[]byte("ssh-ed25519"), pub} {
		blob = binary.BigEndian.AppendUint32(blob, uint32(len(part)))
		blob = append(blob, part...)
	}
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(blob) + " " + comment, nil
}

// fingerprint is ssh-keygen -l's SHA256 fingerprint of an authorized_keys line.
func fingerprint(line string) (string, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return "", fmt.Errorf("not a public key: %q", line)
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return "", fmt.Errorf("public key %.20s...: %w", f[1], err)
	}
	sum := sha256.Sum256(blob)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:]), nil
}

// deliveredKeys says which keys node fetched in its newest config drive, as one
// line: "node02 fetched its config drive (45 files): key SHA256:... (comment)".
func deliveredKeys(srv *sim.Server, node string) (string, error) {
	fetches := srv.ConfigDriveFetches(node)
	if len(fetches) == 0 {
		return "", fmt.Errorf("%s fetched no config drive", node)
	}
	f := fetches[len(fetches)-1]
	if f.Err != "" {
		return "", fmt.Errorf("%s's config drive fetch failed: %s", node, f.Err)
	}
	var keys []string
	for _, l := range strings.Split(string(f.Files["authorized_keys"]), "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		fp, err := fingerprint(l)
		if err != nil {
			return "", fmt.Errorf("%s's authorized_keys: %w", node, err)
		}
		if c := strings.Fields(l); len(c) > 2 {
			fp += " (" + strings.Join(c[2:], " ") + ")"
		}
		keys = append(keys, fp)
	}
	if len(keys) == 0 {
		return "", fmt.Errorf("%s's config drive holds no public key", node)
	}
	return fmt.Sprintf("%s fetched its config drive (%d files): key %s", node, len(f.Files), strings.Join(keys, ", ")), nil
}

// showKeys prints, for each node, the key its config drive delivered.
func (d *demo) showKeys(nodes []string) error {
	fmt.Fprintln(d.out, "== tenant data: the public key each node fetched from the management node")
	for _, n := range nodes {
		line, err := deliveredKeys(d.srv, n)
		if err != nil {
			return err
		}
		fmt.Fprintln(d.out, "  "+line)
	}
	return nil
}

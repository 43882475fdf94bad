package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"xcatbm/postscripts"
	"xcatbm/xcat"
)

// siteClient is an xcat.Client holding a site table, osimages and nodes in memory. It
// records every ChDefSite call. Methods setup does not use are left to the embedded
// nil interface and panic if called, which would show setup calling more than it should.
type siteClient struct {
	xcat.Client
	site    map[string]string
	images  map[string]xcat.Attrs
	nodes   map[string]xcat.Attrs
	chdefs  []xcat.Attrs
	failSet error
}

func (c *siteClient) TabDump(_ context.Context, table string, where ...string) ([]xcat.Attrs, error) {
	if table != "site" || len(where) != 0 {
		return nil, errors.New("unexpected tabdump")
	}
	var rows []xcat.Attrs
	for k, v := range c.site {
		rows = append(rows, xcat.Attrs{"key": k, "value": v})
	}
	return rows, nil
}

func (c *siteClient) ChDefSite(_ context.Context, attrs xcat.Attrs) error {
	c.chdefs = append(c.chdefs, attrs)
	if c.failSet != nil {
		return c.failSet
	}
	for k, v := range attrs {
		c.site[k] = v
	}
	return nil
}

func (c *siteClient) LsDefOSImages(context.Context, []string, ...string) (map[string]xcat.Attrs, error) {
	return c.images, nil
}

func (c *siteClient) LsDefNodes(_ context.Context, noderange string, where []string, _ ...string) (map[string]xcat.Attrs, error) {
	if noderange != "" || len(where) != 0 {
		return nil, errors.New("unexpected lsdef selection")
	}
	return c.nodes, nil
}

func newSiteClient() *siteClient {
	return &siteClient{
		site:   map[string]string{"master": "10.0.0.1", "sshbetweennodes": "ALLGROUPS"},
		images: map[string]xcat.Attrs{"rhels9.3-x86_64-install-compute": {}},
		nodes: map[string]xcat.Attrs{
			"n01":   {"mgt": "ipmi", "mac": "52:54:00:00:00:01"},
			"n02":   {"mgt": "ipmi", "mac": "52:54:00:00:00:02", "xcatmaster": "10.0.0.1"},
			"other": {"mgt": "ipmi", "mac": "52:54:00:00:00:03", "servicenode": "sn2"},
		},
	}
}

func item(t *testing.T, items []setupItem, what string) setupItem {
	t.Helper()
	for _, it := range items {
		if it.What == what {
			return it
		}
	}
	t.Fatalf("no %s item in %v", what, items)
	return setupItem{}
}

func TestPrepareSite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()

	// --check: nothing changes, and the report says what is missing.
	c := newSiteClient()
	items, err := prepareSite(ctx, c, setupOptions{dir: dir, check: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.chdefs) != 0 || c.site["sshbetweennodes"] != "ALLGROUPS" {
		t.Errorf("--check changed the site: %v", c.chdefs)
	}
	if it := item(t, items, "site.sshbetweennodes"); it.Ready || !strings.Contains(it.Detail, `"ALLGROUPS"`) {
		t.Errorf("sshbetweennodes: %+v", it)
	}
	if it := item(t, items, "postscripts"); it.Ready || !strings.Contains(it.Detail, "missing") {
		t.Errorf("postscripts: %+v", it)
	}
	if it := item(t, items, "osimages"); !it.Ready || !strings.Contains(it.Detail, "rhels9.3-x86_64-install-compute") {
		t.Errorf("osimages: %+v", it)
	}
	if it := item(t, items, "nodes"); !it.Ready || it.Detail != "2 owned: n01,n02" {
		t.Errorf("nodes: %+v", it)
	}
	var out bytes.Buffer
	if printSetup(&out, items) {
		t.Errorf("report says ready:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "NOT READY") || !strings.HasPrefix(out.String(), "ITEM") {
		t.Errorf("report:\n%s", out.String())
	}

	// Without --check: the site attribute is set and read back.
	if _, err := postscripts.Install(dir); err != nil {
		t.Fatal(err)
	}
	items, err = prepareSite(ctx, c, setupOptions{dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.chdefs) != 1 || c.chdefs[0]["sshbetweennodes"] != "NOGROUPS" || c.site["sshbetweennodes"] != "NOGROUPS" {
		t.Errorf("chdef calls %v, site %v", c.chdefs, c.site)
	}
	if it := item(t, items, "site.sshbetweennodes"); !it.Ready || !strings.Contains(it.Detail, "set to NOGROUPS") {
		t.Errorf("sshbetweennodes: %+v", it)
	}
	out.Reset()
	if !printSetup(&out, items) {
		t.Errorf("report not ready:\n%s", out.String())
	}

	// Once set, setup does not set it again.
	if _, err := prepareSite(ctx, c, setupOptions{dir: dir}); err != nil {
		t.Fatal(err)
	}
	if len(c.chdefs) != 1 {
		t.Errorf("chdef called again: %v", c.chdefs)
	}
}

func TestPrepareSiteNotReady(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newSiteClient()
	c.failSet = errors.New("Permission denied for request")
	c.images = nil
	c.nodes["n01"]["mac"] = ""
	items, err := prepareSite(ctx, c, setupOptions{dir: t.TempDir(), mgmtNames: []string{"sn2"}})
	if err != nil {
		t.Fatal(err)
	}
	if it := item(t, items, "site.sshbetweennodes"); it.Ready || !strings.Contains(it.Detail, "Permission denied") {
		t.Errorf("sshbetweennodes: %+v", it)
	}
	if it := item(t, items, "osimages"); it.Ready {
		t.Errorf("osimages: %+v", it)
	}
	if it := item(t, items, "nodes"); it.Ready || it.Detail != "3 owned: n01,n02,other; without mac: n01" {
		t.Errorf("nodes: %+v", it)
	}
}

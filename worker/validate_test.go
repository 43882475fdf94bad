package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"xcatbm/worker"
	"xcatbm/xcat/sim"
)

// TestBadInputNeverReachesXCAT: every tenant value that would reach xCAT is checked
// first; a bad one fails the spawn with a fault naming it (and nova's create.error),
// and the simulator sees no request for the node at all.
func TestBadInputNeverReachesXCAT(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name               string
		uuid, hostname, ip string
		cidr               string
		wantErr            string
	}{
		{name: "hostname with a comma adds a postscript", hostname: "h1,otherpkgs", wantErr: `hostname "h1,otherpkgs"`},
		{name: "hostname with a space", hostname: "h1 rm", wantErr: `hostname "h1 rm"`},
		{name: "hostname label too long", hostname: strings.Repeat("a", 64), wantErr: "longer than 63"},
		{name: "IP with a semicolon", ip: "1.2.3.4;x", cidr: "1.2.3.0/24", wantErr: `fixed IP "1.2.3.4;x"`},
		{name: "IP with a comma", ip: "1.2.3.4,5", cidr: "1.2.3.0/24", wantErr: `fixed IP "1.2.3.4,5"`},
		{name: "subnet that is no CIDR", ip: "1.2.3.4", cidr: "1.2.3.0/x", wantErr: `subnet "1.2.3.0/x"`},
		{name: "instance uuid as a path", uuid: "../../etc/passwd", wantErr: `instance uuid "../../etc/passwd" is not a UUID`},
		{name: "instance uuid as SQL", uuid: "x'; DROP TABLE jobs; --", wantErr: "is not a UUID"},
	}
	var nodes []string
	var specs []sim.NodeSpec
	for i := range cases {
		n := fmt.Sprintf("n%02d", 20+i)
		nodes = append(nodes, n)
		specs = append(specs, ipmiNode(n, fmt.Sprintf("10.0.0.%d", 20+i)))
	}
	e := newEnv(t, specs...)
	e.startWorker(testConfig())
	for i, tc := range cases {
		uuid := tc.uuid
		if uuid == "" {
			uuid = fmt.Sprintf("33333333-3333-4333-8333-%012d", i)
		}
		hostname := tc.hostname
		if hostname == "" {
			hostname = "tenant-host"
		}
		e.cast(castSpec{file: "cast-build_and_run_instance.json", node: nodes[i], uuid: uuid, hostname: hostname, image: image, ip: tc.ip, cidr: tc.cidr})
		j := e.waitJob(uuid, worker.KindSpawn, 30*time.Second)
		if j.State != string(worker.StateFailed) || !strings.Contains(j.Error, tc.wantErr) || !strings.Contains(j.Error, "invalid request") {
			t.Errorf("%s: job ended %s with %q; want failed with %q", tc.name, j.State, j.Error, tc.wantErr)
		}
		e.notes.waitFor(t, uuid, "instance.create.error")
	}
	for _, r := range e.sim.Requests() {
		for _, n := range r.Nodes {
			for i, bad := range nodes {
				if n == bad {
					t.Errorf("%s: %s %v reached xCAT for node %s", cases[i].name, r.Command, r.Args, n)
				}
			}
		}
	}
}

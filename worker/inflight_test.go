package worker_test

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
	"time"

	"xcatbm/worker"
	"xcatbm/xcat/sim"
)

// TestMaxInFlight: a worker works on at most Config.MaxInFlight jobs at once, the
// others waiting in PostgreSQL for room. Ten power-offs cast together run their
// steps together (gatherConfig) against a simulator that takes 150 ms per request.
// With room for 3, at no moment do the xCAT requests in progress name more than 3
// nodes between them (claims of 3 running side by side would), and every job still
// ends done; with the default, all ten are in progress at once.
func TestMaxInFlight(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name        string
		maxInFlight int
		want        int // nodes named by the requests in progress at the busiest moment
	}{
		{"room for 3", 3, 3},
		{"default", 0, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var nodes []sim.NodeSpec
			for i := 1; i <= 10; i++ {
				nodes = append(nodes, ipmiNode(fmt.Sprintf("n%02d", i), fmt.Sprintf("10.0.0.%d", 10+i)))
			}
			e := newEnvWith(t, func(c *sim.Config) { c.Latency = sim.Latency{Fixed: requestTime} }, nodes...)
			cfg := gatherConfig()
			cfg.MaxInFlight = c.maxInFlight
			e.startWorker(cfg)
			uuid := func(i int) string { return fmt.Sprintf("5353%04d-1111-4111-8111-111111111111", i) }
			for i := 1; i <= 10; i++ {
				e.cast(castSpec{file: "cast-stop_instance.json", node: fmt.Sprintf("n%02d", i), uuid: uuid(i)})
			}
			for i := 1; i <= 10; i++ {
				if j := e.waitJob(uuid(i), worker.KindPowerOff, 30*time.Second); j.State != string(worker.StateDone) {
					t.Fatalf("power-off of n%02d ended %s: %s", i, j.State, j.Error)
				}
			}
			recs := e.sim.Requests()
			if busiest := busiestNodes(recs); busiest != c.want {
				t.Errorf("at the busiest moment the xCAT requests in progress named %d nodes, want %d (%d requests)", busiest, c.want, len(recs))
			}
		})
	}
}

// requestTime is how long the simulator takes over each request in TestMaxInFlight.
const requestTime = 150 * time.Millisecond

// busiestNodes returns the most nodes the requests in progress named between them at
// any moment, each request in progress from when the simulator read it until
// requestTime later, when it answered.
func busiestNodes(recs []sim.Record) int {
	type event struct {
		at    time.Time
		nodes int // + when a request starts, - when it ends
	}
	var evs []event
	for _, r := range recs {
		evs = append(evs, event{r.Time, len(r.Nodes)}, event{r.Time.Add(requestTime), -len(r.Nodes)})
	}
	// Ends before starts at the same instant: a request answered is no longer in progress.
	slices.SortFunc(evs, func(a, b event) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.nodes, b.nodes)
	})
	busiest, now := 0, 0
	for _, ev := range evs {
		now += ev.nodes
		busiest = max(busiest, now)
	}
	return busiest
}

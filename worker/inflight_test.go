package worker_test

import (
	"fmt"
	"testing"
	"time"

	"xcatbm/worker"
	"xcatbm/xcat/sim"
)

// TestMaxInFlight: a worker works on at most Config.MaxInFlight jobs at once, the
// others waiting in PostgreSQL for room. Ten power-offs cast together run their
// steps together (gatherConfig): with room for 3, no xCAT request the simulator
// records names more than 3 nodes, and every job still ends done; with the default,
// all ten go in one request.
func TestMaxInFlight(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name        string
		maxInFlight int
		check       func(largest int) bool
		want        string
	}{
		{"room for 3", 3, func(largest int) bool { return largest <= 3 }, "at most 3"},
		{"default", 0, func(largest int) bool { return largest == 10 }, "10"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var nodes []sim.NodeSpec
			for i := 1; i <= 10; i++ {
				nodes = append(nodes, ipmiNode(fmt.Sprintf("n%02d", i), fmt.Sprintf("10.0.0.%d", 10+i)))
			}
			e := newEnv(t, nodes...)
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
			largest, requests := 0, 0
			for _, r := range e.sim.Requests() {
				if r.Command == "rpower" {
					requests++
					largest = max(largest, len(r.Nodes))
				}
			}
			if requests == 0 || !c.check(largest) {
				t.Errorf("%d rpower requests, the largest for %d nodes; want %s", requests, largest, c.want)
			}
		})
	}
}

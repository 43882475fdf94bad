package worker_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"xcatbm/worker"
	"xcatbm/xcat/sim"
)

// TestOrderAcrossWorkers: two workers serve one host (compute.<host> with a single
// active consumer). Each instance gets spawn, stop, start and reboot in that order,
// the casts of all instances interleaved; the worker taking the casts is stopped in
// the middle. Every instance's jobs are recorded and run in nova's order, and each
// ends done.
func TestOrderAcrossWorkers(t *testing.T) {
	t.Parallel()
	const n = 6
	var nodes []sim.NodeSpec
	for i := 0; i < n; i++ {
		nodes = append(nodes, ipmiNode(fmt.Sprintf("n8%d", i), fmt.Sprintf("10.0.0.8%d", i)))
	}
	e := newEnv(t, nodes...)
	stopFirst := e.startWorker(testConfig())
	e.startWorker(testConfig())
	uuid := func(i int) string { return fmt.Sprintf("88888888-8888-4888-8888-00000000008%d", i) }
	seq := []struct {
		file string
		kind worker.Kind
	}{
		{"cast-build_and_run_instance.json", worker.KindSpawn},
		{"cast-stop_instance.json", worker.KindPowerOff},
		{"cast-start_instance.json", worker.KindPowerOn},
		{"cast-reboot_instance.json", worker.KindReboot},
	}
	for k, s := range seq {
		for i := 0; i < n; i++ {
			e.cast(castSpec{file: s.file, node: fmt.Sprintf("n8%d", i), uuid: uuid(i), image: image})
		}
		if k == 1 {
			stopFirst() // the active consumer goes; the other takes the queue over
		}
	}
	for i := 0; i < n; i++ {
		e.waitJob(uuid(i), worker.KindReboot, 60*time.Second)
		jobs, err := e.st.JobsByInstance(context.Background(), uuid(i))
		if err != nil {
			t.Fatal(err)
		}
		var kinds []worker.Kind
		var ends []time.Time
		for _, j := range jobs {
			kinds = append(kinds, worker.Kind(j.Kind))
			if j.State != "done" {
				t.Errorf("instance %d: %s ended %s (%s)", i, j.Kind, j.State, j.Error)
			}
			if j.FinishedAt != nil {
				ends = append(ends, *j.FinishedAt)
			}
		}
		want := []worker.Kind{worker.KindSpawn, worker.KindPowerOff, worker.KindPowerOn, worker.KindReboot}
		if !slices.Equal(kinds, want) {
			t.Errorf("instance %d: jobs recorded as %v, want %v", i, kinds, want)
		}
		if !slices.IsSortedFunc(ends, func(a, b time.Time) int { return a.Compare(b) }) {
			t.Errorf("instance %d: jobs ended out of order: %v", i, ends)
		}
	}
}

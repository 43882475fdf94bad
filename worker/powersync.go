package worker

import (
	"context"
	"time"

	"xcatbm/internal/logging"
	"xcatbm/internal/loop"
	"xcatbm/worker/store"
	"xcatbm/xcat"
)

// powerSync sweeps the power state of this host's nodes every PowerSyncInterval with
// one rpower stat over all of them, like nova's power-state sync. A changed state is
// recorded with an xcatbm.node.power_state notification; a node whose BMC does not
// answer is asked again within the sweep and reported only after PowerSyncMisses
// sweeps in a row without an answer.
func (w *Worker) powerSync(ctx context.Context) error {
	l := &loop.Loop{Name: "power sync", Interval: w.cfg.PowerSyncInterval, Backoff: w.cfg.Backoff, Log: w.log,
		Pass: func(ctx context.Context) (bool, error) { return false, w.SweepPower(ctx) }}
	return l.Run(ctx)
}

// PowerSweep is what one power sweep did.
type PowerSweep struct {
	Nodes       int
	Changed     map[string]string
	Unreachable []string
	Took        time.Duration
}

// SweepPower runs one power sweep now.
func (w *Worker) SweepPower(ctx context.Context) error {
	_, err := w.sweepPower(ctx)
	return err
}

func (w *Worker) sweepPower(ctx context.Context) (PowerSweep, error) {
	began := w.now()
	nodes, err := w.store.NodesOf(ctx, w.cfg.ComputeHost)
	if err != nil || len(nodes) == 0 {
		return PowerSweep{}, err
	}
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	stat := func(ctx context.Context, nr string) (xcat.Results, error) { return w.xc.Power(ctx, nr, xcat.PowerStat) }
	res := w.call(ctx, names, stat)
	var again []string
	for _, n := range names {
		if res[n].Err != nil {
			again = append(again, n)
		}
	}
	if len(again) > 0 { // one more try within the sweep for BMCs that did not answer
		for n, r := range w.call(ctx, again, stat) {
			res[n] = r
		}
	}
	obs := make([]store.PowerObservation, 0, len(names))
	for _, n := range names {
		r := res[n]
		answered := r.Err == nil && (r.Value == powerOn || r.Value == powerOf)
		obs = append(obs, store.PowerObservation{Node: n, State: r.Value, Answered: answered})
	}
	changed, unreachable, err := w.store.RecordPower(ctx, obs, w.cfg.PowerSyncMisses, w.notify.powerChanged)
	if err != nil {
		return PowerSweep{}, err
	}
	for n, st := range changed {
		w.metrics.powerChanges.Inc()
		w.log.Info().Str(logging.FieldNode, n).Str("power", st).Msg("power state changed outside xcatbm")
	}
	for _, n := range unreachable {
		w.log.Warn().Str(logging.FieldNode, n).Int("sweeps", w.cfg.PowerSyncMisses).Msg("BMC not answering rpower stat")
	}
	return PowerSweep{Nodes: len(names), Changed: changed, Unreachable: unreachable, Took: w.now().Sub(began)}, nil
}

package worker

// Cleaning between tenants: when a destroy is done and Config.CleanMode erases
// something, the destroy leaves a clean job for its node and marks the node in
// maintenance ("cleaning") in the same transaction, so its placement inventory stays
// reserved (worker/nova) and nova cannot place the next server on it. The clean job
// boots xCAT's genesis with xcatbm's runimage (postscripts/genesis), which erases the
// disks and powers the node off; then the node's boot state is set offline and the
// node leaves maintenance. A failed or timed-out cleaning leaves the node in
// maintenance with the reason; `xcatbm cleaning` lists, retries or clears those.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"xcatbm/postscripts/genesis"
	"xcatbm/worker/configdrive"
	"xcatbm/worker/store"
	"xcatbm/xcat"
)

// Cleaning modes of Config.CleanMode.
const (
	CleanOff      = "off"
	CleanMetadata = genesis.CleanMetadata
	CleanFull     = genesis.CleanFull
)

// ErrCleaningFailed is the error of a cleaning that did not erase the disks.
var ErrCleaningFailed = errors.New("cleaning failed")

// cleaning reports whether destroyed nodes are cleaned.
func (w *Worker) cleaning() bool {
	return w.cfg.CleanMode == CleanMetadata || w.cfg.CleanMode == CleanFull
}

// writeCleanImage puts the cleaning runimage where genesis fetches it:
// <installdir>/xcatbm/clean-<mode>.tgz, readable by path as the tenant trees are.
func (w *Worker) writeCleanImage() error {
	img, err := genesis.CleanImage(w.cfg.CleanMode)
	if err != nil {
		return err
	}
	dir := filepath.Join(w.cfg.InstallDir, configdrive.StoreDir)
	path := filepath.Join(dir, genesis.CleanImageName(w.cfg.CleanMode))
	if old, err := os.ReadFile(path); err == nil && string(old) == string(img) {
		return nil
	}
	tmp, err := os.CreateTemp(dir, ".clean-*")
	if err != nil {
		return fmt.Errorf("cleaning image: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(img); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("cleaning image: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("cleaning image: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cleaning image: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cleaning image: %w", err)
	}
	return nil
}

// NewCleanJob is the job that cleans node's disks for computeHost's worker, as a
// destroy leaves it or an admin asks for it again (xcatbm cleaning --retry).
func NewCleanJob(computeHost, node string, now time.Time, deadline time.Duration) store.NewJob {
	if deadline <= 0 {
		deadline = spec(KindClean).deadline
	}
	return store.NewJob{Kind: string(KindClean), ComputeHost: computeHost, Node: node, State: string(spec(KindClean).flow[0]),
		Request: []byte(fmt.Sprintf(`{"method":"","node":%q}`, node)), Deadline: now.Add(deadline)}
}

// siteInfo is what a runimage URL needs of the site table, read once.
type siteInfo struct {
	mu                  sync.Mutex
	master, installPath string
}

// cleanImageURL is the URL genesis fetches the cleaning runimage from: the
// management node (site.master) serving its install directory (site.installdir).
func (w *Worker) cleanImageURL(ctx context.Context) (string, error) {
	w.site.mu.Lock()
	defer w.site.mu.Unlock()
	if w.site.master == "" {
		rx, ok := w.xc.(registrationXCAT)
		if !ok {
			return "", fmt.Errorf("the xCAT client cannot read the site table")
		}
		cctx, cancel := context.WithTimeout(ctx, w.cfg.XCATTimeout)
		rows, err := rx.TabDump(cctx, "site")
		cancel()
		if err != nil {
			return "", fmt.Errorf("tabdump site: %w", err)
		}
		installDir := "/install"
		for _, r := range rows {
			switch r["key"] {
			case "master":
				w.site.master = r["value"]
			case "installdir":
				if r["value"] != "" {
					installDir = r["value"]
				}
			}
		}
		if w.site.master == "" {
			return "", fmt.Errorf("%w: site.master is not set: genesis cannot fetch the cleaning image", ErrRefused)
		}
		w.site.installPath = "/" + strings.Trim(installDir, "/")
	}
	return "http://" + w.site.master + w.site.installPath + "/" + configdrive.StoreDir + "/" + genesis.CleanImageName(w.cfg.CleanMode), nil
}

// stepCleanPrepare sets the nodes to boot genesis with the cleaning runimage.
func (w *Worker) stepCleanPrepare(ctx context.Context, runs []*run) {
	url, err := w.cleanImageURL(ctx)
	if err != nil {
		for _, r := range runs {
			if errors.Is(err, ErrRefused) {
				r.out = failed(err)
			} else {
				r.out = transient(err)
			}
		}
		return
	}
	res := w.call(ctx, nodesOf(runs), func(ctx context.Context, nr string) (xcat.Results, error) {
		return w.xc.NodeSet(ctx, nr, "runimage="+url)
	})
	applyResults(runs, res, "nodeset runimage", "runimage="+url)
}

// stepWaitCleaned waits until the cleaning image powered the node off (done) or xCAT
// reports the node failed.
func (w *Worker) stepWaitCleaned(ctx context.Context, runs []*run) {
	status, err := w.status(ctx, nodesOf(runs))
	power := w.powerStat(ctx, runs)
	now := w.now()
	for _, r := range runs {
		s, ok := status[r.node()]
		if !ok {
			r.out = transient(fmt.Errorf("nodels %s nodelist.status: %w", r.node(), orNoAnswer(err)))
			continue
		}
		if good, o := verdict("rpower stat", power[r.node()]); !good {
			r.out = o
			continue
		}
		switch {
		case s[attrStatus] == statusFailed:
			r.out = failed(fmt.Errorf("%w: xCAT reports node %s failed while erasing its disks", ErrCleaningFailed, r.node()))
		case power[r.node()].Value == powerOf:
			r.out = advanced("disks erased; node powered off")
		case now.After(r.job.Deadline):
			r.out = failed(fmt.Errorf("%w: node %s still %q (power %s) at the deadline", ErrDeadline, r.node(), s[attrStatus], power[r.node()].Value))
		default:
			r.out = waiting(w.cfg.PollInterval)
		}
	}
}

// stepCleanFinish leaves the node off and set to boot nothing until its next tenant.
func (w *Worker) stepCleanFinish(ctx context.Context, runs []*run) {
	res := w.call(ctx, nodesOf(runs), func(ctx context.Context, nr string) (xcat.Results, error) { return w.xc.NodeSet(ctx, nr, "offline") })
	applyResults(runs, res, "nodeset offline", "nodeset offline")
}

package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"xcatbm/worker"
	"xcatbm/worker/configdrive"
	"xcatbm/worker/store"
)

// TestSweepDrives: the sweep removes a tenant data tree no unfinished job names once
// it is older than DriveSweepAge (10 minutes is past the default age): one a crash
// left between writing it and recording its job, and one whose finished job a crash
// kept from removing it. It keeps a tree an unfinished job names, however old, and a
// young one.
func TestSweepDrives(t *testing.T) {
	e := newEnv(t)
	installDir := t.TempDir()
	cfg := testConfig()
	cfg.InstallDir = installDir
	w, err := worker.New(cfg, worker.Deps{Store: e.st, XCAT: e.xc, AMQPURLs: []string{e.vh.URL}, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	drives, err := configdrive.OpenStore(installDir, configdrive.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	write := func(age time.Duration) configdrive.Location {
		t.Helper()
		loc, err := drives.Write(&configdrive.Tree{Drive: []configdrive.File{{Path: "openstack/latest/meta_data.json", Data: []byte("{}")}}})
		if err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-age)
		if err := os.Chtimes(filepath.Join(installDir, loc.Path()), at, at); err != nil {
			t.Fatal(err)
		}
		return loc
	}
	orphan, named, ended, young := write(10*time.Minute), write(10*time.Minute), write(10*time.Minute), write(time.Minute)
	ctx := context.Background()
	var jobs []store.NewJob
	for i, loc := range []configdrive.Location{named, ended} {
		req, err := json.Marshal(map[string]string{"config_drive": loc.Path()})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, store.NewJob{Kind: string(worker.KindSpawn), ComputeHost: host, Node: fmt.Sprintf("n%02d", i+1),
			InstanceUUID: fmt.Sprintf("5eeb5eeb-0000-4000-8000-%012d", i+1), State: "resolve", Request: req, Deadline: time.Now().Add(time.Hour)})
	}
	ins, err := e.st.InsertJobs(ctx, jobs)
	if err != nil {
		t.Fatal(err)
	}
	// The second job ended without removing its tree (a crash between its end and
	// the removal).
	if _, err := e.st.DB().ExecContext(ctx, `UPDATE jobs SET state = 'done', finished_at = now() WHERE id = $1`, ins[1].ID); err != nil {
		t.Fatal(err)
	}
	n, err := w.SweepDrives(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		loc  configdrive.Location
		kept bool
	}{{orphan, false}, {named, true}, {ended, false}, {young, true}} {
		_, err := os.Stat(filepath.Join(installDir, c.loc.Path()))
		if kept := err == nil; kept != c.kept {
			t.Errorf("tree %s: kept %v, want %v", c.loc, kept, c.kept)
		}
	}
	if n != 2 {
		t.Errorf("swept %d trees, want 2", n)
	}
}

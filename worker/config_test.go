package worker_test

import (
	"strings"
	"testing"

	"xcatbm/worker"
)

// TestConfigChoices: every word the command line offers for a Config field is one
// the worker takes, and a word outside the list, or a negative MaxInFlight, is
// refused by worker.New with the field named, before anything is connected. (With
// no store given, a Config that passes its checks fails on the missing store.)
func TestConfigChoices(t *testing.T) {
	const noDeps = "needs a store"
	type tc struct {
		name string
		cfg  worker.Config
		want string
	}
	var cases []tc
	for _, f := range worker.NotificationFormats() {
		cases = append(cases, tc{"notifications " + f, worker.Config{Notifications: f}, noDeps})
	}
	for _, f := range worker.JobEventChoices() {
		cases = append(cases, tc{"job events " + f, worker.Config{JobEvents: f}, noDeps})
	}
	for _, f := range worker.CleanModes() {
		cases = append(cases, tc{"clean mode " + f, worker.Config{CleanMode: f}, noDeps})
	}
	cases = append(cases,
		tc{"defaults", worker.Config{}, noDeps},
		tc{"bad notifications", worker.Config{Notifications: "xml"}, `notification format "xml"`},
		tc{"bad job events", worker.Config{JobEvents: "some"}, `job events "some"`},
		tc{"bad clean mode", worker.Config{CleanMode: "shred"}, `cleaning mode "shred"`},
		tc{"negative max in flight", worker.Config{MaxInFlight: -1}, "max in flight -1"},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.ComputeHost = "h"
			_, err := worker.New(c.cfg, worker.Deps{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("worker.New: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

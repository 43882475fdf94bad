package worker_test

import (
	"runtime/debug"
	"testing"

	"xcatbm/worker"
)

// TestSetGCDefaults checks that the worker's collector defaults apply where the
// environment sets nothing, and that GOGC and GOMEMLIMIT in the environment win.
func TestSetGCDefaults(t *testing.T) {
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	})
	const presetPercent, presetLimit = 123, 77 << 20
	for _, c := range []struct {
		name                   string
		env                    map[string]string
		wantPercent            int
		wantLimit              int64
		wantGOGC, wantMemLimit string
	}{
		{"nothing set", nil, worker.DefaultGCPercent, worker.DefaultMemoryLimit, "300 (default)", "256MiB (default)"},
		{"empty values", map[string]string{"GOGC": "", "GOMEMLIMIT": ""}, worker.DefaultGCPercent, worker.DefaultMemoryLimit, "300 (default)", "256MiB (default)"},
		{"GOGC set", map[string]string{"GOGC": "50"}, presetPercent, worker.DefaultMemoryLimit, "GOGC from the environment", "256MiB (default)"},
		{"both set", map[string]string{"GOGC": "off", "GOMEMLIMIT": "1GiB"}, presetPercent, presetLimit, "GOGC from the environment", "GOMEMLIMIT from the environment"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// What the runtime took from the environment at start stands in as presets.
			debug.SetGCPercent(presetPercent)
			debug.SetMemoryLimit(presetLimit)
			gogc, memLimit := worker.SetGCDefaults(func(k string) (string, bool) { v, ok := c.env[k]; return v, ok })
			if gogc != c.wantGOGC || memLimit != c.wantMemLimit {
				t.Errorf("reported %q, %q; want %q, %q", gogc, memLimit, c.wantGOGC, c.wantMemLimit)
			}
			if got := debug.SetGCPercent(presetPercent); got != c.wantPercent {
				t.Errorf("GC percent %d, want %d", got, c.wantPercent)
			}
			if got := debug.SetMemoryLimit(-1); got != c.wantLimit {
				t.Errorf("memory limit %d, want %d", got, c.wantLimit)
			}
		})
	}
}

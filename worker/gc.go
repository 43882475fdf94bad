package worker

import (
	"fmt"
	"runtime/debug"
)

// The Go garbage collector's settings of a worker process. A worker allocates for
// every message it decodes and every notification it builds. Collecting when the
// heap has grown by 300% instead of Go's default 100% took 12-14% off the worker
// process's CPU per job in the bench's power storm and control-plane rows
// (BENCHMARKS.md), for a higher peak (row 4a: 55 MB to about 90 MB). The soft memory
// limit keeps the heap of a large host from growing fourfold: near the limit the
// collector runs as often as it must.
const (
	// DefaultGCPercent is a worker's GOGC unless its environment sets GOGC.
	DefaultGCPercent = 300
	// DefaultMemoryLimit is a worker's soft memory limit (bytes) unless its
	// environment sets GOMEMLIMIT.
	DefaultMemoryLimit = 256 << 20
)

// SetGCDefaults sets the running process's collector to DefaultGCPercent and
// DefaultMemoryLimit, each unless lookup finds GOGC or GOMEMLIMIT set (the Go
// runtime has read those already), and returns the settings in effect, each with
// where it came from, for the startup log.
func SetGCDefaults(lookup func(string) (string, bool)) (gogc, memoryLimit string) {
	gogc, memoryLimit = "GOGC from the environment", "GOMEMLIMIT from the environment"
	if v, set := lookup("GOGC"); !set || v == "" {
		debug.SetGCPercent(DefaultGCPercent)
		gogc = fmt.Sprintf("%d (default)", DefaultGCPercent)
	}
	if v, set := lookup("GOMEMLIMIT"); !set || v == "" {
		debug.SetMemoryLimit(DefaultMemoryLimit)
		memoryLimit = fmt.Sprintf("%dMiB (default)", DefaultMemoryLimit>>20)
	}
	return gogc, memoryLimit
}

package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"xcatbm/messages/novacast"
	"xcatbm/worker/store"
)

// capturedCast returns the oslo.message of a captured cast (novacast's vectors): the
// JSON a stored request is about the size of.
func capturedCast(tb testing.TB, name string) []byte {
	tb.Helper()
	body, err := novacast.Vector(name)
	if err != nil {
		tb.Fatal(err)
	}
	var env struct {
		Message string `json:"oslo.message"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		tb.Fatal(err)
	}
	return []byte(env.Message)
}

// BenchmarkInsertJobs inserts 256 power_off jobs per transaction (the consumer's
// batch), each with a captured stop_instance as its request; the time is per job.
func BenchmarkInsertJobs(b *testing.B) {
	req := capturedCast(b, "cast-stop_instance.json")
	_, st := newStore(b)
	ctx := context.Background()
	jobs := make([]store.NewJob, 256)
	n := 0
	b.ResetTimer()
	for b.Loop() {
		for i := range jobs {
			n++
			jobs[i] = store.NewJob{Kind: "power_off", ComputeHost: "mn1", Node: fmt.Sprintf("n%d", i), InstanceUUID: fmt.Sprintf("uuid-%d", n),
				State: "resolve", Request: req, MessageID: fmt.Sprintf("msg-%d", n), Deadline: time.Now().Add(10 * time.Minute)}
		}
		if _, err := st.InsertJobs(ctx, jobs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(jobs)), "µs/job")
}

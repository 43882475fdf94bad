package messages

import (
	"testing"
	"time"
)

// The worker's JSON hot path on the captured vectors: decoding a spawn cast and
// building the notifications of one transition.
//
//	go test -run '^$' -bench 'Decode|Notif' -benchmem ./messages/

func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		vector string
		args   func(*Request) error
	}{
		{"cast-build_and_run_instance.json", func(r *Request) error { _, err := r.BuildAndRunInstance(); return err }},
		{"cast-stop_instance.json", func(r *Request) error { _, err := r.StopInstance(); return err }},
	} {
		b.Run(c.vector, func(b *testing.B) {
			body := []byte(loadVector(b, c.vector).Body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				req, err := DecodeRequest(body)
				if err != nil {
					b.Fatal(err)
				}
				if err := c.args(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInstanceNotifications builds and encodes the notifications of one event
// for the captured spawn's instance: "both" the versioned and the legacy one of
// create.end (a worker's default), "versioned" power_off.end's alone (what a worker
// with --notification-format versioned builds at each end of a job).
func BenchmarkInstanceNotifications(b *testing.B) {
	req, err := DecodeRequest([]byte(loadVector(b, "cast-build_and_run_instance.json").Body))
	if err != nil {
		b.Fatal(err)
	}
	a, err := req.BuildAndRunInstance()
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 2, 37, 8, 711531000, time.UTC)
	for _, c := range []struct {
		name   string
		in     NotifyInput
		legacy bool
	}{
		{"both", NotifyInput{Action: "create", Phase: "end", VMState: "active", PowerState: Running}, true},
		{"versioned", NotifyInput{Action: "power_off", Phase: "end", VMState: "stopped", PowerState: Shutdown}, false},
	} {
		in := c.in
		in.Instance, in.Host, in.Time, in.Context = a.Instance, "xcat-mn1", at, req.Context.ForNotification()
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				v, err := NewVersionedInstanceNotification(in)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := v.Encode(); err != nil {
					b.Fatal(err)
				}
				if !c.legacy {
					continue
				}
				l, err := NewLegacyInstanceNotification(in)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := l.Encode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

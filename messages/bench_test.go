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

func BenchmarkInstanceNotifications(b *testing.B) {
	req, err := DecodeRequest([]byte(loadVector(b, "cast-build_and_run_instance.json").Body))
	if err != nil {
		b.Fatal(err)
	}
	a, err := req.BuildAndRunInstance()
	if err != nil {
		b.Fatal(err)
	}
	in := NotifyInput{Instance: a.Instance, Host: "xcat-mn1", Action: "create", Phase: "end",
		VMState: "active", PowerState: Running, Time: time.Date(2026, 11, 25, 2, 37, 8, 711531000, time.UTC), Context: req.Context.ForNotification()}
	b.ReportAllocs()
	for b.Loop() {
		v, l, err := NewInstanceNotifications(in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := v.Encode(); err != nil {
			b.Fatal(err)
		}
		if _, err := l.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVersionedInstanceNotification is the versioned notification alone, what a
// worker with --notification-format versioned builds at each end of a job.
func BenchmarkVersionedInstanceNotification(b *testing.B) {
	req, err := DecodeRequest([]byte(loadVector(b, "cast-build_and_run_instance.json").Body))
	if err != nil {
		b.Fatal(err)
	}
	a, err := req.BuildAndRunInstance()
	if err != nil {
		b.Fatal(err)
	}
	in := NotifyInput{Instance: a.Instance, Host: "xcat-mn1", Action: "power_off", Phase: "end",
		VMState: "stopped", PowerState: Shutdown, Time: time.Date(2026, 11, 25, 2, 37, 8, 711531000, time.UTC), Context: req.Context.ForNotification()}
	b.ReportAllocs()
	for b.Loop() {
		v, err := NewVersionedInstanceNotification(in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := v.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

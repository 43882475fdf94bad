package worker_test

import (
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/worker"
)

// TestNoUnreadNotificationQueue: after a job, nova's notification topics have their
// queues, as oslo's notifier declares them, but xcatbm's own topic has none: its
// notifications reach only the queues that followers bound (here the test's).
func TestNoUnreadNotificationQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n01", "10.0.0.11"))
	cfg := testConfig()
	cfg.JobEvents = worker.JobEventsAll // a spawn's xcatbm.job.end too
	e.startWorker(cfg)
	const uuid = "51515151-1111-4111-8111-111111111111"
	e.cast(castSpec{file: "cast-build_and_run_instance.json", node: "n01", uuid: uuid, hostname: "tenant-a", image: image})
	if j := e.waitJob(uuid, worker.KindSpawn, 30*time.Second); j.State != string(worker.StateDone) {
		t.Fatalf("spawn ended %s: %s", j.State, j.Error)
	}
	e.notes.waitFor(t, uuid, "instance.create.end")
	e.notes.waitFor(t, "n01", "xcatbm.job.end") // published, and routed to the test's queue

	exists := func(name string) bool {
		ch, err := e.conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		_, err = ch.QueueDeclarePassive(name, false, false, false, false, nil)
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return false
		}
		if err != nil {
			t.Fatalf("passive declare %s: %v", name, err)
		}
		return true
	}
	for name, want := range map[string]bool{
		"xcatbm_notifications.info":    false,
		"versioned_notifications.info": true,
		"notifications.info":           true,
	} {
		if got := exists(name); got != want {
			t.Errorf("queue %s exists: %v, want %v", name, got, want)
		}
	}
}

// TestJobEvents: xcatbm.job.end of a job from nova's casts is written to the outbox
// only when Config.JobEvents is all; by default only registrations (which the
// publisher package follows) publish it.
func TestJobEvents(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		events string
		want   int // xcatbm.job.end rows of the power-off job
	}{
		{"", 0}, // the default: registrations
		{worker.JobEventsRegistrations, 0},
		{worker.JobEventsAll, 1},
	} {
		t.Run("events="+c.events, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, ipmiNode("n01", "10.0.0.11"))
			cfg := testConfig()
			cfg.JobEvents = c.events
			e.startWorker(cfg)
			const uuid = "52525252-1111-4111-8111-111111111111"
			e.cast(castSpec{file: "cast-stop_instance.json", node: "n01", uuid: uuid})
			j := e.waitJob(uuid, worker.KindPowerOff, 30*time.Second)
			if j.State != string(worker.StateDone) {
				t.Fatalf("power-off ended %s: %s", j.State, j.Error)
			}
			e.notes.waitFor(t, uuid, "instance.power_off.end")
			var jobEnds, instanceEnds int
			if err := e.st.DB().QueryRow(`SELECT count(*) FILTER (WHERE routing_key LIKE 'xcatbm_notifications.%' AND convert_from(body, 'UTF8') LIKE '%xcatbm.job.end%'),
					count(*) FILTER (WHERE convert_from(body, 'UTF8') LIKE '%instance.power_off.end%')
				FROM outbox WHERE job_id = $1`, j.ID).Scan(&jobEnds, &instanceEnds); err != nil {
				t.Fatal(err)
			}
			if jobEnds != c.want || instanceEnds == 0 {
				t.Errorf("outbox of the power-off job: %d xcatbm.job.end (want %d), %d instance.power_off.end (want at least 1)", jobEnds, c.want, instanceEnds)
			}
		})
	}
}

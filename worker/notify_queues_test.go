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
	e.startWorker(testConfig())
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

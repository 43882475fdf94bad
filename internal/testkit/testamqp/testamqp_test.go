package testamqp_test

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/internal/testkit/testamqp"
)

func TestVhostsAreIsolated(t *testing.T) {
	t.Parallel()
	a, b := testamqp.New(t), testamqp.New(t)
	if a.Name == b.Name {
		t.Fatalf("two vhosts share the name %s", a.Name)
	}
	declare := func(url string, durable bool) error {
		conn, err := amqp.Dial(url)
		if err != nil {
			return err
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		_, err = ch.QueueDeclare("compute", durable, false, false, false, nil)
		return err
	}
	// The same queue name with different flags would be refused (406) in one vhost.
	if err := declare(a.URL, true); err != nil {
		t.Fatalf("declare in %s: %v", a.Name, err)
	}
	if err := declare(b.URL, false); err != nil {
		t.Fatalf("declare in %s after %s: %v", b.Name, a.Name, err)
	}
	if err := declare(a.URL, false); err == nil {
		t.Fatal("redeclaring with other flags in the same vhost succeeded; isolation test is void")
	}
}

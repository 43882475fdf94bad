package rabbitcluster_test

import (
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/internal/testkit/rabbitcluster"
)

// TestThreeNodesOneCluster starts three nodes, checks each sees the other two as
// running members, and that a quorum queue declared on one has a leader on one of
// them and survives the stop of that leader.
func TestThreeNodesOneCluster(t *testing.T) {
	c := rabbitcluster.Start(t, 3)
	out, err := c.Nodes[2].Ctl("cluster_status", "--formatter", "json")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, n := range c.Nodes {
		if !strings.Contains(out, n.Name) {
			t.Errorf("cluster status of %s does not name %s: %s", c.Nodes[2].Name, n.Name, out)
		}
	}
	conn, err := amqp.Dial(c.Nodes[1].URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("q1", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	leader, err := c.Nodes[0].QueueLeader("q1")
	if err != nil {
		t.Fatal(err)
	}
	ln := c.Node(leader)
	if ln == nil {
		t.Fatalf("leader %q is none of the cluster's nodes", leader)
	}
	if err := ln.Stop(); err != nil {
		t.Fatal(err)
	}
	var other *rabbitcluster.Node
	for _, n := range c.Nodes {
		if n != ln {
			other = n
		}
	}
	next, err := other.QueueLeader("q1")
	if err != nil {
		t.Fatal(err)
	}
	if next == leader || c.Node(next) == nil {
		t.Errorf("after stopping %s the leader is %q", leader, next)
	}
	if err := ln.Start(); err != nil {
		t.Fatal(err)
	}
}

package store_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"xcatbm/worker/store"
)

// TestRecordPower: one sweep's observations: a changed node is updated and notified,
// an unchanged one is left alone, one with misses has them cleared without a
// notification, a node with an open job and an unknown node are skipped, an
// unanswered node counts a miss and is reported unreachable at the limit.
func TestRecordPower(t *testing.T) {
	t.Parallel()
	db, st := newStore(t)
	ctx := context.Background()
	var nodes []*store.Node
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		nodes = append(nodes, &store.Node{Name: name, ComputeHost: "h", MgmtNode: "mn1", Mgt: "ipmi", MAC: "aa:bb:cc:dd:ee:01",
			CPUs: 1, MemoryMB: 1024, DiskGB: 1, ResourceClass: "baremetal"})
	}
	if _, err := st.UpsertNodes(ctx, nodes, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE nodes SET power_state = 'on'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE nodes SET power_misses = 2 WHERE name IN ('c', 'e')`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.InsertJobs(ctx, []store.NewJob{{Kind: "power_off", ComputeHost: "h", Node: "d", InstanceUUID: "i-d", State: "power_off",
		Request: []byte(`{}`), Deadline: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	var notified []string
	notify := func(n *store.Node, old string) []store.OutboxMessage {
		notified = append(notified, n.Name+":"+old+"->"+n.PowerState)
		return []store.OutboxMessage{{Exchange: "nova", RoutingKey: "k", MessageID: "m-" + n.Name, Body: []byte(`{}`)}}
	}
	obs := []store.PowerObservation{
		{Node: "a", State: "off", Answered: true},
		{Node: "b", State: "on", Answered: true},
		{Node: "c", State: "on", Answered: true},
		{Node: "d", State: "off", Answered: true},
		{Node: "e", Answered: false},
		{Node: "zz", State: "off", Answered: true},
	}
	changed, unreachable, err := st.RecordPower(ctx, obs, 3, notify)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"a": "off"}; !maps.Equal(changed, want) {
		t.Errorf("changed %v, want %v", changed, want)
	}
	if !slices.Equal(unreachable, []string{"e"}) {
		t.Errorf("unreachable %v, want [e]", unreachable)
	}
	if !slices.Equal(notified, []string{"a:on->off"}) {
		t.Errorf("notified %v", notified)
	}
	rows, err := db.Query(`SELECT name, power_state, power_misses FROM nodes ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var name, state string
		var misses int
		if err := rows.Scan(&name, &state, &misses); err != nil {
			t.Fatal(err)
		}
		got = append(got, name+"="+state+"/"+string(rune('0'+misses)))
	}
	if want := []string{"a=off/0", "b=on/0", "c=on/0", "d=on/0", "e=on/3"}; !slices.Equal(got, want) {
		t.Errorf("nodes %v, want %v", got, want)
	}
	var outbox int
	if err := db.QueryRow(`SELECT count(*) FROM outbox WHERE message_id = 'm-a'`).Scan(&outbox); err != nil || outbox != 1 {
		t.Errorf("outbox rows for a: %d (%v), want 1", outbox, err)
	}
}

package broker

import (
	"reflect"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ackRecord records the acks a channel would receive.
type ackRecord struct{ acks []string }

func (r *ackRecord) Ack(tag uint64, multiple bool) error {
	kind := "one"
	if multiple {
		kind = "upto"
	}
	r.acks = append(r.acks, kind+":"+string(rune('0'+tag)))
	return nil
}
func (r *ackRecord) Nack(uint64, bool, bool) error { return nil }
func (r *ackRecord) Reject(uint64, bool) error     { return nil }

// TestAckerNeverAcksAnUnhandledDelivery feeds batches whose tags follow or skip the
// ones acked before (deliveries of two queues merged out of tag order) and checks
// that a batch is acked with one frame exactly when that frame covers nothing else.
func TestAckerNeverAcksAnUnhandledDelivery(t *testing.T) {
	tests := []struct {
		name    string
		batches [][]uint64
		want    []string
	}{
		{"in order", [][]uint64{{1, 2, 3}, {4}, {5, 6}}, []string{"upto:3", "upto:4", "upto:6"}},
		{"gap, then filled", [][]uint64{{1, 2}, {4, 5}, {3}, {6}}, []string{"upto:2", "one:4", "one:5", "upto:3", "upto:6"}},
		{"out of order within a batch", [][]uint64{{2, 1, 3}}, []string{"upto:3"}},
		{"first batch skips tag 1", [][]uint64{{2}, {1}, {3}}, []string{"one:2", "upto:1", "upto:3"}},
		{"gap still open", [][]uint64{{1}, {3}, {4}}, []string{"upto:1", "one:3", "one:4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &ackRecord{}
			var a acker
			for _, tags := range tt.batches {
				batch := make([]amqp.Delivery, len(tags))
				for i, tag := range tags {
					batch[i] = amqp.Delivery{Acknowledger: rec, DeliveryTag: tag}
				}
				if err := a.ack(batch); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(rec.acks, tt.want) {
				t.Errorf("acks %v, want %v", rec.acks, tt.want)
			}
		})
	}
}

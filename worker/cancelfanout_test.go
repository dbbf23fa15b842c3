package worker_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/subscriber"
	"outreach/worker"
)

// gatedInsert holds the InsertDeliveries calls it has a gate for (by
// number, 1 the first) until the test lets each go, as a fan-out round
// over a slow audience scan would be held.
type gatedInsert struct {
	testStore
	calls atomic.Int32
	gates map[int32]*gate
}

type gate struct {
	entered, release chan struct{}
	once             sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) wait(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("fan-out never came to the held insert")
	}
}

func (s *gatedInsert) InsertDeliveries(ctx context.Context, c campaign.Campaign, ch campaign.Channel, ds []campaign.NewDelivery) (int, error) {
	if g := s.gates[s.calls.Add(1)]; g != nil {
		close(g.entered)
		<-g.release
	}
	return s.testStore.InsertDeliveries(ctx, c, ch, ds)
}

// startGated starts a worker whose inserts numbered in at are held.
func (h *harness) startGated(at ...int32) []*gate {
	st := &gatedInsert{testStore: h.store, gates: map[int32]*gate{}}
	var gates []*gate
	for _, n := range at {
		g := newGate()
		st.gates[n] = g
		gates = append(gates, g)
	}
	h.startWorkerOn(worker.Settings{}, st, nil)
	for _, g := range gates {
		h.t.Cleanup(g.open) // before the worker's stop, which waits for a held insert
	}
	return gates
}

// cancelWhileHeld cancels c while g holds an insert, lets the cancel's
// settling run (2 s after it) and then lets the insert go.
func (h *harness) cancelWhileHeld(c campaign.Campaign, g *gate) {
	h.t.Helper()
	g.wait(h.t)
	h.act(c.ID, campaign.ActionCancel)
	time.Sleep(4 * time.Second)
	g.open()
}

// waitSettled waits for every delivery of c (audience of them) to be
// final, and for none to have gone after the cancel.
func (h *harness) waitSettled(c campaign.Campaign, audience int64, sentBefore int) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := h.stats(c.ID)
		if s.Audience == audience && s.Deliveries[campaign.StatusPending]+s.Deliveries[campaign.StatusSending] == 0 {
			if sent := int64(h.twilio.Count()); sent != int64(sentBefore) || s.Deliveries[campaign.StatusSent] != sent ||
				sent+s.Skipped[campaign.SkipCampaignCancelled]+s.Skipped[campaign.SkipOptedOut] != audience {
				h.t.Errorf("%d sent (%d before the cancel); deliveries %v, skipped %v: want every unsent one skipped",
					sent, sentBefore, s.Deliveries, s.Skipped)
			}
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("deliveries written after the cancel are still unsettled 20 s on: audience %d, %v", s.Audience, s.Deliveries)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A fan-out round that writes its deliveries after the cancel's settling
// has run (a slow audience scan) leaves them pending: they are skipped as
// cancelled within seconds, not left pending in a cancelled campaign until
// the monitor's backstop minutes later.
func TestDeliveriesAFanoutWritesAfterTheCancelAreSettled(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(50)
		gates := h.startGated(1)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		h.act(c.ID, campaign.ActionStart)
		h.cancelWhileHeld(c, gates[0])
		h.waitSettled(c, 50, 0)
	})
}

// The same for the last round of a fan-out, which ends the chain: a
// marketing audience's catch-up pass over subscribers the walk had passed
// (here 10 imported while the first round was written).
func TestDeliveriesTheLastFanoutRoundWritesAfterTheCancelAreSettled(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(50)
		gates := h.startGated(1, 2)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		h.act(c.ID, campaign.ActionStart)
		gates[0].wait(t)
		rows := make([]subscriber.Row, 10)
		for i := range rows {
			rows[i] = subscriber.Row{MSISDN: fmt.Sprintf("+8492%07d", i), Region: "HN", Locale: "vi"}
		}
		if _, err := h.store.UpsertSubscribers(h.ctx, h.tenant.ID, rows, ""); err != nil {
			t.Fatal(err)
		}
		gates[0].open()
		gates[1].wait(t)
		// The first round's deliveries are done with before the cancel.
		deadline := time.Now().Add(30 * time.Second)
		for s := h.stats(c.ID); s.Audience != 50 || s.Deliveries[campaign.StatusPending]+s.Deliveries[campaign.StatusSending] > 0; s = h.stats(c.ID) {
			if time.Now().After(deadline) {
				t.Fatalf("the first round never finished: audience %d, %v", s.Audience, s.Deliveries)
			}
			time.Sleep(20 * time.Millisecond)
		}
		sent := h.twilio.Count()
		h.cancelWhileHeld(c, gates[1])
		h.waitSettled(c, 60, sent)
	})
}

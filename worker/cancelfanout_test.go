package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/worker"
)

// gatedInsert holds the first InsertDeliveries until the test lets it go,
// as a fan-out round over a slow audience scan would be held.
type gatedInsert struct {
	testStore
	entered, release chan struct{}
	once             sync.Once
}

func (s *gatedInsert) InsertDeliveries(ctx context.Context, c campaign.Campaign, ch campaign.Channel, ds []campaign.NewDelivery) (int, error) {
	first := false
	s.once.Do(func() { first = true })
	if first {
		close(s.entered)
		<-s.release
	}
	return s.testStore.InsertDeliveries(ctx, c, ch, ds)
}

// A fan-out round that writes its deliveries after the cancel's settling
// has run (a slow audience scan) leaves them pending: they are skipped as
// cancelled within seconds, not left pending in a cancelled campaign until
// the monitor's backstop minutes later.
func TestDeliveriesAFanoutWritesAfterTheCancelAreSettled(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(50)
		st := &gatedInsert{testStore: h.store, entered: make(chan struct{}), release: make(chan struct{})}
		h.startWorkerOn(worker.Settings{}, st, nil)
		var releaseOnce sync.Once
		t.Cleanup(func() { releaseOnce.Do(func() { close(st.release) }) })

		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		h.act(c.ID, campaign.ActionStart)
		select {
		case <-st.entered:
		case <-time.After(30 * time.Second):
			t.Fatal("fan-out never wrote")
		}
		h.act(c.ID, campaign.ActionCancel)
		// The cancel's settling runs 2 s after it and finds nothing unsent.
		time.Sleep(4 * time.Second)
		releaseOnce.Do(func() { close(st.release) })
		deadline := time.Now().Add(20 * time.Second)
		for {
			s := h.stats(c.ID)
			if s.Audience > 0 && s.Deliveries[campaign.StatusPending]+s.Deliveries[campaign.StatusSending] == 0 {
				if s.Skipped[campaign.SkipCampaignCancelled] != s.Audience-s.Skipped[campaign.SkipOptedOut] || h.twilio.Count() != 0 {
					t.Errorf("%d sent; deliveries %v, skipped %v: want every one skipped", h.twilio.Count(), s.Deliveries, s.Skipped)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("deliveries written after the cancel are still unsettled 20 s on: audience %d, %v", s.Audience, s.Deliveries)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

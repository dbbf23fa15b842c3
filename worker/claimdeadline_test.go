package worker_test

import (
	"testing"
	"time"

	"outreach/campaign"
	"outreach/worker"
)

// A worker held up for half of SendingStaleAfter since its claim sends no
// more of it: once the period is over the monitor takes those deliveries
// for a dead worker's and puts them back for another, and a late send
// would reach the subscriber twice. What it did not send goes back to
// pending, and is sent later, once.
func TestAHeldUpWorkerSendsNothingOnceItsClaimIsHalfStale(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(4) // the first is opted out: skipped, not sent
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		c = h.act(c.ID, campaign.ActionStart) // no worker runs: no fan-out
		ids := h.pendingDeliveries(c, 4)
		set := worker.Settings{SendingStaleAfter: 4 * time.Second, SendConcurrency: 1, BatchSize: 4, FastBatchSize: 4}
		e := h.newEngine(set)
		// One provider call at a time, each answered after 2.2 s: the
		// second message could only go out past the 2 s deadline.
		h.twilio.SetLatency(2200 * time.Millisecond)
		if err := e.RunCountedSendTask(h.ctx, c.ID, campaign.ChannelSMS, ids); err != nil {
			t.Fatal(err)
		}
		if n := h.twilio.Count(); n != 1 {
			t.Fatalf("the held-up task sent %d messages, want 1 (none after its deadline)", n)
		}
		got := h.stats(c.ID).Deliveries
		if got["sent"] != 1 || got["skipped"] != 1 || got["pending"]+got["sending"] != 2 {
			t.Fatalf("after the held-up task: deliveries %v, want 1 sent, 1 skipped, 2 pending or sending", got)
		}
		h.twilio.SetLatency(0)
		h.startWorker(set)
		s := h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)
		if s.Deliveries["sent"] != 3 {
			t.Errorf("completed with deliveries %v, want 3 sent", s.Deliveries)
		}
		for i, m := range msisdns[1:] {
			if n := h.twilio.CountTo(m); n != 1 {
				t.Errorf("subscriber %d got %d messages, want 1", i+1, n)
			}
		}
	})
}

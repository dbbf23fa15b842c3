package worker_test

import (
	"slices"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/worker"
)

// A delivery refused by the provider's rate limit (429/20429) several times
// keeps every retry for a real transient error once the provider takes
// calls again: refusals that say "not now" are not attempts.
func TestRateLimitRefusalsDoNotUseUpRetries(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		c, ids := h.startedSMSPromo(2) // every tenth opted out, the first among them
		e := h.newEngine(worker.Settings{MaxAttempts: 3, RetryBase: time.Hour})
		one := ids[1:]
		for range 3 {
			h.twilio.FailNext(1, 429, 20429)
			if err := e.RunCountedSendTask(h.ctx, c.ID, campaign.ChannelSMS, one); err != nil {
				t.Fatal(err)
			}
		}
		h.twilio.FailNext(1, 503, 20503) // its first real failure
		if err := e.RunCountedSendTask(h.ctx, c.ID, campaign.ChannelSMS, one); err != nil {
			t.Fatal(err)
		}
		ds, err := h.store.ListDeliveries(h.ctx, h.tenant.ID, c.ID, campaign.StatusPending, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		ds = slices.DeleteFunc(ds, func(d campaign.Delivery) bool { return d.SubscriberID != one[0] })
		if len(ds) != 1 || ds[0].Attempts != 1 || ds[0].ErrorCode != "20503" {
			t.Fatalf("after three rate-limit refusals and one 503: %+v, want it pending with 1 attempt", ds)
		}
		// Two more 503s use up its three attempts: it fails then.
		for range 2 {
			h.twilio.FailNext(1, 503, 20503)
			if err := e.RunCountedSendTask(h.ctx, c.ID, campaign.ChannelSMS, one); err != nil {
				t.Fatal(err)
			}
		}
		ds, err = h.store.ListDeliveries(h.ctx, h.tenant.ID, c.ID, campaign.StatusFailed, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].Attempts != 3 {
			t.Fatalf("after three 503s: failed %+v, want it failed with 3 attempts", ds)
		}
		if n := h.twilio.Attempts(); n != 6 {
			t.Errorf("Twilio saw %d calls, want 6", n)
		}
	})
}

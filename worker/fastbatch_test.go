package worker_test

import (
	"testing"
	"time"

	"outreach/campaign"
	"outreach/worker"
)

// A marketing campaign sent faster than message by message puts
// FastBatchSize deliveries in each send task and claims them at once, but
// sends and records them BatchSize at a time: a worker killed mid-task
// leaves at most BatchSize of its messages sent and unrecorded (the ones
// the reconciler would send again). Paced campaigns and alerts keep
// BatchSize tasks.
func TestAFastBatchIsRecordedAPartAtATime(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(25)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		c = h.act(c.ID, campaign.ActionStart) // no worker runs: no fan-out
		e := h.newEngine(worker.Settings{BatchSize: 5, FastBatchSize: 25, SendConcurrency: 32})
		if n := e.TaskSize(c, campaign.ChannelSMS); n != 25 {
			t.Errorf("a fast campaign's task carries %d deliveries, want 25", n)
		}
		paced := c
		paced.RatePerSecond = 500
		alert := c
		alert.Kind = campaign.KindExposureAlert
		for name, k := range map[string]campaign.Campaign{"at 500/s": paced, "an alert": alert} {
			if n := e.TaskSize(k, campaign.ChannelSMS); n != 5 {
				t.Errorf("%s: a task carries %d deliveries, want 5", name, n)
			}
		}

		ids := h.pendingDeliveries(c, 25)
		// Each answer is held: once a sixth message is at the provider,
		// the first part has been sent (or skipped: seed opts some out),
		// answered and recorded, and the second is on its way.
		h.twilio.SetLatency(time.Second)
		done := make(chan error, 1)
		go func() { done <- e.RunCountedSendTask(h.ctx, c.ID, campaign.ChannelSMS, ids) }()
		for h.twilio.Count() < 6 {
			select {
			case err := <-done:
				t.Fatalf("the task ended after %d messages: %v", h.twilio.Count(), err)
			case <-time.After(5 * time.Millisecond):
			}
		}
		s := h.stats(c.ID)
		if got := s.Deliveries; got["sent"]+got["skipped"] != 5 || got["sending"] != 20 || got["pending"] != 0 {
			t.Errorf("while the second part is at the provider: deliveries %v, want 5 sent or skipped and 20 sending", got)
		}
		h.twilio.SetLatency(0)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		got := h.stats(c.ID).Deliveries
		if got["sent"]+got["skipped"] != 25 || got["skipped"] == 25 {
			t.Errorf("after the task: deliveries %v, want 25 sent or skipped", got)
		}
		if n := h.twilio.Count(); int64(n) != got["sent"] {
			t.Errorf("the provider took %d messages, the store has %d sent", n, got["sent"])
		}
	})
}

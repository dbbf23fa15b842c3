package worker_test

import (
	"testing"
	"time"

	"outreach/campaign"
	"outreach/worker"
)

// A campaign paced at its own rate_per_second holds it across two worker
// processes that share the campaign's limit through Redis. The bound has
// a tenth of slack: the campaign's rate is the marketer's pacing, and a
// starved process may send a slot's message late (a paced sender's limit
// is held to the message: TestTwoWorkersNeverExceedTheSharedSenderRate).
func TestAPacedCampaignKeepsItsOwnRate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const rate = 200
		msisdns := h.seed(660) // 594 eligible: three seconds at 200/s
		h.startWorker(worker.Settings{})
		h.startWorker(worker.Settings{})
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, rate)
		h.act(c.ID, campaign.ActionStart)
		h.waitState(c.ID, campaign.StateCompleted, 60*time.Second)

		n, worst := h.busiestSecond()
		t.Logf("%d messages, at most %d in any one-second window (campaign rate %d/s)", n, worst, rate)
		if worst > rate+rate/10 {
			t.Fatalf("the fake saw %d messages in one second, campaign rate %d/s", worst, rate)
		}
		h.expectOnce(msisdns)
	})
}

// A paced campaign's tasks claim a few deliveries at a time (those due in
// the next 25 ms: 25 at 1,000/s), and in one process at most two tasks of
// a campaign channel hold claims that are not yet with the provider,
// however many of its tasks run: a killed worker leaves few deliveries
// "sending" that it never sent, which would wait SENDING_STALE_AFTER.
func TestAPacedCampaignClaimsOnlyWhatIsAboutToGoOut(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(2000)
		// Every subscriber is sent to: no skip waits in a claimed chunk.
		for i := 0; i < len(msisdns); i += 10 {
			if err := h.store.SetOptOut(h.ctx, h.tenant.ID, msisdns[i], false); err != nil {
				t.Fatal(err)
			}
		}
		// Answers are held, so a message at the provider stays "sending"
		// too; the fake counts each request as it arrives.
		h.twilio.SetLatency(5 * time.Second)
		h.startWorker(worker.Settings{}) // 50 tasks in flight: all 20 of the campaign's
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 1000)
		h.act(c.ID, campaign.ActionStart)

		worst, samples := 0, 0
		deadline := time.Now().Add(30 * time.Second)
		for h.twilio.Attempts() < 400 && time.Now().Before(deadline) {
			if h.twilio.Attempts() >= 50 {
				// Read the claims before the requests: the count of
				// requests only grows, so this never overstates.
				sending := h.stats(c.ID).Deliveries[campaign.StatusSending]
				worst = max(worst, int(sending)-h.twilio.Attempts())
				samples++
			}
			time.Sleep(20 * time.Millisecond)
		}
		h.twilio.SetLatency(0)
		t.Logf("%d samples: at most %d deliveries claimed and not yet at the provider", samples, worst)
		if samples == 0 {
			t.Fatalf("the fake saw %d requests in 30 s", h.twilio.Attempts())
		}
		// Two tasks' 25, and those handed to a sender goroutine and on
		// their way (dozens on a loaded machine under -race); 20 tasks
		// claiming 25 each hold hundreds (267 and 448 seen).
		if worst > 120 {
			t.Fatalf("%d deliveries claimed and not at the provider, want at most about 2 × 25", worst)
		}
		h.waitState(c.ID, campaign.StateCompleted, 60*time.Second)
		for i, m := range msisdns {
			if got := h.twilio.CountTo(m); got != 1 {
				t.Fatalf("subscriber %d got %d messages, want 1", i, got)
			}
		}
	})
}

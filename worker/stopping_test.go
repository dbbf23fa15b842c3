package worker_test

import (
	"testing"
	"time"

	"outreach/campaign"
	"outreach/worker"
)

// A stopping worker claims nothing more and its pools take no task more,
// so a batch it hands on (handOn) goes to the next worker. While the main
// pool drained a slow push, the alert pool used to take its own hand-offs
// again at once: each claimed a chunk and put it back, a hot loop that
// used up the deliveries' attempts (174-217 in four seconds, MaxAttempts
// 8), and a transient error after the restart then failed them for good.
func TestAStoppingWorkerClaimsNothingMore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(60)
		h.fcm.SetLatency(2 * time.Second)
		stop := h.startWorker(worker.Settings{})
		promo := h.promo([]campaign.Channel{campaign.ChannelPush}, 0)
		h.act(promo.ID, campaign.ActionStart)
		// wait until the FCM fake is busy
		deadline := time.Now().Add(20 * time.Second)
		for h.fcm.Attempts() == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		stopped := make(chan struct{})
		go func() { stop(); close(stopped) }()
		time.Sleep(100 * time.Millisecond)
		contacts, sms := h.alertContacts(100)
		res, err := h.createAlert(h.ctx, h.service, contacts, sms)
		if err != nil {
			t.Fatal(err)
		}
		<-stopped
		ds, err := h.store.ListDeliveries(h.ctx, h.tenant.ID, res.ID, "", 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		maxA, sent := 0, 0
		for _, d := range ds {
			maxA = max(maxA, d.Attempts)
			if d.Status == campaign.StatusSent {
				sent++
			}
		}
		if maxA > 2 {
			t.Errorf("a delivery never sent was claimed %d times during one shutdown (MaxAttempts is 8)", maxA)
		}
		// The next worker sends them; a transient 503 is retried (the
		// claims of the loop used up their attempts, and it failed them).
		h.fcm.SetLatency(0)
		h.twilio.FailNext(5, 503, 20500)
		h.startWorker(worker.Settings{})
		st := h.waitState(res.ID, campaign.StateCompleted, 20*time.Second)
		if st.Deliveries[campaign.StatusFailed] > 0 {
			t.Errorf("%d alert deliveries failed on a single transient 503", st.Deliveries[campaign.StatusFailed])
		}
	})
}

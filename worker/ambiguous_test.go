package worker_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"outreach/campaign"
	"outreach/provider"
	"outreach/worker"
)

// An exposure alert's SMS whose answer was lost is looked up at Twilio
// (twilio-go's message list, against the fake): the one Twilio took is
// recorded sent with its SID and not sent again; the one whose request
// never got in is sent again, so that the contact is warned, once. The
// alert completes only when both are settled.
func TestAnAmbiguousSendIsLookedUpSentAgainOnlyIfTwilioNeverTookIt(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const lost, dropped, plain = "+84910000021", "+84910000022", "+84910000023"
		h.twilio.LoseAnswerTo(lost, true)     // taken, then the connection cut
		h.twilio.DropRequestTo(dropped, true) // cut before Twilio took it
		defer h.startWorker(worker.Settings{LookupAfter: time.Second})()
		a := h.alert([]string{lost, dropped, plain})

		// Both sends end unknown first; then the network is healthy again.
		deadline := time.Now().Add(60 * time.Second)
		for h.stats(a.ID).Deliveries[campaign.StatusUnknown] < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("no two ambiguous sends: %v", h.stats(a.ID).Deliveries)
			}
			time.Sleep(20 * time.Millisecond)
		}
		h.twilio.DropRequestTo(dropped, false)

		st := h.waitState(a.ID, campaign.StateCompleted, 30*time.Second)
		if st.Deliveries[campaign.StatusUnknown] != 0 || st.Deliveries[campaign.StatusSent] != 3 {
			t.Errorf("alert completed with deliveries %v; want the 3 SMS sent, none unknown", st.Deliveries)
		}
		sids := map[string]string{}
		for _, m := range h.twilio.Messages() {
			sids[m.To] = m.SID
		}
		for _, m := range []string{lost, dropped, plain} {
			if n := h.twilio.CountTo(m); n != 1 {
				t.Errorf("Twilio took %d messages to %s, want exactly 1", n, m)
			}
		}
		ds, err := h.store.ListDeliveries(h.ctx, h.tenant.ID, a.ID, "", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Channel != campaign.ChannelSMS {
				continue
			}
			if d.Status != campaign.StatusSent || d.ProviderMessageID != sids[d.MSISDN] || d.Segments < 1 {
				t.Errorf("SMS delivery to %s: %s, message %q, %d segments; want sent as Twilio's %q",
					d.MSISDN, d.Status, d.ProviderMessageID, d.Segments, sids[d.MSISDN])
			}
		}
		if taken, notTaken := testutil.ToFloat64(h.metrics.Ambiguous.WithLabelValues("twilio", "taken")),
			testutil.ToFloat64(h.metrics.Ambiguous.WithLabelValues("twilio", "not_taken")); taken != 1 || notTaken != 1 {
			t.Errorf("ambiguous sends resolved: taken %v, not taken %v; want 1 and 1", taken, notTaken)
		}
	})
}

// A worker claimed twenty SMS deliveries, sent five of them, and died
// before recording anything. Once its claims are stale the five are found
// at Twilio and recorded sent with their SIDs, the fifteen others are
// sent: every subscriber gets exactly one message (they used to go back
// to pending, and the five were sent twice).
func TestADeadWorkersLastSendsAreFoundNotSentAgain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(100)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		c = h.act(c.ID, campaign.ActionStart) // no worker runs yet
		claimed := h.claimedDeliveries(c, 20)
		sent := map[string]string{}
		for _, r := range claimed {
			if r.OptedOut || len(sent) == 5 {
				continue // a worker skips those
			}
			res, err := h.sms.SendSMS(h.ctx, provider.SMS{To: r.MSISDN, Body: "Cai Bluezone de nhan 5120MB"})
			if err != nil {
				t.Fatal(err)
			}
			sent[r.MSISDN] = res.MessageID
		}
		h.startWorker(worker.Settings{StaleAfter: time.Second, SendingStaleAfter: 3 * time.Second})
		h.waitState(c.ID, campaign.StateCompleted, 60*time.Second)
		h.expectOnce(msisdns)
		ds, err := h.store.ListDeliveries(h.ctx, h.tenant.ID, c.ID, "", 0, 200)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if sid, ok := sent[d.MSISDN]; ok && (d.Status != campaign.StatusSent || d.ProviderMessageID != sid) {
				t.Errorf("the dead worker's send to %s: %s with message %q, want sent as %q", d.MSISDN, d.Status, d.ProviderMessageID, sid)
			}
		}
		if taken, notTaken := testutil.ToFloat64(h.metrics.Ambiguous.WithLabelValues("twilio", "taken")),
			testutil.ToFloat64(h.metrics.Ambiguous.WithLabelValues("twilio", "not_taken")); taken != 5 || notTaken != 15 {
			t.Errorf("stale claims looked up: taken %v, not taken %v; want 5 and 15", taken, notTaken)
		}
	})
}

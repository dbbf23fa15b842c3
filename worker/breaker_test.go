package worker_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"outreach/campaign"
	"outreach/provider/twilio"
	"outreach/worker"
)

// Twilio hangs: it takes each request and answers none within the
// client's timeout. Every call is ambiguous (unknown, never retried), and
// a run of them opens the breaker as a run of 503s would, rather than
// burning the whole audience into "unknown".
func TestAProviderThatHangsOpensTheBreaker(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		sms, err := twilio.New(twilio.Config{AccountSID: "AC0123456789", AuthToken: "authtoken0123",
			MessagingServiceSID: "MG0123456789", BaseURL: h.twilio.URL(), Timeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		h.sms = sms
		c, ids := h.startedSMSPromo(60)
		e := h.newEngine(worker.Settings{RetryBase: time.Hour, SendConcurrency: 4})
		h.twilio.SetLatency(500 * time.Millisecond) // longer than the client's timeout
		if err := e.RunCountedSendTask(h.ctx, c.ID, campaign.ChannelSMS, ids); err != nil {
			t.Fatal(err)
		}
		st := h.stats(c.ID)
		// 20 in a row open it; up to SendConcurrency-1 more were already
		// on their way.
		if n := h.twilio.Attempts(); n > 23 {
			t.Errorf("the hanging provider got %d calls, every one timing out (deliveries %v)", n, st.Deliveries)
		}
		if st.Deliveries["pending"] == 0 {
			t.Errorf("no delivery waits for the breaker: %v", st.Deliveries)
		}
		if g := testutil.ToFloat64(h.metrics.Breaker.WithLabelValues("twilio")); g != 1 {
			t.Errorf("outreach_breaker_open{provider=twilio} = %v with the breaker open", g)
		}
	})
}

// While Twilio fails every call its breaker opens and SMS stop; the
// outreach_breaker_open gauge is how operators see that, and it falls
// back to 0 once a probe succeeds.
func TestTheBreakerGaugeShowsAnOpenBreaker(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		c, ids := h.startedSMSPromo(30)
		now := time.Now()
		h.clock.Set(now)
		e := h.newEngine(worker.Settings{RetryBase: time.Hour, SendConcurrency: 1})
		// The series exists from the start, at 0.
		if n := testutil.CollectAndCount(h.metrics.Breaker, "outreach_breaker_open"); n == 0 {
			t.Errorf("no outreach_breaker_open series before any failure")
		}
		h.twilio.SetDown(true)
		if err := e.RunCountedSendTask(h.ctx, c.ID, campaign.ChannelSMS, ids); err != nil {
			t.Fatal(err)
		}
		calls := h.twilio.Attempts()
		deferred := testutil.ToFloat64(h.metrics.Deferred.WithLabelValues("sms", "breaker_open"))
		if calls > 20 || deferred == 0 {
			t.Fatalf("breaker did not open: %d calls, %v deferred", calls, deferred)
		}
		if g := testutil.ToFloat64(h.metrics.Breaker.WithLabelValues("twilio")); g != 1 {
			t.Errorf("outreach_breaker_open{provider=twilio} = %v while the breaker is open (%d calls, %v deferred), want 1",
				g, calls, deferred)
		}
		h.twilio.SetDown(false)
		h.clock.Set(now.Add(time.Minute)) // past the cool-down: a probe goes, and succeeds
		last := ids[len(ids)-1:]          // held by the open breaker (the first is opted out)
		if err := e.RunCountedSendTask(h.ctx, c.ID, campaign.ChannelSMS, last); err != nil {
			t.Fatal(err)
		}
		if g := testutil.ToFloat64(h.metrics.Breaker.WithLabelValues("twilio")); g != 0 || h.twilio.Attempts() != calls+1 {
			t.Errorf("outreach_breaker_open{provider=twilio} = %v after a probe (%d calls), want 0", g, h.twilio.Attempts()-calls)
		}
	})
}

// Twilio's 21408 (the account may not send to the number's country) fails
// a foreign number's delivery at once; a run of them, the permission for
// the deployment's own country missing, opens the breaker, which holds
// the rest instead of failing the whole audience.
func TestARunOfRegionRefusalsOpensTheBreaker(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		c, ids := h.startedSMSPromo(60)
		e := h.newEngine(worker.Settings{RetryBase: time.Hour, SendConcurrency: 1})
		h.twilio.FailRate(1, 400, 21408)
		if err := e.RunCountedSendTask(h.ctx, c.ID, campaign.ChannelSMS, ids); err != nil {
			t.Fatal(err)
		}
		st := h.stats(c.ID)
		if n := h.twilio.Attempts(); n != 20 || st.Deliveries["failed"] != 20 || st.Deliveries["pending"] != 34 {
			t.Errorf("%d calls, deliveries %v: want 20 failed, then the breaker holding the other 34", n, st.Deliveries)
		}
	})
}

// startedSMSPromo seeds n subscribers (every tenth opted out), starts an
// SMS promotion to them with no worker running, and writes its n pending
// deliveries as fan-out would; it returns the campaign and their ids.
func (h *harness) startedSMSPromo(n int) (campaign.Campaign, []int64) {
	h.t.Helper()
	h.seed(n)
	c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
	c = h.act(c.ID, campaign.ActionStart)
	return c, h.pendingDeliveries(c, n)
}

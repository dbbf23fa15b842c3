package worker_test

import (
	"testing"
	"time"

	"outreach/campaign"
	"outreach/worker"
)

func TestTransientFailuresEndDeliveredAndPermanentOnesFailOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(600)
		// A fifth of all calls fail with a 5xx; some numbers are invalid or
		// have opted out at Twilio, which is permanent.
		h.twilio.Seed(7)
		h.twilio.FailRate(0.2, 500, 20500)
		invalid := map[string]bool{}
		for i := 1; i < 600; i += 50 { // none opted out locally (i%10 != 0)
			h.twilio.FailTo(msisdns[i], 400, 21211)
			invalid[msisdns[i]] = true
		}
		stopped := msisdns[3]
		h.twilio.FailTo(stopped, 400, 21610)
		h.startWorker(worker.Settings{RetryBase: 100 * time.Millisecond})
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		h.act(c.ID, campaign.ActionStart)
		s := h.waitState(c.ID, campaign.StateCompleted, 120*time.Second)

		for i, m := range msisdns {
			got := h.twilio.CountTo(m)
			switch {
			case i%10 == 0, invalid[m], m == stopped:
				if got != 0 {
					t.Fatalf("subscriber %d got %d messages, want none", i, got)
				}
			case got != 1:
				t.Fatalf("subscriber %d got %d messages, want exactly 1 (transient failures retried to success)", i, got)
			}
		}
		wantFailed := int64(len(invalid) + 1)
		if s.Deliveries[campaign.StatusFailed] != wantFailed {
			t.Errorf("failed = %d, want %d", s.Deliveries[campaign.StatusFailed], wantFailed)
		}
		if s.Deliveries[campaign.StatusPending]+s.Deliveries[campaign.StatusSending] != 0 {
			t.Errorf("unfinished deliveries remain: %v", s.Deliveries)
		}
		if h.twilio.Attempts() <= h.twilio.Count()+int(wantFailed) {
			t.Errorf("the fake saw %d attempts for %d messages: no transient failure was injected", h.twilio.Attempts(), h.twilio.Count())
		}
		// Permanent failures were tried once, never retried.
		page, err := h.store.ListDeliveries(h.ctx, h.tenant.ID, c.ID, campaign.StatusFailed, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page {
			if d.Attempts != 1 {
				t.Errorf("permanently failed delivery to %s had %d attempts, want 1", d.MSISDN, d.Attempts)
			}
		}
		// 21610 opted the subscriber out.
		sub, err := h.store.GetSubscriber(h.ctx, h.tenant.ID, stopped)
		if err != nil {
			t.Fatal(err)
		}
		if !sub.OptedOut {
			t.Error("a 21610 refusal did not opt the subscriber out")
		}
	})
}

func TestTwoWorkersNeverExceedTheSharedSenderRate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const rate = 40
		h.seed(330) // 297 eligible: about 7 seconds at 40/s
		set := worker.Settings{SMSRate: rate}
		h.startWorker(set)
		h.startWorker(set)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		h.act(c.ID, campaign.ActionStart)
		h.waitState(c.ID, campaign.StateCompleted, 60*time.Second)

		n, worst := h.busiestSecond()
		t.Logf("%d messages, at most %d in any one-second window (limit %d/s)", n, worst, rate)
		if worst > rate+1 {
			t.Fatalf("the fake saw %d messages in one second, limit %d/s", worst, rate)
		}
		if n != 297 {
			t.Fatalf("the fake saw %d messages, want 297", n)
		}
	})
}

func TestMarketingOutsideTheSendWindowWaitsForItToOpen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(100)
		h.policy.Window.Start, h.policy.Window.End = 7*60, 22*60
		late := time.Date(2026, 11, 24, 23, 30, 0, 0, h.policy.Zone)
		h.clock.Set(late)
		h.startWorker(worker.Settings{HoldRecheck: time.Second})
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		h.act(c.ID, campaign.ActionStart)
		time.Sleep(2500 * time.Millisecond)
		if n := h.twilio.Count(); n != 0 {
			t.Fatalf("%d messages went out at 23:30, outside the 07:00-22:00 window", n)
		}
		if s := h.stats(c.ID); s.Deliveries[campaign.StatusPending] != 100 {
			t.Fatalf("held deliveries: %v, want 100 pending", s.Deliveries)
		}
		h.clock.Set(time.Date(2026, 11, 25, 7, 0, 5, 0, h.policy.Zone))
		h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)
		if n := h.twilio.Count(); n != 90 {
			t.Fatalf("after the window opened the fake saw %d messages, want 90", n)
		}
	})
}

func TestAPausedCampaignSendsNothingUntilResumed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(400) // 360 eligible at 60/s: 6 seconds
		h.startWorker(worker.Settings{})
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 60)
		h.act(c.ID, campaign.ActionStart)
		for h.twilio.Count() < 60 {
			time.Sleep(20 * time.Millisecond)
		}
		h.act(c.ID, campaign.ActionPause)
		time.Sleep(time.Second) // pause takes effect within a second
		paused := h.twilio.Count()
		time.Sleep(1500 * time.Millisecond)
		if n := h.twilio.Count(); n != paused {
			t.Fatalf("a paused campaign sent %d more messages", n-paused)
		}
		if paused >= 360 {
			t.Fatalf("the campaign finished (%d) before the pause could be tested", paused)
		}
		h.act(c.ID, campaign.ActionResume)
		h.waitState(c.ID, campaign.StateCompleted, 60*time.Second)
		for i, m := range msisdns {
			want := 1
			if i%10 == 0 {
				want = 0
			}
			if got := h.twilio.CountTo(m); got != want {
				t.Fatalf("subscriber %d got %d messages, want %d", i, got, want)
			}
		}
		t.Logf("%d sent before the pause, %d in all", paused, h.twilio.Count())
	})
}

package worker_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"outreach/campaign"
	"outreach/internal/queue"
	"outreach/subscriber"
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
		// The same number in another tenant on the deployment's sender.
		other, err := h.store.EnsureTenant(h.ctx, "other-carrier")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.store.UpsertSubscribers(h.ctx, other.ID, []subscriber.Row{{MSISDN: stopped, Region: "HN"}}, ""); err != nil {
			t.Fatal(err)
		}
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
		if sub, err := h.store.GetSubscriber(h.ctx, other.ID, stopped); err != nil || !sub.OptedOut {
			t.Errorf("the same number in another tenant: %+v, %v; want opted out (the sender is the deployment's)", sub, err)
		}
	})
}

func TestTwoWorkersNeverExceedTheSharedSenderRate(t *testing.T) {
	forEachBackendAlone(t, func(t *testing.T, h *harness) {
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
	forEachBackendAlone(t, func(t *testing.T, h *harness) {
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
		h.expectOnce(msisdns)
		t.Logf("%d sent before the pause, %d in all", paused, h.twilio.Count())
	})
}

func TestMarketingStopsWhenTheSendWindowClosesAndGoesOnWhenItOpens(t *testing.T) {
	forEachBackendAlone(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(400) // 360 eligible at 150/s: two and a half seconds
		h.policy.Window.Start, h.policy.Window.End = 7*60, 22*60
		h.clock.Set(time.Date(2026, 11, 24, 21, 59, 0, 0, h.policy.Zone))
		h.startWorker(worker.Settings{HoldRecheck: 500 * time.Millisecond})
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 150)
		h.act(c.ID, campaign.ActionStart)
		for h.twilio.Count() < 60 {
			time.Sleep(10 * time.Millisecond)
		}
		h.clock.Set(time.Date(2026, 11, 24, 22, 0, 1, 0, h.policy.Zone))
		time.Sleep(time.Second) // the close takes effect within a second
		closed := h.twilio.Count()
		time.Sleep(1500 * time.Millisecond)
		if n := h.twilio.Count(); n != closed {
			t.Fatalf("%d marketing messages went out after the window closed at 22:00", n-closed)
		}
		if closed >= 360 {
			t.Fatalf("the campaign finished (%d) before the window closed", closed)
		}
		if s := h.stats(c.ID); s.Deliveries[campaign.StatusSending] != 0 {
			t.Errorf("deliveries left claimed over the night: %v", s.Deliveries)
		}
		h.clock.Set(time.Date(2026, 11, 25, 7, 0, 5, 0, h.policy.Zone))
		h.waitState(c.ID, campaign.StateCompleted, 60*time.Second)
		h.expectOnce(msisdns)
		t.Logf("%d sent before 22:00, the rest after 07:00", closed)
	})
}

func TestHeldMarketingKeepsRedisBounded(t *testing.T) {
	forEachBackendAlone(t, func(t *testing.T, h *harness) {
		h.seed(3000)
		h.policy.Window.Start, h.policy.Window.End = 7*60, 22*60
		h.clock.Set(time.Date(2026, 11, 24, 23, 30, 0, 0, h.policy.Zone))
		// StaleAfter 1 s: the monitor would take the held deliveries for lost
		// several times over during the wait.
		h.startWorker(worker.Settings{HoldRecheck: 200 * time.Millisecond, BacklogSeconds: 1,
			StaleAfter: time.Second})
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 10) // backlog bound 200
		h.act(c.ID, campaign.ActionStart)
		insp := asynq.NewInspectorFromRedisClient(h.conns[0].Redis)
		worst := 0
		for range 12 {
			time.Sleep(200 * time.Millisecond)
			queued := 0
			for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
				insp.ListPendingTasks, insp.ListScheduledTasks, insp.ListRetryTasks} {
				tasks, err := list(queue.QueueMarketing, asynq.PageSize(1000))
				if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
					t.Fatal(err)
				}
				for _, ti := range tasks {
					var p struct {
						S []int64 `json:"s"`
					}
					json.Unmarshal(ti.Payload, &p)
					queued += len(p.S)
				}
			}
			worst = max(worst, queued)
		}
		if n := h.twilio.Count(); n != 0 {
			t.Fatalf("%d messages went out at 23:30", n)
		}
		t.Logf("at most %d deliveries queued in Redis for an audience of 2,700 held through the night", worst)
		if worst > 300 {
			t.Fatalf("%d deliveries queued in Redis while held, want at most the backlog bound (200) and a task", worst)
		}
		if worst == 0 {
			t.Fatal("nothing was ever queued in Redis: the bound was not put to the test")
		}
	})
}

func TestNothingGoesOutAfterTheCampaignsEndAndTheRestIsSkipped(t *testing.T) {
	forEachBackendAlone(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(400) // 360 eligible at 60/s: six seconds
		c, end := h.endingCampaign(60)
		h.act(c.ID, campaign.ActionStart)
		for h.twilio.Count() < 60 {
			time.Sleep(10 * time.Millisecond)
		}
		h.clock.Set(end.Add(time.Second))
		time.Sleep(time.Second)
		ended := h.twilio.Count()
		h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)
		if n := h.twilio.Count(); n != ended {
			t.Fatalf("%d messages went out after the campaign's end_by", n-ended)
		}
		s := h.stats(c.ID)
		// Every delivery is settled: sent before the end, or skipped (the
		// opted-out ones reached before it as opted_out, the rest as
		// campaign_ended).
		if s.Deliveries[campaign.StatusSent] != int64(ended) || s.Skipped[campaign.SkipCampaignEnded] < int64(360-ended) ||
			int64(ended)+s.Skipped[campaign.SkipCampaignEnded]+s.Skipped[campaign.SkipOptedOut] != 400 {
			twice := 0
			for _, m := range msisdns {
				if h.twilio.CountTo(m) > 1 {
					twice++
				}
			}
			t.Fatalf("%d sent before the end (%d subscribers messaged twice), stats %+v: want the rest skipped as campaign_ended",
				ended, twice, s)
		}
		t.Logf("%d sent before end_by, %d skipped as campaign_ended", ended, s.Skipped[campaign.SkipCampaignEnded])
	})
}

// A campaign paused when its end_by passes ends by itself, as a running
// one does: it sends nothing more, its unsent deliveries are skipped as
// campaign_ended and it completes. It used to stay paused, its deliveries
// pending, until someone resumed it.
func TestAPausedCampaignEndsAtItsEndBy(t *testing.T) {
	forEachBackendAlone(t, func(t *testing.T, h *harness) {
		h.seed(200) // 180 eligible at 20/s
		c, end := h.endingCampaign(20)
		h.act(c.ID, campaign.ActionStart)
		for h.twilio.Count() < 20 {
			time.Sleep(10 * time.Millisecond)
		}
		h.act(c.ID, campaign.ActionPause)
		time.Sleep(time.Second) // a pause takes effect within a second
		paused := h.twilio.Count()
		h.clock.Set(end.Add(time.Second))
		s := h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)
		if n := h.twilio.Count(); n != paused {
			t.Errorf("%d messages went out after the pause", n-paused)
		}
		if s.Deliveries[campaign.StatusPending]+s.Deliveries[campaign.StatusSending] != 0 ||
			s.Deliveries[campaign.StatusSent] != int64(paused) || s.Skipped[campaign.SkipCampaignEnded] < int64(180-paused) {
			t.Errorf("%d sent before the pause, stats %+v: want the rest skipped as campaign_ended", paused, s)
		}
	})
}

// endingCampaign starts a worker on the harness clock, set to now, and
// creates an SMS campaign at rate a second whose end_by is an hour away.
func (h *harness) endingCampaign(rate int) (campaign.Campaign, time.Time) {
	h.t.Helper()
	now := time.Now().Truncate(time.Second)
	h.clock.Set(now)
	h.startWorker(worker.Settings{})
	end := now.Add(time.Hour)
	sms := h.template(campaign.TemplateInput{Name: "promo-sms", Channel: campaign.ChannelSMS, Locale: "vi",
		Body: "Cai Bluezone: {{.InstallLink}}"})
	c, err := h.service.CreateCampaign(h.ctx, h.admin, campaign.CampaignInput{Name: "ends at noon",
		Kind: campaign.KindInstallPromotion, Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: sms}, RatePerSecond: rate, EndBy: &end})
	if err != nil {
		h.t.Fatal(err)
	}
	return c, end
}

func TestACancelledCampaignsUnsentDeliveriesAreSkippedAsCancelled(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(400) // 360 eligible at 60/s: six seconds
		h.startWorker(worker.Settings{})
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 60)
		h.act(c.ID, campaign.ActionStart)
		for h.twilio.Count() < 60 {
			time.Sleep(10 * time.Millisecond)
		}
		h.act(c.ID, campaign.ActionCancel)
		deadline := time.Now().Add(20 * time.Second)
		var s campaign.Stats
		for {
			s = h.stats(c.ID)
			if s.Deliveries[campaign.StatusPending]+s.Deliveries[campaign.StatusSending] == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a cancelled campaign's deliveries never settled: %v", s.Deliveries)
			}
			time.Sleep(100 * time.Millisecond)
		}
		sent := int64(h.twilio.Count())
		if s.Deliveries[campaign.StatusSent] != sent || s.Skipped[campaign.SkipCampaignCancelled] == 0 ||
			sent+s.Skipped[campaign.SkipCampaignCancelled]+s.Skipped[campaign.SkipOptedOut] != 400 {
			t.Fatalf("%d sent; stats %v, skipped %v: want every unsent delivery skipped as cancelled", sent, s.Deliveries, s.Skipped)
		}
		if s.State != campaign.StateCancelled {
			t.Errorf("state %s", s.State)
		}
		t.Logf("%d sent before the cancel, %d skipped as cancelled", sent, s.Skipped[campaign.SkipCampaignCancelled])
		// Once the tasks queued before the cancel have run, nothing of the
		// campaign is left in Redis (its backlog count used to stay for
		// good, below zero).
		insp := asynq.NewInspectorFromRedisClient(h.conns[0].Redis)
		for {
			info, err := insp.GetQueueInfo(queue.QueueMarketing)
			if err != nil {
				t.Fatal(err)
			}
			if info.Pending+info.Active+info.Scheduled+info.Retry == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("marketing tasks still queued 20 s after the cancel: %+v", info)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if n, err := h.conns[0].Redis.Exists(h.ctx, "outreach:backlog:"+c.ID).Result(); err != nil || n != 0 {
			t.Errorf("the cancelled campaign's backlog count is still in Redis (%d, %v)", n, err)
		}
	})
}

// A cancel whose settle task never reached the queue (Redis unreachable at
// that moment, or emptied since) leaves the campaign's unsent deliveries
// pending; the monitor finds the cancelled campaign with deliveries still
// unsent and settles it, and nothing is sent.
func TestACancelledCampaignWhoseSettleWasLostIsSettledByTheMonitor(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(50)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		c = h.act(c.ID, campaign.ActionStart) // no worker runs yet
		h.pendingDeliveries(c, 50)
		// Cancelled in the store alone, four minutes ago (the harness takes
		// claims for stale after two): no settle is queued.
		if _, err := h.store.TransitionCampaign(h.ctx, c.TenantID, c.ID, []campaign.State{campaign.StateRunning},
			campaign.StateCancelled, h.clock.Now().Add(-4*time.Minute)); err != nil {
			t.Fatal(err)
		}
		h.startWorker(worker.Settings{})
		deadline := time.Now().Add(30 * time.Second)
		for {
			s := h.stats(c.ID)
			if s.Deliveries[campaign.StatusPending]+s.Deliveries[campaign.StatusSending] == 0 {
				if s.Skipped[campaign.SkipCampaignCancelled] != 50 || h.twilio.Count() != 0 {
					t.Fatalf("skipped %v, %d sent: want all 50 skipped as cancelled and none sent", s.Skipped, h.twilio.Count())
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the cancelled campaign's deliveries are still unsent after 30 s: %v", s.Deliveries)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// A push that finds its provider's circuit breaker open is put back without
// a call; that is no failure of the provider's. Counted as one, every push
// arriving while the breaker was open pushed its reopening back by the
// cool-down, so under steady traffic pushes stayed stopped long after the
// provider had recovered. Here FCM fails until its breaker opens at T; at
// T+6 s, FCM back up, one more push finds the breaker open; at T+11 s the
// next push must go out (the cool-down is 10 s).
func TestAPushDeferredByAnOpenBreakerDoesNotKeepItOpen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		start := time.Date(2026, 11, 24, 10, 0, 0, 0, h.policy.Zone)
		h.clock.Set(start)
		h.seed(90)
		c := h.promo([]campaign.Channel{campaign.ChannelPush}, 0)
		c = h.act(c.ID, campaign.ActionStart) // no worker runs
		ids := h.pendingDeliveriesOn(c, campaign.ChannelPush, 90)
		var fcmSubs []int64 // seed: an FCM token for odd i not a multiple of 3 (none opted out)
		for i, id := range ids {
			if i%3 != 0 && i%2 == 1 && i%10 != 0 {
				fcmSubs = append(fcmSubs, id)
			}
		}
		e := h.newEngine(worker.Settings{RetryBase: time.Hour})
		h.fcm.FailRate(1, 503, "UNAVAILABLE")
		if err := e.RunCountedSendTask(h.ctx, c.ID, campaign.ChannelPush, fcmSubs[:22]); err != nil {
			t.Fatal(err)
		}
		failed := h.fcm.Attempts()
		if failed < 20 {
			t.Fatalf("FCM saw %d calls while failing, want the breaker's 20", failed)
		}
		h.fcm.FailRate(0, 0, "")

		h.clock.Set(start.Add(6 * time.Second))
		if err := e.RunCountedSendTask(h.ctx, c.ID, campaign.ChannelPush, fcmSubs[22:23]); err != nil {
			t.Fatal(err)
		}
		if n := h.fcm.Attempts(); n != failed {
			t.Fatalf("a push went to FCM while its breaker was open (%d calls, %d before)", n, failed)
		}
		if n := testutil.ToFloat64(h.metrics.Deferred.WithLabelValues("push", "breaker_open")); n < 1 {
			t.Errorf("outreach_deferred_total{push, breaker_open} = %v, want at least 1", n)
		}
		if n := testutil.ToFloat64(h.metrics.Messages.WithLabelValues("push", "fcm", "transient")); n != float64(failed) {
			t.Errorf("outreach_messages_total{push, fcm, transient} = %v, want the %d calls FCM failed", n, failed)
		}
		// A subscriber with a dead APNs token and an FCM token whose breaker
		// is open: the dead token is removed, and the delivery waits for the
		// breaker instead of failing.
		both := fcmSubs[24]
		msisdn := fmt.Sprintf("+8491%07d", slices.Index(ids, both))
		deadToken := fmt.Sprintf("%064x", 999)
		if err := h.store.PutDevice(h.ctx, h.tenant.ID, msisdn, subscriber.Device{Platform: subscriber.PlatformAPNs, Token: deadToken}); err != nil {
			t.Fatal(err)
		}
		h.apns.Unregister(deadToken)
		if err := e.RunCountedSendTask(h.ctx, c.ID, campaign.ChannelPush, []int64{both}); err != nil {
			t.Fatal(err)
		}
		if h.apns.CountToken(deadToken) != 0 || h.fcm.Attempts() != failed {
			t.Fatalf("a push went out: APNs %d, FCM calls %d", h.apns.CountToken(deadToken), h.fcm.Attempts())
		}
		pending, err := h.store.ListDeliveries(h.ctx, c.TenantID, c.ID, campaign.StatusPending, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(pending, func(d campaign.Delivery) bool { return d.SubscriberID == both }) {
			t.Errorf("a subscriber whose FCM device waits for the breaker was not left pending after their dead APNs token")
		}

		h.clock.Set(start.Add(11 * time.Second))
		if err := e.RunCountedSendTask(h.ctx, c.ID, campaign.ChannelPush, fcmSubs[23:24]); err != nil {
			t.Fatal(err)
		}
		if n := h.fcm.Count(); n != 1 {
			t.Fatalf("FCM delivered %d pushes 11 s after its breaker opened and 5 s after the last deferral, want 1", n)
		}
	})
}

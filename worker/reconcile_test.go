package worker_test

import (
	"slices"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/subscriber"
	"outreach/worker"
)

func TestAnEmptiedRedisLosesNoDelivery(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(600) // 540 eligible at 100/s: about 5 seconds
		set := worker.Settings{SMSRate: 100, StaleAfter: time.Second}
		h.startWorker(set)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		h.act(c.ID, campaign.ActionStart)
		for h.twilio.Count() < 150 {
			time.Sleep(10 * time.Millisecond)
		}
		// Every queued task, the fan-out lease and the backlog count go (this
		// test's own database only: other packages share the server).
		if err := h.conns[0].Redis.FlushDB(h.ctx).Err(); err != nil {
			t.Fatal(err)
		}
		flushedAt := h.twilio.Count()
		h.waitState(c.ID, campaign.StateCompleted, 90*time.Second)
		h.expectOnce(msisdns)
		t.Logf("Redis emptied after %d of 540 messages; all 540 sent once", flushedAt)
	})
}

func TestAStoppedWorkerLeavesItsDeliveriesToTheNext(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(300) // 270 eligible at 50/s
		set := worker.Settings{SMSRate: 50, StaleAfter: time.Second}
		stop := h.startWorker(set)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		h.act(c.ID, campaign.ActionStart)
		for h.twilio.Count() < 50 {
			time.Sleep(10 * time.Millisecond)
		}
		// The worker stops mid-campaign and its queue is emptied with it
		// (Redis restarted): only the store knows what is left.
		stop()
		if err := h.conns[0].Redis.FlushDB(h.ctx).Err(); err != nil {
			t.Fatal(err)
		}
		stoppedAt := h.twilio.Count()
		if stoppedAt >= 200 {
			t.Fatalf("the worker sent %d of 270 while stopping: it did not stop promptly", stoppedAt)
		}
		h.startWorker(set)
		h.waitState(c.ID, campaign.StateCompleted, 90*time.Second)
		h.expectOnce(msisdns)
		t.Logf("worker stopped after %d messages; the next one sent the rest, each once", stoppedAt)
	})
}

func TestDeliveriesClaimedByADeadWorkerAreSentOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(100)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		c = h.act(c.ID, campaign.ActionStart) // no worker runs yet
		// A worker claimed twenty deliveries and died before sending them.
		h.claimedDeliveries(c, 20)
		h.startWorker(worker.Settings{StaleAfter: time.Second, SendingStaleAfter: 5 * time.Second})
		h.waitState(c.ID, campaign.StateCompleted, 60*time.Second)
		h.expectOnce(msisdns)
	})
}

// expectOnce checks every subscriber seeded by seed got exactly one SMS,
// the opted-out none.
func (h *harness) expectOnce(msisdns []string) {
	h.t.Helper()
	for i, m := range msisdns {
		want := 1
		if i%10 == 0 {
			want = 0
		}
		if got := h.twilio.CountTo(m); got != want {
			h.t.Fatalf("subscriber %d got %d messages, want %d", i, got, want)
		}
	}
}

// TestASendTaskLeavesTheBacklogWhenItStarts: the fan-out backlog counts the
// deliveries waiting in Redis. A task must leave it when it starts: a
// worker killed mid-task never ends it, asynq runs it again after its
// lease as a retry, and deliveries still counted then would stay counted
// for good; a backlog full of them stopped a campaign's fan-out.
func TestASendTaskLeavesTheBacklogWhenItStarts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(20)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		c = h.act(c.ID, campaign.ActionStart) // no worker runs: no fan-out
		ids := h.pendingDeliveries(c, 5)
		rdb := h.conns[0].Redis
		if err := rdb.Set(h.ctx, worker.BacklogKey(c.ID), len(ids), 0).Err(); err != nil {
			t.Fatal(err)
		}
		// The provider holds each answer: the task is mid-send for a while.
		h.twilio.SetLatency(2 * time.Second)
		e := h.newEngine(worker.Settings{})
		done := make(chan error, 1)
		go func() { done <- e.RunCountedSendTask(h.ctx, c.ID, campaign.ChannelSMS, ids) }()
		for h.twilio.Count() == 0 {
			select {
			case err := <-done:
				t.Fatalf("the task ended before its first message reached the provider: %v", err)
			case <-time.After(5 * time.Millisecond):
			}
		}
		// The first message is at the provider, its answer held back.
		if n, err := rdb.Get(h.ctx, worker.BacklogKey(c.ID)).Int(); err != nil || n != 0 {
			t.Errorf("backlog while the task sends = %d (%v), want 0", n, err)
		}
		h.twilio.SetLatency(0)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n, _ := rdb.Get(h.ctx, worker.BacklogKey(c.ID)).Int(); n != 0 {
			t.Errorf("backlog after the task = %d, want 0 (counted once)", n)
		}
	})
}

// pendingDeliveries writes pending SMS deliveries for the first n of c's
// audience, as a fan-out round would, and returns their subscriber ids.
func (h *harness) pendingDeliveries(c campaign.Campaign, n int) []int64 {
	h.t.Helper()
	return h.pendingDeliveriesOn(c, campaign.ChannelSMS, n)
}

// pendingDeliveriesOn is pendingDeliveries on channel ch.
func (h *harness) pendingDeliveriesOn(c campaign.Campaign, ch campaign.Channel, n int) []int64 {
	h.t.Helper()
	ids, err := h.store.AudiencePage(h.ctx, c, 0, n)
	if err != nil || len(ids) != n {
		h.t.Fatalf("audience page: %v, %v", ids, err)
	}
	nd := make([]campaign.NewDelivery, len(ids))
	for i, id := range ids {
		nd[i] = campaign.NewDelivery{SubscriberID: id, ReferralCode: campaign.NewReferralCode()}
	}
	if _, err := h.store.InsertDeliveries(h.ctx, c, ch, nd); err != nil {
		h.t.Fatal(err)
	}
	return ids
}

// claimedDeliveries is pendingDeliveries, then claimed as a worker's send
// task would (the deliveries "sending"); it returns the claimed recipients.
func (h *harness) claimedDeliveries(c campaign.Campaign, n int) []campaign.Recipient {
	h.t.Helper()
	ids := h.pendingDeliveries(c, n)
	claimed, err := h.store.ClaimDeliveries(h.ctx, c.ID, campaign.ChannelSMS, ids)
	if err != nil || len(claimed) != n {
		h.t.Fatalf("claimed %d of %d, %v", len(claimed), n, err)
	}
	return claimed
}

// TestAClaimIsStaleByTheWallClockNotTheEnginesClock: the store stamps a
// claim with the wall clock, so its age is judged by it. A jump of the
// engine's clock (the policy's, which a test or a replay may move) must not
// make a live worker's claims look dead: they would go back to pending
// while being sent, and be sent twice or skipped after going out.
func TestAClaimIsStaleByTheWallClockNotTheEnginesClock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(20)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		c = h.act(c.ID, campaign.ActionStart) // no worker runs yet
		h.claimedDeliveries(c, 5)
		e := h.newEngine(worker.Settings{SendingStaleAfter: time.Minute})
		h.clock.Set(time.Now().Add(time.Hour))
		if err := e.MonitorPass(h.ctx, true); err != nil {
			t.Fatal(err)
		}
		if s := h.stats(c.ID); s.Deliveries[campaign.StatusSending] != 5 {
			t.Fatalf("deliveries %v after the engine's clock moved an hour on: want the 5 fresh claims still sending",
				s.Deliveries)
		}
	})
}

// A server restarted on the embedded default (Settings.SoleWorker: the
// only worker, its queue new) sends at once what the process before it
// left: the deliveries it had claimed and never recorded, and those whose
// tasks were in its queue. The monitor's timers (here two and five
// minutes) are for workers sharing a Redis; a restarted server used to
// send nothing for minutes, an exposure alert included.
func TestARestartedSoleWorkerSendsWhatTheLastOneLeftAtOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(100)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		c = h.act(c.ID, campaign.ActionStart)
		// The process before fanned out, claimed twenty and died.
		ids := h.pendingDeliveries(c, 100)
		if claimed, err := h.store.ClaimDeliveries(h.ctx, c.ID, campaign.ChannelSMS, ids[1:21]); err != nil || len(claimed) != 20 {
			t.Fatalf("claimed %d, %v", len(claimed), err)
		}
		if err := h.store.SetFanoutProgress(h.ctx, c.ID, ids[len(ids)-1], true); err != nil {
			t.Fatal(err)
		}
		if err := h.conn().Redis.FlushDB(h.ctx).Err(); err != nil { // its queue is gone
			t.Fatal(err)
		}
		h.startWorker(worker.Settings{SoleWorker: true, StaleAfter: 2 * time.Minute, SendingStaleAfter: 5 * time.Minute})
		h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)
		h.expectOnce(msisdns)
	})
}

// Fan-out walks the audience by subscriber id and never back; subscribers
// the walk had passed when they came to match (here, put on the
// campaign's list by an import during fan-out) are reached by its
// catch-up pass before fan-out is done. They used to be missed for good.
func TestSubscribersWhoMatchDuringFanoutAreReached(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(20)
		c := h.listWalked(msisdns, campaign.ChannelSMS)
		// The walk has passed the list (1 and 19) when the rest of it lands:
		// 5 and 7, known already, below the cursor.
		h.onList(msisdns, 5, 7)
		h.startWorker(worker.Settings{})
		h.waitState(c.ID, campaign.StateCompleted, 60*time.Second)
		for i, m := range msisdns {
			want := 0
			if i == 1 || i == 5 || i == 7 || i == 19 {
				want = 1
			}
			if got := h.twilio.CountTo(m); got != want {
				t.Errorf("subscriber %d got %d SMS, want %d", i, got, want)
			}
		}
	})
}

// onList puts the seeded subscribers idx (of msisdns) on the list "tet".
func (h *harness) onList(msisdns []string, idx ...int) {
	h.t.Helper()
	rows := make([]subscriber.Row, len(idx))
	for i, n := range idx {
		rows[i] = subscriber.Row{MSISDN: msisdns[n]}
	}
	if _, err := h.store.UpsertSubscribers(h.ctx, h.tenant.ID, rows, "tet"); err != nil {
		h.t.Fatal(err)
	}
}

// listWalked starts a campaign on channels to the list "tet" of subscribers
// 1 and 19 (of msisdns), with no worker running, as a fan-out walk would
// have left it: both written on every channel, pending, and passed.
func (h *harness) listWalked(msisdns []string, channels ...campaign.Channel) campaign.Campaign {
	h.t.Helper()
	h.onList(msisdns, 1, 19)
	tpl := map[campaign.Channel]string{campaign.ChannelSMS: h.template(campaign.TemplateInput{Name: "tet",
		Channel: campaign.ChannelSMS, Body: "Chuc mung nam moi {{.InstallLink}}"})}
	if slices.Contains(channels, campaign.ChannelPush) {
		tpl[campaign.ChannelPush] = h.template(campaign.TemplateInput{Name: "tet-push", Channel: campaign.ChannelPush,
			Title: "Tet", Body: "Chuc mung nam moi"})
	}
	c, err := h.service.CreateCampaign(h.ctx, h.admin, campaign.CampaignInput{Name: "Tet", Kind: campaign.KindInstallPromotion,
		Channels: channels, Templates: tpl, Audience: campaign.Audience{List: "tet"}})
	if err != nil {
		h.t.Fatal(err)
	}
	c = h.act(c.ID, campaign.ActionStart)
	var ids []int64
	for _, ch := range channels {
		ids = h.pendingDeliveriesOn(c, ch, 2)
	}
	if err := h.store.SetFanoutProgress(h.ctx, c.ID, ids[1], false); err != nil {
		h.t.Fatal(err)
	}
	return c
}

// A worker killed between counting a fan-out round into the campaign's
// backlog and queuing its tasks leaves the count full of deliveries no
// task carries. Fan-out used to wait for them for good (the campaign never
// finished); once the count has stayed full and unchanged for StaleAfter,
// it starts afresh and the campaign completes.
func TestABacklogCountLeftByAKilledWorkerDoesNotStopFanout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(300)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		set := worker.Settings{MaxBacklog: 200, StaleAfter: 2 * time.Second}
		if err := h.conn().Redis.Set(h.ctx, worker.BacklogKey(c.ID), 200, 0).Err(); err != nil {
			t.Fatal(err)
		}
		h.startWorker(set)
		h.act(c.ID, campaign.ActionStart)
		h.waitState(c.ID, campaign.StateCompleted, 60*time.Second)
		h.expectOnce(msisdns)
	})
}

package worker_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"outreach/campaign"
	"outreach/internal/queue"
	"outreach/provider/provisioning/provisioningfake"
	"outreach/reward"
	"outreach/worker"
)

// A fulfilment task that asynq archived (its retries used up while the
// provisioning API was down for a quarter of an hour, or its lease expired
// on the last retry after a kill) keeps its task id. The reconciler must
// still hand the pending reward back to the queue: a pending reward whose
// only task is archived would never be granted.
func TestAPendingRewardWhoseTaskWasArchivedIsFulfilledAgain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(1)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		rr := h.rewardRig(c, time.Nanosecond, worker.Settings{MonitorEvery: 100 * time.Millisecond, StaleAfter: time.Second})
		subs, fake, ledger, conn := rr.subs, rr.fake, rr.ledger, rr.conn

		r, _, err := ledger.Create(h.ctx, reward.Request{TenantID: h.tenant.ID, CampaignID: c.ID, SubscriberID: subs[0],
			MSISDN: "+84910000000", DeviceID: "device-1", InstallID: uuid.NewString(), DataMB: 5120, BudgetMB: 5120 * 10})
		if err != nil || r.State != reward.StatePending {
			t.Fatalf("reward %+v: %v", r, err)
		}
		insp := asynq.NewInspectorFromRedisClient(conn.Redis)
		if err := insp.ArchiveTask(queue.QueueDefault, "reward:"+r.ID); err != nil {
			t.Fatalf("archive the fulfilment task: %v", err)
		}

		rr.runUntilGranted(t, h, r.ID, 30*time.Second, "its task was archived")
		if tot := fake.Totals(); tot.Grants != 1 {
			t.Errorf("credited %d times, want once", tot.Grants)
		}
	})
}

// A worker killed while provisioning a reward leaves its fulfilment task
// "active" under a lease nobody will renew; asynq takes such a task back
// only once the lease has run out (a pass a minute), and the reward
// reconciler only looks at rewards untouched for OUTREACH_STALE_AFTER. A
// live worker hands the reward of a task active under no live asynq server
// to a new task without waiting for either: here the dead worker's lease
// runs for another hour and the reconciler's wait is an hour too, so the
// reward is granted only if that sweep finds the orphan.
func TestARewardTaskOrphanedByADeadWorkerIsHandedToANewTask(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(1)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		rr := h.rewardRig(c, time.Hour, worker.Settings{MonitorEvery: 100 * time.Millisecond, StaleAfter: time.Hour})
		fake, ledger, conn := rr.fake, rr.ledger, rr.conn

		r, _, err := ledger.Create(h.ctx, reward.Request{TenantID: h.tenant.ID, CampaignID: c.ID, SubscriberID: rr.subs[0],
			MSISDN: "+84910000000", DeviceID: "device-1", InstallID: uuid.NewString(), DataMB: 5120, BudgetMB: 5120 * 10})
		if err != nil || r.State != reward.StatePending {
			t.Fatalf("reward %+v: %v", r, err)
		}
		taskID := "reward:" + r.ID
		h.orphan(conn, queue.QueueDefault, taskID)

		rr.runUntilGranted(t, h, r.ID, time.Minute, "its worker died")
		if tot := fake.Totals(); tot.Grants != 1 {
			t.Errorf("credited %d times, want once", tot.Grants)
		}
		if info, err := asynq.NewInspectorFromRedisClient(conn.Redis).GetTaskInfo(queue.QueueDefault, taskID); err != nil || info.State != asynq.TaskStateActive {
			t.Errorf("the orphan itself should still wait for its lease: %+v, %v", info, err)
		}
	})
}

// A campaign with a confirmation template sends each subscriber whose
// reward is granted one SMS from it, rendered and transliterated, without
// the marketing label: a service message, sent even to a subscriber who
// opted out of marketing. A second fulfilment of the granted reward sends
// nothing more. A template that is not an SMS template is refused.
func TestAGrantedRewardIsConfirmedOnceBySMS(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		rr, r, msisdn := h.confirmedRewardRig(true)
		rr.fulfiller.Confirm = rr.engine.ConfirmReward
		if err := rr.fulfiller.Fulfil(h.ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		if err := rr.fulfiller.Fulfil(h.ctx, r.ID); err != nil { // a repeat (a retried task)
			t.Fatal(err)
		}
		if got, err := rr.store.GetReward(h.ctx, r.ID); err != nil || got.State != reward.StateGranted {
			t.Fatalf("reward %+v, %v: want granted", got, err)
		}
		if n := h.twilio.CountTo(msisdn); n != 1 {
			t.Fatalf("the subscriber got %d confirmations, want 1", n)
		}
		want := "Cam on Khach 0! Ban da duoc cong 5120MB data."
		if m := h.twilio.Messages(); len(m) != 1 || m[0].Body != want {
			t.Errorf("confirmation %+v, want the body %q", m, want)
		}
	})
}

// The confirmation goes in a task of its own (as the server wires it): a
// transient provider error is retried, so one 503 does not lose it, and it
// is sent once.
func TestAConfirmationOutlivesATransientProviderError(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		rr, r, msisdn := h.confirmedRewardRig(false)
		rr.fulfiller.Confirm = rr.engine.EnqueueConfirm
		h.twilio.FailNext(1, 503, 0)
		if err := rr.fulfiller.Fulfil(h.ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(h.ctx)
		done := make(chan struct{})
		go func() { defer close(done); rr.engine.Run(runCtx) }()
		defer func() { stop(); <-done }()
		insp := asynq.NewInspectorFromRedisClient(rr.conn.Redis)
		deadline := time.Now().Add(30 * time.Second)
		for h.twilio.CountTo(msisdn) == 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		for time.Now().Before(deadline) {
			if _, err := insp.GetTaskInfo(queue.QueueDefault, "confirm:"+r.ID); err != nil {
				break // done, and gone
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n, tries := h.twilio.CountTo(msisdn), h.twilio.Attempts(); n != 1 || tries != 2 {
			t.Errorf("the subscriber got %d confirmations in %d calls to the provider, want 1 in 2 (one 503)", n, tries)
		}
	})
}

// A granted reward's confirmation is in the ledger until it is sent,
// refused or given up: one whose task was lost (a restarted server's
// in-process Redis, an emptied Redis) or ended archived while still due
// (its outcome could not be recorded on its last retry; asynq keeps the id
// for months) is queued again by the reconciler and sent once; one the
// provider refuses for good is no longer due. Then the reconciler leaves
// it. A lost one used to be lost for good.
func TestAConfirmationIsSentOnceWhateverHappensToItsTask(t *testing.T) {
	cases := []struct {
		name string
		// before runs after the grant queued the confirmation.
		before func(h *harness, rr rewardRig, r reward.Reward, msisdn string)
		sent   int
	}{
		{"its task lost with an emptied Redis", func(h *harness, rr rewardRig, _ reward.Reward, _ string) {
			if err := rr.conn.Redis.FlushDB(h.ctx).Err(); err != nil {
				h.t.Fatal(err)
			}
		}, 1},
		{"its task archived while still due", func(h *harness, rr rewardRig, r reward.Reward, _ string) {
			if err := asynq.NewInspectorFromRedisClient(rr.conn.Redis).ArchiveTask(queue.QueueDefault, "confirm:"+r.ID); err != nil {
				h.t.Fatal(err)
			}
		}, 1},
		{"refused by the provider for good", func(h *harness, _ rewardRig, _ reward.Reward, msisdn string) {
			h.twilio.FailTo(msisdn, 400, 21211)
		}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, h *harness) {
				rr, r, msisdn := h.confirmedRewardRig(false)
				rr.fulfiller.Confirm = rr.engine.EnqueueConfirm
				if err := rr.fulfiller.Fulfil(h.ctx, r.ID); err != nil {
					t.Fatal(err)
				}
				tc.before(h, rr, r, msisdn)
				rr.ledger.StaleAfter = time.Nanosecond
				if err := rr.engine.ReconcileRewards(h.ctx); err != nil {
					t.Fatal(err)
				}
				rr.start(t, h)
				rr.waitConfirmed(t, h, r.ID)
				if n := h.twilio.CountTo(msisdn); n != tc.sent {
					t.Fatalf("the subscriber got %d confirmations, want %d", n, tc.sent)
				}
				// Done and recorded: another pass queues nothing more.
				if err := rr.engine.ReconcileRewards(h.ctx); err != nil {
					t.Fatal(err)
				}
				if info, err := asynq.NewInspectorFromRedisClient(rr.conn.Redis).GetTaskInfo(queue.QueueDefault,
					"confirm:"+r.ID); err == nil && info.State != asynq.TaskStateArchived {
					t.Errorf("a confirmation no longer due was queued again: %+v", info)
				}
			})
		})
	}
}

// A confirmation task queued again for a confirmation no longer due (the
// reconciler read it due just before the last task finished) sends
// nothing.
func TestAConfirmationNoLongerDueIsNotSentAgain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		rr, r, msisdn := h.confirmedRewardRig(false)
		rr.fulfiller.Confirm = rr.engine.EnqueueConfirm
		if err := rr.fulfiller.Fulfil(h.ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		rr.start(t, h)
		rr.waitConfirmed(t, h, r.ID)
		if err := rr.engine.EnqueueConfirm(h.ctx, r); err != nil { // the reconciler's stale read
			t.Fatal(err)
		}
		rr.waitConfirmed(t, h, r.ID)
		if n, tries := h.twilio.CountTo(msisdn), h.twilio.Attempts(); n != 1 || tries != 1 {
			t.Errorf("the subscriber got %d confirmations in %d calls, want 1 in 1", n, tries)
		}
	})
}

// confirmedRewardRig makes a campaign whose rewards are confirmed by SMS
// (checking first that a push template is refused for it when checkPush),
// a reward rig for it, and a pending reward for its first subscriber, who
// has opted out of marketing, at msisdn.
func (h *harness) confirmedRewardRig(checkPush bool) (rr rewardRig, r reward.Reward, msisdn string) {
	t := h.t
	t.Helper()
	msisdns := h.seed(1) // opted out of marketing (seed opts out every tenth)
	sms := h.template(campaign.TemplateInput{Name: "promo-sms", Channel: campaign.ChannelSMS, Locale: "vi",
		Body: "Cài Bluezone: {{.InstallLink}}", Transliterate: true})
	thanks := h.template(campaign.TemplateInput{Name: "thanks", Channel: campaign.ChannelSMS, Locale: "vi",
		Body: "Cảm ơn {{.Name}}! Bạn đã được cộng {{.RewardMB}}MB data.", Transliterate: true})
	in := campaign.CampaignInput{Name: "Bluezone Q4", Kind: campaign.KindInstallPromotion,
		Channels: []campaign.Channel{campaign.ChannelSMS}, Templates: map[campaign.Channel]string{campaign.ChannelSMS: sms},
		Reward: &campaign.Reward{DataMB: 5120, BudgetMB: 5120 * 10, AttributionDays: 14}}
	if checkPush {
		in.Reward.ConfirmTemplate = h.template(campaign.TemplateInput{Name: "push", Channel: campaign.ChannelPush, Locale: "vi",
			Title: "Bluezone", Body: "Cảm ơn"})
		if _, err := h.service.CreateCampaign(h.ctx, h.admin, in); err == nil || !strings.Contains(err.Error(), "reward.confirm_template") {
			t.Errorf("a push template to confirm rewards: %v, want an error naming reward.confirm_template", err)
		}
	}
	in.Reward.ConfirmTemplate = thanks
	c, err := h.service.CreateCampaign(h.ctx, h.admin, in)
	if err != nil {
		t.Fatal(err)
	}
	rr = h.rewardRig(c, 0, worker.Settings{SMSRate: 100000})
	r, _, err = rr.ledger.Create(h.ctx, reward.Request{TenantID: h.tenant.ID, CampaignID: c.ID, SubscriberID: rr.subs[0],
		MSISDN: msisdns[0], DeviceID: "device-1", InstallID: uuid.NewString(), DataMB: 5120, BudgetMB: 5120 * 10})
	if err != nil || r.State != reward.StatePending {
		t.Fatalf("reward %+v: %v", r, err)
	}
	return rr, r, msisdns[0]
}

// rewardRig is an engine with a reward ledger and a fulfiller that credits
// a provisioning fake, for campaign c's first subscriber.
type rewardRig struct {
	subs      []int64 // c's audience, its first page of one
	store     reward.Store
	fake      *provisioningfake.Server
	ledger    *reward.Ledger
	fulfiller *reward.Fulfiller
	engine    *worker.Engine
	conn      *queue.Conn
}

// runUntilGranted runs the rig's engine until the test ends and waits for
// reward id to be granted, failing after within ("the reward is still
// pending 30s after <after>").
func (rr rewardRig) runUntilGranted(t *testing.T, h *harness, id string, within time.Duration, after string) {
	t.Helper()
	rr.start(t, h)
	insp := asynq.NewInspectorFromRedisClient(rr.conn.Redis)
	deadline := time.Now().Add(within)
	for {
		got, err := rr.store.GetReward(h.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == reward.StateGranted {
			return
		}
		if time.Now().After(deadline) {
			task := "gone"
			if info, err := insp.GetTaskInfo(queue.QueueDefault, "reward:"+id); err == nil {
				task = info.State.String()
			}
			t.Fatalf("the reward is still %s %v after %s (task reward:%s now %s); the provisioning API saw %d calls",
				got.State, within, after, id, task, rr.fake.Totals().Requests)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// start runs the rig's engine until the test ends.
func (rr rewardRig) start(t *testing.T, h *harness) {
	runCtx, stop := context.WithCancel(h.ctx)
	done := make(chan struct{})
	go func() { defer close(done); rr.engine.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
}

// waitConfirmed waits (up to 30 s) until reward id's confirmation is no
// longer due and its task is done (gone, or archived after a refusal).
func (rr rewardRig) waitConfirmed(t *testing.T, h *harness, id string) {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(rr.conn.Redis)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		due, err := rr.store.DueConfirmations(h.ctx, time.Now().Add(time.Hour), 10)
		info, terr := insp.GetTaskInfo(queue.QueueDefault, "confirm:"+id)
		if err == nil && len(due) == 0 && (terr != nil || info.State == asynq.TaskStateArchived) {
			return
		}
	}
	t.Fatalf("the confirmation of reward %s is still due or queued after 30 s", id)
}

func (h *harness) rewardRig(c campaign.Campaign, ledgerStale time.Duration, set worker.Settings) rewardRig {
	h.t.Helper()
	subs, err := h.store.AudiencePage(h.ctx, c, 0, 1)
	if err != nil || len(subs) != 1 {
		h.t.Fatalf("audience: %v %v", subs, err)
	}
	st := h.store.(reward.Store)
	fake := provisioningfake.New("rewards-secret")
	h.t.Cleanup(fake.Close)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ledger := &reward.Ledger{Store: st, StaleAfter: ledgerStale, Logger: quiet}
	ful := &reward.Fulfiller{Store: st, Provisioner: fake.Client(), Logger: quiet}
	conn := h.conn()
	e := worker.New(worker.Deps{Store: h.store, Subscribers: h.store, Queue: conn, SMS: h.sms, Push: h.push,
		Policy: h.policy, Ledger: ledger, Fulfiller: ful, Settings: set, Logger: quiet})
	h.t.Cleanup(func() { e.Close() })
	ledger.Enqueuer = e
	return rewardRig{subs: subs, store: st, fake: fake, ledger: ledger, fulfiller: ful, engine: e, conn: conn}
}

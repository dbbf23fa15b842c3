package worker_test

import (
	"context"
	"io"
	"log/slog"
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
		subs, err := h.store.AudiencePage(h.ctx, c, 0, 1)
		if err != nil || len(subs) != 1 {
			t.Fatalf("audience: %v %v", subs, err)
		}
		st := h.store.(reward.Store)
		fake := provisioningfake.New("rewards-secret")
		t.Cleanup(fake.Close)
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		ledger := &reward.Ledger{Store: st, StaleAfter: time.Nanosecond, Logger: quiet}
		conn := h.conn()
		e := worker.New(worker.Deps{Store: h.store, Subscribers: h.store, Queue: conn, SMS: h.sms, Push: h.push,
			Policy: h.policy, Ledger: ledger, Fulfiller: &reward.Fulfiller{Store: st, Provisioner: fake.Client(), Logger: quiet},
			Settings: worker.Settings{MonitorEvery: 100 * time.Millisecond, StaleAfter: time.Second}, Logger: quiet})
		t.Cleanup(func() { e.Close() })
		ledger.Enqueuer = e

		r, _, err := ledger.Create(h.ctx, reward.Request{TenantID: h.tenant.ID, CampaignID: c.ID, SubscriberID: subs[0],
			MSISDN: "+84910000000", DeviceID: "device-1", InstallID: uuid.NewString(), DataMB: 5120, BudgetMB: 5120 * 10})
		if err != nil || r.State != reward.StatePending {
			t.Fatalf("reward %+v: %v", r, err)
		}
		insp := asynq.NewInspectorFromRedisClient(conn.Redis)
		if err := insp.ArchiveTask(queue.QueueDefault, "reward:"+r.ID); err != nil {
			t.Fatalf("archive the fulfilment task: %v", err)
		}

		runCtx, stop := context.WithCancel(h.ctx)
		done := make(chan struct{})
		go func() { defer close(done); e.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-done })

		deadline := time.Now().Add(30 * time.Second)
		for {
			got, err := st.GetReward(h.ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State == reward.StateGranted {
				break
			}
			if time.Now().After(deadline) {
				task := "gone"
				if info, err := insp.GetTaskInfo(queue.QueueDefault, "reward:"+r.ID); err == nil {
					task = info.State.String()
				}
				t.Fatalf("the reward is still %s 30 s after its task was archived (task now %s); the provisioning API saw %d calls",
					got.State, task, fake.Totals().Requests)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if tot := fake.Totals(); tot.Grants != 1 {
			t.Errorf("credited %d times, want once", tot.Grants)
		}
	})
}

package worker_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"outreach/campaign"
	"outreach/internal/queue"
	"outreach/worker"
)

// claimCounter is a store that counts how many times each delivery was
// claimed through it, by campaign and subscriber.
type claimCounter struct {
	testStore
	mu     sync.Mutex
	claims map[string]map[int64]int
}

func (s *claimCounter) ClaimDeliveries(ctx context.Context, campaignID string, ch campaign.Channel, ids []int64) ([]campaign.Recipient, error) {
	rs, err := s.testStore.ClaimDeliveries(ctx, campaignID, ch, ids)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.claims == nil {
		s.claims = map[string]map[int64]int{}
	}
	if s.claims[campaignID] == nil {
		s.claims[campaignID] = map[int64]int{}
	}
	for _, r := range rs {
		s.claims[campaignID][r.SubscriberID]++
	}
	return rs, err
}

// most answers how many deliveries of campaignID were claimed, and the
// most times any one was.
func (s *claimCounter) most(campaignID string) (deliveries, most int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.claims[campaignID] {
		deliveries++
		most = max(most, n)
	}
	return deliveries, most
}

// A stopping worker claims nothing more and its pools take no task more,
// so a batch it hands on (handOn) goes to the next worker. While the main
// pool drained a slow push, the alert pool used to take its own hand-offs
// again at once: each claimed a chunk and put it back, a hot loop that
// used up the deliveries' attempts (174-217 in four seconds, MaxAttempts
// 8), and a transient error after the restart then failed them for good.
// (A put-back now gives its claim's attempt back, so the loop shows in the
// claims and the tasks run, counted here, rather than in the attempts.)
func TestAStoppingWorkerClaimsNothingMore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(60)
		// The main pool drains a slow push while the worker stops, and
		// the alert's sends are in flight when it begins to: two or three
		// of its six tasks are running (two hands in each pool), the rest
		// queued, so that the first chunk of a task the stopping worker
		// would take is pending.
		h.fcm.SetLatency(2 * time.Second)
		h.twilio.SetLatency(time.Second)
		claims := &claimCounter{testStore: h.store}
		plain := h.store
		h.store = claims
		stop := h.startWorker(worker.Settings{AlertConcurrency: 2, Concurrency: 2})
		h.store = plain
		promo := h.promo([]campaign.Channel{campaign.ChannelPush}, 0)
		h.act(promo.ID, campaign.ActionStart)
		waitUntil(t, "the FCM fake to be sent a push", func() bool { return h.fcm.Attempts() > 0 })
		contacts, sms := h.alertContacts(600) // six send tasks
		res, err := h.createAlert(h.ctx, h.service, contacts, sms)
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the alert's first chunk to be with Twilio", func() bool { return h.twilio.Attempts() >= 20 })
		ran := h.alertTasksRun()
		stop()
		ran = h.alertTasksRun() - ran

		// The scenario: the worker stopped with the alert part sent and
		// handed the rest on to the next worker, as tasks in Redis.
		ds, err := h.store.ListDeliveries(h.ctx, h.tenant.ID, res.ID, "", 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		queued := h.queuedSends(res.ID)
		maxA, sent, pending, unqueued, sentQueued := 0, 0, 0, 0, 0
		for _, d := range ds {
			maxA = max(maxA, d.Attempts)
			switch d.Status {
			case campaign.StatusSent:
				sent++
				if queued[d.SubscriberID] {
					sentQueued++
				}
			case campaign.StatusPending:
				pending++
				if !queued[d.SubscriberID] {
					unqueued++
				}
			}
		}
		claimed, most := claims.most(res.ID)
		t.Logf("at stop: %d sent, %d pending (%d in no queued task); %d claimed, one %d times; attempts at most %d; %d alert tasks run while stopping",
			sent, pending, unqueued, claimed, most, maxA, ran)
		if sent == 0 || pending == 0 {
			t.Fatalf("the worker stopped with %d of the alert's deliveries sent and %d pending: want some of each", sent, pending)
		}
		if unqueued > 0 {
			t.Fatalf("%d of the alert's %d pending deliveries were not handed on to the next worker", unqueued, pending)
		}
		if sentQueued > 0 {
			t.Errorf("the stopping worker handed on %d deliveries it had sent", sentQueued)
		}
		if ran > 4 {
			t.Errorf("the stopping worker ran %d alert tasks: more than the 4 it had in hand", ran)
		}
		if most > 2 {
			t.Errorf("the stopping worker claimed a delivery %d times (%d deliveries claimed)", most, claimed)
		}
		if maxA > 2 {
			t.Errorf("a delivery never sent was claimed %d times during one shutdown (MaxAttempts is 8)", maxA)
		}

		// The next worker sends them; a transient 503 is retried (the
		// claims of the loop used up their attempts, and it failed them).
		h.fcm.SetLatency(0)
		h.twilio.SetLatency(0)
		h.twilio.FailNext(5, 503, 20500)
		h.startWorker(worker.Settings{})
		st := h.waitState(res.ID, campaign.StateCompleted, 20*time.Second)
		if st.Deliveries[campaign.StatusFailed] > 0 {
			t.Errorf("%d alert deliveries failed on a single transient 503", st.Deliveries[campaign.StatusFailed])
		}
	})
}

// waitUntil waits for cond, failing the test after a minute.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// alertTasksRun is how many tasks of the alerts queue workers have run.
func (h *harness) alertTasksRun() int {
	h.t.Helper()
	info, err := asynq.NewInspectorFromRedisClient(h.conn().Redis).GetQueueInfo(queue.QueueAlerts)
	if err != nil {
		h.t.Fatal(err)
	}
	return info.ProcessedTotal
}

// queuedSends are the subscribers whose deliveries of campaignID a send
// task waiting in the alerts queue names.
func (h *harness) queuedSends(campaignID string) map[int64]bool {
	h.t.Helper()
	insp := asynq.NewInspectorFromRedisClient(h.conn().Redis)
	var tasks []*asynq.TaskInfo
	for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){insp.ListPendingTasks, insp.ListScheduledTasks} {
		ts, err := list(queue.QueueAlerts, asynq.PageSize(10000))
		if err != nil {
			h.t.Fatal(err)
		}
		tasks = append(tasks, ts...)
	}
	ids := map[int64]bool{}
	for _, ti := range tasks {
		var p struct {
			CampaignID    string  `json:"c"`
			SubscriberIDs []int64 `json:"s"`
		}
		if ti.Type != worker.TypeSend || json.Unmarshal(ti.Payload, &p) != nil || p.CampaignID != campaignID {
			continue
		}
		for _, id := range p.SubscriberIDs {
			ids[id] = true
		}
	}
	return ids
}

package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"outreach/internal/apperr"
	"outreach/internal/queue"
	"outreach/reward"
)

// A worker killed mid-task (kill -9, a lost machine) leaves its tasks
// "active" in Redis under a lease nobody renews. asynq takes such a task
// back only once the lease has run out (30 s) and its recoverer's next pass
// (once a minute) comes: about a minute. Every worker instead looks at the
// running tasks every orphanSweepEvery and hands the work of one orphaned
// by a dead worker to a new task:
//
//   - a reward fulfilment: its reward, still pending, to the next
//     generation's task id (EnqueueFulfil);
//   - an alert's send batch: a copy of the batch, which sends what the
//     dead worker had not claimed yet. Its claims (deliveries "sending") stay its own
//     until OUTREACH_SENDING_STALE_AFTER, as before: the dead worker may
//     have handed them to the provider.
//
// The orphan itself, if asynq runs it again later, finds its work done: a
// reward final, deliveries no longer pending (claims are atomic, so a
// delivery is sent by one task only).

// orphanSweepEvery is how often a worker looks for orphaned tasks.
const orphanSweepEvery = 2 * time.Second

// orphanGrace is how long a task must be seen active under no live worker
// before it is taken for orphaned: asynq lists a worker's tasks in its
// heartbeat (every 5 s, kept 10 s), so a task just started is not listed yet.
const orphanGrace = 8 * time.Second

// orphanSighting is when a task was first seen active under no live
// worker, and whether its work has been handed on since.
type orphanSighting struct {
	first  time.Time
	handed bool
}

// sweptQueues are the queues and task types whose orphans are handed on.
// Marketing batches are left to asynq's own recovery: nothing urgent
// waits in them, and listing them would read every running marketing
// task's payload (up to 500 subscriber ids each) in every process at each
// sweep.
var sweptQueues = []struct{ queue, taskType string }{
	{queue.QueueDefault, TypeFulfil},
	{queue.QueueAlerts, TypeSend},
}

// sweepOrphans hands on the work of each task orphaned by a dead worker
// (active under no live asynq server for orphanGrace), once per orphan.
// The active tasks of the queues are at most the workers' concurrency;
// the live servers are read only when one of them is a candidate.
func (e *Engine) sweepOrphans(ctx context.Context) error {
	insp := asynq.NewInspectorFromRedisClient(e.Queue.Redis)
	type found struct {
		queue string
		task  *asynq.TaskInfo
	}
	var active []found
	for _, q := range sweptQueues {
		if q.taskType == TypeFulfil && (e.Ledger == nil || e.Fulfiller == nil) {
			continue
		}
		const pageSize = 200
		for page := 1; ; page++ {
			tasks, err := insp.ListActiveTasks(q.queue, asynq.Page(page), asynq.PageSize(pageSize))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				break
			}
			if err != nil {
				return err
			}
			for _, t := range tasks {
				if t.Type == q.taskType {
					active = append(active, found{q.queue, t})
				}
			}
			if len(tasks) < pageSize {
				break
			}
		}
	}
	ids := make(map[string]bool, len(active))
	for _, f := range active {
		ids[f.task.ID] = true
	}
	e.forgetOrphansBut(ids)
	if len(active) == 0 {
		return nil
	}
	live, err := liveTaskIDs(insp)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range active {
		if !e.orphaned(live, f.task.ID) || e.handedOn(f.task.ID) {
			continue
		}
		var err error
		if f.task.Type == TypeFulfil {
			err = e.handOnReward(ctx, f.task)
		} else {
			err = e.handOnSend(ctx, f.queue, f.task)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("task %s: %w", f.task.ID, err)) // the others are still handed on
			continue
		}
		e.markHanded(f.task.ID)
	}
	return errors.Join(errs...)
}

// forgetOrphansBut forgets the sightings of tasks no longer active (taken
// back by asynq, or finished): if one runs again, under a live worker, its
// sighting must start afresh.
func (e *Engine) forgetOrphansBut(active map[string]bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range e.orphanSeen {
		if !active[id] {
			delete(e.orphanSeen, id)
		}
	}
}

// handOnReward queues the reward of an orphaned fulfilment task again,
// under the next generation's task id, when it is still pending.
func (e *Engine) handOnReward(ctx context.Context, t *asynq.TaskInfo) error {
	rewardID := string(t.Payload)
	r, err := e.Ledger.Store.GetReward(ctx, rewardID)
	if errors.Is(err, apperr.ErrNotFound) || err == nil && r.State != reward.StatePending {
		return nil // final: the orphan, if it runs again, changes nothing
	}
	if err != nil {
		return err
	}
	if err := e.EnqueueFulfil(ctx, rewardID); err != nil {
		return err
	}
	e.Logger.Info("reward task orphaned by a dead worker handed to a new task", "reward", rewardID, "task", t.ID)
	return nil
}

// handOnSend queues a copy of an orphaned send batch. The copy is not
// counted into the campaign's backlog: the orphan left it when it started.
// Its task id is derived from the orphan's, so workers sweeping at once
// queue one copy.
func (e *Engine) handOnSend(ctx context.Context, q string, t *asynq.TaskInfo) error {
	var p sendPayload
	if err := json.Unmarshal(t.Payload, &p); err != nil {
		return nil // the orphan fails the same way when it runs again
	}
	p.Counted = false
	task, err := newSendTask(p)
	if err != nil {
		return err
	}
	_, err = e.client.EnqueueContext(ctx, task, asynq.Queue(q), asynq.TaskID("orphan:"+t.ID))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return err
	}
	e.Logger.Info("send batch orphaned by a dead worker handed to a new task", "campaign", p.CampaignID,
		"channel", p.Channel, "deliveries", len(p.SubscriberIDs), "task", t.ID)
	return nil
}

// liveTaskIDs are the tasks the live asynq servers list as running.
func liveTaskIDs(insp *asynq.Inspector) (map[string]bool, error) {
	servers, err := insp.Servers()
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, s := range servers {
		for _, w := range s.ActiveWorkers {
			live[w.TaskID] = true
		}
	}
	return live, nil
}

// orphaned reports whether the active task id has been running under no
// live worker (not in live) for orphanGrace.
func (e *Engine) orphaned(live map[string]bool, id string) bool {
	if live[id] {
		e.forgetOrphan(id)
		return false
	}
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	seen, ok := e.orphanSeen[id]
	if !ok {
		// Forget sightings of tasks long since recovered.
		for k, s := range e.orphanSeen {
			if now.Sub(s.first) > time.Hour {
				delete(e.orphanSeen, k)
			}
		}
		e.orphanSeen[id] = orphanSighting{first: now}
		return false
	}
	return now.Sub(seen.first) >= orphanGrace
}

func (e *Engine) handedOn(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.orphanSeen[id].handed
}

func (e *Engine) markHanded(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s, ok := e.orphanSeen[id]; ok {
		s.handed = true
		e.orphanSeen[id] = s
	}
}

func (e *Engine) forgetOrphan(id string) {
	e.mu.Lock()
	delete(e.orphanSeen, id)
	e.mu.Unlock()
}

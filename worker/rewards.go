package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"outreach/internal/queue"
	"outreach/reward"
)

// TypeFulfil provisions one reward.
const TypeFulfil = "reward:fulfil"

var _ reward.Enqueuer = (*Engine)(nil)

// EnqueueFulfil queues the provisioning of a reward; the task id is the
// reward id, so a reward is never queued twice at once.
func (e *Engine) EnqueueFulfil(ctx context.Context, rewardID string) error {
	id := "reward:" + rewardID
	task := asynq.NewTask(TypeFulfil, []byte(rewardID), asynq.MaxRetry(20), asynq.Queue(queue.QueueDefault),
		asynq.TaskID(id))
	_, err := e.client.EnqueueContext(ctx, task)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		err = e.replaceDeadTask(ctx, task, id)
	}
	if err != nil {
		return fmt.Errorf("enqueue reward %s: %w", rewardID, err)
	}
	return nil
}

// replaceDeadTask enqueues task again when the task holding its id will
// never run: asynq keeps an archived task (retries used up, say through a
// long provisioning outage, or a lease that expired on the last retry) and
// its id for months, and a pending reward whose only task is archived would
// never be granted. A live task (queued, scheduled, retrying, running) is
// left alone.
func (e *Engine) replaceDeadTask(ctx context.Context, task *asynq.Task, id string) error {
	insp := asynq.NewInspectorFromRedisClient(e.Queue.Redis)
	info, err := insp.GetTaskInfo(queue.QueueDefault, id)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound):
	case err != nil:
		return err
	case info.State != asynq.TaskStateArchived && info.State != asynq.TaskStateCompleted:
		return nil
	default:
		if err := insp.DeleteTask(queue.QueueDefault, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return err
		}
	}
	if _, err := e.client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return err
	}
	return nil
}

func (e *Engine) handleFulfil(ctx context.Context, t *asynq.Task) error {
	if e.Fulfiller == nil {
		return fmt.Errorf("%w: no fulfiller configured", asynq.SkipRetry)
	}
	err := e.Fulfiller.Fulfil(ctx, string(t.Payload()))
	if errors.Is(err, reward.ErrStillPending) {
		return err // asynq retries with backoff; the reconciler is the backstop
	}
	return err
}

// reconcileRewards re-enqueues pending rewards that have made no progress.
func (e *Engine) reconcileRewards(ctx context.Context) error {
	if e.Ledger == nil || e.Fulfiller == nil {
		return nil
	}
	_, err := reward.Reconcile(ctx, e.Ledger, e, 1000)
	return err
}

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
	task := asynq.NewTask(TypeFulfil, []byte(rewardID), asynq.MaxRetry(20), asynq.Queue(queue.QueueDefault),
		asynq.TaskID("reward:"+rewardID))
	if _, err := e.client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue reward %s: %w", rewardID, err)
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

package reward

import (
	"context"
	"errors"
	"log/slog"
	"sync"
)

// LocalQueue is an in-process Enqueuer: a bounded channel drained by a few
// goroutines that call Fulfil. It suits tests, the demo and a single
// process; a task lost with the process is found again by PendingRewards.
// The worker's queue replaces it in production.
type LocalQueue struct {
	f      *Fulfiller
	ch     chan string
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.RWMutex
	closed bool
	// inflight tracks queued and running ids, so that Wait can tell when
	// everything enqueued has been handled.
	inflight sync.WaitGroup
	log      *slog.Logger
}

// ErrQueueClosed is returned by EnqueueFulfil after Close.
var ErrQueueClosed = errors.New("reward queue closed")

// NewLocalQueue starts workers goroutines (at least 1) fulfilling rewards
// from a queue of capacity (at least 1).
func NewLocalQueue(f *Fulfiller, workers, capacity int) *LocalQueue {
	workers, capacity = max(workers, 1), max(capacity, 1)
	ctx, cancel := context.WithCancel(context.Background())
	q := &LocalQueue{f: f, ch: make(chan string, capacity), ctx: ctx, cancel: cancel, log: f.logger()}
	for range workers {
		q.wg.Add(1)
		go q.run()
	}
	return q
}

func (q *LocalQueue) run() {
	defer q.wg.Done()
	for id := range q.ch {
		if err := q.f.Fulfil(q.ctx, id); err != nil && q.ctx.Err() == nil {
			q.log.Warn("reward fulfilment left pending", "reward_id", id, "err", err)
		}
		q.inflight.Done()
	}
}

// EnqueueFulfil queues the reward; it blocks while the queue is full.
func (q *LocalQueue) EnqueueFulfil(ctx context.Context, rewardID string) error {
	// The read lock keeps Close from closing the channel under a send.
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return ErrQueueClosed
	}
	q.inflight.Add(1)
	select {
	case q.ch <- rewardID:
		return nil
	case <-ctx.Done():
		q.inflight.Done()
		return ctx.Err()
	case <-q.ctx.Done():
		q.inflight.Done()
		return ErrQueueClosed
	}
}

// Wait returns when every reward enqueued so far has been handled.
func (q *LocalQueue) Wait() { q.inflight.Wait() }

// Close stops taking rewards, cancels the ones running and waits for the
// workers. Rewards left pending stay in the store.
func (q *LocalQueue) Close() {
	// Cancelling first releases senders blocked on a full queue; the
	// workers then drain what is queued with a cancelled context, which
	// ends each Fulfil at once.
	q.cancel()
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	q.wg.Wait()
}

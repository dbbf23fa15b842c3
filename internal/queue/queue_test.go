package queue

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"outreach/internal/testenv"
)

// backends runs a test on the in-process Redis and, when configured, on a
// real one: asynq must behave the same on both.
func backends(t *testing.T, fn func(t *testing.T, c *Conn)) {
	t.Run("on the in-process Redis", func(t *testing.T) {
		c, err := Connect("")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fn(t, c)
	})
	t.Run("on the real Redis", func(t *testing.T) {
		c, err := Connect(testenv.RedisURL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fn(t, c)
	})
}

func server(t *testing.T, c *Conn, queues map[string]int, strict bool, concurrency int, mux *asynq.ServeMux) {
	t.Helper()
	srv := asynq.NewServer(c.Opt, asynq.Config{
		Concurrency: concurrency, Queues: queues, StrictPriority: strict,
		RetryDelayFunc:           func(int, error, *asynq.Task) time.Duration { return 100 * time.Millisecond },
		TaskCheckInterval:        20 * time.Millisecond,
		DelayedTaskCheckInterval: 100 * time.Millisecond,
		LogLevel:                 asynq.FatalLevel,
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func uniqueQueue(t *testing.T, name string) string {
	return name + "-" + time.Now().Format("150405.000000000")
}

func TestAsynqRetriesAFailedTask(t *testing.T) {
	backends(t, func(t *testing.T, c *Conn) {
		q := uniqueQueue(t, "retry")
		var calls atomic.Int32
		mux := asynq.NewServeMux()
		mux.HandleFunc("flaky", func(ctx context.Context, _ *asynq.Task) error {
			if calls.Add(1) < 3 {
				return errors.New("transient")
			}
			return nil
		})
		server(t, c, map[string]int{q: 1}, false, 2, mux)
		cl := asynq.NewClient(c.Opt)
		defer cl.Close()
		if _, err := cl.Enqueue(asynq.NewTask("flaky", nil), asynq.Queue(q), asynq.MaxRetry(5)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "third attempt", func() bool { return calls.Load() >= 3 })
		time.Sleep(300 * time.Millisecond)
		if got := calls.Load(); got != 3 {
			t.Fatalf("handler ran %d times, want 3 (two failures, then success)", got)
		}
	})
}

func TestAsynqRunsAScheduledTaskNotBefore(t *testing.T) {
	backends(t, func(t *testing.T, c *Conn) {
		q := uniqueQueue(t, "sched")
		ran := make(chan time.Time, 1)
		mux := asynq.NewServeMux()
		mux.HandleFunc("later", func(context.Context, *asynq.Task) error { ran <- time.Now(); return nil })
		server(t, c, map[string]int{q: 1}, false, 1, mux)
		cl := asynq.NewClient(c.Opt)
		defer cl.Close()
		start := time.Now()
		if _, err := cl.Enqueue(asynq.NewTask("later", nil), asynq.Queue(q), asynq.ProcessIn(2*time.Second)); err != nil {
			t.Fatal(err)
		}
		select {
		case at := <-ran:
			// asynq keeps process-at times in whole seconds.
			if at.Sub(start) < time.Second {
				t.Fatalf("scheduled task ran after %v, before its time", at.Sub(start))
			}
		case <-time.After(15 * time.Second):
			t.Fatal("scheduled task never ran")
		}
	})
}

func TestAsynqRefusesADuplicateTaskID(t *testing.T) {
	backends(t, func(t *testing.T, c *Conn) {
		q := uniqueQueue(t, "dup")
		cl := asynq.NewClient(c.Opt)
		defer cl.Close()
		opts := []asynq.Option{asynq.Queue(q), asynq.TaskID("delivery-42"), asynq.ProcessIn(time.Hour)}
		if _, err := cl.Enqueue(asynq.NewTask("x", nil), opts...); err != nil {
			t.Fatal(err)
		}
		_, err := cl.Enqueue(asynq.NewTask("x", nil), opts...)
		if !errors.Is(err, asynq.ErrTaskIDConflict) {
			t.Fatalf("second enqueue with the same id: err = %v, want ErrTaskIDConflict", err)
		}
	})
}

func TestAsynqStrictPriorityDrainsTheHighQueueFirst(t *testing.T) {
	backends(t, func(t *testing.T, c *Conn) {
		high, low := uniqueQueue(t, "high"), uniqueQueue(t, "low")
		cl := asynq.NewClient(c.Opt)
		defer cl.Close()
		// Everything is queued before the server starts, so the order it
		// picks tasks in is the priority order alone.
		for i := 0; i < 20; i++ {
			if _, err := cl.Enqueue(asynq.NewTask("job", []byte("low")), asynq.Queue(low)); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 20; i++ {
			if _, err := cl.Enqueue(asynq.NewTask("job", []byte("high")), asynq.Queue(high)); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		var order []string
		mux := asynq.NewServeMux()
		mux.HandleFunc("job", func(_ context.Context, task *asynq.Task) error {
			mu.Lock()
			order = append(order, string(task.Payload()))
			mu.Unlock()
			return nil
		})
		server(t, c, map[string]int{high: 6, low: 1}, true, 1, mux)
		waitFor(t, "all 40 tasks", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 40 })
		for i, p := range order[:20] {
			if p != "high" {
				t.Fatalf("task %d came from %s before the high queue was drained: %v", i, p, order)
			}
		}
	})
}

// A redis-sentinel:// URL names the sentinels' password in its user info
// (as asynq reads it) and the master's credentials and database in its
// query and path (as go-redis reads them): a password-protected master was
// out of reach (NOAUTH at start).
func TestASentinelURLCarriesTheMastersCredentials(t *testing.T) {
	c, err := Connect("redis-sentinel://:sentinel-pw@127.0.0.1:26379,127.0.0.1:26380/3?master=mymaster&password=master-pw&username=outreach")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o, ok := c.Opt.(asynq.RedisFailoverClientOpt)
	if !ok || o.MasterName != "mymaster" || o.SentinelPassword != "sentinel-pw" || o.Password != "master-pw" ||
		o.Username != "outreach" || o.DB != 3 || len(o.SentinelAddrs) != 2 {
		t.Errorf("asynq options %+v", c.Opt)
	}
	fo := c.Redis.(*redis.Client).Options()
	if fo.Password != "master-pw" || fo.Username != "outreach" || fo.DB != 3 {
		t.Errorf("go-redis options: password %q, username %q, db %d", fo.Password, fo.Username, fo.DB)
	}
	for _, bad := range []string{"redis-sentinel://127.0.0.1:26379", "redis-sentinel://127.0.0.1:26379/x?master=m"} {
		if c, err := Connect(bad); err == nil {
			c.Close()
			t.Errorf("Connect(%q): no error", bad)
		}
	}
}

// The in-process Redis listens on loopback but answers only this process:
// a client without its password is refused.
func TestTheInProcessRedisAnswersOnlyItsOwnProcess(t *testing.T) {
	c, err := Connect("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("its own client: %v", err)
	}
	stranger := redis.NewClient(&redis.Options{Addr: c.Addr()})
	defer stranger.Close()
	if err := stranger.FlushAll(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("FLUSHALL from another client: %v, want NOAUTH", err)
	}
}

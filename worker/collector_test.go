package worker_test

import (
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"outreach/internal/queue"
	"outreach/worker"
)

// outreach_queue_tasks shows each queue's tasks by state, archived ones
// (their retries used up) included, and a queue that never had a task at
// zero.
func TestQueueDepthsIncludeArchivedTasks(t *testing.T) {
	conn, err := queue.Connect("")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := asynq.NewClientFromRedisClient(conn.Redis)
	for _, id := range []string{"reward:a", "reward:b", "reward:c"} {
		if _, err := client.Enqueue(asynq.NewTask(worker.TypeFulfil, []byte(id)), asynq.Queue(queue.QueueDefault), asynq.TaskID(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := asynq.NewInspectorFromRedisClient(conn.Redis).ArchiveTask(queue.QueueDefault, "reward:c"); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP outreach_queue_readable 1 when the queue depths could be read from Redis at this scrape, 0 when not (outreach_queue_tasks is then left out).
# TYPE outreach_queue_readable gauge
outreach_queue_readable 1
# HELP outreach_queue_tasks Tasks in each queue by state.
# TYPE outreach_queue_tasks gauge
outreach_queue_tasks{queue="alerts",state="active"} 0
outreach_queue_tasks{queue="alerts",state="archived"} 0
outreach_queue_tasks{queue="alerts",state="pending"} 0
outreach_queue_tasks{queue="alerts",state="retry"} 0
outreach_queue_tasks{queue="alerts",state="scheduled"} 0
outreach_queue_tasks{queue="marketing",state="active"} 0
outreach_queue_tasks{queue="marketing",state="archived"} 0
outreach_queue_tasks{queue="marketing",state="pending"} 0
outreach_queue_tasks{queue="marketing",state="retry"} 0
outreach_queue_tasks{queue="marketing",state="scheduled"} 0
outreach_queue_tasks{queue="default",state="active"} 0
outreach_queue_tasks{queue="default",state="archived"} 1
outreach_queue_tasks{queue="default",state="pending"} 2
outreach_queue_tasks{queue="default",state="retry"} 0
outreach_queue_tasks{queue="default",state="scheduled"} 0
`
	if err := testutil.CollectAndCompare(worker.NewQueueCollector(conn), strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// With Redis unreachable the depths are unknown: outreach_queue_readable
// says so (0) instead of the series just going missing, which an alert on
// queue depth reads as "no data".
func TestQueueDepthsThatCannotBeReadAreSaidSo(t *testing.T) {
	conn, err := queue.Connect("")
	if err != nil {
		t.Fatal(err)
	}
	c := worker.NewQueueCollector(conn)
	conn.Close() // the in-process Redis goes with it
	want := `
# HELP outreach_queue_readable 1 when the queue depths could be read from Redis at this scrape, 0 when not (outreach_queue_tasks is then left out).
# TYPE outreach_queue_readable gauge
outreach_queue_readable 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

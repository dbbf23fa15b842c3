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
// (their retries used up) included.
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
# HELP outreach_queue_tasks Tasks in each queue by state.
# TYPE outreach_queue_tasks gauge
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

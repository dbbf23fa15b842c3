package worker

import (
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"outreach/internal/queue"
)

// QueueCollector exports queue depths from asynq's inspector at scrape time.
type QueueCollector struct {
	insp *asynq.Inspector
	desc *prometheus.Desc
}

// NewQueueCollector returns a collector over the queues of conn.
func NewQueueCollector(conn *queue.Conn) *QueueCollector {
	return &QueueCollector{
		insp: asynq.NewInspector(conn.Opt),
		desc: prometheus.NewDesc("outreach_queue_tasks", "Tasks in each queue by state.", []string{"queue", "state"}, nil),
	}
}

func (q *QueueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

func (q *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	for _, name := range []string{queue.QueueAlerts, queue.QueueDefault, queue.QueueMarketing} {
		info, err := q.insp.GetQueueInfo(name)
		if err != nil {
			continue // a queue that never had a task does not exist yet
		}
		// archived: tasks that used up their retries (a reward's
		// fulfilment through a long provisioning outage, say); the store
		// still holds their work, and an operator wants to see them.
		for state, n := range map[string]int{"pending": info.Pending, "active": info.Active,
			"scheduled": info.Scheduled, "retry": info.Retry, "archived": info.Archived} {
			ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(n), name, state)
		}
	}
}

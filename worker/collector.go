package worker

import (
	"slices"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"outreach/internal/queue"
)

// QueueCollector exports queue depths from asynq's inspector at scrape
// time, and whether it could read them: with Redis unreachable the depths
// are unknown, and a series that just went missing would read as "no
// data" to an alert on queue depth.
type QueueCollector struct {
	insp     *asynq.Inspector
	desc     *prometheus.Desc
	readable *prometheus.Desc
}

// NewQueueCollector returns a collector over the queues of conn.
func NewQueueCollector(conn *queue.Conn) *QueueCollector {
	return &QueueCollector{
		insp: asynq.NewInspector(conn.Opt),
		desc: prometheus.NewDesc("outreach_queue_tasks", "Tasks in each queue by state.", []string{"queue", "state"}, nil),
		readable: prometheus.NewDesc("outreach_queue_readable",
			"1 when the queue depths could be read from Redis at this scrape, 0 when not (outreach_queue_tasks is then left out).", nil, nil),
	}
}

func (q *QueueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc; ch <- q.readable }

func (q *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	readable := 1.0
	defer func() { ch <- prometheus.MustNewConstMetric(q.readable, prometheus.GaugeValue, readable) }()
	known, err := q.insp.Queues()
	if err != nil {
		readable = 0
		return
	}
	for _, name := range []string{queue.QueueAlerts, queue.QueueDefault, queue.QueueMarketing} {
		var info asynq.QueueInfo // a queue that never had a task does not exist yet: all zero
		if slices.Contains(known, name) {
			got, err := q.insp.GetQueueInfo(name)
			if err != nil {
				readable = 0
				continue
			}
			info = *got
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

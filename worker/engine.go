package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"outreach/campaign"
	"outreach/internal/queue"
	"outreach/provider"
	"outreach/reward"
	"outreach/subscriber"
	"outreach/templates"
)

// Settings tune the engine; zero values take the defaults.
type Settings struct {
	// SMSSender names the sender whose rate limit SMS share (the Twilio
	// number or messaging service).
	SMSSender string
	SMSRate   int // segments per second per sender, all workers together
	PushRate  int // pushes per second, all workers together
	// InstallBaseURL prefixes referral codes in {{.InstallLink}}.
	InstallBaseURL string
	// StatusCallback is where SMS providers post receipts ("" for none).
	StatusCallback   string
	Concurrency      int // marketing tasks in flight per process
	AlertConcurrency int
	BatchSize        int // deliveries per send task
	// FastBatchSize is the deliveries per send task of a marketing
	// campaign sent faster than message by message (see precise): one
	// claim and one queue task for that many, their outcomes still
	// recorded BatchSize at a time.
	FastBatchSize int
	// FanoutChunk is the most subscribers read and written per fan-out
	// round (fewer when the backlog has less room). A bulk insert costs
	// less per row the larger it is: on PostgreSQL 10,000 rows took
	// 4.7-4.9 µs each against 7-9 µs in rounds of 2,000.
	FanoutChunk int
	// BacklogSeconds bounds the deliveries queued ahead of sending, in
	// seconds of the campaign's rate.
	BacklogSeconds int
	// MaxBacklog bounds it for campaigns with no rate of their own.
	MaxBacklog  int
	MaxAttempts int
	// SendConcurrency is the provider calls in flight per send task.
	SendConcurrency int
	// MonitorEvery is how often scheduled starts, completion and lost
	// fan-outs are checked.
	MonitorEvery time.Duration
	// StaleAfter is how long a pending delivery may wait with no progress
	// before the reconciler re-drives it.
	StaleAfter time.Duration
	// SendingStaleAfter is how long a claimed delivery may stay "sending"
	// before the reconciler decides its worker died (default 5 minutes).
	SendingStaleAfter time.Duration
	// LookupAfter is how long after an SMS send whose answer was lost
	// (unknown) the engine asks the provider whether it took the message
	// (default 1 minute; see ambiguous.go). LookupWithin is how long after
	// the send it keeps asking while the provider cannot answer (default a
	// day); past it the delivery stays unknown.
	LookupAfter  time.Duration
	LookupWithin time.Duration
	// HoldRecheck is how often deliveries held for the send window look
	// again.
	HoldRecheck time.Duration
	// AlertRetention is how long an exposure alert's contact list is kept
	// after it finishes (default 14 days).
	AlertRetention time.Duration
	// RetryBase is the first backoff of a transient failure.
	RetryBase time.Duration
	// SoleWorker says this process is the only worker and its queue
	// started empty (the embedded store, locked to one process, and the
	// in-process Redis): whatever the store shows in flight at start is a
	// dead process's. Run then queues it again at once (recoverRestart)
	// instead of waiting the monitor's timers, which are made for workers
	// sharing a Redis, where a claim may be a live worker's.
	SoleWorker bool
}

func (s *Settings) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&s.SMSRate, 100)
	def(&s.PushRate, 1000)
	def(&s.Concurrency, 50)
	def(&s.AlertConcurrency, 20)
	def(&s.BatchSize, 100)
	def(&s.FastBatchSize, 5*s.BatchSize)
	def(&s.FanoutChunk, 10000)
	def(&s.BacklogSeconds, 5)
	def(&s.MaxBacklog, 20000)
	def(&s.MaxAttempts, 8)
	def(&s.SendConcurrency, 32)
	if s.MonitorEvery <= 0 {
		s.MonitorEvery = time.Second
	}
	if s.StaleAfter <= 0 {
		s.StaleAfter = 2 * time.Minute
	}
	if s.SendingStaleAfter <= 0 {
		s.SendingStaleAfter = 5 * time.Minute
	}
	if s.AlertRetention <= 0 {
		s.AlertRetention = 14 * 24 * time.Hour
	}
	if s.RetryBase <= 0 {
		s.RetryBase = time.Second
	}
	if s.LookupAfter <= 0 {
		s.LookupAfter = time.Minute
	}
	if s.LookupWithin <= 0 {
		s.LookupWithin = 24 * time.Hour
	}
	if s.HoldRecheck <= 0 {
		s.HoldRecheck = time.Minute
	}
	if s.SMSSender == "" {
		s.SMSSender = "default"
	}
}

// Deps are what the engine works with.
type Deps struct {
	Store       campaign.Store
	Subscribers subscriber.Store
	Queue       *queue.Conn
	SMS         provider.SMSSender
	Push        map[subscriber.Platform]provider.PushSender
	Policy      campaign.Policy
	Settings    Settings
	Metrics     *Metrics
	Logger      *slog.Logger
	// Ledger and Fulfiller, when set, provision rewards from the queue and
	// re-drive the ones left pending.
	Ledger    *reward.Ledger
	Fulfiller *reward.Fulfiller
	// Now is the clock (tests inject one); time.Now when nil.
	Now func() time.Time
}

// Engine implements campaign.Dispatcher and runs the task handlers.
type Engine struct {
	Deps
	set      Settings
	client   *asynq.Client
	limiter  *Limiter
	breakers *breakers
	failLog  failLog

	mu        sync.Mutex
	tmplCache map[string]*compiled
	campCache ttlCache[campaign.Campaign]
	polCache  ttlCache[campaign.Policy] // by tenant
	// keyLocks serialise the process's reservations on a rate key;
	// claimGates bound the paced tasks of a campaign channel holding
	// claims not yet handed to the provider (send.go).
	keyLocks, claimGates namedSems
	// orphanSeen is when each task was first seen active under no live
	// worker, and whether its work was handed on (orphans.go).
	orphanSeen map[string]orphanSighting
	// lookupPausedUntil holds look-ups of ambiguous sends after the
	// provider could not answer some (ambiguous.go).
	lookupPausedUntil time.Time
	// stopping closes when Run's context ends: handlers put what they have
	// not sent back to pending instead of finishing their batch.
	stopping     chan struct{}
	stoppingOnce sync.Once
}

var _ campaign.Dispatcher = (*Engine)(nil)

// ttlCache keeps values by key with the time each was read, at most
// maxCached of them (a full cache starts afresh); the Engine's mu guards it.
type ttlCache[V any] map[string]cached[V]

type cached[V any] struct {
	v  V
	at time.Time
}

const maxCached = 10000

// cacheGet answers what c keeps for key, under mu.
func cacheGet[V any](mu *sync.Mutex, c ttlCache[V], key string) (cached[V], bool) {
	mu.Lock()
	defer mu.Unlock()
	v, ok := c[key]
	return v, ok
}

// cachePut keeps v, read at at, for key in *c, under mu.
func cachePut[V any](mu *sync.Mutex, c *ttlCache[V], key string, v V, at time.Time) {
	mu.Lock()
	defer mu.Unlock()
	if len(*c) >= maxCached {
		*c = ttlCache[V]{}
	}
	(*c)[key] = cached[V]{v: v, at: at}
}

type compiled struct {
	t     campaign.MessageTemplate
	body  *templates.Template
	title *templates.Template
	// data are a push template's data values, each a template (a deep link
	// with {{.InstallLink}}, say), by key.
	data map[string]*templates.Template
}

// New returns an engine; Run starts its workers.
func New(d Deps) *Engine {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics(nil)
	}
	set := d.Settings
	set.defaults()
	// Every provider's outreach_breaker_open series exists from the start
	// (0), so that an alert on it sees a closed breaker, not no data.
	if d.SMS != nil {
		d.Metrics.Breaker.WithLabelValues(d.SMS.Name()).Set(0)
	}
	for _, p := range d.Push {
		if p != nil {
			d.Metrics.Breaker.WithLabelValues(p.Name()).Set(0)
		}
	}
	return &Engine{
		Deps: d, set: set,
		client:     asynq.NewClient(d.Queue.Opt),
		limiter:    NewLimiter(d.Queue.Redis),
		breakers:   newBreakers(d.Now, d.Metrics.Breaker),
		tmplCache:  map[string]*compiled{},
		campCache:  ttlCache[campaign.Campaign]{},
		polCache:   ttlCache[campaign.Policy]{},
		orphanSeen: map[string]orphanSighting{},
		stopping:   make(chan struct{}),
	}
}

// Close releases the queue client.
func (e *Engine) Close() error { return e.client.Close() }

// Run serves tasks until ctx ends: alerts on a pool of their own so that
// they never wait behind marketing, fan-out and marketing on another, and
// the campaign monitor.
func (e *Engine) Run(ctx context.Context) error {
	start := time.Now()
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypeFanout, e.handleFanout)
	mux.HandleFunc(TypeSend, e.handleSend)
	mux.HandleFunc(TypeFulfil, e.handleFulfil)
	mux.HandleFunc(TypeConfirm, e.handleConfirm)
	mux.HandleFunc(TypeSettle, e.handleSettle)

	common := asynq.Config{
		Logger:                   asynqLogger{e.Logger},
		LogLevel:                 asynq.WarnLevel,
		TaskCheckInterval:        20 * time.Millisecond,
		DelayedTaskCheckInterval: time.Second,
		ShutdownTimeout:          10 * time.Second,
		IsFailure:                func(err error) bool { return !errors.Is(err, errRescheduled) },
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			n, _ := asynq.GetRetryCount(ctx)
			e.Logger.Warn("task failed", "type", t.Type(), "retry", n, "err", err)
		}),
		RetryDelayFunc: func(n int, err error, t *asynq.Task) time.Duration {
			return backoff(n, time.Second, time.Minute)
		},
	}
	alertCfg := common
	alertCfg.Concurrency = e.set.AlertConcurrency
	alertCfg.Queues = map[string]int{queue.QueueAlerts: 1}
	mainCfg := common
	mainCfg.Concurrency = e.set.Concurrency
	// Strict priority: fan-out keeps the pipeline fed; alerts appear here
	// too so that a process whose alert pool is busy still prefers them.
	mainCfg.Queues = map[string]int{queue.QueueAlerts: 10, queue.QueueDefault: 5, queue.QueueMarketing: 1}
	mainCfg.StrictPriority = true

	alerts := asynq.NewServer(e.Queue.Opt, alertCfg)
	main := asynq.NewServer(e.Queue.Opt, mainCfg)
	if err := alerts.Start(mux); err != nil {
		return fmt.Errorf("start alert workers: %w", err)
	}
	if err := main.Start(mux); err != nil {
		alerts.Shutdown()
		return fmt.Errorf("start workers: %w", err)
	}
	if e.set.SoleWorker {
		if err := e.recoverRestart(ctx, start); err != nil && ctx.Err() == nil {
			e.Logger.Warn("recovery at start", "err", err) // the monitor's timers remain
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); e.monitor(ctx) }()
	<-ctx.Done()
	e.stoppingOnce.Do(func() { close(e.stopping) })
	// Neither pool takes a task more while the other drains: a batch a
	// stopping worker hands on (handOn) is for the next worker.
	main.Stop()
	alerts.Stop()
	main.Shutdown()
	alerts.Shutdown()
	<-done
	return nil
}

// campaign returns the campaign, cached for a moment: pause and cancel
// still take effect well within a second.
func (e *Engine) campaign(ctx context.Context, id string) (campaign.Campaign, error) {
	now := time.Now()
	if cc, ok := cacheGet(&e.mu, e.campCache, id); ok && now.Sub(cc.at) < 250*time.Millisecond {
		return cc.v, nil
	}
	c, err := e.Store.CampaignByID(ctx, id)
	if err != nil {
		return c, err
	}
	cachePut(&e.mu, &e.campCache, id, c, now)
	return c, nil
}

// policyTTL is how long a tenant's policy is kept: a change (PUT
// /v1/policy) takes effect within a second, as pause does.
const policyTTL = time.Second

// policy is the tenant's marketing policy: Policy with the tenant's own
// settings over it, read at most once a policyTTL. A store that cannot be
// read keeps the last policy read; with none read yet it is an error, so
// that no marketing goes out under another carrier's opt-out text or
// window. A setting that no longer reads (a zone gone from the system)
// keeps its default.
func (e *Engine) policy(tenantID string) (campaign.Policy, error) {
	now := time.Now()
	cp, ok := cacheGet(&e.mu, e.polCache, tenantID)
	if ok && now.Sub(cp.at) < policyTTL {
		return cp.v, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	own, err := e.Store.TenantPolicy(ctx, tenantID)
	if err != nil {
		if ok {
			e.Logger.Warn("tenant policy unreadable: the last one read applies", "tenant", tenantID, "err", err)
			return cp.v, nil
		}
		return e.Policy, fmt.Errorf("tenant policy: %w", err)
	}
	p, err := e.Policy.With(own)
	if err != nil {
		e.Logger.Warn("a tenant's policy setting cannot be read: its default applies", "tenant", tenantID, "err", err)
	}
	cachePut(&e.mu, &e.polCache, tenantID, p, now)
	return p, nil
}

// sendPolicy is the policy c's messages go out under: the tenant's for
// marketing (an error while none can be read), and for an exposure alert,
// which none of the marketing rules hold back, whatever was read (the
// deployment's flags are what it looks at).
func (e *Engine) sendPolicy(c campaign.Campaign) (campaign.Policy, error) {
	if !c.Kind.Marketing() {
		return e.windowPolicy(c.TenantID), nil
	}
	return e.policy(c.TenantID)
}

// windowPolicy is policy for deciding whether to hold a campaign for its
// window: with no policy read yet, the deployment's decides, since nothing
// is sent without the tenant's own (prepare).
func (e *Engine) windowPolicy(tenantID string) campaign.Policy {
	p, _ := e.policy(tenantID)
	return p
}

// template returns a compiled template; templates are immutable once
// created, so the cache never goes stale.
func (e *Engine) template(ctx context.Context, tenantID, id string) (*compiled, error) {
	e.mu.Lock()
	ct, ok := e.tmplCache[id]
	e.mu.Unlock()
	if ok {
		return ct, nil
	}
	t, err := e.Store.GetTemplate(ctx, tenantID, id)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", id, err)
	}
	ct = &compiled{t: t}
	if ct.body, err = templates.Parse(t.Name, t.Body); err != nil {
		return nil, err
	}
	if t.Title != "" {
		if ct.title, err = templates.Parse(t.Name+" title", t.Title); err != nil {
			return nil, err
		}
	}
	for k, v := range t.Data {
		if ct.data == nil {
			ct.data = make(map[string]*templates.Template, len(t.Data))
		}
		if ct.data[k], err = templates.Parse(t.Name+" data "+k, v); err != nil {
			return nil, err
		}
	}
	e.mu.Lock()
	if len(e.tmplCache) >= maxCachedTemplates {
		e.tmplCache = map[string]*compiled{} // rebuilt as used: a read and a parse each
	}
	e.tmplCache[id] = ct
	e.mu.Unlock()
	return ct, nil
}

// maxCachedTemplates bounds the compiled templates a worker keeps (about
// 10 KB each): every template of every tenant's campaigns and alerts
// passes through a long-running worker.
const maxCachedTemplates = 2000

type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }

// stopped reports whether the engine is shutting down.
func (e *Engine) stopped() bool {
	select {
	case <-e.stopping:
		return true
	default:
		return false
	}
}

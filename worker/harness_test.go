package worker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"outreach/campaign"
	"outreach/config"
	"outreach/internal/queue"
	"outreach/internal/testenv"
	"outreach/provider"
	"outreach/provider/apns"
	"outreach/provider/apns/apnsfake"
	"outreach/provider/fcm"
	"outreach/provider/fcm/fcmfake"
	"outreach/provider/twilio"
	"outreach/provider/twilio/twiliofake"
	"outreach/store/postgres"
	"outreach/store/sqlite"
	"outreach/store/storetest"
	"outreach/subscriber"
	"outreach/tenant"
	"outreach/worker"
)

// testStore is a complete store.
type testStore interface {
	storetest.CampaignStore
	Migrate(ctx context.Context) error
	Close() error
}

// backend is one pairing of store and Redis the engine runs on.
type backend struct {
	name  string
	store func(t *testing.T) testStore
	redis func(t *testing.T) string // "" is the in-process Redis
}

var backends = []backend{
	{"on SQLite and the in-process Redis", openSQLite, func(*testing.T) string { return "" }},
	{"on PostgreSQL and a real Redis", openPostgres, func(t *testing.T) string { return testenv.RedisURL(t) }},
}

func openSQLite(t *testing.T) testStore {
	st, err := sqlite.Open(context.Background(), t.TempDir()+"/outreach.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func openPostgres(t *testing.T) testStore {
	// Scenarios run in parallel next to the chaos suite's processes: a
	// small pool keeps them within PostgreSQL's default 100 connections.
	st, err := postgres.Open(context.Background(), testenv.WithPoolMax(t, testenv.PostgresURL(t), 8))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// clock is an injectable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t.IsZero() {
		return time.Now()
	}
	return c.t
}

func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// harness is a store, a Redis, the three provider fakes behind the real
// clients, and a way to start engines (worker processes) on them.
type harness struct {
	t       *testing.T
	ctx     context.Context
	store   testStore
	redis   string
	conns   []*queue.Conn
	twilio  *twiliofake.Server
	fcm     *fcmfake.Server
	apns    *apnsfake.Server
	sms     provider.SMSSender
	push    map[subscriber.Platform]provider.PushSender
	clock   *clock
	policy  campaign.Policy
	tenant  tenant.Tenant
	admin   tenant.Principal
	service *campaign.Service
	engines []*worker.Engine
	metrics *worker.Metrics // every engine of the harness counts here
	// engineStore and engineLog, when set (startWorkerOn), are what
	// newEngine gives an engine instead of h.store (which a test may have
	// replaced by a wrapper) and no log.
	engineStore testStore
	engineLog   *slog.Logger
}

func newHarness(t *testing.T, b backend) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := &harness{t: t, ctx: ctx, store: b.store(t), redis: b.redis(t), clock: &clock{}, metrics: worker.NewMetrics(nil)}

	h.twilio = twiliofake.New("AC0123456789", "authtoken0123")
	h.twilio.RecordBodies(true)
	twURL, err := h.twilio.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.twilio.Close)
	h.sms, err = twilio.New(twilio.Config{AccountSID: "AC0123456789", AuthToken: "authtoken0123",
		MessagingServiceSID: "MG0123456789", BaseURL: twURL, Timeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	h.fcm = fcmfake.New()
	fcmURL, err := h.fcm.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.fcm.Close)
	fc, err := fcm.New(ctx, fcm.Config{CredentialsJSON: h.fcm.ServiceAccountJSON("bluezone-test"), Endpoint: fcmURL})
	if err != nil {
		t.Fatal(err)
	}
	h.apns = apnsfake.New()
	apURL, pool, err := h.apns.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.apns.Close)
	ac, err := apns.New(apns.Config{KeyPEM: apnsfake.GenerateKeyPEM(), KeyID: "ABC123DEFG", TeamID: "DEF123GHIJ",
		Topic: "vn.gov.bluezone", Host: apURL, RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	h.push = map[subscriber.Platform]provider.PushSender{subscriber.PlatformFCM: fc, subscriber.PlatformAPNs: ac}

	zone, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	always, _ := config.ParseWindow("00:00-24:00")
	h.policy = campaign.Policy{Zone: zone, Window: always, Cap: config.Cap{Count: 3, Period: 24 * time.Hour},
		Label: "QC", OptOutText: "Tu choi: soan TC gui 9241"}

	h.tenant, err = h.store.EnsureTenant(ctx, "viettel")
	if err != nil {
		t.Fatal(err)
	}
	h.admin = tenant.Principal{KeyID: "test", TenantID: h.tenant.ID, TenantName: "viettel", Role: tenant.RoleAdmin}
	// The service dispatches through an engine that runs no workers: the
	// API process's view.
	h.service = &campaign.Service{Store: h.store, Subscribers: h.store, Dispatcher: h.newEngine(worker.Settings{}), Now: h.clock.Now}
	return h
}

func (h *harness) conn() *queue.Conn {
	c, err := queue.Connect(h.redis)
	if err != nil {
		h.t.Fatal(err)
	}
	if h.redis == "" && len(h.conns) > 0 {
		// Every engine of the test shares the one in-process Redis.
		c.Close()
		c = h.conns[0]
	} else {
		h.conns = append(h.conns, c)
		h.t.Cleanup(func() { c.Close() })
	}
	return c
}

func (h *harness) newEngine(set worker.Settings) *worker.Engine {
	if set.MonitorEvery == 0 {
		set.MonitorEvery = 100 * time.Millisecond
	}
	// A task lost or stuck on a loaded machine is re-driven within seconds,
	// not minutes; a delivery is taken for a dead worker's only well after
	// any live one would have finished it.
	if set.StaleAfter == 0 {
		set.StaleAfter = 3 * time.Second
	}
	if set.SendingStaleAfter == 0 {
		set.SendingStaleAfter = 2 * time.Minute
	}
	if set.SMSRate == 0 {
		set.SMSRate = 100000
	}
	if set.PushRate == 0 {
		set.PushRate = 100000
	}
	set.InstallBaseURL = "https://outreach.test/i/"
	st, log := h.store, discardLog
	if h.engineStore != nil {
		st = h.engineStore
	}
	if h.engineLog != nil {
		log = h.engineLog
	}
	e := worker.New(worker.Deps{Store: st, Subscribers: h.store, Queue: h.conn(), SMS: h.sms, Push: h.push,
		Policy: h.policy, Settings: set, Now: h.clock.Now, Metrics: h.metrics, Logger: log})
	h.t.Cleanup(func() { e.Close() })
	return e
}

// startWorkerOn is startWorker with the engine's store (a wrapper of the
// harness's, to inject a fault) and log (nil: none) given; the campaign
// service and the harness's checks still use the harness's store.
func (h *harness) startWorkerOn(set worker.Settings, st testStore, log *slog.Logger) (stop func()) {
	h.engineStore, h.engineLog = st, log
	defer func() { h.engineStore, h.engineLog = nil, nil }()
	return h.startWorker(set)
}

var discardLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// startWorker runs an engine's workers until the test ends (or stop).
func (h *harness) startWorker(set worker.Settings) (stop func()) {
	e := h.newEngine(set)
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	h.t.Cleanup(stop)
	return stop
}

// orphan makes the queued task taskID look taken by a worker that then
// died: what asynq's dequeue does (the task moved to the active list, its
// state active, a lease), with a lease an hour long, so that asynq's own
// recovery does not take it back during the test.
func (h *harness) orphan(conn *queue.Conn, q, taskID string) {
	h.t.Helper()
	keys := "asynq:{" + q + "}"
	pipe := conn.Redis.TxPipeline()
	pipe.LRem(h.ctx, keys+":pending", 0, taskID)
	pipe.LPush(h.ctx, keys+":active", taskID)
	pipe.HSet(h.ctx, keys+":t:"+taskID, "state", "active")
	pipe.HDel(h.ctx, keys+":t:"+taskID, "pending_since")
	pipe.ZAdd(h.ctx, keys+":lease", redis.Z{Score: float64(time.Now().Add(time.Hour).Unix()), Member: taskID})
	if _, err := pipe.Exec(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(conn.Redis)
	if info, err := insp.GetTaskInfo(q, taskID); err != nil || info.State != asynq.TaskStateActive {
		h.t.Fatalf("task %s should look taken by a worker: %+v, %v", taskID, info, err)
	}
}

func (h *harness) template(in campaign.TemplateInput) string {
	h.t.Helper()
	tp, err := h.service.CreateTemplate(h.ctx, h.admin, in)
	if err != nil {
		h.t.Fatal(err)
	}
	return tp.ID
}

// seed imports n subscribers across four regions: every tenth opted out,
// every third without a device, the rest with an FCM or an APNs token.
func (h *harness) seed(n int) (msisdns []string) {
	h.t.Helper()
	regions := []string{"DN", "HN", "QN", "HG"}
	rows := make([]subscriber.Row, n)
	for i := range rows {
		rows[i] = subscriber.Row{MSISDN: fmt.Sprintf("+8491%07d", i), Region: regions[i%4], Locale: "vi",
			Attributes: map[string]string{"name": fmt.Sprintf("Khách %d", i)}}
		msisdns = append(msisdns, rows[i].MSISDN)
	}
	if _, err := h.store.UpsertSubscribers(h.ctx, h.tenant.ID, rows, ""); err != nil {
		h.t.Fatal(err)
	}
	for i, m := range msisdns {
		if i%10 == 0 {
			if err := h.store.SetOptOut(h.ctx, h.tenant.ID, m, true); err != nil {
				h.t.Fatal(err)
			}
		}
		if i%3 == 0 {
			continue
		}
		d := subscriber.Device{Platform: subscriber.PlatformFCM, Token: fmt.Sprintf("fcm-token-%d", i)}
		if i%2 == 0 {
			d = subscriber.Device{Platform: subscriber.PlatformAPNs, Token: fmt.Sprintf("%064x", i)}
		}
		if err := h.store.PutDevice(h.ctx, h.tenant.ID, m, d); err != nil {
			h.t.Fatal(err)
		}
	}
	return msisdns
}

func (h *harness) stats(id string) campaign.Stats {
	h.t.Helper()
	// Counted from now on: a count that took long on a loaded machine is
	// shared for a few times as long (the campaign package's countsCache),
	// and a check made right after a change must see the change.
	asked := time.Now()
	for {
		s, err := h.service.Stats(h.ctx, h.admin, id)
		if err != nil {
			h.t.Fatal(err)
		}
		if !s.CountedAt.Before(asked) {
			return s
		}
		if time.Since(asked) > time.Minute {
			h.t.Fatalf("campaign %s: no count started after %v", id, asked)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitState waits for a campaign to reach state, failing after timeout.
func (h *harness) waitState(id string, state campaign.State, timeout time.Duration) campaign.Stats {
	h.t.Helper()
	// The bounds are generous on purpose: -race on a shared two-core
	// machine can be many times slower than the scenario needs.
	timeout *= 3
	deadline := time.Now().Add(timeout)
	for {
		s := h.stats(id)
		if s.State == state {
			return s
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("campaign %s is %s after %v, want %s; deliveries %v", id, s.State, timeout, state, s.Deliveries)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *harness) act(id string, a campaign.Action) campaign.Campaign {
	h.t.Helper()
	c, err := h.service.Act(h.ctx, h.admin, id, a)
	if err != nil {
		h.t.Fatalf("%s campaign: %v", a, err)
	}
	return c
}

// busiestSecond answers how many messages the Twilio fake took, and the
// most it took in any one-second window.
func (h *harness) busiestSecond() (n, worst int) {
	msgs := h.twilio.Messages()
	at := make([]time.Time, len(msgs))
	for i, m := range msgs {
		at[i] = m.At
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	for i := range at {
		j := sort.Search(len(at), func(k int) bool { return !at[k].Before(at[i].Add(time.Second)) })
		worst = max(worst, j-i)
	}
	return len(at), worst
}

package main

import (
	"context"

	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"outreach/api"
	"outreach/campaign"
	"outreach/config"
	"outreach/install"
	"outreach/internal/queue"
	"outreach/provider"
	"outreach/provider/provisioning"
	"outreach/provider/twilio"
	"outreach/reward"
	"outreach/subscriber"
	"outreach/templates"
	"outreach/worker"
)

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	level.UnmarshalText([]byte(cfg.LogLevel))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// redisLog writes go-redis's own messages (a pool that cannot dial, say)
// into the process's JSON log, where they used to come as plain text lines.
type redisLog struct{ log *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.log.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}

// app is one process's wiring.
type app struct {
	cfg       *config.Config
	log       *slog.Logger
	store     store
	queue     *queue.Conn
	prov      *providers
	engine    *worker.Engine
	ledger    *reward.Ledger
	fulfiller *reward.Fulfiller
	installs  *install.Service
	service   *campaign.Service
	registry  *prometheus.Registry
	unlock    func() // lockEmbedded's
}

func policyFrom(cfg *config.Config) campaign.Policy {
	return campaign.Policy{Zone: cfg.Timezone, Window: cfg.SendWindow, Cap: cfg.FrequencyCap,
		Label: cfg.MarketingLabel, OptOutText: cfg.OptOutText}
}

// newApp opens the store and the queue and wires every part; close it with
// app.Close.
func newApp(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *app, err error) {
	a := &app{cfg: cfg, log: log, registry: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if a.unlock, err = lockEmbedded(cfg); err != nil {
		return nil, err
	}
	if a.store, err = openStore(ctx, cfg, cfg.MigrateOnStart); err != nil {
		return nil, err
	}
	if a.queue, err = queue.Connect(cfg.RedisURL); err != nil {
		return nil, fmt.Errorf("OUTREACH_REDIS_URL: connect to Redis: %w", err)
	}
	if err = a.queue.Ping(ctx); err != nil {
		return nil, fmt.Errorf("OUTREACH_REDIS_URL: connect to Redis: %w", err)
	}
	if a.prov, err = buildProviders(ctx, cfg, log); err != nil {
		return nil, err
	}
	var prov provider.Provisioner = provisioning.Log{Logger: log}
	if cfg.RewardsURL != "" {
		prov = provisioning.New(cfg.RewardsURL, cfg.RewardsSecret)
	}
	rewardMetrics := reward.NewMetrics(a.registry)
	a.fulfiller = &reward.Fulfiller{Store: a.store, Provisioner: prov, Logger: log, Metrics: rewardMetrics}
	// A pending reward untouched for StaleAfter has lost its task, as a
	// pending delivery has: the reconciler re-drives both.
	a.ledger = &reward.Ledger{Store: a.store, Logger: log, StaleAfter: cfg.StaleAfter, Metrics: rewardMetrics}
	a.engine = worker.New(worker.Deps{
		Ledger: a.ledger, Fulfiller: a.fulfiller,
		Store: a.store, Subscribers: a.store, Queue: a.queue, SMS: a.prov.SMS, Push: a.prov.Push,
		Policy: policyFrom(cfg), Metrics: worker.NewMetrics(a.registry), Logger: log,
		Settings: worker.Settings{
			SMSSender: a.prov.sender, SMSRate: cfg.SMSRate, PushRate: cfg.PushRate,
			InstallBaseURL: cfg.InstallBaseURL, Concurrency: cfg.WorkerConcurrency, BacklogSeconds: cfg.BacklogSeconds,
			StatusCallback: statusCallback(cfg), AlertRetention: cfg.AlertRetention,
			StaleAfter: cfg.StaleAfter, SendingStaleAfter: cfg.SendingStaleAfter, RetryBase: cfg.RetryBase,
			// The in-process Redis is new at every start, and the embedded
			// store's lock keeps any other process off it.
			SoleWorker: soleWorker(cfg, a.queue),
		},
	})
	a.ledger.Enqueuer = a.engine
	a.fulfiller.Confirm = a.engine.EnqueueConfirm
	a.installs = &install.Service{Store: a.store, Tenants: a.store, Ledger: a.ledger,
		DefaultSecret: cfg.InstallSecret, Logger: log}
	a.registry.MustRegister(worker.NewQueueCollector(a.queue))
	policy := policyFrom(cfg)
	a.service = &campaign.Service{Store: a.store, Subscribers: a.store, Dispatcher: a.engine, Logger: log,
		Rewards: a.store,
		Policy:  &policy, SampleVars: templates.Vars{Name: "Nguyễn Văn An", Region: "HN", RewardMB: 5120,
			InstallLink: cfg.InstallBaseURL + campaign.NewReferralCode()}}
	return a, nil
}

// newHandler returns the HTTP API; probesOnly keeps only /healthz, /readyz
// and /metrics (a worker process answers those and nothing else). Call it
// once per app: it registers the HTTP metrics.
func (a *app) newHandler(probesOnly bool) http.Handler {
	cfg := a.cfg
	return api.New(api.Deps{
		Service: a.service, Tenants: a.store, Subscribers: a.store,
		Importer: &subscriber.Importer{Store: a.store},
		Ready:    a.ready, Registry: a.registry, Logger: a.log, ProbesOnly: probesOnly,
		TrustedProxies: cfg.TrustedProxies,
		Extra: func(r *gin.Engine, auth api.AuthFunc) {
			// Per-source limits on the unauthenticated routes. Generous: one
			// app backend carries every install, and subscribers click links
			// from behind NAT. The Twilio webhooks have none: their signature
			// is the gate (a bounded body and one HMAC, nothing stored for a
			// bad one), and a limit counted before it would let anyone's
			// unsigned flood from Twilio's address, or from the balancer's
			// when OUTREACH_TRUSTED_PROXIES is unset, turn away genuine
			// receipts and STOPs, which Twilio does not send again.
			r.Use(api.PublicRateLimitRoutes(map[string]*api.PerSourceLimiter{
				"/v1/installs": api.NewPerSourceLimiter(10000, 20000, 0),
			}))
			api.TwilioWebhooks{AuthToken: cfg.TwilioAuthToken, PublicURL: cfg.PublicURL, Receipts: a.store,
				OptOuts: a.store, Keywords: subscriber.DefaultKeywords.With(cfg.OptOutKeywords, cfg.OptInKeywords), Logger: a.log}.Register(r)
			api.RegisterInstallRoutes(r, auth, api.InstallDeps{Installs: a.installs, Ledger: a.ledger, Campaigns: a.store,
				AdoptionTarget: cfg.AdoptionTarget, StoreURL: cfg.InstallStoreURL,
				Clicks: api.NewPerSourceLimiter(20, 100, 0)})
		},
	})
}

func statusCallback(cfg *config.Config) string {
	if cfg.SMSProvider != "twilio" {
		return ""
	}
	return cfg.PublicURL + "/webhooks/twilio/status"
}

func (a *app) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := a.queue.Ping(ctx); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// Close releases everything newApp opened.
func (a *app) Close() {
	if a.engine != nil {
		a.engine.Close()
	}
	if a.queue != nil {
		a.queue.Close()
	}
	if a.store != nil {
		a.store.Close()
	}
	if a.unlock != nil {
		a.unlock()
	}
}

// warnSettings says loudly what the embedded default means, and warns of
// settings that are safe for tests only.
func warnSettings(cfg *config.Config, log *slog.Logger) {
	if cfg.RedisURL == "" {
		log.Warn("EMBEDDED MODE: no OUTREACH_REDIS_URL, using an in-process Redis: queued work does NOT survive a restart " +
			"(the store re-drives unfinished deliveries, but set OUTREACH_REDIS_URL in production)")
	}
	if strings.HasPrefix(cfg.DatabaseURL, "sqlite://") {
		log.Warn("EMBEDDED MODE: using the SQLite store " + strings.TrimPrefix(cfg.DatabaseURL, "sqlite://") +
			"; set OUTREACH_DATABASE_URL=postgres://... in production")
	}
	var logged []string
	if cfg.SMSProvider == "log" {
		logged = append(logged, "SMS")
	}
	if cfg.PushProvider == "log" {
		logged = append(logged, "push")
	}
	if len(logged) > 0 {
		log.Warn("log providers in use: "+strings.Join(logged, " and ")+" messages are written to the log and the outbox, not sent",
			"sms_provider", cfg.SMSProvider, "push_provider", cfg.PushProvider)
	}
	if min := 3 * twilio.DefaultTimeout; cfg.SendingStaleAfter < min {
		log.Warn("OUTREACH_SENDING_STALE_AFTER is shorter than a slow send may take: a live worker's claims "+
			"may be put back to pending and sent twice; keep it above "+min.String()+" in production",
			"sending_stale_after", cfg.SendingStaleAfter.String())
	}
}

func runServer(ctx context.Context, mode string, args []string, stdout, stderr io.Writer, getenv env) error {
	summary := map[string]string{
		"serve":  "Runs the admin API and the workers in one process.",
		"api":    "Runs the admin API only (scale it apart from the workers).",
		"worker": "Runs the workers only: fan-out, sending, the campaign monitor.",
	}[mode]
	fs := newFlags(mode, summary+"\nConfiguration comes from OUTREACH_* environment variables (README.md).", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.LoadLookup(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if mode != "serve" && cfg.RedisURL == "" {
		return errors.New("OUTREACH_REDIS_URL: required for split api/worker processes (the in-process Redis is private to one process); use serve for the embedded default")
	}
	log := newLogger(cfg, stderr)
	redis.SetLogger(redisLog{log})
	warnSettings(cfg, log)
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	log.Info("starting", "mode", mode, "config", cfg.Redacted())

	errc := make(chan error, 2)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	running := 0
	if mode != "api" {
		running++
		go func() { errc <- a.engine.Run(runCtx) }()
	}
	running++
	go func() { errc <- serveHTTP(runCtx, cfg.HTTPAddr, a.newHandler(mode == "worker"), log, nil) }()
	select {
	case <-ctx.Done():
	case err = <-errc:
		running--
	}
	cancel()
	log.Info("shutting down: finishing the requests and tasks in flight")
	// The store and the queue close (a.Close) only once the HTTP server has
	// answered its requests and the workers have recorded what they sent:
	// closing them under a send task would leave its messages sent but
	// unrecorded, and sent again after the restart.
	for ; running > 0; running-- {
		if e := <-errc; err == nil {
			err = e
		}
	}
	log.Info("stopped")
	return err
}

// serveHTTP serves h on addr until ctx ends; ready, when set, receives the
// bound address (tests listen on port 0).
func serveHTTP(ctx context.Context, addr string, h http.Handler, log *slog.Logger, ready chan<- string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("OUTREACH_HTTP_ADDR: listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	log.Info("listening", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	shut := make(chan error, 1)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		err := srv.Shutdown(sctx)
		if err != nil {
			// Past the grace: cut the requests still running (their
			// handlers see their context end) rather than close the
			// store under them unannounced.
			srv.Close()
		}
		shut <- err
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	// Serve returns as soon as Shutdown starts; the requests in flight are
	// answered only once Shutdown returns.
	if err := <-shut; err != nil {
		log.Warn("requests still running after the shutdown grace were cut", "grace", shutdownGrace.String(), "err", err)
	}
	return nil
}

// shutdownGrace is how long a stopping server lets its requests in flight
// finish; a longer one (a streamed import, say) is then cut: its connection
// is closed and its handler's context ends.
const shutdownGrace = 10 * time.Second

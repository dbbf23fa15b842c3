// Package api is the admin HTTP API (gin): routes, authentication by API
// key and role, the one error→status table, request ids, access logs and
// metrics. Each resource has its own file.
package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"outreach/campaign"
	"outreach/subscriber"
	"outreach/tenant"
)

// Default request body limits.
const (
	DefaultMaxBodyBytes   int64 = 1 << 20 // JSON bodies and the regions CSV
	DefaultMaxUploadBytes int64 = 1 << 30 // subscriber imports, streamed
)

// Importer streams a subscriber CSV into the store.
// (*subscriber.Importer) implements it.
type Importer interface {
	Import(ctx context.Context, tenantID string, r io.Reader, list string) (subscriber.ImportResult, error)
}

var _ Importer = (*subscriber.Importer)(nil)

// AuthFunc returns middleware that lets a request through when its API key
// is valid (else 401) and its role allows one of roles (else 403); admin is
// allowed everywhere, and every role where viewer is needed. With no roles
// any valid key passes.
type AuthFunc func(roles ...tenant.Role) gin.HandlerFunc

// Deps is what the API needs. Service, Tenants and Subscribers are required.
type Deps struct {
	Service     *campaign.Service
	Tenants     tenant.Store
	Subscribers subscriber.Store
	Importer    Importer
	// Ready reports whether the store and Redis answer; nil means always.
	Ready func(ctx context.Context) error
	// Registry receives the HTTP metrics and is served on /metrics; nil
	// means a fresh registry.
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// MaxBodyBytes limits JSON bodies and the regions CSV (default 1 MiB).
	MaxBodyBytes int64
	// MaxUploadBytes limits a subscriber import, which is streamed and never
	// held in memory (default 1 GiB).
	MaxUploadBytes int64
	// BodyReadTimeout bounds how long a request's body may take to arrive
	// (default 30 s; a subscriber import may take an hour).
	BodyReadTimeout time.Duration
	// RequestTimeout bounds the work of a request (its store and Redis
	// calls), so that a database that hangs rather than refuses answers
	// 503 instead of holding the client (default 60 s; a subscriber import
	// may take an hour).
	RequestTimeout time.Duration
	// ProbesOnly serves /healthz, /readyz and /metrics and nothing else
	// (a worker process); Extra is not called.
	ProbesOnly bool
	// TrustedProxies are the addresses or CIDR ranges of the load balancers
	// in front of the API, whose X-Forwarded-For names the client for the
	// per-source rate limits. Empty: the peer address is the client.
	TrustedProxies []string
	// Extra adds routes of other packages (installs, rewards, webhooks,
	// reports) after the built-in ones, behind the same request id,
	// recovery, access log and metrics. Use auth(roles…) for key-protected
	// routes and WriteError, DecodeJSON and PrincipalOf in handlers.
	Extra func(r *gin.Engine, auth AuthFunc)
}

// New returns the API handler.
func New(d Deps) http.Handler { return newEngine(d) }

type server struct {
	d       Deps
	log     *slog.Logger
	metrics *httpMetrics
	queries map[string][]string // the query parameters of each checked route (query.go)
}

// route is one built-in route; roles nil means no key is needed.
type route struct {
	method, path string
	roles        []tenant.Role
	handle       gin.HandlerFunc
}

func newEngine(d Deps) *gin.Engine {
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if d.MaxUploadBytes <= 0 {
		d.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.BodyReadTimeout <= 0 {
		d.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if d.RequestTimeout <= 0 {
		d.RequestTimeout = DefaultRequestTimeout
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	// gin's debug mode prints every route to stdout at start; it is a
	// process-wide switch, left alone when GIN_MODE is set explicitly.
	if os.Getenv(gin.EnvGinMode) == "" && gin.Mode() == gin.DebugMode {
		gin.SetMode(gin.ReleaseMode)
	}
	s := &server{d: d, log: d.Logger, metrics: newHTTPMetrics(d.Registry)}
	s.queries = checkedQueries(s.routes())

	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	// Only X-Forwarded-For, which a balancer appends to: X-Real-IP would
	// be taken from the client as sent when the balancer sets none.
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	if err := r.SetTrustedProxies(d.TrustedProxies); err != nil || len(d.TrustedProxies) == 0 {
		_ = r.SetTrustedProxies(nil) // config.Validate has named a bad entry
	}
	r.Use(s.requestID, s.observe, s.recovery, s.limits)
	r.NoRoute(func(c *gin.Context) {
		writeError(c, &Error{Err: errNoRoute, Message: "no such route"})
	})
	r.NoMethod(func(c *gin.Context) {
		writeError(c, &Error{Err: errMethod, Message: "method not allowed on this route"})
	})
	for _, rt := range s.routes() {
		if d.ProbesOnly && !probes[rt.path] {
			continue
		}
		handlers := []gin.HandlerFunc{}
		if rt.roles != nil {
			handlers = append(handlers, s.auth(rt.roles...))
		}
		r.Handle(rt.method, rt.path, append(handlers, rt.handle)...)
	}
	if d.Extra != nil && !d.ProbesOnly {
		d.Extra(r, s.auth)
	}
	return r
}

// probes are the routes of a process that serves no API (Deps.ProbesOnly).
var probes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

var (
	admin    = []tenant.Role{tenant.RoleAdmin}
	marketer = []tenant.Role{tenant.RoleMarketer}
	health   = []tenant.Role{tenant.RoleHealth}
	viewer   = []tenant.Role{tenant.RoleViewer}
	authors  = []tenant.Role{tenant.RoleMarketer, tenant.RoleHealth}
)

// routes is every built-in route with the roles it needs (SPEC, HTTP API).
func (s *server) routes() []route {
	return []route{
		{http.MethodGet, "/healthz", nil, s.healthz},
		{http.MethodGet, "/readyz", nil, s.readyz},
		{http.MethodGet, "/metrics", nil, s.metricsHandler()},

		{http.MethodPut, "/v1/regions", admin, s.putRegions},
		{http.MethodGet, "/v1/policy", viewer, s.getPolicy},
		{http.MethodPut, "/v1/policy", admin, s.putPolicy},

		{http.MethodPost, "/v1/subscribers/import", marketer, s.importSubscribers},
		{http.MethodGet, "/v1/subscribers/:msisdn", viewer, s.getSubscriber},
		{http.MethodPut, "/v1/subscribers/:msisdn/devices", marketer, s.putDevice},
		{http.MethodPost, "/v1/subscribers/:msisdn/opt-out", marketer, s.optOut(true)},
		{http.MethodPost, "/v1/subscribers/:msisdn/opt-in", marketer, s.optOut(false)},

		{http.MethodPost, "/v1/templates", authors, s.createTemplate},
		{http.MethodGet, "/v1/templates/:id", authors, s.getTemplate},
		{http.MethodPost, "/v1/templates/:id/preview", authors, s.previewTemplate},

		{http.MethodPost, "/v1/campaigns", marketer, s.createCampaign},
		// Health keys list and read their alerts here and pause, resume,
		// cancel or test them; the service refuses each role the other's
		// kind of campaign (campaign.mayChange).
		{http.MethodGet, "/v1/campaigns", authors, s.listCampaigns},
		{http.MethodGet, "/v1/campaigns/:id", authors, s.getCampaign},
		{http.MethodPost, "/v1/campaigns/:id/start", marketer, s.act(campaign.ActionStart)},
		{http.MethodPost, "/v1/campaigns/:id/pause", authors, s.act(campaign.ActionPause)},
		{http.MethodPost, "/v1/campaigns/:id/resume", authors, s.act(campaign.ActionResume)},
		{http.MethodPost, "/v1/campaigns/:id/cancel", authors, s.act(campaign.ActionCancel)},
		{http.MethodPost, "/v1/campaigns/:id/test", authors, s.sendTest},
		{http.MethodGet, "/v1/campaigns/:id/stats", viewer, s.campaignStats},
		{http.MethodGet, "/v1/campaigns/:id/deliveries", viewer, s.campaignDeliveries},

		{http.MethodPost, "/v1/alerts", health, s.createAlert},
		{http.MethodGet, "/v1/alerts/:id", health, s.getAlert},
	}
}

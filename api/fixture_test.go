package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"outreach/campaign"
	"outreach/internal/testenv"
	"outreach/store/sqlite"
	"outreach/subscriber"
	"outreach/tenant"
)

// recordingDispatcher stands in for the worker package's queue-backed
// Dispatcher, which is tested against real Redis in worker/. These tests
// only check that the API hands the right campaigns to it.
type recordingDispatcher struct {
	mu    sync.Mutex
	kicks []campaign.Campaign
	tests []string // the MSISDNs test sends went to
}

func (d *recordingDispatcher) Kick(_ context.Context, c campaign.Campaign) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.kicks = append(d.kicks, c)
	return nil
}

func (d *recordingDispatcher) SendTest(_ context.Context, c campaign.Campaign, msisdn string) ([]campaign.TestResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tests = append(d.tests, msisdn)
	var out []campaign.TestResult
	for _, ch := range c.Channels {
		out = append(out, campaign.TestResult{Channel: ch, Text: "test", Provider: "recording"})
	}
	return out, nil
}

func (d *recordingDispatcher) kicked() []campaign.Campaign {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]campaign.Campaign(nil), d.kicks...)
}

// Tenants of every fixture: A owns the objects, B is the other carrier.
const (
	tenantA = "viettel"
	tenantB = "mobifone"
)

var allRoles = []tenant.Role{tenant.RoleAdmin, tenant.RoleMarketer, tenant.RoleHealth, tenant.RoleViewer}

type fixture struct {
	store    *sqlite.Store
	srv      *httptest.Server
	engine   *gin.Engine
	disp     *recordingDispatcher
	svc      *campaign.Service
	logs     *testenv.LogBuffer
	registry *prometheus.Registry
	tenants  map[string]tenant.Tenant
	keys     map[string]map[tenant.Role]string // tenant → role → plain key
	keyIDs   map[string]string                 // plain key → key id
	readyMu  sync.Mutex
	ready    func(context.Context) error // nil: the store's ping
}

type fixtureOption func(*Deps)

// newFixture runs the API on a fresh SQLite store in t.TempDir(), with two
// tenants that hold a key of every role.
func newFixture(t *testing.T, opts ...fixtureOption) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "outreach.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: st, disp: &recordingDispatcher{}, logs: &testenv.LogBuffer{},
		registry: prometheus.NewRegistry(), tenants: map[string]tenant.Tenant{},
		keys: map[string]map[tenant.Role]string{}, keyIDs: map[string]string{}}
	for _, name := range []string{tenantA, tenantB} {
		tn, err := st.EnsureTenant(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		f.tenants[name] = tn
		f.keys[name] = map[tenant.Role]string{}
		for _, role := range allRoles {
			plain, hash := tenant.NewKey()
			k := tenant.APIKey{ID: fmt.Sprintf("%s-%s", name, role), TenantID: tn.ID, Role: role, Hash: hash}
			if err := st.CreateAPIKey(ctx, k); err != nil {
				t.Fatal(err)
			}
			f.keys[name][role] = plain
			f.keyIDs[plain] = k.ID
		}
	}
	logger := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.svc = &campaign.Service{Store: st, Subscribers: st, Dispatcher: f.disp, Logger: logger}
	d := Deps{
		Service: f.svc, Tenants: st, Subscribers: st, Importer: &subscriber.Importer{Store: st},
		Ready:    func(ctx context.Context) error { return f.readyErr(ctx) },
		Registry: f.registry, Logger: logger,
	}
	for _, o := range opts {
		o(&d)
	}
	f.engine = newEngine(d)
	f.srv = httptest.NewServer(f.engine)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) readyErr(ctx context.Context) error {
	f.readyMu.Lock()
	ready := f.ready
	f.readyMu.Unlock()
	if ready != nil {
		return ready(ctx)
	}
	return f.store.Ping(ctx)
}

func (f *fixture) setReady(fn func(context.Context) error) {
	f.readyMu.Lock()
	defer f.readyMu.Unlock()
	f.ready = fn
}

func (f *fixture) key(tenantName string, role tenant.Role) string { return f.keys[tenantName][role] }

type response struct {
	status int
	header http.Header
	body   []byte
}

// obj decodes the body as a JSON object.
func (r response) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// errorCode returns error.code of an error answer.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	e, _ := r.obj(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// details returns error.details of an error answer as an object.
func (r response) details(t *testing.T) map[string]any {
	t.Helper()
	e, _ := r.obj(t)["error"].(map[string]any)
	d, _ := e["details"].(map[string]any)
	return d
}

// call sends a request. body may be nil, a string or []byte (sent as is,
// with contentType), or anything else (sent as JSON).
func (f *fixture) call(t *testing.T, method, path, key string, body any) response {
	t.Helper()
	return f.callCT(t, method, path, key, "", body)
}

func (f *fixture) callCT(t *testing.T, method, path, key, contentType string, body any) response {
	t.Helper()
	return f.callWith(t, method, path, key, contentType, nil, body)
}

// callWith is callCT with more request headers.
func (f *fixture) callWith(t *testing.T, method, path, key, contentType string, hdr http.Header, body any) response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	case io.Reader:
		r = b
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(js)
		if contentType == "" {
			contentType = "application/json"
		}
	}
	req, err := http.NewRequest(method, f.srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: res.StatusCode, header: res.Header, body: out}
}

// must fails the test unless the answer has status want; it returns the
// answer for more checks.
func must(t *testing.T, want int, r response) response {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body %s", r.status, want, r.body)
	}
	return r
}

// seeded are tenant A's objects every route can point at.
type seeded struct {
	smsTemplate, pushTemplate string
	alertTemplate             string // an SMS with no install link nor reward
	campaign                  string
	alert                     string
	msisdn                    string // in E.164
}

// seed creates, through the API, a template of each channel, a draft
// campaign, an alert and a subscriber of tenant A.
func (f *fixture) seed(t *testing.T) seeded {
	t.Helper()
	var s seeded
	s.msisdn = "+84912345678"
	if _, err := f.store.UpsertSubscribers(context.Background(), f.tenants[tenantA].ID,
		[]subscriber.Row{{MSISDN: s.msisdn, Region: "HN", Locale: "vi"}}, ""); err != nil {
		t.Fatal(err)
	}
	mk := f.key(tenantA, tenant.RoleMarketer)
	s.smsTemplate = must(t, 201, f.call(t, "POST", "/v1/templates", mk, map[string]any{
		"name": "promo-vi", "channel": "sms", "locale": "vi",
		"body": "Cai Bluezone de nhan {{.RewardMB}}MB: {{.InstallLink}}", "transliterate": true,
	})).obj(t)["id"].(string)
	s.pushTemplate = must(t, 201, f.call(t, "POST", "/v1/templates", mk, map[string]any{
		"name": "promo-push", "channel": "push", "locale": "vi", "title": "Bluezone",
		"body": "Cài Bluezone để bảo vệ mình", "data": map[string]string{"screen": "install"},
	})).obj(t)["id"].(string)
	s.alertTemplate = must(t, 201, f.call(t, "POST", "/v1/templates", f.key(tenantA, tenant.RoleHealth), map[string]any{
		"name": "f1-vi", "channel": "sms", "locale": "vi",
		"body": "Bạn đã ở gần người nhiễm COVID-19. Hãy tự cách ly và gọi 1900 9095.", "transliterate": true,
	})).obj(t)["id"].(string)
	s.campaign = must(t, 201, f.call(t, "POST", "/v1/campaigns", mk, f.campaignBody(s))).obj(t)["id"].(string)
	s.alert = must(t, 202, f.call(t, "POST", "/v1/alerts", f.key(tenantA, tenant.RoleHealth), map[string]any{
		"name": "F1 contacts", "channels": []string{"sms"}, "templates": map[string]string{"sms": s.alertTemplate},
		"contacts": []string{"0987654321"},
	})).obj(t)["id"].(string)
	return s
}

func (f *fixture) campaignBody(s seeded) map[string]any {
	return map[string]any{
		"name": "Bluezone Q3", "kind": "install_promotion", "channels": []string{"sms"},
		"templates":       map[string]string{"sms": s.smsTemplate},
		"audience":        map[string]any{"installed": false},
		"rate_per_second": 500,
		"reward":          map[string]any{"data_mb": 5120, "budget_mb": 51200000, "attribution_days": 14},
	}
}

func (f *fixture) audit(t *testing.T, tenantName string) []campaign.AuditEntry {
	t.Helper()
	es, err := f.store.ListAudit(context.Background(), f.tenants[tenantName].ID, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

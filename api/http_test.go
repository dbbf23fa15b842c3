package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"outreach/campaign"
	"outreach/internal/apperr"
	"outreach/tenant"
)

func TestRequestID(t *testing.T) {
	f := newFixture(t)
	t.Run("a sane id from the client is kept", func(t *testing.T) {
		req, _ := http.NewRequest("GET", f.srv.URL+"/healthz", nil)
		req.Header.Set("X-Request-Id", "abc-123")
		res, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("X-Request-Id"); got != "abc-123" {
			t.Errorf("X-Request-Id %q", got)
		}
	})
	t.Run("an id is made when none or a bad one comes", func(t *testing.T) {
		req, _ := http.NewRequest("GET", f.srv.URL+"/healthz", nil)
		req.Header.Set("X-Request-Id", "bad id <script>"+strings.Repeat("x", 200))
		res, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("X-Request-Id"); len(got) != 36 {
			t.Errorf("X-Request-Id %q, want a fresh uuid", got)
		}
	})
	t.Run("errors and the access log carry it", func(t *testing.T) {
		req, _ := http.NewRequest("GET", f.srv.URL+"/v1/campaigns", nil)
		req.Header.Set("X-Request-Id", "trace-42")
		res, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Fatalf("status %d", res.StatusCode)
		}
		if !strings.Contains(f.logs.String(), `"request_id":"trace-42"`) {
			t.Errorf("access log lacks the request id:\n%s", f.logs.String())
		}
	})
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	f := newFixture(t)
	must(t, 200, f.call(t, "GET", "/healthz", "", nil))
	must(t, 200, f.call(t, "GET", "/readyz", "", nil))
	f.setReady(func(context.Context) error { return errors.New("redis: connection refused") })
	r := must(t, 503, f.call(t, "GET", "/readyz", "", nil))
	if r.errorCode(t) != "not_ready" || strings.Contains(string(r.body), "redis") {
		t.Errorf("readyz answered %s", r.body)
	}
	f.setReady(nil)

	must(t, 401, f.call(t, "GET", "/v1/subscribers/0912345678", "", nil))
	for i := range 5 {
		f.call(t, fmt.Sprintf("MADEUP%d", i), "/healthz", "", nil)
	}
	m := string(must(t, 200, f.call(t, "GET", "/metrics", "", nil)).body)
	for _, want := range []string{
		`outreach_http_requests_total{method="GET",route="/readyz",status="503"} 1`,
		`outreach_http_requests_total{method="GET",route="/v1/subscribers/:msisdn",status="401"} 1`,
		`outreach_http_request_duration_seconds_bucket{method="GET",route="/healthz",status="200"`,
		`outreach_http_requests_total{method="other",route="unmatched",status="405"} 5`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, "MADEUP") {
		t.Error("an invented method became a metric label")
	}
	if strings.Contains(m, "912345678") {
		t.Error("metrics carry a phone number")
	}
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	f := newFixture(t)
	r := must(t, 404, f.call(t, "GET", "/v1/nothing", "", nil))
	if r.errorCode(t) != "not_found" {
		t.Errorf("got %s", r.body)
	}
	r = must(t, 405, f.call(t, "DELETE", "/v1/campaigns", f.key(tenantA, tenant.RoleAdmin), nil))
	if r.errorCode(t) != "method_not_allowed" {
		t.Errorf("got %s", r.body)
	}
}

func TestExtraRoutesPlugIn(t *testing.T) {
	f := newFixture(t, func(d *Deps) {
		d.Extra = func(r *gin.Engine, auth AuthFunc) {
			r.GET("/v1/extra/whoami", auth(tenant.RoleViewer), func(c *gin.Context) {
				p, _ := PrincipalOf(c)
				c.JSON(200, gin.H{"tenant": p.TenantName, "role": p.Role})
			})
			r.POST("/v1/extra/echo", auth(tenant.RoleMarketer), func(c *gin.Context) {
				var in struct {
					N int `json:"n"`
				}
				if err := DecodeJSON(c, &in); err != nil {
					WriteError(c, err)
					return
				}
				c.JSON(200, in)
			})
			r.GET("/v1/extra/panic", func(*gin.Context) { panic("boom") })
			r.GET("/v1/extra/fail", func(c *gin.Context) { WriteError(c, fmt.Errorf("db password=hunter2: %w", errors.New("broken"))) })
			r.GET("/v1/extra/limited", func(c *gin.Context) { WriteError(c, fmt.Errorf("budget: %w", apperr.ErrLimited)) })
		}
	})
	got := must(t, 200, f.call(t, "GET", "/v1/extra/whoami", f.key(tenantB, tenant.RoleHealth), nil)).obj(t)
	if got["tenant"] != tenantB || got["role"] != "health" {
		t.Errorf("whoami %v", got)
	}
	must(t, 401, f.call(t, "GET", "/v1/extra/whoami", "", nil))
	must(t, 403, f.call(t, "POST", "/v1/extra/echo", f.key(tenantA, tenant.RoleViewer), map[string]int{"n": 1}))
	must(t, 400, f.call(t, "POST", "/v1/extra/echo", f.key(tenantA, tenant.RoleMarketer), map[string]int{"m": 1}))

	t.Run("a panic is a logged 500 in the error shape", func(t *testing.T) {
		r := must(t, 500, f.call(t, "GET", "/v1/extra/panic", "", nil))
		if r.errorCode(t) != "internal" || !strings.Contains(f.logs.String(), "boom") {
			t.Errorf("got %s", r.body)
		}
		must(t, 200, f.call(t, "GET", "/healthz", "", nil)) // the server lives on
	})
	t.Run("an unmapped error shows internal error and logs the detail", func(t *testing.T) {
		r := must(t, 500, f.call(t, "GET", "/v1/extra/fail", "", nil))
		if strings.Contains(string(r.body), "hunter2") || !strings.Contains(string(r.body), "internal error") {
			t.Errorf("answer %s", r.body)
		}
		if !strings.Contains(f.logs.String(), "broken") {
			t.Error("the detail is not logged")
		}
	})
	t.Run("a limit is 429", func(t *testing.T) {
		r := must(t, 429, f.call(t, "GET", "/v1/extra/limited", "", nil))
		if r.errorCode(t) != "limited" {
			t.Errorf("got %s", r.body)
		}
	})
}

func TestStatusTable(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{apperr.NotFound("campaign"), 404, "not_found"},
		{apperr.Conflict("no"), 409, "conflict"},
		{fmt.Errorf("x: %w", apperr.ErrUnauthorized), 401, "unauthorized"},
		{fmt.Errorf("x: %w", apperr.ErrForbidden), 403, "forbidden"},
		{fmt.Errorf("x: %w", apperr.ErrMalformed), 400, "malformed"},
		{fmt.Errorf("x: %w", apperr.ErrTooLarge), 413, "too_large"},
		{fmt.Errorf("x: %w", apperr.ErrLimited), 429, "limited"},
		{fmt.Errorf("wrapped: %w", apperr.FieldErrors{"name": "required"}), 422, "invalid_fields"},
		{&http.MaxBytesError{Limit: 1 << 20}, 413, "too_large"},
		{errors.New("boom"), 500, "internal"},
		{fmt.Errorf("postgres: list campaigns: %w", dialError(t)), 503, "unavailable"},
		{fmt.Errorf("postgres: ensure subscribers: %w", io.ErrUnexpectedEOF), 503, "unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.err.Error(), func(t *testing.T) {
			status, d := classify(tc.err)
			if status != tc.status || d.Code != tc.code {
				t.Errorf("classify = %d %s, want %d %s", status, d.Code, tc.status, tc.code)
			}
		})
	}
}

func TestABodyTricklingInIsCutOff(t *testing.T) {
	f := newFixture(t, func(d *Deps) { d.BodyReadTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/templates HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{", f.key(tenantA, tenant.RoleMarketer))
	// Cut off: answered (400) or closed, not left waiting for the rest
	// until the client gives up.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		resp.Body.Close()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("a trickling body held the connection until the client gave up: %v", err)
	}
	if err == nil && resp.StatusCode < 400 {
		t.Errorf("a body that never arrived was answered %d", resp.StatusCode)
	}
}

func TestASlowAnswerOutlivesTheBodyReadTimeout(t *testing.T) {
	f := newFixture(t, func(d *Deps) {
		d.BodyReadTimeout = 200 * time.Millisecond
		d.Extra = func(r *gin.Engine, _ AuthFunc) {
			slow := func(c *gin.Context) {
				io.Copy(io.Discard, c.Request.Body)
				select {
				case <-time.After(600 * time.Millisecond):
					c.String(http.StatusOK, "done")
				case <-c.Request.Context().Done():
					c.String(http.StatusServiceUnavailable, "cancelled")
				}
			}
			r.GET("/slow", slow)
			r.POST("/slow", slow)
		}
	})
	for _, tc := range []struct{ method, body string }{{"GET", ""}, {"POST", `{"a":1}`}} {
		req, _ := http.NewRequest(tc.method, f.srv.URL+"/slow", strings.NewReader(tc.body))
		if tc.body == "" {
			req.Body = http.NoBody
		}
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "done" {
			t.Errorf("%s answered %d %q: the body's read deadline cut the request", tc.method, resp.StatusCode, b)
		}
	}
}

// Every error answer has the SPEC's shape {"error": {"code", "message",
// "details"}}, details null when there are none.
func TestEveryErrorCarriesDetails(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	mk := f.key(tenantA, tenant.RoleMarketer)
	must(t, 200, f.call(t, "POST", "/v1/campaigns/"+s.campaign+"/cancel", mk, nil))
	for name, r := range map[string]response{
		"400": f.callCT(t, "POST", "/v1/campaigns", mk, "application/json", "{bad"),
		"401": f.call(t, "GET", "/v1/campaigns", "", nil),
		"403": f.call(t, "GET", "/v1/campaigns", f.key(tenantA, tenant.RoleViewer), nil),
		"404": f.call(t, "GET", "/v1/campaigns/"+uuid.NewString(), mk, nil),
		"409": f.call(t, "POST", "/v1/campaigns/"+s.campaign+"/cancel", mk, nil),
		"422": f.call(t, "POST", "/v1/templates", mk, map[string]any{"name": "x"}),
	} {
		if strconv.Itoa(r.status) != name {
			t.Errorf("%s: got %d %s", name, r.status, r.body)
			continue
		}
		e, _ := r.obj(t)["error"].(map[string]any)
		if _, ok := e["details"]; !ok || e["code"] == "" || e["message"] == "" {
			t.Errorf("%s: error is not {code, message, details}: %s", name, r.body)
		}
	}
}

// dialError is what a client gets from a database or Redis that is down:
// a refused connection.
func dialError(t *testing.T) error {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:1")
	if err == nil {
		c.Close()
		t.Skip("something listens on 127.0.0.1:1")
	}
	return err
}

// unreachableStore answers every campaign listing as a database that is
// down does.
type unreachableStore struct {
	campaign.Store
	err error
}

func (s unreachableStore) ListCampaigns(context.Context, string, campaign.Kind, string, int) ([]campaign.Campaign, error) {
	return nil, fmt.Errorf("postgres: list campaigns: %w", s.err)
}

// A request that fails because the database or Redis cannot be reached
// answers 503 with Retry-After, which a client retries, not 500 "internal
// error", which it does not; the cause is logged.
func TestAnUnreachableDatabaseAnswers503(t *testing.T) {
	f := newFixture(t)
	mk := f.key(tenantA, tenant.RoleMarketer)
	f.svc.Store = unreachableStore{Store: f.svc.Store, err: dialError(t)}
	r := must(t, 503, f.call(t, "GET", "/v1/campaigns", mk, nil))
	if r.errorCode(t) != "unavailable" || r.header.Get("Retry-After") != "5" {
		t.Errorf("got %s, Retry-After %q", r.body, r.header.Get("Retry-After"))
	}
	if !strings.Contains(f.logs.String(), "connection refused") {
		t.Errorf("the cause is not in the log:\n%s", f.logs.String())
	}
}

// hangingStore answers no campaign listing until its caller gives up, as a
// database that accepts connections and never answers (a failover, a
// stopped host) does.
type hangingStore struct{ campaign.Store }

func (hangingStore) ListCampaigns(ctx context.Context, _ string, _ campaign.Kind, _ string, _ int) ([]campaign.Campaign, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("postgres: list campaigns: %w", ctx.Err())
}

// A database that hangs rather than refuses answers 503 timeout with
// Retry-After once the request's time (RequestTimeout) is up: the request
// used to wait for as long as the database did (five minutes and more).
func TestAHangingDatabaseAnswers503InTime(t *testing.T) {
	f := newFixture(t, func(d *Deps) { d.RequestTimeout = 300 * time.Millisecond })
	mk := f.key(tenantA, tenant.RoleMarketer)
	f.svc.Store = hangingStore{f.svc.Store}
	r := must(t, 503, f.call(t, "GET", "/v1/campaigns", mk, nil))
	if r.errorCode(t) != "timeout" || r.header.Get("Retry-After") != "5" {
		t.Errorf("got %s, Retry-After %q", r.body, r.header.Get("Retry-After"))
	}
}

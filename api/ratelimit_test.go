package api

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// limitedEngine is the real engine with one public route behind the limiter.
func limitedEngine(l *PerSourceLimiter) http.Handler {
	return New(Deps{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Extra: func(r *gin.Engine, _ AuthFunc) {
			r.GET("/i/:code", PublicRateLimit(l), func(c *gin.Context) { c.Status(http.StatusFound) })
		},
	})
}

func getFrom(h http.Handler, addr string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "/i/abc123", nil)
	req.RemoteAddr = addr
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// clock is a settable time for the limiter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestPublicRateLimit(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Unix(1_764_000_000, 0)}
	l := NewPerSourceLimiter(2, 5, 0)
	l.now = clk.now
	h := limitedEngine(l)

	t.Run("a burst above the limit from one source gets 429 in the error shape", func(t *testing.T) {
		for i := range 5 {
			if rec := getFrom(h, "203.0.113.7:40000"); rec.Code != http.StatusFound {
				t.Fatalf("request %d of the burst: %d", i+1, rec.Code)
			}
		}
		rec := getFrom(h, "203.0.113.7:40001") // another port, the same source
		if rec.Code != http.StatusTooManyRequests {
			t.Fatalf("6th request: %d, want 429", rec.Code)
		}
		if got := rec.Header().Get("Retry-After"); got != "1" {
			t.Errorf("Retry-After %q, want 1 (one token at 2/s)", got)
		}
		var body errorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("body %s: %v", rec.Body, err)
		}
		if body.Error.Code != "rate_limited" || body.Error.Message == "" || body.Error.RequestID == "" {
			t.Errorf("error %+v, want code rate_limited with a message and the request id", body.Error)
		}
	})
	t.Run("another source is still served", func(t *testing.T) {
		if rec := getFrom(h, "198.51.100.1:5555"); rec.Code != http.StatusFound {
			t.Fatalf("another source: %d", rec.Code)
		}
	})
	t.Run("the limited source is served again once its bucket refills", func(t *testing.T) {
		clk.add(500 * time.Millisecond)
		if rec := getFrom(h, "203.0.113.7:40000"); rec.Code != http.StatusFound {
			t.Fatalf("after 0.5 s: %d", rec.Code)
		}
		if rec := getFrom(h, "203.0.113.7:40000"); rec.Code != http.StatusTooManyRequests {
			t.Fatalf("the token was spent, then: %d", rec.Code)
		}
	})
	t.Run("the addresses of one IPv6 /64 share a bucket", func(t *testing.T) {
		for i := range 5 {
			if rec := getFrom(h, fmt.Sprintf("[2001:db8:1:2::%x]:443", i+1)); rec.Code != http.StatusFound {
				t.Fatalf("request %d: %d", i+1, rec.Code)
			}
		}
		if rec := getFrom(h, "[2001:db8:1:2:ffff::1]:443"); rec.Code != http.StatusTooManyRequests {
			t.Fatalf("another address of the /64: %d, want 429", rec.Code)
		}
		if rec := getFrom(h, "[2001:db8:1:3::1]:443"); rec.Code != http.StatusFound {
			t.Fatalf("the next /64: %d", rec.Code)
		}
	})
	t.Run("an IPv4 address mapped in IPv6 is the IPv4 source", func(t *testing.T) {
		if rec := getFrom(h, "[::ffff:203.0.113.7]:1"); rec.Code != http.StatusTooManyRequests {
			t.Fatalf("::ffff:203.0.113.7: %d, want 429 like 203.0.113.7", rec.Code)
		}
	})
}

func TestPerSourceLimiterMemoryIsBounded(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Unix(1_764_000_000, 0)}
	l := NewPerSourceLimiter(10, 20, 1000)
	l.now = clk.now

	t.Run("many sources never hold more than the maximum", func(t *testing.T) {
		for i := range 100_000 {
			l.Allow(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
			if i%1000 == 0 && l.Len() > 1000 {
				t.Fatalf("%d sources tracked after %d, want at most 1000", l.Len(), i+1)
			}
		}
		if l.Len() != 1000 {
			t.Fatalf("%d sources tracked, want 1000", l.Len())
		}
	})
	t.Run("a busy source is not pushed out by a crowd of new ones", func(t *testing.T) {
		for range 20 {
			l.Allow("192.0.2.1")
		}
		if ok, _ := l.Allow("192.0.2.1"); ok {
			t.Fatal("the 21st request of a burst of 20 was allowed")
		}
		for i := range 5000 {
			l.Allow(fmt.Sprintf("172.16.%d.%d", i>>8&255, i&255))
			if i%100 == 0 {
				if ok, _ := l.Allow("192.0.2.1"); ok {
					t.Fatalf("after %d new sources the limited one got a fresh bucket", i+1)
				}
			}
		}
	})
	t.Run("sources idle long enough to refill are forgotten", func(t *testing.T) {
		clk.add(2 * time.Second) // burst 20 at 10/s refills in 2 s
		l.Allow("192.0.2.2")
		if l.Len() != 1 {
			t.Fatalf("%d sources tracked after every other one idled, want 1", l.Len())
		}
	})
}

func TestPerSourceLimiterUnderConcurrency(t *testing.T) {
	t.Parallel()
	l := NewPerSourceLimiter(1e-3, 50, 100) // next to no refill during the test
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := map[string]int{}
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				src := "10.0.0." + strconv.Itoa((g+i)%4)
				if ok, _ := l.Allow(src); ok {
					mu.Lock()
					allowed[src]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for src, n := range allowed {
		if n != 50 {
			t.Errorf("%s: %d allowed, want the burst of 50", src, n)
		}
	}
	if len(allowed) != 4 {
		t.Errorf("%d sources served, want 4", len(allowed))
	}
}

func TestPublicRateLimitCanBeOff(t *testing.T) {
	t.Parallel()
	for name, l := range map[string]*PerSourceLimiter{"nil": nil, "zero rate": NewPerSourceLimiter(0, 1, 0)} {
		h := limitedEngine(l)
		for i := range 50 {
			if rec := getFrom(h, "203.0.113.9:1"); rec.Code != http.StatusFound {
				t.Fatalf("%s limiter, request %d: %d", name, i+1, rec.Code)
			}
		}
	}
}

func TestPublicRateLimitRoutesLimitsOnlyTheNamedRoutes(t *testing.T) {
	t.Parallel()
	links, hooks := NewPerSourceLimiter(1e-3, 2, 0), NewPerSourceLimiter(1e-3, 3, 0)
	h := New(Deps{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Extra: func(r *gin.Engine, _ AuthFunc) {
			r.Use(PublicRateLimitRoutes(map[string]*PerSourceLimiter{"/i/:code": links, "/webhooks/twilio/status": hooks}))
			r.GET("/i/:code", func(c *gin.Context) { c.Status(http.StatusFound) })
			r.POST("/webhooks/twilio/status", func(c *gin.Context) { c.Status(http.StatusNoContent) })
			r.GET("/v1/rewards", func(c *gin.Context) { c.Status(http.StatusOK) })
		},
	})
	call := func(method, path string) int {
		req := httptest.NewRequest(method, path, nil)
		req.RemoteAddr = "203.0.113.7:1234"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	var got []int
	for range 4 {
		got = append(got, call("GET", "/i/code"+strconv.Itoa(len(got))), call("POST", "/webhooks/twilio/status"), call("GET", "/v1/rewards"))
	}
	want := []int{302, 204, 200, 302, 204, 200, 429, 204, 200, 429, 429, 200}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v: each route its own limit, other routes none", got, want)
	}
	if code := call("GET", "/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
}

func TestBehindATrustedProxyEachClientHasItsOwnLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		trusted []string
		want    []int
	}{
		{"a trusted balancer's X-Forwarded-For names the client", []string{"10.0.0.0/8"}, []int{302, 302, 302, 429, 302, 302}},
		{"an untrusted peer's X-Forwarded-For is ignored", nil, []int{302, 302, 429, 429, 429, 429}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewPerSourceLimiter(1e-3, 2, 0)
			h := New(Deps{
				Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
				TrustedProxies: tc.trusted,
				Extra: func(r *gin.Engine, _ AuthFunc) {
					r.GET("/i/:code", PublicRateLimit(l), func(c *gin.Context) { c.Status(http.StatusFound) })
				},
			})
			var got []int
			for _, client := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.1", "198.51.100.1", "198.51.100.3", "198.51.100.2"} {
				req := httptest.NewRequest("GET", "/i/abc123", nil)
				req.RemoteAddr = "10.1.2.3:5555" // the balancer
				req.Header.Set("X-Forwarded-For", client)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				got = append(got, rec.Code)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("statuses %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAProbesOnlyHandlerServesNoAPI(t *testing.T) {
	t.Parallel()
	h := New(Deps{
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		ProbesOnly: true,
		Extra: func(r *gin.Engine, _ AuthFunc) {
			r.GET("/i/:code", func(c *gin.Context) { c.Status(http.StatusFound) })
		},
	})
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200,
		"/v1/campaigns": 404, "/v1/templates/x": 404, "/i/abc": 404} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
		}
	}
}

func TestAClientCannotChooseItsSourceByXRealIP(t *testing.T) {
	t.Parallel()
	l := NewPerSourceLimiter(1e-3, 1, 0)
	h := New(Deps{
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		TrustedProxies: []string{"10.0.0.0/8"},
		Extra: func(r *gin.Engine, _ AuthFunc) {
			r.GET("/i/:code", PublicRateLimit(l), func(c *gin.Context) { c.Status(http.StatusFound) })
		},
	})
	var got []int
	for i := range 3 {
		req := httptest.NewRequest("GET", "/i/abc123", nil)
		req.RemoteAddr = "10.1.2.3:5555" // a balancer that sets no X-Forwarded-For
		req.Header.Set("X-Real-IP", fmt.Sprintf("198.51.100.%d", i+1))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got = append(got, rec.Code)
	}
	if fmt.Sprint(got) != fmt.Sprint([]int{302, 429, 429}) {
		t.Fatalf("statuses %v: a client's own X-Real-IP chose its bucket", got)
	}
}

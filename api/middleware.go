package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"outreach/internal/apperr"
	"outreach/subscriber"
)

// Keys of values the middleware keeps in the gin context.
const (
	keyRequestID = "outreach.request_id"
	keyPrincipal = "outreach.principal"
	keyLogger    = "outreach.logger"
	keyLimits    = "outreach.limits"
)

// HeaderRequestID carries the request id in and out.
const HeaderRequestID = "X-Request-Id"

type requestIDKey struct{}

// RequestID returns the request id kept in ctx by the API, or "".
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey{}).(string)
	return s
}

// requestID takes a sane X-Request-Id from the client or makes one, and
// sends it back.
func (s *server) requestID(c *gin.Context) {
	id := c.GetHeader(HeaderRequestID)
	if !saneRequestID(id) {
		id = uuid.NewString()
	}
	c.Set(keyRequestID, id)
	c.Set(keyLogger, s.log)
	c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), requestIDKey{}, id))
	c.Header(HeaderRequestID, id)
	c.Next()
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '-' || r == '_' || r == '.' || r == ':'
		if !ok {
			return false
		}
	}
	return true
}

func requestIDOf(c *gin.Context) string { return c.GetString(keyRequestID) }

func loggerOf(c *gin.Context) *slog.Logger {
	if l, ok := c.Get(keyLogger); ok {
		return l.(*slog.Logger)
	}
	return slog.Default()
}

// routeOf is the route template (/v1/subscribers/:msisdn), never the raw
// path, which may hold a phone number.
func routeOf(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

type limits struct{ body, upload int64 }

// Read deadlines: a request's body must arrive within BodyReadTimeout (a
// subscriber import, streamed, within uploadReadTimeout), so that a client
// trickling a body a byte at a time cannot hold a connection and its
// goroutine for ever. The server's ReadHeaderTimeout bounds the headers.
const (
	DefaultBodyReadTimeout = 30 * time.Second
	DefaultRequestTimeout  = time.Minute
	uploadReadTimeout      = time.Hour
)

// uploads are the routes whose body is a streamed upload.
var uploads = map[string]bool{"/v1/subscribers/import": true}

func (s *server) limits(c *gin.Context) {
	c.Set(keyLimits, limits{body: s.d.MaxBodyBytes, upload: s.d.MaxUploadBytes})
	work := s.d.RequestTimeout
	if uploads[c.FullPath()] {
		work = uploadReadTimeout
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), work)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	if body := c.Request.Body; body != nil && body != http.NoBody && c.Request.ContentLength != 0 {
		timeout := s.d.BodyReadTimeout
		if uploads[c.FullPath()] {
			timeout = uploadReadTimeout
		}
		// Only while the body is read: with no body (or once it is read)
		// net/http reads the connection in the background to see the
		// client hang up, and a deadline there would cancel a slow answer.
		// Not every ResponseWriter can (httptest's recorder cannot): then
		// the body is read without a deadline, as before.
		rc := http.NewResponseController(c.Writer)
		if rc.SetReadDeadline(time.Now().Add(timeout)) == nil {
			c.Request.Body = &deadlineBody{ReadCloser: body, rc: rc}
		}
	}
	c.Next()
}

// deadlineBody lifts the connection's read deadline once the body has been
// read to its end. A body cut off by the deadline keeps it: the server
// reads what is left of a body before it answers, and without the deadline
// it would wait for the trickle again.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

func limitsOf(c *gin.Context) limits {
	if l, ok := c.Get(keyLimits); ok {
		return l.(limits)
	}
	return limits{body: DefaultMaxBodyBytes, upload: DefaultMaxUploadBytes}
}

// quiet routes are probed every few seconds; their access log is debug.
var quiet = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// observe writes the access log line and the HTTP metrics of each request.
// It logs the route template and a masked MSISDN, never the raw path.
func (s *server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	elapsed := time.Since(start)
	route := routeOf(c)
	status := c.Writer.Status()
	code := strconv.Itoa(status)
	method := metricMethod(c.Request.Method)
	s.metrics.requests.WithLabelValues(route, method, code).Inc()
	s.metrics.latency.WithLabelValues(route, method, code).Observe(elapsed.Seconds())

	attrs := []slog.Attr{
		slog.String("request_id", requestIDOf(c)),
		slog.String("method", method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("latency_ms", float64(elapsed.Microseconds())/1000),
		slog.Int("bytes_out", c.Writer.Size()),
	}
	if p, ok := PrincipalOf(c); ok {
		attrs = append(attrs, slog.String("tenant", p.TenantName), slog.String("key_id", p.KeyID))
	}
	if m := c.Param("msisdn"); m != "" {
		attrs = append(attrs, slog.String("msisdn", subscriber.Mask(m)))
	}
	if status < 500 && len(c.Errors) > 0 {
		// The code and the names of the bad fields, not the message: a
		// message may quote what the client sent (a number, a token).
		err := c.Errors.Last().Err
		_, d := classify(err)
		attrs = append(attrs, slog.String("error", d.Code))
		var fe apperr.FieldErrors
		if errors.As(err, &fe) {
			attrs = append(attrs, slog.Any("fields", slices.Sorted(maps.Keys(fe))))
		}
	}
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case quiet[route]:
		level = slog.LevelDebug
	}
	s.log.LogAttrs(c.Request.Context(), level, "http request", attrs...)
}

// recovery turns a panic into a logged 500 in the API's error shape.
func (s *server) recovery(c *gin.Context) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v == http.ErrAbortHandler { //nolint:errorlint // a sentinel panic value, compared as net/http does
			panic(v)
		}
		s.log.ErrorContext(c.Request.Context(), "panic in handler", "request_id", requestIDOf(c),
			"route", routeOf(c), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		if c.Writer.Written() {
			c.Abort()
			return
		}
		writeError(c, fmt.Errorf("panic: %v", v))
	}()
	c.Next()
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	reg      *prometheus.Registry
}

func newHTTPMetrics(reg *prometheus.Registry) *httpMetrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outreach_http_requests_total",
		Help: "HTTP requests by route template, method and status.",
	}, []string{"route", "method", "status"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "outreach_http_request_duration_seconds",
		Help:    "HTTP request latency by route template, method and status.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route", "method", "status"})
	return &httpMetrics{requests: register(reg, requests), latency: register(reg, latency), reg: reg}
}

// register adds c to reg, or reuses the collector already registered under
// the same name (a second API on one registry, as in tests).
func register[C prometheus.Collector](reg *prometheus.Registry, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("api: register metrics: %v", err))
	}
	return c
}

func (s *server) metricsHandler() gin.HandlerFunc {
	h := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	return gin.WrapH(h)
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// metricMethod is the request method as a metric label: any method outside
// HTTP's own is "other", so that a client inventing methods cannot grow
// /metrics without bound.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

package api

import (
	"container/list"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"outreach/internal/apperr"
)

// DefaultMaxSources bounds how many sources a PerSourceLimiter tracks
// (about 250 bytes each, so some 16 MB at most).
const DefaultMaxSources = 65536

// PerSourceLimiter is a token bucket per client address for the public
// routes, which answer anyone: install callbacks, Twilio webhooks and
// install links. IPv4 addresses are keyed whole, IPv6 ones by their /64
// (one subscriber line or host gets a whole /64, so a per-address key
// would give one client 2^64 buckets).
//
// Memory is bounded: a source idle long enough to have refilled its bucket
// is forgotten (a fresh bucket is the same thing), and past MaxSources the
// least recently seen source is dropped. An attacker who wants to reset
// his own bucket that way must keep more than MaxSources other addresses
// busier than himself, at which point a per-address limit means nothing
// anyway.
type PerSourceLimiter struct {
	limit rate.Limit
	burst int
	max   int
	idle  time.Duration // time for an empty bucket to fill again
	now   func() time.Time

	mu      sync.Mutex
	sources map[string]*list.Element // of *sourceBucket
	lru     list.List                // front: most recently seen
}

type sourceBucket struct {
	key  string
	lim  *rate.Limiter
	seen time.Time
}

// NewPerSourceLimiter allows each source perSecond requests a second on
// average, in bursts of up to burst, tracking at most maxSources sources
// (0 means DefaultMaxSources). perSecond ≤ 0 disables the limit.
func NewPerSourceLimiter(perSecond float64, burst, maxSources int) *PerSourceLimiter {
	if burst < 1 {
		burst = 1
	}
	if maxSources <= 0 {
		maxSources = DefaultMaxSources
	}
	l := &PerSourceLimiter{
		limit:   rate.Limit(perSecond),
		burst:   burst,
		max:     maxSources,
		now:     time.Now,
		sources: make(map[string]*list.Element),
	}
	if perSecond > 0 {
		l.idle = time.Duration(float64(burst) / perSecond * float64(time.Second))
	}
	return l
}

// Allow takes one token from the bucket of the source at addr (an IP
// address as gin's ClientIP gives it); when there is none it reports how
// long until there will be.
func (l *PerSourceLimiter) Allow(addr string) (ok bool, retryAfter time.Duration) {
	if l == nil || l.limit <= 0 {
		return true, 0
	}
	now := l.now()
	lim := l.bucket(sourceKey(addr), now)
	if lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - lim.TokensAt(now)
	return false, time.Duration(missing / float64(l.limit) * float64(time.Second))
}

// Len is how many sources are tracked.
func (l *PerSourceLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sources)
}

func (l *PerSourceLimiter) bucket(key string, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Forget the sources whose buckets are full again, oldest first.
	for e := l.lru.Back(); e != nil && now.Sub(e.Value.(*sourceBucket).seen) >= l.idle; e = l.lru.Back() {
		l.drop(e)
	}
	if e, ok := l.sources[key]; ok {
		b := e.Value.(*sourceBucket)
		b.seen = now
		l.lru.MoveToFront(e)
		return b.lim
	}
	if len(l.sources) >= l.max {
		l.drop(l.lru.Back())
	}
	b := &sourceBucket{key: key, lim: rate.NewLimiter(l.limit, l.burst), seen: now}
	l.sources[key] = l.lru.PushFront(b)
	return b.lim
}

func (l *PerSourceLimiter) drop(e *list.Element) {
	l.lru.Remove(e)
	delete(l.sources, e.Value.(*sourceBucket).key)
}

// sourceKey is the address itself for IPv4 (and IPv4 mapped in IPv6), the
// /64 prefix for IPv6.
func sourceKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return addr
	}
	return p.String()
}

// PublicRateLimit answers 429 rate_limited, with Retry-After, to a source
// over its limit; put it first on a public route so that a flood is turned
// away before any body is read or signature checked. A nil limiter lets
// everything through.
//
// The source is c.ClientIP(): the peer address, or behind the load
// balancers named in Deps.TrustedProxies (OUTREACH_TRUSTED_PROXIES) the
// client their X-Forwarded-For names; without them the limit would be per
// balancer, not per client.
func PublicRateLimit(limiter *PerSourceLimiter) gin.HandlerFunc {
	return func(c *gin.Context) {
		ok, wait := limiter.Allow(c.ClientIP())
		if ok {
			c.Next()
			return
		}
		secs := int(math.Ceil(wait.Seconds()))
		if secs < 1 {
			secs = 1
		}
		c.Header("Retry-After", strconv.Itoa(secs))
		WriteError(c, &Error{Err: apperr.ErrLimited, Code: "rate_limited",
			Message: fmt.Sprintf("too many requests from this address: retry after %d s", secs)})
	}
}

// PublicRateLimitRoutes is PublicRateLimit for the routes named in limits
// by their template ("/i/:code"), each with its limiter; every other
// request passes untouched. It is for engine.Use in Deps.Extra, before the
// public routes are registered (gin applies Use to the routes added after
// it), when they are registered by code that takes no middleware.
func PublicRateLimitRoutes(limits map[string]*PerSourceLimiter) gin.HandlerFunc {
	handlers := make(map[string]gin.HandlerFunc, len(limits))
	for route, l := range limits {
		handlers[route] = PublicRateLimit(l)
	}
	return func(c *gin.Context) {
		if h, ok := handlers[c.FullPath()]; ok {
			h(c)
			return
		}
		c.Next()
	}
}

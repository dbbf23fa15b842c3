// Package provisioningfake is a fake of the carrier's provisioning API that
// speaks its wire protocol on loopback, for tests and the demo. It checks
// every request's signature and timestamp, credits each reward id once
// (answering 409 to a repeated Idempotency-Key), and can be told to fail or
// to be slow.
package provisioningfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"outreach/provider/provisioning"
)

// Grant is one credited reward.
type Grant struct {
	provisioning.Request
	At time.Time
}

// Server is the fake API. Its URL is what OUTREACH_REWARDS_URL points at.
type Server struct {
	srv    *httptest.Server
	secret string

	mu       sync.Mutex
	grants   map[string]Grant // by reward id
	order    []string
	byMSISDN map[string]int
	totalMB  int64
	requests int
	replays  int
	rejected int // bad signature, stale or malformed
	// failures
	failNext   []int
	failEvery  int
	failStatus int
	latency    time.Duration
	failFn     func(provisioning.Request) int
}

// New starts a fake that verifies signatures under secret.
func New(secret string) *Server {
	s := &Server{secret: secret, grants: map[string]Grant{}, byMSISDN: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the endpoint to POST grants to.
func (s *Server) URL() string { return s.srv.URL + "/v1/grants" }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Client returns a provisioning client of this fake.
func (s *Server) Client() *provisioning.Client {
	c := provisioning.New(s.URL(), s.secret)
	c.HTTP = s.srv.Client()
	c.HTTP.Timeout = 10 * time.Second
	return c
}

// FailNext makes the next calls answer these statuses, one each, before
// any credit is made (say 503, 503, 400).
func (s *Server) FailNext(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = append(s.failNext, statuses...)
}

// FailEvery makes every n-th call (counting all calls) answer status
// without crediting; n 0 stops it.
func (s *Server) FailEvery(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failEvery, s.failStatus = n, status
}

// FailFunc decides, per request, a status to answer instead of crediting
// (0 to credit); nil removes it.
func (s *Server) FailFunc(f func(provisioning.Request) int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failFn = f
}

// SetLatency delays every answer.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	s.mu.Lock()
	latency := s.latency
	s.mu.Unlock()
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
	}
	if err != nil {
		s.reject(w, http.StatusBadRequest, "unreadable body")
		return
	}
	ts := r.Header.Get(provisioning.HeaderTimestamp)
	switch err := provisioning.Verify(s.secret, ts, body, r.Header.Get(provisioning.HeaderSignature), time.Now(), 5*time.Minute); err {
	case nil:
	case provisioning.ErrStale:
		s.reject(w, http.StatusUnauthorized, "stale timestamp")
		return
	default:
		s.reject(w, http.StatusUnauthorized, "bad signature")
		return
	}
	var req provisioning.Request
	if err := json.Unmarshal(body, &req); err != nil || req.RewardID == "" || req.MSISDN == "" || req.DataMB <= 0 {
		s.reject(w, http.StatusBadRequest, "want {msisdn, data_mb, campaign_id, reward_id}")
		return
	}
	key := r.Header.Get(provisioning.HeaderIdempotencyKey)
	if key != req.RewardID {
		s.reject(w, http.StatusBadRequest, "Idempotency-Key must be the reward id")
		return
	}

	s.mu.Lock()
	s.requests++
	status := 0
	switch {
	case len(s.failNext) > 0:
		status, s.failNext = s.failNext[0], s.failNext[1:]
	case s.failEvery > 0 && s.requests%s.failEvery == 0:
		status = s.failStatus
	case s.failFn != nil:
		status = s.failFn(req)
	}
	if status != 0 {
		s.mu.Unlock()
		http.Error(w, "injected failure", status)
		return
	}
	if _, ok := s.grants[key]; ok {
		s.replays++
		s.mu.Unlock()
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, `{"status":"already_granted"}`)
		return
	}
	s.grants[key] = Grant{Request: req, At: time.Now()}
	s.order = append(s.order, key)
	s.byMSISDN[req.MSISDN]++
	s.totalMB += req.DataMB
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, `{"status":"granted"}`)
}

func (s *Server) reject(w http.ResponseWriter, status int, msg string) {
	s.mu.Lock()
	s.rejected++
	s.mu.Unlock()
	http.Error(w, msg, status)
}

// Grants returns every credited reward, in the order credited.
func (s *Server) Grants() []Grant {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Grant, len(s.order))
	for i, id := range s.order {
		out[i] = s.grants[id]
	}
	return out
}

// Granted reports whether the reward id was credited.
func (s *Server) Granted(rewardID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.grants[rewardID]
	return ok
}

// CountMSISDN is how many rewards credited the number.
func (s *Server) CountMSISDN(msisdn string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byMSISDN[msisdn]
}

// MSISDNs returns how many rewards credited each number.
func (s *Server) MSISDNs() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.byMSISDN))
	for k, v := range s.byMSISDN {
		out[k] = v
	}
	return out
}

// Totals are what the fake has seen.
type Totals struct {
	Grants   int   // distinct rewards credited
	MB       int64 // data credited
	Requests int   // authenticated, well-formed calls (failures injected included)
	Replays  int   // calls answered 409
	Rejected int   // calls refused for signature, timestamp or shape
}

// Totals returns the counts so far.
func (s *Server) Totals() Totals {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Totals{Grants: len(s.order), MB: s.totalMB, Requests: s.requests, Replays: s.replays, Rejected: s.rejected}
}

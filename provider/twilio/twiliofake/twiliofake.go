// Package twiliofake is an in-process fake of Twilio's Messages REST API
// (POST /2010-04-01/Accounts/{Sid}/Messages.json to send, GET of the same
// path to list what was sent) speaking the real wire format, for tests,
// benchmarks and demos. It checks HTTP Basic auth, answers Twilio's JSON
// error shape, computes num_segments, can inject failures and latency, and
// posts signed status callbacks.
//
// It is safe for concurrent use and cheap per request: with RecordBodies(false)
// it keeps only a count per recipient.
package twiliofake

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Message is one message the fake accepted.
type Message struct {
	SID                 string
	AccountSID          string
	To                  string
	From                string
	MessagingServiceSID string
	Body                string
	StatusCallback      string
	// ValidityPeriod as sent (whole seconds); 0 when the field was absent.
	ValidityPeriod time.Duration
	Segments       int
	At             time.Time
}

// Server is a fake Twilio REST server. The zero value is not usable; call New.
type Server struct {
	accountSID string
	authToken  string
	authHeader string // "Basic base64(sid:token)"
	msgPath    string // "/2010-04-01/Accounts/{sid}/Messages.json"
	sidPrefix  string // random per server, 16 hex chars

	// OnMessage, when set, is called for every accepted message, after the
	// 201 answer has been flushed to the client (so a status callback sent
	// from it cannot overtake the answer). It runs on the request goroutine:
	// start a goroutine for slow work. Set it before serving.
	OnMessage func(Message)

	seq      atomic.Uint64
	count    atomic.Int64
	attempts atomic.Int64
	latency  atomic.Int64 // nanoseconds
	down     atomic.Bool
	record   atomic.Bool

	mu     sync.Mutex
	msgs   []Message
	perTo  map[string]int
	failTo map[string]failure

	// Fault injection; the atomics keep the no-fault path lock-free.
	failToN  atomic.Int32
	nextN    atomic.Int64
	rateOn   atomic.Bool
	faultMu  sync.Mutex
	nextFail failure
	rateFail failure
	rateP    float64
	rng      *mrand.Rand

	srvMu sync.Mutex
	srv   *http.Server
	ln    net.Listener
	base  string

	handler http.Handler
}

type failure struct {
	status int
	code   int
}

// New returns a fake for one account. Credentials are what clients must send
// as HTTP Basic auth.
func New(accountSID, authToken string) *Server {
	var rb [8]byte
	_, _ = rand.Read(rb[:])
	s := &Server{
		accountSID: accountSID,
		authToken:  authToken,
		authHeader: "Basic " + base64.StdEncoding.EncodeToString([]byte(accountSID+":"+authToken)),
		msgPath:    "/2010-04-01/Accounts/" + accountSID + "/Messages.json",
		sidPrefix:  hex.EncodeToString(rb[:]),
		perTo:      make(map[string]int),
		failTo:     make(map[string]failure),
		rng:        mrand.New(mrand.NewPCG(1, 2)),
	}
	s.record.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{sid}/Messages.json", s.createMessage)
	mux.HandleFunc("GET /2010-04-01/Accounts/{sid}/Messages.json", s.listMessages)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s.down.Load() {
			writeDown(w)
			return
		}
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
	})
	s.handler = mux
	return s
}

// Handler serves the fake's routes, for mounting on a server of your own.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on 127.0.0.1 on a free port and serves until Close. It
// returns the base URL ("http://127.0.0.1:PORT") to give the client.
func (s *Server) Start() (baseURL string, err error) {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv != nil {
		return s.base, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("twiliofake: listen: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	s.base = "http://" + ln.Addr().String()
	go func(srv *http.Server) { _ = srv.Serve(ln) }(s.srv)
	return s.base, nil
}

// URL is the base URL returned by Start, or "" before it.
func (s *Server) URL() string {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	return s.base
}

// Close stops the server started by Start and drops its connections
// (a request held by SetLatency ends at once).
func (s *Server) Close() {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv != nil {
		_ = s.srv.Close()
		s.srv = nil
	}
}

// RecordBodies chooses whether accepted messages are kept for Messages()
// (default true). With false only the counts (Count, CountTo) are kept,
// which keeps memory flat in benchmarks.
func (s *Server) RecordBodies(on bool) { s.record.Store(on) }

// Messages returns a copy of the recorded messages, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.msgs))
	copy(out, s.msgs)
	return out
}

// Count is the number of accepted messages.
func (s *Server) Count() int { return int(s.count.Load()) }

// Attempts is the number of requests to the Messages endpoint, accepted or not.
func (s *Server) Attempts() int { return int(s.attempts.Load()) }

// CountTo is the number of accepted messages to one recipient.
func (s *Server) CountTo(to string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perTo[to]
}

// Reset forgets every message and count and clears all injected faults,
// latency and SetDown. Credentials, RecordBodies and OnMessage stay.
func (s *Server) Reset() {
	s.mu.Lock()
	s.msgs = nil
	s.perTo = make(map[string]int)
	s.count.Store(0)
	s.attempts.Store(0)
	s.mu.Unlock()
	s.ClearFaults()
}

// ClearFaults removes every injected failure, the latency and SetDown.
func (s *Server) ClearFaults() {
	s.latency.Store(0)
	s.down.Store(false)
	s.nextN.Store(0)
	s.rateOn.Store(false)
	s.mu.Lock()
	s.failTo = make(map[string]failure)
	s.failToN.Store(0)
	s.mu.Unlock()
}

// SetLatency delays every answer by d. An accepted message is recorded
// before the delay, so a client that gives up meanwhile has still had its
// message accepted (Twilio's "answer lost" case).
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// SetDown makes every request answer 503 with an HTML body (as a load
// balancer in front of Twilio does), until SetDown(false).
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// FailNext makes the next n requests fail with this HTTP status and Twilio
// error code. Code 0 answers an HTML body instead of Twilio's JSON.
func (s *Server) FailNext(n int, status, code int) {
	s.faultMu.Lock()
	s.nextFail = failure{status, code}
	s.faultMu.Unlock()
	s.nextN.Store(int64(n))
}

// FailRate makes a random fraction p of requests fail (0 turns it off). The
// generator is seeded, so a run is reproducible for a given request order.
func (s *Server) FailRate(p float64, status, code int) {
	s.faultMu.Lock()
	s.rateFail = failure{status, code}
	s.rateP = p
	s.faultMu.Unlock()
	s.rateOn.Store(p > 0)
}

// Seed reseeds FailRate's generator.
func (s *Server) Seed(seed uint64) {
	s.faultMu.Lock()
	s.rng = mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s.faultMu.Unlock()
}

// FailTo makes every message to this number fail, e.g. FailTo(n, 400, 21610)
// for an opted-out recipient or FailTo(n, 400, 21211) for an invalid one.
// Status 0 removes the rule.
func (s *Server) FailTo(to string, status, code int) {
	s.mu.Lock()
	if status == 0 {
		delete(s.failTo, to)
	} else {
		s.failTo[to] = failure{status, code}
	}
	s.failToN.Store(int32(len(s.failTo)))
	s.mu.Unlock()
}

// loseAnswer is the failure status of LoseAnswerTo.
const loseAnswer = -1

// LoseAnswerTo makes every message to this number be accepted (recorded,
// counted, given a SID) and its connection then cut before the answer: the
// client cannot know whether it went (Twilio's "answer lost" case), while
// SendStatus can still report on it. LoseAnswerTo(to, false) removes it.
func (s *Server) LoseAnswerTo(to string, lose bool) { s.cutWhile(to, lose, loseAnswer) }

// dropRequest is the failure status of DropRequestTo.
const dropRequest = -2

// DropRequestTo makes every request to this number have its connection cut
// once the request is read, before the message is taken: the client cannot
// know whether it went, and it did not (no SID, not listed, not counted).
// DropRequestTo(to, false) removes it.
func (s *Server) DropRequestTo(to string, drop bool) { s.cutWhile(to, drop, dropRequest) }

// cutWhile sets (on) or removes the connection-cutting rule how for to.
func (s *Server) cutWhile(to string, on bool, how int) {
	if !on {
		how = 0
	}
	s.FailTo(to, how, 0)
}

// errorMessages are Twilio's texts for the codes tests use most.
var errorMessages = map[int]string{
	20003: "Authenticate",
	20404: "The requested resource was not found",
	20429: "Too Many Requests",
	20500: "Internal Server Error",
	20503: "Service Unavailable",
	21211: "Invalid 'To' Phone Number",
	21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
	21602: "Message body is required.",
	21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message",
	21604: "A 'To' phone number is required.",
	21610: "Attempt to send to unsubscribed recipient",
	21611: "This 'From' number has exceeded the maximum number of queued messages",
	21612: "The 'To' phone number is not currently reachable via SMS",
	21614: "'To' number is not a valid mobile number",
	21617: "The concatenated message body exceeds the 1600 character limit.",
	21624: "Invalid validity period value",
	30005: "Unknown destination handset",
	30006: "Landline or unreachable carrier",
}

func (s *Server) createMessage(w http.ResponseWriter, r *http.Request) {
	// A message's time is when its request came in, before the fake's own
	// work on it (parsing, checks), as a provider counts its rate.
	arrived := time.Now().UTC()
	s.attempts.Add(1)
	if s.down.Load() {
		writeDown(w)
		return
	}
	if !s.authorized(r) {
		writeError(w, http.StatusUnauthorized, 20003, "")
		return
	}
	if r.PathValue("sid") != s.accountSID {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, 20001, "Could not parse the request body: "+err.Error())
		return
	}
	f := r.PostForm
	m := Message{
		AccountSID:          s.accountSID,
		To:                  f.Get("To"),
		From:                f.Get("From"),
		MessagingServiceSID: f.Get("MessagingServiceSid"),
		Body:                f.Get("Body"),
		StatusCallback:      f.Get("StatusCallback"),
	}
	if v := f.Get("ValidityPeriod"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 36000 {
			writeError(w, http.StatusBadRequest, 21624, "")
			return
		}
		m.ValidityPeriod = time.Duration(n) * time.Second
	}
	switch {
	case m.To == "":
		writeError(w, http.StatusBadRequest, 21604, "")
		return
	case m.Body == "" && f.Get("MediaUrl") == "" && f.Get("ContentSid") == "":
		writeError(w, http.StatusBadRequest, 21602, "")
		return
	case m.From == "" && m.MessagingServiceSID == "":
		writeError(w, http.StatusBadRequest, 21603, "")
		return
	case !validE164(m.To):
		writeError(w, http.StatusBadRequest, 21211, "Invalid 'To' Phone Number: "+m.To)
		return
	case utf8.RuneCountInString(m.Body) > 1600:
		writeError(w, http.StatusBadRequest, 21617, "")
		return
	}
	fl, failed := s.injected(m.To)
	if failed && fl.status == dropRequest {
		s.sleep(r.Context())
		cut(w)
		return
	}
	if failed && fl.status != loseAnswer {
		s.sleep(r.Context())
		if fl.code == 0 {
			writeHTML(w, fl.status)
		} else {
			writeError(w, fl.status, fl.code, "")
		}
		return
	}

	m.SID = s.newSID()
	m.Segments = NumSegments(m.Body)
	m.At = arrived
	s.mu.Lock()
	s.perTo[m.To]++
	if s.record.Load() {
		s.msgs = append(s.msgs, m)
	}
	s.mu.Unlock()
	s.count.Add(1)

	s.sleep(r.Context())
	if failed { // accepted, then the connection is cut before the answer
		cut(w)
		return
	}
	body := s.appendMessageJSON(bufPool.Get().(*bytes.Buffer), &m)
	h := w.Header()
	h["Content-Type"] = []string{"application/json; charset=utf-8"}
	h["Content-Length"] = []string{strconv.Itoa(body.Len())}
	h["Twilio-Request-Id"] = []string{"RQ" + m.SID[2:]}
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(body.Bytes())
	bufPool.Put(body)
	if hook := s.OnMessage; hook != nil {
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		hook(m)
	}
}

// cut closes the request's connection without an answer.
func cut(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// listMessages answers Twilio's message list, newest first, filtered by To
// and From (exact). The fake's messages have no date_sent (it does not
// follow their status), so any DateSent filter leaves every one out, as
// Twilio does a message not yet sent. PageSize (default 50, at most 1,000)
// and Page page it; next_page_uri carries the filters on. Only recorded
// messages are listed (RecordBodies).
func (s *Server) listMessages(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		writeDown(w)
		return
	}
	if !s.authorized(r) {
		writeError(w, http.StatusUnauthorized, 20003, "")
		return
	}
	if r.PathValue("sid") != s.accountSID {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	q := r.URL.Query()
	size, page := 50, 0
	if v := q.Get("PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, 20001, "Invalid PageSize: "+v)
			return
		}
		size = min(n, 1000)
	}
	if v := q.Get("Page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, 20001, "Invalid Page: "+v)
			return
		}
		page = n
	}
	dateSent := q.Has("DateSent") || q.Has("DateSent<") || q.Has("DateSent>")
	to, from := q.Get("To"), q.Get("From")
	s.mu.Lock()
	var match []Message
	for i := len(s.msgs) - 1; i >= 0; i-- {
		m := s.msgs[i]
		if (to == "" || m.To == to) && (from == "" || m.From == from) && !dateSent {
			match = append(match, m)
		}
	}
	s.mu.Unlock()
	start := min(page*size, len(match))
	end := min(start+size, len(match))
	pageURI := func(p int) string {
		v := url.Values{}
		for k, vs := range q {
			if k != "Page" && k != "PageToken" {
				v[k] = vs
			}
		}
		v.Set("PageSize", strconv.Itoa(size))
		v.Set("Page", strconv.Itoa(p))
		if p > 0 {
			v.Set("PageToken", "PA"+strconv.Itoa(p*size))
		}
		return s.msgPath + "?" + v.Encode()
	}
	var b bytes.Buffer
	b.WriteString(`{"end":` + strconv.Itoa(max(end-1, 0)) + `,"first_page_uri":`)
	appendJSONString(&b, pageURI(0))
	b.WriteString(`,"messages":[`)
	var one bytes.Buffer
	for i, m := range match[start:end] {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(s.appendMessageJSON(&one, &m).Bytes())
	}
	b.WriteString(`],"next_page_uri":`)
	if end < len(match) {
		appendJSONString(&b, pageURI(page+1))
	} else {
		b.WriteString("null")
	}
	b.WriteString(`,"page":` + strconv.Itoa(page) + `,"page_size":` + strconv.Itoa(size) + `,"previous_page_uri":`)
	if page > 0 {
		appendJSONString(&b, pageURI(page-1))
	} else {
		b.WriteString("null")
	}
	b.WriteString(`,"start":` + strconv.Itoa(start) + `,"uri":`)
	appendJSONString(&b, pageURI(page))
	b.WriteByte('}')
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if h == s.authHeader {
		return true
	}
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(u), []byte(s.accountSID)) == 1 &&
		subtle.ConstantTimeCompare([]byte(p), []byte(s.authToken)) == 1
}

// injected reports whether this request must fail, and how.
func (s *Server) injected(to string) (failure, bool) {
	if s.failToN.Load() > 0 {
		s.mu.Lock()
		fl, ok := s.failTo[to]
		s.mu.Unlock()
		if ok {
			return fl, true
		}
	}
	for {
		n := s.nextN.Load()
		if n <= 0 {
			break
		}
		if s.nextN.CompareAndSwap(n, n-1) {
			s.faultMu.Lock()
			fl := s.nextFail
			s.faultMu.Unlock()
			return fl, true
		}
	}
	if s.rateOn.Load() {
		s.faultMu.Lock()
		hit := s.rng.Float64() < s.rateP
		fl := s.rateFail
		s.faultMu.Unlock()
		if hit {
			return fl, true
		}
	}
	return failure{}, false
}

func (s *Server) sleep(ctx context.Context) {
	d := time.Duration(s.latency.Load())
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// newSID returns "SM" + 32 hex digits: a random per-server prefix and a counter.
func (s *Server) newSID() string {
	var b [34]byte
	copy(b[:], "SM")
	copy(b[2:], s.sidPrefix)
	const hexd = "0123456789abcdef"
	n := s.seq.Add(1)
	for i := 33; i >= 18; i-- {
		b[i] = hexd[n&0xf]
		n >>= 4
	}
	return string(b[:])
}

func validE164(s string) bool {
	if len(s) < 8 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (s *Server) appendMessageJSON(b *bytes.Buffer, m *Message) *bytes.Buffer {
	b.Reset()
	date := m.At.Format(time.RFC1123Z)
	uri := "/2010-04-01/Accounts/" + s.accountSID + "/Messages/" + m.SID
	status := "queued"
	if m.From == "" {
		status = "accepted" // a Messaging Service picks the sender later
	}
	b.WriteString(`{"account_sid":`)
	appendJSONString(b, s.accountSID)
	b.WriteString(`,"api_version":"2010-04-01","body":`)
	appendJSONString(b, m.Body)
	b.WriteString(`,"date_created":"` + date + `","date_sent":null,"date_updated":"` + date +
		`","direction":"outbound-api","error_code":null,"error_message":null,"from":`)
	appendJSONStringOrNull(b, m.From)
	b.WriteString(`,"messaging_service_sid":`)
	appendJSONStringOrNull(b, m.MessagingServiceSID)
	b.WriteString(`,"num_media":"0","num_segments":"` + strconv.Itoa(m.Segments) +
		`","price":null,"price_unit":"USD","sid":"` + m.SID + `","status":"` + status +
		`","subresource_uris":{"media":"` + uri + `/Media.json"},"to":`)
	appendJSONString(b, m.To)
	b.WriteString(`,"uri":"` + uri + `.json"}`)
	return b
}

func appendJSONStringOrNull(b *bytes.Buffer, s string) {
	if s == "" {
		b.WriteString("null")
		return
	}
	appendJSONString(b, s)
}

func appendJSONString(b *bytes.Buffer, s string) {
	const hexd = "0123456789abcdef"
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b.WriteString(s[start:i])
		switch c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteString(`\u00`)
			b.WriteByte(hexd[c>>4])
			b.WriteByte(hexd[c&0xf])
		}
		start = i + 1
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}

// writeError answers Twilio's JSON error shape.
func writeError(w http.ResponseWriter, status, code int, msg string) {
	if msg == "" {
		msg = errorMessages[code]
		if msg == "" {
			msg = http.StatusText(status)
		}
	}
	var b bytes.Buffer
	b.WriteString(`{"code":` + strconv.Itoa(code) + `,"message":`)
	appendJSONString(&b, msg)
	b.WriteString(`,"more_info":"https://www.twilio.com/docs/errors/` + strconv.Itoa(code) +
		`","status":` + strconv.Itoa(status) + `}`)
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func writeHTML(w http.ResponseWriter, status int) {
	body := "<html><head><title>" + strconv.Itoa(status) + " " + http.StatusText(status) +
		"</title></head><body><h1>" + http.StatusText(status) + "</h1></body></html>\n"
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func writeDown(w http.ResponseWriter) { writeHTML(w, http.StatusServiceUnavailable) }

// Sign computes X-Twilio-Signature for a POST of form to url:
// base64(HMAC-SHA1(authToken, url + each key+value, keys sorted)).
func (s *Server) Sign(url string, form url.Values) string {
	return Sign(s.authToken, url, form)
}

// Sign is Server.Sign with an explicit auth token. For a repeated key only
// the first value is used, as twilio-go's validator does.
func Sign(authToken, url string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	mac := hmac.New(sha1.New, []byte(authToken))
	io.WriteString(mac, url)
	for _, k := range keys {
		io.WriteString(mac, k)
		if v := form[k]; len(v) > 0 {
			io.WriteString(mac, v[0])
		}
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

var callbackClient = &http.Client{Timeout: 10 * time.Second}

// SendStatus posts a signed status callback for msg, as Twilio does, to
// msg.StatusCallback: fields MessageSid, SmsSid, MessageStatus, SmsStatus,
// AccountSid, From, To, ApiVersion (and MessagingServiceSid when set).
//
// The X-Twilio-Signature is computed over msg.StatusCallback itself, the URL
// Twilio was given. deliverTo, when not empty, is a base URL
// ("http://127.0.0.1:8080") whose scheme and host replace the callback's
// for the POST only: the app can be reached on a local address while it
// validates against its configured public URL.
func (s *Server) SendStatus(ctx context.Context, msg Message, status string, deliverTo string) error {
	return s.SendStatusError(ctx, msg, status, "", deliverTo)
}

// SendStatusError is SendStatus with an ErrorCode field (e.g. "30003" with
// status "undelivered"); errorCode "" omits it.
func (s *Server) SendStatusError(ctx context.Context, msg Message, status, errorCode, deliverTo string) error {
	if msg.StatusCallback == "" {
		return errors.New("twiliofake: message has no StatusCallback")
	}
	if msg.SID == "" {
		return errors.New("twiliofake: message has no SID")
	}
	from := msg.From
	form := url.Values{
		"MessageSid":    {msg.SID},
		"SmsSid":        {msg.SID},
		"MessageStatus": {status},
		"SmsStatus":     {status},
		"AccountSid":    {s.accountSID},
		"From":          {from},
		"To":            {msg.To},
		"ApiVersion":    {"2010-04-01"},
	}
	if msg.MessagingServiceSID != "" {
		form.Set("MessagingServiceSid", msg.MessagingServiceSID)
	}
	if errorCode != "" {
		form.Set("ErrorCode", errorCode)
	}
	return s.post(ctx, msg.StatusCallback, deliverTo, form)
}

// SendInbound posts a signed inbound-SMS webhook (From → To with body) to
// webhookURL, as Twilio does for a reply; deliverTo as in SendStatus.
func (s *Server) SendInbound(ctx context.Context, webhookURL, from, to, body, deliverTo string) error {
	sid := s.newSID()
	form := url.Values{
		"MessageSid":    {sid},
		"SmsMessageSid": {sid},
		"SmsSid":        {sid},
		"AccountSid":    {s.accountSID},
		"From":          {from},
		"To":            {to},
		"Body":          {body},
		"NumMedia":      {"0"},
		"NumSegments":   {strconv.Itoa(NumSegments(body))},
		"SmsStatus":     {"received"},
		"ApiVersion":    {"2010-04-01"},
	}
	return s.post(ctx, webhookURL, deliverTo, form)
}

func (s *Server) post(ctx context.Context, signedURL, deliverTo string, form url.Values) error {
	target := signedURL
	if deliverTo != "" {
		cu, err := url.Parse(signedURL)
		if err != nil {
			return fmt.Errorf("twiliofake: callback URL: %w", err)
		}
		du, err := url.Parse(deliverTo)
		if err != nil || du.Host == "" {
			return fmt.Errorf("twiliofake: deliverTo %q is not an absolute URL", deliverTo)
		}
		cu.Scheme, cu.Host = du.Scheme, du.Host
		target = cu.String()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("twiliofake: callback request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", s.Sign(signedURL, form))
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	resp, err := callbackClient.Do(req)
	if err != nil {
		return fmt.Errorf("twiliofake: callback: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("twiliofake: callback %s answered %s", target, resp.Status)
	}
	return nil
}

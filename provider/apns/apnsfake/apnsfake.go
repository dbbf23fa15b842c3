// Package apnsfake is an in-process fake of the APNs provider API: a TLS +
// HTTP/2 server on 127.0.0.1 answering POST /3/device/{token} as APNs does.
// It records accepted notifications and can inject APNs rejections.
//
//	srv := apnsfake.New()
//	url, pool, _ := srv.Start()
//	defer srv.Close()
//	c, _ := apns.New(apns.Config{KeyPEM: apnsfake.GenerateKeyPEM(), KeyID: "ABC123DEFG",
//		TeamID: "DEF123GHIJ", Topic: "com.example.app", Host: url, RootCAs: pool})
package apnsfake

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxPayload is the APNs limit for a notification payload, in bytes.
const MaxPayload = 4096

// Message is one notification the fake accepted.
type Message struct {
	Token      string
	Topic      string
	Priority   int    // apns-priority; 0 when absent
	PushType   string // apns-push-type
	Expiration int64  // apns-expiration (unix seconds); 0 when absent
	CollapseID string
	ApnsID     string // the apns-id the fake answered
	Title      string // aps.alert.title (or aps.alert when it is a string)
	Body       string // aps.alert.body
	// ContentAvailable is aps.content-available == 1.
	ContentAvailable bool
	// Data holds the custom (non-aps) top-level keys; non-string values are
	// kept as their JSON text.
	Data    map[string]string
	Payload []byte // the raw JSON body
	Bearer  string // the provider token (JWT) it was sent with
	At      time.Time
}

type failure struct {
	status int
	reason string
}

// Server is the fake. The zero value is not usable; call New.
type Server struct {
	srv  *httptest.Server
	done chan struct{}

	mu       sync.Mutex
	started  bool
	closed   bool
	messages []Message
	perToken map[string]int
	bearers  map[string]bool
	attempts int
	perDev   map[string]failure
	failP    float64
	failSt   int
	failRsn  string
	latency  time.Duration
	down     bool
}

// New creates the fake bound to 127.0.0.1:0; it serves after Start.
func New() *Server {
	s := &Server{
		done:     make(chan struct{}),
		perToken: map[string]int{},
		bearers:  map[string]bool{},
		perDev:   map[string]failure{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /3/device/{token}", s.handlePush)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/3/device/") && r.Method != http.MethodPost {
			reply(w, http.StatusMethodNotAllowed, "MethodNotAllowed", 0)
			return
		}
		reply(w, http.StatusNotFound, "BadPath", 0)
	})
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.EnableHTTP2 = true
	// A client that rejects the fake's certificate is a test scenario, not
	// a server problem: keep other server errors, drop handshake noise.
	s.srv.Config.ErrorLog = log.New(quietHandshakes{}, "", log.LstdFlags)
	return s
}

type quietHandshakes struct{}

func (quietHandshakes) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("TLS handshake error")) {
		return len(p), nil
	}
	return os.Stderr.Write(p)
}

// Start serves TLS + HTTP/2 and returns the base URL (https://127.0.0.1:port)
// and a pool trusting the fake's certificate, for apns.Config Host and RootCAs.
func (s *Server) Start() (string, *x509.CertPool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", nil, errors.New("apnsfake: server closed")
	}
	if s.started {
		return "", nil, errors.New("apnsfake: already started")
	}
	s.started = true
	s.srv.StartTLS()
	pool := x509.NewCertPool()
	pool.AddCert(s.srv.Certificate())
	return s.srv.URL, pool, nil
}

// Close stops the server, waking requests that are waiting out a latency.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	s.srv.Close()
}

// GenerateKeyPEM returns a fresh P-256 key as a PKCS#8 PEM block, the format
// of an APNs .p8 key.
func GenerateKeyPEM() []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		panic("apnsfake: " + err.Error())
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic("apnsfake: " + err.Error())
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Messages returns a copy of the accepted notifications, in arrival order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	copy(out, s.messages)
	return out
}

// Count is the number of accepted notifications.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.messages)
}

// CountToken is the number of accepted notifications for one device token.
func (s *Server) CountToken(tok string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perToken[tok]
}

// Attempts is the number of pushes that reached the handler, whatever the answer.
func (s *Server) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// ProviderTokens is the number of distinct provider tokens (JWTs) seen.
func (s *Server) ProviderTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bearers)
}

// Unregister makes tok answer 410 {"reason":"Unregistered","timestamp":...}.
func (s *Server) Unregister(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perDev[tok] = failure{http.StatusGone, "Unregistered"}
}

// BadToken makes tok answer 400 BadDeviceToken.
func (s *Server) BadToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perDev[tok] = failure{http.StatusBadRequest, "BadDeviceToken"}
}

// FailRate makes a fraction p (0..1) of pushes answer status with
// {"reason": reason}. p = 0 turns injection off; p = 1 fails every push.
func (s *Server) FailRate(p float64, status int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failP, s.failSt, s.failRsn = p, status, reason
}

// SetLatency delays every answer by d.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetDown makes the server reset every stream without answering (the client
// sees a transport error) while down is true.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *Server) handlePush(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	down, latency := s.down, s.latency
	s.mu.Unlock()
	if down {
		panic(http.ErrAbortHandler) // RST_STREAM, no response
	}
	s.mu.Lock()
	s.attempts++
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.done:
			t.Stop()
			return
		}
	}

	if r.ProtoMajor != 2 {
		reply(w, http.StatusBadRequest, "BadPath", 0) // APNs speaks HTTP/2 only
		return
	}
	bearer, reason := checkAuthorization(r.Header.Get("authorization"))
	if reason != "" {
		reply(w, http.StatusForbidden, reason, 0)
		return
	}

	rec := Message{Token: r.PathValue("token"), Bearer: bearer,
		Topic: r.Header.Get("apns-topic"), PushType: r.Header.Get("apns-push-type"),
		CollapseID: r.Header.Get("apns-collapse-id")}
	if rec.Topic == "" {
		reply(w, http.StatusBadRequest, "MissingTopic", 0)
		return
	}
	if len(rec.CollapseID) > 64 {
		reply(w, http.StatusBadRequest, "BadCollapseId", 0)
		return
	}
	if p := r.Header.Get("apns-priority"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || (n != 1 && n != 5 && n != 10) {
			reply(w, http.StatusBadRequest, "BadPriority", 0)
			return
		}
		rec.Priority = n
	}
	switch rec.PushType {
	case "alert", "background", "location", "voip", "complication", "fileprovider", "mdm", "liveactivity", "pushtotalk":
	default:
		reply(w, http.StatusBadRequest, "InvalidPushType", 0)
		return
	}
	if rec.PushType == "background" && rec.Priority == 10 {
		reply(w, http.StatusBadRequest, "BadPriority", 0)
		return
	}
	if e := r.Header.Get("apns-expiration"); e != "" {
		n, err := strconv.ParseInt(e, 10, 64)
		if err != nil || n < 0 {
			reply(w, http.StatusBadRequest, "BadExpirationDate", 0)
			return
		}
		rec.Expiration = n
	}
	rec.ApnsID = r.Header.Get("apns-id")
	if rec.ApnsID == "" {
		rec.ApnsID = newUUID()
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, MaxPayload+1))
	if err != nil {
		reply(w, http.StatusBadRequest, "BadPath", 0)
		return
	}
	if len(body) == 0 {
		reply(w, http.StatusBadRequest, "PayloadEmpty", 0)
		return
	}
	if len(body) > MaxPayload {
		reply(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge", 0)
		return
	}
	if err := parsePayload(body, &rec); err != nil {
		reply(w, http.StatusBadRequest, "PayloadEmpty", 0)
		return
	}

	s.mu.Lock()
	s.bearers[bearer] = true
	f, perDev := s.perDev[rec.Token]
	failP, failSt, failRsn := s.failP, s.failSt, s.failRsn
	s.mu.Unlock()
	if perDev {
		ts := int64(0)
		if f.status == http.StatusGone {
			ts = time.Now().Add(-time.Hour).UnixMilli()
		}
		w.Header().Set("apns-id", rec.ApnsID)
		reply(w, f.status, f.reason, ts)
		return
	}
	if failP > 0 && rand.Float64() < failP {
		w.Header().Set("apns-id", rec.ApnsID)
		reply(w, failSt, failRsn, 0)
		return
	}

	rec.Payload = body
	rec.At = time.Now()
	s.mu.Lock()
	s.messages = append(s.messages, rec)
	s.perToken[rec.Token]++
	s.mu.Unlock()
	w.Header().Set("apns-id", rec.ApnsID)
	w.WriteHeader(http.StatusOK)
}

// checkAuthorization wants "bearer <JWT>" with an ES256 header naming a
// key id and claims with iss and a recent iat. It does not verify the
// signature (the fake does not know the key).
func checkAuthorization(h string) (bearer, reason string) {
	scheme, jwt, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || jwt == "" {
		return "", "MissingProviderToken"
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 || parts[2] == "" {
		return "", "InvalidProviderToken"
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var claims struct {
		Iss string `json:"iss"`
		Iat int64  `json:"iat"`
	}
	if decodeSegment(parts[0], &hdr) != nil || decodeSegment(parts[1], &claims) != nil ||
		hdr.Alg != "ES256" || hdr.Kid == "" || claims.Iss == "" {
		return "", "InvalidProviderToken"
	}
	if time.Since(time.Unix(claims.Iat, 0)) > time.Hour {
		return "", "ExpiredProviderToken"
	}
	return jwt, ""
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func parsePayload(body []byte, rec *Message) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return err
	}
	var aps struct {
		Alert            json.RawMessage `json:"alert"`
		ContentAvailable int             `json:"content-available"`
	}
	if raw, ok := top["aps"]; ok {
		if err := json.Unmarshal(raw, &aps); err != nil {
			return err
		}
	} else {
		return errors.New("no aps")
	}
	rec.ContentAvailable = aps.ContentAvailable == 1
	if len(aps.Alert) > 0 {
		var str string
		if json.Unmarshal(aps.Alert, &str) == nil {
			rec.Title = str
		} else {
			var alert struct {
				Title string `json:"title"`
				Body  string `json:"body"`
			}
			if err := json.Unmarshal(aps.Alert, &alert); err != nil {
				return err
			}
			rec.Title, rec.Body = alert.Title, alert.Body
		}
	}
	for k, v := range top {
		if k == "aps" {
			continue
		}
		if rec.Data == nil {
			rec.Data = map[string]string{}
		}
		var str string
		if json.Unmarshal(v, &str) == nil {
			rec.Data[k] = str
		} else {
			rec.Data[k] = string(v)
		}
	}
	return nil
}

// reply writes APNs' error body {"reason":...[,"timestamp":ms]}.
func reply(w http.ResponseWriter, status int, reason string, timestamp int64) {
	body := map[string]any{"reason": reason}
	if timestamp != 0 {
		body["timestamp"] = timestamp
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func newUUID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// Package fcmfake is an in-process fake of the two Google endpoints an FCM
// HTTP v1 client talks to: the OAuth2 token endpoint (JWT-bearer grant for a
// service account) and POST /v1/projects/{p}/messages:send. It listens on
// 127.0.0.1 (plain HTTP), records accepted messages and can inject the
// failures FCM produces.
//
//	srv := fcmfake.New()
//	url, _ := srv.Start()
//	defer srv.Close()
//	c, _ := fcm.New(ctx, fcm.Config{CredentialsJSON: srv.ServiceAccountJSON("demo"), Endpoint: url})
package fcmfake

import (
	"bytes"
	"crypto"
	crand "crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"outreach/provider"
)

// AccessToken is the bearer token the fake issues and requires.
const AccessToken = "ya29.fake"

const (
	jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	fcmScope       = "https://www.googleapis.com/auth/firebase.messaging"
	fcmErrorType   = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	maxTTLSeconds  = 28 * 24 * 60 * 60
)

// Message is one message the fake accepted.
type Message struct {
	Project  string
	Name     string // the "name" the fake answered
	Token    string
	Title    string
	Body     string
	Data     map[string]string
	Priority string // android.priority: "HIGH", "NORMAL" or ""
	TTL      string // android.ttl as sent, e.g. "3600s"
	// Tag is android.notification.tag; APNSCollapseID the apns-collapse-id
	// header in apns.headers.
	Tag, APNSCollapseID string
	At                  time.Time
}

// Server is the fake. The zero value is not usable; call New.
type Server struct {
	srv  *httptest.Server
	done chan struct{}

	mu           sync.Mutex
	started      bool
	closed       bool
	messages     []Message
	perToken     map[string]int
	seq          int
	attempts     int
	tokenFetches int
	unregistered map[string]bool
	failP        float64
	failStatus   int
	failCode     string
	retryAfter   time.Duration
	latency      time.Duration
	down         bool
	tokenFailSt  int
	tokenFailErr string
}

// New creates the fake and binds it to 127.0.0.1:0; it serves after Start.
func New() *Server {
	s := &Server{
		done:         make(chan struct{}),
		perToken:     map[string]int{},
		unregistered: map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.handleToken)
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", s.handleSend)
	s.srv = httptest.NewUnstartedServer(mux)
	return s
}

// Start serves and returns the base URL (http://127.0.0.1:port), which is
// what fcm.Config.Endpoint takes.
func (s *Server) Start() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", errors.New("fcmfake: server closed")
	}
	if s.started {
		return "", errors.New("fcmfake: already started")
	}
	s.started = true
	s.srv.Start()
	return s.srv.URL, nil
}

// URL is the base URL; it is known (the port is bound) before Start.
func (s *Server) URL() string { return "http://" + s.srv.Listener.Addr().String() }

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

// ServiceAccountJSON returns a service-account key file for projectID whose
// token_uri points at this fake. The RSA key is generated once per process
// and the fake verifies assertions signed with it.
func (s *Server) ServiceAccountJSON(projectID string) []byte {
	k, err := testKey()
	if err != nil {
		panic("fcmfake: " + err.Error())
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		panic("fcmfake: " + err.Error())
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	sa := map[string]string{
		"type":                        "service_account",
		"project_id":                  projectID,
		"private_key_id":              k.kid,
		"private_key":                 string(pemKey),
		"client_email":                "firebase-adminsdk@" + projectID + ".iam.gserviceaccount.com",
		"client_id":                   "100000000000000000001",
		"auth_uri":                    s.URL() + "/auth",
		"token_uri":                   s.URL() + "/token",
		"auth_provider_x509_cert_url": s.URL() + "/certs",
		"universe_domain":             "googleapis.com",
	}
	b, _ := json.MarshalIndent(sa, "", "  ")
	return b
}

// Messages returns a copy of the accepted messages, in arrival order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	copy(out, s.messages)
	return out
}

// Count is the number of accepted messages.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.messages)
}

// CountToken is the number of accepted messages for one device token.
func (s *Server) CountToken(tok string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perToken[tok]
}

// Attempts is the number of messages:send requests that reached a handler,
// whatever the answer (down-injected requests are not counted).
func (s *Server) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// TokenFetches is the number of access tokens issued.
func (s *Server) TokenFetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenFetches
}

// Unregister makes tok answer 404 UNREGISTERED, as FCM does for an
// uninstalled app or an expired token.
func (s *Server) Unregister(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unregistered[tok] = true
}

// FailRate makes a fraction p (0..1) of sends fail with HTTP status and, if
// code is not empty, an FcmError detail with that errorCode (QUOTA_EXCEEDED,
// UNAVAILABLE, ...). p = 0 turns injection off; p = 1 fails every send.
func (s *Server) FailRate(p float64, status int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failP, s.failStatus, s.failCode = p, status, code
}

// SetRetryAfter adds a Retry-After header (whole seconds) to injected error
// answers; 0 removes it.
func (s *Server) SetRetryAfter(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryAfter = d
}

// FailTokenFetch makes the token endpoint answer status with the OAuth2
// error code errCode (for example 400 "invalid_grant"); status 0 restores it.
func (s *Server) FailTokenFetch(status int, errCode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenFailSt, s.tokenFailErr = status, errCode
}

// SetLatency delays every messages:send answer by d.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetDown makes both endpoints drop connections without answering (the
// client sees a network error) while down is true.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *Server) isDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

// drop closes the connection without writing a response.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if s.isDown() {
		drop(w)
		return
	}
	s.mu.Lock()
	failSt, failErr := s.tokenFailSt, s.tokenFailErr
	s.mu.Unlock()
	if failSt != 0 {
		oauthError(w, failSt, failErr, "injected failure")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != jwtBearerGrant {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+gt)
		return
	}
	if err := verifyAssertion(r.PostForm.Get("assertion"), "http://"+r.Host+"/token"); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_grant", err.Error())
		return
	}
	s.mu.Lock()
	s.tokenFetches++
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": AccessToken,
		"token_type":   "Bearer",
		"expires_in":   3600,
	})
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// verifyAssertion checks the RS256 JWT a service account signs for the
// JWT-bearer grant: structure, signature (fake's key), scope, audience, expiry.
func verifyAssertion(assertion, tokenURL string) error {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return errors.New("Invalid JWT: not three segments")
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var claims struct {
		Iss   string `json:"iss"`
		Scope string `json:"scope"`
		Aud   string `json:"aud"`
		Exp   int64  `json:"exp"`
		Iat   int64  `json:"iat"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return fmt.Errorf("Invalid JWT header: %v", err)
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return fmt.Errorf("Invalid JWT claims: %v", err)
	}
	if hdr.Alg != "RS256" {
		return fmt.Errorf("Invalid JWT: alg %q", hdr.Alg)
	}
	k, err := testKey()
	if err != nil {
		return err
	}
	if hdr.Kid != k.kid {
		return fmt.Errorf("Invalid JWT Signature: unknown key id %q", hdr.Kid)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return errors.New("Invalid JWT Signature.")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&k.priv.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return errors.New("Invalid JWT Signature.")
	}
	if !strings.Contains(" "+claims.Scope+" ", " "+fcmScope+" ") {
		return fmt.Errorf("Invalid JWT: scope %q lacks firebase.messaging", claims.Scope)
	}
	if claims.Aud != tokenURL {
		return fmt.Errorf("Invalid JWT: aud %q, want %q", claims.Aud, tokenURL)
	}
	if claims.Iss == "" {
		return errors.New("Invalid JWT: no iss")
	}
	if now := time.Now().Unix(); claims.Exp < now || claims.Iat > now+300 {
		return errors.New("Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.")
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// wire types: the FCM v1 message, strict about field names as FCM is
// ("Unknown name" → 400), lenient about the parts the fake does not model.
type (
	sendRequest struct {
		ValidateOnly bool     `json:"validate_only"`
		Message      *message `json:"message"`
	}
	message struct {
		Name         string            `json:"name"`
		Token        string            `json:"token"`
		Topic        string            `json:"topic"`
		Condition    string            `json:"condition"`
		Data         map[string]string `json:"data"`
		Notification *struct {
			Title string `json:"title"`
			Body  string `json:"body"`
			Image string `json:"image"`
		} `json:"notification"`
		Android *struct {
			CollapseKey           string            `json:"collapse_key"`
			Priority              string            `json:"priority"`
			TTL                   string            `json:"ttl"`
			RestrictedPackageName string            `json:"restricted_package_name"`
			Data                  map[string]string `json:"data"`
			Notification          json.RawMessage   `json:"notification"`
			FCMOptions            json.RawMessage   `json:"fcm_options"`
			DirectBootOK          bool              `json:"direct_boot_ok"`
		} `json:"android"`
		Webpush    json.RawMessage `json:"webpush"`
		APNS       json.RawMessage `json:"apns"`
		FCMOptions json.RawMessage `json:"fcm_options"`
	}
)

var ttlRE = regexp.MustCompile(`^([0-9]+)(\.[0-9]{1,9})?s$`)

func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) {
	if s.isDown() {
		drop(w)
		return
	}
	s.mu.Lock()
	s.attempts++
	latency := s.latency
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

	auth := r.Header.Get("Authorization")
	if !strings.EqualFold(auth, "Bearer "+AccessToken) {
		googleError(w, http.StatusUnauthorized, "", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.", 0)
		return
	}
	project := r.PathValue("project")

	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	var req sendRequest
	if err := dec.Decode(&req); err != nil {
		googleError(w, http.StatusBadRequest, "", "Invalid JSON payload received. "+err.Error(), 0)
		return
	}
	if req.Message == nil {
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Request contains an invalid argument.", 0)
		return
	}
	m := req.Message
	if m.Token == "" && m.Topic == "" && m.Condition == "" {
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Recipient of the message is not set.", 0)
		return
	}
	for k := range m.Data {
		if provider.ReservedDataKey(k) == "FCM" {
			googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Request contains an invalid argument.", 0)
			return
		}
	}
	rec := Message{Project: project, Token: m.Token, Data: m.Data}
	if m.Notification != nil {
		rec.Title, rec.Body = m.Notification.Title, m.Notification.Body
	}
	if a := m.Android; a != nil {
		switch a.Priority {
		case "", "NORMAL", "HIGH":
		default:
			googleError(w, http.StatusBadRequest, "", fmt.Sprintf("Invalid value at 'message.android.priority' (type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority), %q", a.Priority), 0)
			return
		}
		if a.TTL != "" {
			mt := ttlRE.FindStringSubmatch(a.TTL)
			if mt == nil {
				googleError(w, http.StatusBadRequest, "", "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), Field 'ttl', Illegal duration format; duration must end with 's'", 0)
				return
			}
			if secs, _ := strconv.ParseInt(mt[1], 10, 64); secs > maxTTLSeconds {
				googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "The TTL must be less than or equal to 2419200 seconds.", 0)
				return
			}
		}
		rec.Priority, rec.TTL = a.Priority, a.TTL
		if len(a.Notification) > 0 {
			var n struct {
				Tag string `json:"tag"`
			}
			if err := json.Unmarshal(a.Notification, &n); err != nil {
				googleError(w, http.StatusBadRequest, "", "Invalid value at 'message.android.notification' (type.googleapis.com/google.firebase.fcm.v1.AndroidNotification)", 0)
				return
			}
			rec.Tag = n.Tag
		}
	}
	if len(m.APNS) > 0 {
		var ac struct {
			Headers map[string]string `json:"headers"`
		}
		if err := json.Unmarshal(m.APNS, &ac); err != nil {
			googleError(w, http.StatusBadRequest, "", "Invalid value at 'message.apns' (type.googleapis.com/google.firebase.fcm.v1.ApnsConfig)", 0)
			return
		}
		rec.APNSCollapseID = ac.Headers["apns-collapse-id"]
		if len(rec.APNSCollapseID) > provider.MaxCollapseIDBytes {
			googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Request contains an invalid argument.", 0)
			return
		}
	}

	s.mu.Lock()
	unregistered := s.unregistered[m.Token]
	failP, failStatus, failCode, retryAfter := s.failP, s.failStatus, s.failCode, s.retryAfter
	s.mu.Unlock()
	if unregistered {
		googleError(w, http.StatusNotFound, "UNREGISTERED", "Requested entity was not found.", 0)
		return
	}
	if failP > 0 && rand.Float64() < failP {
		googleError(w, failStatus, failCode, injectedMessage(failStatus, failCode), retryAfter)
		return
	}

	s.mu.Lock()
	s.seq++
	rec.Name = fmt.Sprintf("projects/%s/messages/%d", project, s.seq)
	rec.At = time.Now()
	if !req.ValidateOnly {
		s.messages = append(s.messages, rec)
		s.perToken[rec.Token]++
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"name": rec.Name})
}

func injectedMessage(status int, code string) string {
	switch code {
	case "QUOTA_EXCEEDED":
		return "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute'."
	case "UNAVAILABLE":
		return "The service is currently unavailable."
	case "INTERNAL":
		return "Internal error encountered."
	case "SENDER_ID_MISMATCH":
		return "SenderId mismatch"
	case "INVALID_ARGUMENT":
		return "The registration token is not a valid FCM registration token"
	case "THIRD_PARTY_AUTH_ERROR":
		return "Auth error from APNS or Web Push Service"
	}
	if t := http.StatusText(status); t != "" {
		return t
	}
	return "injected failure"
}

// canonicalStatus is the google.rpc.Code name FCM puts in error.status.
func canonicalStatus(httpStatus int) string {
	switch httpStatus {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 409:
		return "ABORTED"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 500:
		return "INTERNAL"
	case 501:
		return "UNIMPLEMENTED"
	case 503:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	}
	return "UNKNOWN"
}

// googleError writes FCM's error shape:
//
//	{"error":{"code":404,"message":"...","status":"NOT_FOUND",
//	  "details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}
func googleError(w http.ResponseWriter, status int, fcmCode, msg string, retryAfter time.Duration) {
	body := map[string]any{
		"code":    status,
		"message": msg,
		"status":  canonicalStatus(status),
	}
	if fcmCode != "" {
		details := []map[string]any{{"@type": fcmErrorType, "errorCode": fcmCode}}
		if fcmCode == "INVALID_ARGUMENT" {
			details = append(details, map[string]any{
				"@type": "type.googleapis.com/google.rpc.BadRequest",
				"fieldViolations": []map[string]string{{
					"field": "message.token", "description": msg,
				}},
			})
		}
		body["details"] = details
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	}
	writeJSON(w, status, map[string]any{"error": body})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(v)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type rsaKey struct {
	priv *rsa.PrivateKey
	kid  string
}

// testKey is one RSA key per process: generating 2048-bit keys is slow and
// every fake can share it.
var testKey = sync.OnceValues(func() (rsaKey, error) {
	priv, err := rsa.GenerateKey(crand.Reader, 2048)
	if err != nil {
		return rsaKey{}, err
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return rsaKey{}, err
	}
	sum := sha256.Sum256(der)
	return rsaKey{priv: priv, kid: fmt.Sprintf("%x", sum[:20])}, nil
})

// Package provisioning is the provider.Provisioner that credits data
// bonuses through the carrier's provisioning API over HTTP (SPEC,
// "provisioning API"):
//
//	POST {OUTREACH_REWARDS_URL}
//	Idempotency-Key: REWARD_ID
//	X-Outreach-Timestamp: UNIX_SECONDS
//	X-Outreach-Signature: sha256=HEX(HMAC_SHA256(secret, TIMESTAMP + "." + RAW_BODY))
//	{"msisdn": "+84…", "data_mb": 5120, "campaign_id": "…", "reward_id": "…"}
//
// A 2xx grants; 409 means the reward was granted before (success); any
// other 4xx is a permanent failure (429 excepted: transient); 5xx, timeouts
// and connection failures are transient.
package provisioning

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"outreach/provider"
	"outreach/subscriber"
)

// Name is the provider name in errors and logs.
const Name = "provisioning"

// Headers of a provisioning request.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderTimestamp      = "X-Outreach-Timestamp"
	HeaderSignature      = "X-Outreach-Signature"
)

// DefaultTimeout bounds one call when the caller's context does not.
const DefaultTimeout = 10 * time.Second

// Request is the JSON body of a provisioning call.
type Request struct {
	MSISDN     string `json:"msisdn"`
	DataMB     int64  `json:"data_mb"`
	CampaignID string `json:"campaign_id"`
	RewardID   string `json:"reward_id"`
}

// Client calls the provisioning API.
type Client struct {
	URL    string
	Secret string
	HTTP   *http.Client
	Now    func() time.Time
}

var _ provider.Provisioner = (*Client)(nil)

// New returns a client of the API at url, signing with secret.
func New(url, secret string) *Client {
	return &Client{URL: url, Secret: secret, HTTP: &http.Client{Timeout: DefaultTimeout}}
}

// Grant credits one reward. The reward id is the idempotency key, so a
// repeated grant credits the line once.
func (c *Client) Grant(ctx context.Context, g provider.Grant) error {
	body, err := json.Marshal(Request{MSISDN: g.MSISDN, DataMB: g.DataMB, CampaignID: g.CampaignID, RewardID: g.RewardID})
	if err != nil {
		return &provider.Error{Provider: Name, Class: provider.Permanent, Message: "encode request", Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return &provider.Error{Provider: Name, Class: provider.Permanent, Message: "build request", Err: err}
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderIdempotencyKey, g.RewardID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(c.Secret, ts, body))
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	res, err := hc.Do(req)
	if err != nil {
		// The request may have reached the API: the idempotency key makes
		// a retry safe, so a lost answer is transient here.
		return &provider.Error{Provider: Name, Class: provider.Transient, Message: "call failed", Err: err}
	}
	defer res.Body.Close()
	detail, _ := io.ReadAll(io.LimitReader(res.Body, maxDetail))
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300, res.StatusCode == http.StatusConflict:
		return nil
	case res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500 || res.StatusCode == http.StatusRequestTimeout:
		return &provider.Error{Provider: Name, Class: provider.Transient, Code: strconv.Itoa(res.StatusCode),
			Message: message(res.StatusCode, detail), RetryAfter: retryAfter(res.Header.Get("Retry-After"))}
	default:
		return &provider.Error{Provider: Name, Class: provider.Permanent, Code: strconv.Itoa(res.StatusCode),
			Message: message(res.StatusCode, detail)}
	}
}

// maxDetail bounds the part of an error body read.
const maxDetail = 2048

// maxExcerpt bounds the part of an error body kept in an error's message.
const maxExcerpt = 160

// message is the error text of a failed call: the status and a short,
// sanitised excerpt of the body. A carrier API may echo the request, so the
// body can hold the subscriber's number: every run of 6 or more digits
// (separators " -.()/" allowed between them) is masked but for its last 3
// digits, before the excerpt is cut, so that no number reaches the logs
// or a reward's last_error.
func message(status int, body []byte) string {
	if len(body) >= maxDetail {
		// The body was cut: drop a digit run it may have cut too short
		// to be masked.
		body = bytes.TrimRight(body, "0123456789 ./()-")
	}
	msg := excerpt(subscriber.RedactNumbers(string(body)), maxExcerpt)
	text := http.StatusText(status)
	if text == "" {
		text = "HTTP " + strconv.Itoa(status)
	}
	if msg == "" {
		return text
	}
	return text + ": " + msg
}

// excerpt is s on one line (control characters and runs of spaces made
// single spaces), cut to at most max bytes at a character boundary, with
// "…" when cut.
func excerpt(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func retryAfter(h string) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 0
}

// Sign returns "sha256=" and the hex HMAC-SHA256 under secret of
// TIMESTAMP + "." + BODY: the scheme of install callbacks (install.Sign),
// repeated here so that a provider does not import the domain.
func Sign(secret, timestamp string, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("bad signature")
	ErrStale        = errors.New("timestamp too old or too far in the future")
)

// Verify checks a request's signature (constant time) and that its
// timestamp is within maxSkew of now: what the carrier's side does.
func Verify(secret, timestamp string, body []byte, signature string, now time.Time, maxSkew time.Duration) error {
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(signature), "sha256=")
	if !ok {
		return ErrBadSignature
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || !hmac.Equal(got, mac(secret, timestamp, body)) {
		return ErrBadSignature
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(ts, 0)); d > maxSkew || d < -maxSkew {
		return ErrStale
	}
	return nil
}

// ForURL is the Provisioner for OUTREACH_REWARDS_URL and
// OUTREACH_REWARDS_SECRET: the HTTP client, or Log when url is empty.
func ForURL(url, secret string, logger *slog.Logger) provider.Provisioner {
	if url == "" {
		return Log{Logger: logger}
	}
	return New(url, secret)
}

// Log is the Provisioner of a deployment with no OUTREACH_REWARDS_URL: it
// logs each grant (the number masked) and succeeds, so that nothing is
// credited by accident.
type Log struct {
	Logger *slog.Logger
}

var _ provider.Provisioner = Log{}

// Grant logs g.
func (l Log) Grant(ctx context.Context, g provider.Grant) error {
	lg := l.Logger
	if lg == nil {
		lg = slog.Default()
	}
	lg.InfoContext(ctx, "reward grant (log provisioner: nothing credited)", "reward_id", g.RewardID,
		"campaign_id", g.CampaignID, "msisdn", subscriber.Mask(g.MSISDN), "data_mb", g.DataMB)
	return nil
}

// String names the client for logs, without the secret.
func (c *Client) String() string { return fmt.Sprintf("provisioning(%s)", c.URL) }

package install

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"outreach/internal/apperr"
)

// Headers of a signed install callback (SPEC, POST /v1/installs).
const (
	HeaderTenant    = "X-Outreach-Tenant"
	HeaderTimestamp = "X-Outreach-Timestamp"
	HeaderSignature = "X-Outreach-Signature"
)

// MaxSkew is how far a callback's timestamp may be from the receiver's
// clock, either way: older callbacks are refused as replays.
const MaxSkew = 5 * time.Minute

// signaturePrefix names the only scheme accepted.
const signaturePrefix = "sha256="

// AuthError is a refused callback: a clear, stable code for the client and
// a message. A forged callback (a signature that does not match) is an
// apperr.ErrForbidden (403), as a forged Twilio webhook is; every other
// AuthError (a header missing or malformed, a stale timestamp) is an
// apperr.ErrUnauthorized (401).
type AuthError struct {
	Code    string
	Message string
	forged  bool
}

func (e *AuthError) Error() string { return e.Message }

// Unwrap makes an AuthError an apperr.ErrForbidden or ErrUnauthorized.
func (e *AuthError) Unwrap() error {
	if e.forged {
		return apperr.ErrForbidden
	}
	return apperr.ErrUnauthorized
}

// The reasons a callback is refused before anything is read or written.
var (
	ErrTenantMissing = &AuthError{Code: "tenant_missing", Message: "missing " + HeaderTenant + " header naming the tenant"}
	// ErrUnknownTenant and ErrNoSecret are the service's reasons in its
	// log: the caller is told bad_signature, as for a known tenant, so
	// that tenant names cannot be probed (Service.Authenticate).
	ErrUnknownTenant      = &AuthError{Code: "unknown_tenant", Message: "unknown tenant in " + HeaderTenant}
	ErrNoSecret           = &AuthError{Code: "no_install_secret", Message: "the tenant has no install-callback secret and no deployment-wide OUTREACH_INSTALL_SECRET is set"}
	ErrTimestampMissing   = &AuthError{Code: "timestamp_missing", Message: "missing " + HeaderTimestamp + " header (UNIX seconds)"}
	ErrTimestampMalformed = &AuthError{Code: "timestamp_malformed", Message: HeaderTimestamp + " must be UNIX seconds"}
	ErrTimestampStale     = &AuthError{Code: "stale_timestamp", Message: HeaderTimestamp + " is more than 5 minutes old: refused as a replay"}
	ErrTimestampFuture    = &AuthError{Code: "future_timestamp", Message: HeaderTimestamp + " is more than 5 minutes in the future: check the sender's clock"}
	ErrSignatureMissing   = &AuthError{Code: "signature_missing", Message: "missing " + HeaderSignature + " header (sha256=HEX)"}
	ErrSignatureMalformed = &AuthError{Code: "signature_malformed", Message: HeaderSignature + " must be sha256= followed by 64 hex digits"}
	ErrBadSignature       = &AuthError{Code: "bad_signature", Message: HeaderSignature + " does not match HMAC-SHA256(secret, timestamp + \".\" + body) " +
		"under the install-callback secret of the tenant named in " + HeaderTenant, forged: true}
)

// Sign returns the signature header value for body sent at timestamp (UNIX
// seconds, as sent in X-Outreach-Timestamp): "sha256=" and the hex
// HMAC-SHA256 under secret of TIMESTAMP + "." + RAW_BODY.
func Sign(secret, timestamp string, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// SignRequest sets the tenant, timestamp and signature headers of a
// callback request carrying body (for app backends written in Go, tests and
// the demo).
func SignRequest(h http.Header, tenantName, secret string, body []byte, now time.Time) {
	ts := strconv.FormatInt(now.Unix(), 10)
	h.Set(HeaderTenant, tenantName)
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, Sign(secret, ts, body))
}

// Verify checks a callback: the signature header must be the HMAC of
// timestamp and body under secret (compared in constant time), and the
// timestamp within MaxSkew of now. The signature is checked before the
// timestamp's age, so a stale_timestamp answer is only ever given to a
// request that was genuinely signed. An empty secret verifies nothing.
func Verify(secret, timestamp string, body []byte, signatureHeader string, now time.Time) error {
	if secret == "" {
		return ErrNoSecret
	}
	timestamp = strings.TrimSpace(timestamp)
	if timestamp == "" {
		return ErrTimestampMissing
	}
	ts, err := parseTimestamp(timestamp)
	if err != nil {
		return err
	}
	signatureHeader = strings.TrimSpace(signatureHeader)
	if signatureHeader == "" {
		return ErrSignatureMissing
	}
	hexSig, ok := strings.CutPrefix(signatureHeader, signaturePrefix)
	if !ok || len(hexSig) != 2*sha256.Size {
		return ErrSignatureMalformed
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return ErrSignatureMalformed
	}
	if !hmac.Equal(got, mac(secret, timestamp, body)) {
		return ErrBadSignature
	}
	switch at := time.Unix(ts, 0); {
	case now.Sub(at) > MaxSkew:
		return ErrTimestampStale
	case at.Sub(now) > MaxSkew:
		return ErrTimestampFuture
	}
	return nil
}

// parseTimestamp accepts decimal UNIX seconds only: no sign, no fraction,
// at most 12 digits.
func parseTimestamp(s string) (int64, error) {
	if len(s) > 12 {
		return 0, ErrTimestampMalformed
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, ErrTimestampMalformed
		}
	}
	ts, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, ErrTimestampMalformed
	}
	return ts, nil
}

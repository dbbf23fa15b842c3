// Package fcm sends push notifications through the Firebase Cloud Messaging
// HTTP v1 API directly (no Firebase Admin SDK), authenticating with a Google
// service account through golang.org/x/oauth2/google.
//
// The client never retries: every failure is classified into a
// *provider.Error and returned to the caller, which owns the retry policy.
package fcm

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"outreach/provider"
)

const (
	// DefaultEndpoint is the production FCM API origin.
	DefaultEndpoint = "https://fcm.googleapis.com"
	// Scope is the OAuth2 scope FCM HTTP v1 requires.
	Scope = "https://www.googleapis.com/auth/firebase.messaging"
	// DefaultTimeout bounds one send (and one token fetch) when Config.Timeout is zero.
	DefaultTimeout = 10 * time.Second
	// MaxTTL is the longest android.ttl FCM accepts (28 days); longer TTLs are clamped.
	MaxTTL = 28 * 24 * time.Hour
	// QuotaRetryAfter is the minimum back-off FCM documents for QUOTA_EXCEEDED,
	// used when the response carries no Retry-After header.
	QuotaRetryAfter = 60 * time.Second

	name          = "fcm"
	maxRetryAfter = 24 * time.Hour
	maxBodyBytes  = 1 << 20
)

// FCM error codes (FcmError.errorCode).
const (
	CodeUnregistered        = "UNREGISTERED"
	CodeSenderIDMismatch    = "SENDER_ID_MISMATCH"
	CodeInvalidArgument     = "INVALID_ARGUMENT"
	CodeQuotaExceeded       = "QUOTA_EXCEEDED"
	CodeUnavailable         = "UNAVAILABLE"
	CodeInternal            = "INTERNAL"
	CodeThirdPartyAuthError = "THIRD_PARTY_AUTH_ERROR"
	CodeUnspecifiedError    = "UNSPECIFIED_ERROR"
)

// Config configures a Client.
type Config struct {
	// CredentialsJSON is a Google service-account key file. Its project_id
	// selects the Firebase project; its token_uri the OAuth2 token endpoint.
	CredentialsJSON []byte
	// Endpoint is the FCM API origin, default DefaultEndpoint (override for fakes).
	Endpoint string
	// Timeout bounds one send and one token fetch, default DefaultTimeout.
	Timeout time.Duration
	// HTTPClient optionally supplies the base transport (used for both the
	// token endpoint and FCM). Its Timeout is ignored in favour of Timeout.
	HTTPClient *http.Client
}

// Client is an FCM HTTP v1 sender. It is safe for concurrent use; the
// OAuth2 access token is fetched once and reused until it expires.
type Client struct {
	hc        *http.Client
	sendURL   string
	projectID string
	timeout   time.Duration
}

var _ provider.PushSender = (*Client)(nil)

// New parses the service-account credentials and prepares the client. It
// does not contact the network: the first SendPush fetches the access token.
// ctx only carries values; its cancellation does not affect later sends.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if len(cfg.CredentialsJSON) == 0 {
		return nil, errors.New("fcm: CredentialsJSON is empty")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	endpoint := strings.TrimRight(cfg.Endpoint, "/")
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}

	// The base client carries the transport for token fetches (which the
	// oauth2 jwt source makes without a request context, hence the Timeout)
	// and for sends.
	base := &http.Client{Timeout: timeout}
	if cfg.HTTPClient != nil {
		base.Transport = cfg.HTTPClient.Transport
		base.Jar = cfg.HTTPClient.Jar
		base.CheckRedirect = cfg.HTTPClient.CheckRedirect
	}
	if base.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 100
		base.Transport = t
	}
	// The token source keeps this context for every later refresh: strip
	// its cancellation so a short-lived ctx passed to New cannot break them.
	tctx := context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, base)

	creds, err := google.CredentialsFromJSONWithType(tctx, cfg.CredentialsJSON, google.ServiceAccount, Scope)
	if err != nil {
		return nil, fmt.Errorf("fcm: credentials: %w", err)
	}
	if creds.ProjectID == "" {
		return nil, errors.New("fcm: credentials have no project_id")
	}
	if err := checkKey(cfg.CredentialsJSON); err != nil {
		return nil, fmt.Errorf("fcm: credentials: %w", err)
	}
	// oauth2.NewClient wraps the source in a ReuseTokenSource: one token
	// fetch, shared by all sends until it nears expiry.
	hc := oauth2.NewClient(tctx, creds.TokenSource)
	hc.Timeout = 0 // each send is bounded by its context instead

	return &Client{
		hc:        hc,
		sendURL:   endpoint + "/v1/projects/" + creds.ProjectID + "/messages:send",
		projectID: creds.ProjectID,
		timeout:   timeout,
	}, nil
}

// Name returns "fcm".
func (c *Client) Name() string { return name }

// ProjectID returns the Firebase project the client sends for.
func (c *Client) ProjectID() string { return c.projectID }

// wire types (FCM HTTP v1).
type (
	sendRequest struct {
		Message message `json:"message"`
	}
	message struct {
		Token        string            `json:"token"`
		Notification *notification     `json:"notification,omitempty"`
		Data         map[string]string `json:"data,omitempty"`
		Android      androidConfig     `json:"android"`
		APNS         *apnsConfig       `json:"apns,omitempty"`
	}
	notification struct {
		Title string `json:"title,omitempty"`
		Body  string `json:"body,omitempty"`
	}
	androidConfig struct {
		Priority     string               `json:"priority"`
		TTL          string               `json:"ttl,omitempty"`
		Notification *androidNotification `json:"notification,omitempty"`
	}
	// androidNotification's tag replaces a shown notification of the same
	// tag in the drawer.
	androidNotification struct {
		Tag string `json:"tag,omitempty"`
	}
	apnsConfig struct {
		Headers map[string]string `json:"headers"`
	}
	sendResponse struct {
		Name string `json:"name"`
	}
	errorResponse struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Status  string `json:"status"`
			Details []struct {
				Type      string `json:"@type"`
				ErrorCode string `json:"errorCode"`
			} `json:"details"`
		} `json:"error"`
	}
)

const fcmErrorType = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

// SendPush sends m to one device. On failure the error is a *provider.Error.
func (c *Client) SendPush(ctx context.Context, m provider.Push) (provider.Result, error) {
	if m.Token == "" {
		return provider.Result{}, &provider.Error{Provider: name, Class: provider.Permanent,
			Code: CodeInvalidArgument, Message: "empty device token"}
	}
	body, err := json.Marshal(sendRequest{Message: buildMessage(m)})
	if err != nil {
		return provider.Result{}, &provider.Error{Provider: name, Class: provider.Permanent,
			Message: "encode message", Err: err}
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.sendURL, bytes.NewReader(body))
	if err != nil {
		return provider.Result{}, &provider.Error{Provider: name, Class: provider.Permanent,
			Message: "build request", Err: err}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")

	resp, err := c.hc.Do(req)
	if err != nil {
		return provider.Result{}, classifyTransport(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		if resp.StatusCode == http.StatusOK {
			// FCM accepted the message but we lost the name: report the
			// success without an id rather than invite a duplicate.
			return provider.Result{}, nil
		}
		return provider.Result{}, &provider.Error{Provider: name, Class: provider.Transient,
			Code: strconv.Itoa(resp.StatusCode), Message: "read error response", Err: err}
	}
	if resp.StatusCode == http.StatusOK {
		var sr sendResponse
		_ = json.Unmarshal(raw, &sr) // a 200 is an acceptance even if the body is odd
		return provider.Result{MessageID: sr.Name}, nil
	}
	return provider.Result{}, classifyResponse(resp, raw)
}

func buildMessage(m provider.Push) message {
	msg := message{Token: m.Token, Data: m.Data, Android: androidConfig{Priority: "NORMAL"}}
	if m.Title != "" || m.Body != "" {
		msg.Notification = &notification{Title: m.Title, Body: m.Body}
	}
	if m.Urgent {
		msg.Android.Priority = "HIGH"
	}
	if m.TTL > 0 {
		msg.Android.TTL = formatTTL(m.TTL)
	}
	if id := m.CollapseID; id != "" && len(id) <= provider.MaxCollapseIDBytes {
		if msg.Notification != nil { // a tag on a data message would show an empty notification
			msg.Android.Notification = &androidNotification{Tag: id}
		}
		msg.APNS = &apnsConfig{Headers: map[string]string{"apns-collapse-id": id}}
	}
	return msg
}

// formatTTL renders a protobuf Duration in whole seconds, rounding up so a
// positive TTL never becomes "0s" (which means "now or never"), clamped to MaxTTL.
func formatTTL(d time.Duration) string {
	if d > MaxTTL {
		d = MaxTTL
	}
	secs := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(secs, 10) + "s"
}

// classifyTransport maps a failed round trip (network error, timeout,
// cancellation, or a token fetch failure) to a provider error.
func classifyTransport(err error) *provider.Error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		errCode, desc := re.ErrorCode, re.ErrorDescription
		if errCode == "" {
			// The jwt-bearer source does not parse the RFC 6749 error body.
			var body struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if json.Unmarshal(re.Body, &body) == nil {
				errCode, desc = body.Error, body.Description
			}
		}
		code := "OAUTH_" + strconv.Itoa(status)
		msg := fmt.Sprintf("access token: HTTP %d", status)
		if errCode != "" {
			code = "OAUTH_" + strings.ToUpper(errCode)
			msg += ": " + errCode
		}
		if desc != "" {
			msg += ": " + desc
		}
		// Whatever the status (a bad key, a revoked service account, the
		// wrong scope, or the token endpoint down), the deployment's
		// credentials fail, not the message: every push would fail alike,
		// so it is retried (and opens the circuit breaker) until an
		// operator fixes them, instead of failing a whole campaign's
		// deliveries for good, alerts included.
		return &provider.Error{Provider: name, Class: provider.Transient, Code: code, Message: msg, Err: err}
	}
	return &provider.Error{Provider: name, Class: provider.Transient, Message: "transport: " + err.Error(), Err: err}
}

// classifyResponse maps a non-200 FCM answer to a provider error.
func classifyResponse(resp *http.Response, raw []byte) *provider.Error {
	var er errorResponse
	_ = json.Unmarshal(raw, &er)
	code := ""
	for _, d := range er.Error.Details {
		if d.Type == fcmErrorType && d.ErrorCode != "" {
			code = d.ErrorCode
			break
		}
	}
	if code == "" {
		code = er.Error.Status // canonical status, e.g. UNAUTHENTICATED
	}
	msg := er.Error.Message
	if msg == "" {
		msg = strings.TrimSpace(http.StatusText(resp.StatusCode))
	}
	e := &provider.Error{Provider: name, Code: code, Message: msg,
		Err: fmt.Errorf("fcm: HTTP %d", resp.StatusCode)}
	if e.Code == "" {
		e.Code = strconv.Itoa(resp.StatusCode)
	}
	retryAfter := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())

	switch code {
	case CodeUnregistered, CodeSenderIDMismatch:
		e.Class = provider.TokenInvalid
	case CodeInvalidArgument:
		e.Class = provider.Permanent
	case CodeThirdPartyAuthError:
		// The project's APNs (or web push) credentials were refused: the
		// deployment's, as with an access token refused (see
		// classifyTransport).
		e.Class = provider.Transient
	case CodeQuotaExceeded:
		e.Class = provider.Transient
		e.RetryAfter = retryAfter
		if e.RetryAfter == 0 {
			e.RetryAfter = QuotaRetryAfter
		}
	case CodeUnavailable, CodeInternal:
		e.Class = provider.Transient
		e.RetryAfter = retryAfter
	default:
		// UNSPECIFIED_ERROR, canonical statuses without FcmError details,
		// or a non-JSON body from a proxy: decide by HTTP status.
		switch s := resp.StatusCode; {
		case s == http.StatusTooManyRequests:
			e.Class = provider.Transient
			e.RetryAfter = retryAfter
			if e.RetryAfter == 0 {
				e.RetryAfter = QuotaRetryAfter
			}
		case s >= 500, s == http.StatusRequestTimeout,
			// 401: our cached access token was rejected; it is replaced when it
			// expires, so a later attempt can succeed. 403 (PERMISSION_DENIED):
			// the service account may not send for this project, the
			// deployment's credentials again.
			s == http.StatusUnauthorized, s == http.StatusForbidden:
			e.Class = provider.Transient
			e.RetryAfter = retryAfter
		default:
			e.Class = provider.Permanent
		}
	}
	return e
}

// parseRetryAfter reads a Retry-After header (delta-seconds or HTTP-date);
// it returns 0 when absent or unparseable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return min(time.Duration(secs)*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d.Round(time.Second), maxRetryAfter)
		}
	}
	return 0
}

// checkKey parses the service account's client_email and private_key as
// the token source will on the first send: a key that cannot sign would
// otherwise pass start-up and fail every push, retried for ever.
func checkKey(credentialsJSON []byte) error {
	jc, err := google.JWTConfigFromJSON(credentialsJSON, Scope)
	if err != nil {
		return err
	}
	if jc.Email == "" {
		return errors.New("no client_email")
	}
	der := jc.PrivateKey
	if block, _ := pem.Decode(der); block != nil {
		der = block.Bytes
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		if k1, err1 := x509.ParsePKCS1PrivateKey(der); err1 == nil {
			key = k1
		} else {
			return errors.New("private_key is not a PEM-encoded RSA key (PKCS #8 or PKCS #1)")
		}
	}
	if _, ok := key.(*rsa.PrivateKey); !ok {
		return fmt.Errorf("private_key is a %T, not the RSA key a service account signs with", key)
	}
	return nil
}

// Package twilio sends SMS through Twilio's Messages API with the official
// twilio-go client, and classifies every failure into provider.Error at this
// boundary. It also validates and parses Twilio's webhooks (webhook.go).
//
// Twilio has no idempotency key: a request that was written to the wire but
// whose answer was lost (timeout, connection reset) may have been accepted,
// so it is classed provider.Ambiguous, never Transient. Only failures that
// provably happened before the request was complete on the wire (refused
// dial, DNS, TLS, a write that failed) are Transient.
package twilio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"outreach/provider"
)

// ProviderName is what Name returns and what *provider.Error carries.
const ProviderName = "twilio"

const (
	// DefaultValidityPeriod is used when neither the message nor the Config sets one.
	DefaultValidityPeriod = time.Hour
	// MaxValidityPeriod is Twilio's limit (a sender queues at most 10 hours).
	MaxValidityPeriod = 36000 * time.Second
	// DefaultTimeout bounds one send when Config.Timeout is zero.
	DefaultTimeout = 10 * time.Second
)

// Config configures a Client.
type Config struct {
	AccountSID string
	AuthToken  string
	// From is the sender (E.164 number or alphanumeric sender id); either it
	// or MessagingServiceSID is required. With both, both are sent.
	From                string
	MessagingServiceSID string
	// BaseURL replaces https://api.twilio.com (scheme, host and an optional
	// path prefix), e.g. a twiliofake server. Empty means Twilio.
	BaseURL string
	// ValidityPeriod is the default for messages that set none: 1s..10h,
	// zero means DefaultValidityPeriod (1h).
	ValidityPeriod time.Duration
	// Timeout bounds one send (connect, request, answer). Zero means
	// HTTPClient.Timeout when set, else DefaultTimeout.
	Timeout time.Duration
	// HTTPClient, when set, supplies the RoundTripper (its Transport, or
	// http.DefaultTransport when nil) and the default Timeout. Other fields
	// (Jar, CheckRedirect) are not used. Nil means a shared Transport tuned
	// for many concurrent requests to one host.
	HTTPClient *http.Client
}

// Client is a provider.SMSSender backed by Twilio. It is safe for concurrent use.
type Client struct {
	creds     *client.Credentials
	sid       string
	from      string
	msid      string
	validity  time.Duration
	timeout   time.Duration
	transport http.RoundTripper
	rewrite   *url.URL // nil: talk to Twilio
	edge      string
	region    string
}

var _ provider.SMSSender = (*Client)(nil)

var alnum = regexp.MustCompile(`^[a-zA-Z0-9]+$`)

// New validates cfg and returns a Client. It does not contact Twilio.
func New(cfg Config) (*Client, error) {
	if !alnum.MatchString(cfg.AccountSID) {
		return nil, errors.New("twilio: AccountSID must be non-empty and alphanumeric")
	}
	if !alnum.MatchString(cfg.AuthToken) {
		return nil, errors.New("twilio: AuthToken must be non-empty and alphanumeric")
	}
	if strings.TrimSpace(cfg.From) == "" && strings.TrimSpace(cfg.MessagingServiceSID) == "" {
		return nil, errors.New("twilio: From or MessagingServiceSID is required")
	}
	if cfg.MessagingServiceSID != "" && !alnum.MatchString(cfg.MessagingServiceSID) {
		return nil, errors.New("twilio: MessagingServiceSID must be alphanumeric")
	}
	if cfg.ValidityPeriod < 0 || cfg.ValidityPeriod > MaxValidityPeriod {
		return nil, fmt.Errorf("twilio: ValidityPeriod %v outside 1s..10h", cfg.ValidityPeriod)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("twilio: negative Timeout %v", cfg.Timeout)
	}
	c := &Client{
		creds:     client.NewCredentials(cfg.AccountSID, cfg.AuthToken),
		sid:       cfg.AccountSID,
		from:      strings.TrimSpace(cfg.From),
		msid:      cfg.MessagingServiceSID,
		validity:  cfg.ValidityPeriod,
		timeout:   cfg.Timeout,
		transport: sharedTransport(),
		edge:      os.Getenv("TWILIO_EDGE"),
		region:    os.Getenv("TWILIO_REGION"),
	}
	if c.validity == 0 {
		c.validity = DefaultValidityPeriod
	}
	if hc := cfg.HTTPClient; hc != nil {
		c.transport = hc.Transport
		if c.transport == nil {
			c.transport = http.DefaultTransport
		}
		if c.timeout == 0 {
			c.timeout = hc.Timeout
		}
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("twilio: BaseURL %q must be an absolute http(s) URL", cfg.BaseURL)
		}
		u.Path = strings.TrimRight(u.Path, "/")
		u.RawPath, u.RawQuery, u.Fragment = "", "", ""
		c.rewrite = u
	}
	return c, nil
}

// Name is "twilio".
func (c *Client) Name() string { return ProviderName }

var (
	transportOnce sync.Once
	transport     *http.Transport
)

// sharedTransport is one pool of keep-alive connections for every Client:
// the engine sends thousands of messages per second to a single host.
func sharedTransport() *http.Transport {
	transportOnce.Do(func() {
		transport = &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   5 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       60 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	})
	return transport
}

// validitySeconds picks the message's validity, else the client's, clamped
// to Twilio's 1..36000 seconds (rounded up to whole seconds).
func (c *Client) validitySeconds(d time.Duration) int {
	if d <= 0 {
		d = c.validity
	}
	s := int((d + time.Second - 1) / time.Second)
	return min(max(s, 1), 36000)
}

// noRedirect keeps twilio-go's behaviour: a 3xx is returned, not followed.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// SendSMS sends m and returns Twilio's message SID and billed segments. Its
// error is always a *provider.Error (see the package doc for the classes).
// It gives up when ctx ends or after the configured Timeout.
func (c *Client) SendSMS(ctx context.Context, m provider.SMS) (provider.Result, error) {
	if m.To == "" {
		return provider.Result{}, &provider.Error{Provider: ProviderName, Class: provider.Permanent, Code: "21604", Message: "missing To"}
	}
	if m.Body == "" {
		return provider.Result{}, &provider.Error{Provider: ProviderName, Class: provider.Permanent, Code: "21602", Message: "missing Body"}
	}
	if err := ctx.Err(); err != nil {
		return provider.Result{}, &provider.Error{Provider: ProviderName, Class: provider.Transient, Message: "not sent: " + err.Error(), Err: err}
	}

	p := &openapi.CreateMessageParams{}
	p.SetTo(m.To)
	if c.from != "" {
		p.SetFrom(c.from)
	}
	if c.msid != "" {
		p.SetMessagingServiceSid(c.msid)
	}
	p.SetBody(m.Body)
	if m.StatusCallback != "" {
		p.SetStatusCallback(m.StatusCallback)
	}
	p.SetValidityPeriod(c.validitySeconds(m.ValidityPeriod))

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	call := newCall(ctx, c.transport, c.rewrite)

	// twilio-go builds its requests with context.Background(), so each call
	// gets its own light client whose transport puts ctx (and the trace
	// that tells "written" from "not written") back on the request.
	tc := &client.Client{
		Credentials: c.creds,
		HTTPClient: &http.Client{
			Transport:     call,
			CheckRedirect: noRedirect,
		},
	}
	tc.SetAccountSid(c.sid)
	api := openapi.NewApiService(&client.RequestHandler{Client: tc, Edge: c.edge, Region: c.region})

	msg, err := api.CreateMessage(p)
	if err != nil {
		return provider.Result{}, call.classify(err)
	}
	if msg == nil || msg.Sid == nil || *msg.Sid == "" {
		return provider.Result{}, &provider.Error{Provider: ProviderName, Class: provider.Ambiguous,
			Message: fmt.Sprintf("HTTP %d answer without a message sid", call.status)}
	}
	res := provider.Result{MessageID: *msg.Sid}
	if msg.NumSegments != nil {
		if n, err := strconv.Atoi(*msg.NumSegments); err == nil && n > 0 {
			res.Segments = n
		}
	}
	return res, nil
}

var _ provider.SMSFinder = (*Client)(nil)

// findLimit bounds the messages FindSMS reads for one number: the newest
// first, so that only a number sent more than this many messages since
// the time asked for could hide one.
const findLimit = 200

// FindSMS lists the messages to `to` that Twilio holds from this client's
// sender (its From, or its Messaging Service), created between since and
// until (to the second, Twilio's precision), newest first. Inbound
// messages are left out.
func (c *Client) FindSMS(ctx context.Context, to string, since, until time.Time) ([]provider.Found, error) {
	p := &openapi.ListMessageParams{}
	p.SetTo(to)
	if c.from != "" {
		p.SetFrom(c.from)
	}
	p.SetPageSize(100)
	p.SetLimit(findLimit)

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	call := newCall(ctx, c.transport, c.rewrite)
	tc := &client.Client{Credentials: c.creds, HTTPClient: &http.Client{Transport: call, CheckRedirect: noRedirect}}
	tc.SetAccountSid(c.sid)
	api := openapi.NewApiService(&client.RequestHandler{Client: tc, Edge: c.edge, Region: c.region})
	msgs, err := api.ListMessage(p)
	if err != nil {
		return nil, fmt.Errorf("twilio: list messages: %w", err)
	}
	since = since.Truncate(time.Second)
	var out []provider.Found
	for _, m := range msgs {
		if m.Sid == nil || m.DateCreated == nil || m.Direction != nil && !strings.HasPrefix(*m.Direction, "outbound") {
			continue
		}
		if c.from == "" && (m.MessagingServiceSid == nil || *m.MessagingServiceSid != c.msid) {
			continue // not from this client's Messaging Service
		}
		created, err := time.Parse(time.RFC1123Z, *m.DateCreated)
		if err != nil || created.Before(since) || created.After(until) {
			continue
		}
		f := provider.Found{MessageID: *m.Sid, Created: created}
		if m.Body != nil {
			f.Body = *m.Body
		}
		if m.NumSegments != nil {
			f.Segments, _ = strconv.Atoi(*m.NumSegments)
		}
		out = append(out, f)
	}
	return out, nil
}

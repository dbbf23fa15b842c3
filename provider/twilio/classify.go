package twilio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twilio/twilio-go/client"

	"outreach/provider"
	"outreach/subscriber"
)

// call is the RoundTripper of one SendSMS. It rewrites the URL to BaseURL,
// puts the caller's ctx (with a ClientTrace) on the request, and remembers
// what the wire saw: whether a connection was obtained, whether the request
// was completely written, and the answer's HTTP status.
type call struct {
	ctx     context.Context
	base    http.RoundTripper
	rewrite *url.URL

	conns     atomic.Int32 // GotConn calls
	writes    atomic.Int32 // WroteRequest calls
	wroteOK   atomic.Bool  // a WroteRequest reported success
	wroteFail atomic.Bool  // a WroteRequest reported an error

	// Set on the caller's goroutine (RoundTrip runs synchronously in Do).
	status     int
	retryAfter string
}

func newCall(ctx context.Context, base http.RoundTripper, rewrite *url.URL) *call {
	c := &call{base: base, rewrite: rewrite}
	c.ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { c.conns.Add(1) },
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				c.wroteOK.Store(true)
			} else {
				c.wroteFail.Store(true)
			}
			c.writes.Add(1)
		},
	})
	return c
}

// maxErrorBody bounds how much of an error answer is buffered.
const maxErrorBody = 64 << 10

func (c *call) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.WithContext(c.ctx)
	if c.rewrite != nil {
		u := *r.URL
		u.Scheme, u.Host = c.rewrite.Scheme, c.rewrite.Host
		u.Path = c.rewrite.Path + u.Path
		u.RawPath = ""
		r2.URL = &u
		r2.Host = ""
	}
	resp, err := c.base.RoundTrip(r2)
	if err != nil {
		return nil, err
	}
	c.status = resp.StatusCode
	c.retryAfter = resp.Header.Get("Retry-After")
	if resp.StatusCode >= 400 {
		// twilio-go decodes error answers without closing them; buffer the
		// body and close it here so the connection goes back to the pool.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
	}
	return resp, nil
}

// writeSettle bounds the wait for the outcome of a write that was in flight
// when the round trip failed (the trace callback runs on the transport's
// writer goroutine, possibly after RoundTrip returned).
const writeSettle = 100 * time.Millisecond

// sent reports whether the request may have reached the server complete.
// It is false only when no connection was obtained, or every write failed.
func (c *call) sent() bool {
	if c.conns.Load() == 0 {
		return false
	}
	deadline := time.Now().Add(writeSettle)
	for c.writes.Load() < c.conns.Load() && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if c.wroteOK.Load() {
		return true
	}
	// A connection whose write outcome is still unknown may have carried it.
	return c.writes.Load() < c.conns.Load()
}

// classify turns an error from CreateMessage into a *provider.Error.
func (c *call) classify(err error) *provider.Error {
	pe := &provider.Error{Provider: ProviderName, Err: err}
	var tre *client.TwilioRestError
	if errors.As(err, &tre) {
		classifyRest(pe, tre, c.status)
		pe.RetryAfter = parseRetryAfter(c.retryAfter)
		return pe
	}
	switch {
	case c.status >= 200 && c.status < 400:
		// Twilio answered success but the body could not be read or decoded:
		// the message is accepted and we do not know its sid.
		pe.Class = provider.Ambiguous
		pe.Message = "HTTP " + strconv.Itoa(c.status) + " answer unreadable: " + err.Error()
	case c.status != 0:
		// An error status with a body that is not Twilio's JSON (an HTML 503
		// from a load balancer): not accepted, safe to retry.
		pe.Class = provider.Transient
		pe.Code = strconv.Itoa(c.status)
		pe.Message = "HTTP " + strconv.Itoa(c.status) + " with a non-JSON body"
		pe.RetryAfter = parseRetryAfter(c.retryAfter)
	case c.sent():
		pe.Class = provider.Ambiguous
		pe.Message = "request sent, answer lost (may have been accepted): " + err.Error()
	default:
		pe.Class = provider.Transient
		pe.Message = "not sent: " + err.Error()
	}
	return pe
}

// codeOptedOut is Twilio's error for a recipient who replied STOP to the
// sender (21610), whether the create call answers it or a status callback
// reports it later.
const codeOptedOut = 21610

// IsOptOutCode reports whether a status callback's ErrorCode says the
// recipient has opted out of the sender's messages.
func IsOptOutCode(code string) bool { return code == strconv.Itoa(codeOptedOut) }

// classifyRest maps a Twilio error code (and the HTTP status) to a class.
func classifyRest(pe *provider.Error, tre *client.TwilioRestError, httpStatus int) {
	pe.Code = strconv.Itoa(tre.Code)
	// Twilio quotes the To number in some messages (21211 "The 'To' number
	// +84… is not a valid phone number"); the message reaches logs and the
	// delivery's record.
	pe.Message = subscriber.RedactNumbers(tre.Message)
	status := httpStatus
	if status == 0 {
		status = tre.Status
	}
	switch tre.Code {
	case codeOptedOut: // recipient replied STOP
		pe.Class = provider.OptedOut
		return
	case 20429, 21611: // too many requests; sender queue full
		pe.Class = provider.Transient
		return
	case 20003, 20005, // authentication failed; account suspended or closed
		20404,               // no such resource: a wrong account or service sid
		21212, 21603, 21606, // From invalid, missing, or not the account's
		21703, 21704, 21705: // the Messaging Service has no usable sender
		// The deployment's account or sender is wrong, not the message:
		// every send would fail alike ("configuration; halt"), so they are
		// retried (and open the circuit breaker) until an operator fixes
		// the account, instead of failing a whole campaign's deliveries
		// for good. A delivery still fails once its attempts are used up.
		pe.Class = provider.Transient
		return
	case 21408:
		// The account may not send to the To number's country. A foreign
		// number among many fails alone, at once; a run of them (the
		// permission for the deployment's own country missing, "halt")
		// opens the breaker, which holds the rest.
		pe.Class, pe.Setup = provider.Permanent, true
		return
	case 21211, 21614, 21612, 30005, 30006:
		// invalid To, not mobile, unreachable, unknown handset, landline.
		pe.Class = provider.Permanent
		return
	}
	switch {
	case status == http.StatusTooManyRequests || tre.Status == http.StatusTooManyRequests:
		pe.Class = provider.Transient
	case status == http.StatusRequestTimeout:
		pe.Class = provider.Transient
	case status >= 500:
		pe.Class = provider.Transient
	case status >= 400:
		pe.Class = provider.Permanent
	default:
		pe.Class = provider.Transient
	}
}

// parseRetryAfter reads a Retry-After header (seconds or HTTP date).
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

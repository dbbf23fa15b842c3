package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"outreach/campaign"
	"outreach/internal/apperr"
	"outreach/provider/twilio"
	"outreach/subscriber"
)

// Receipts applies delivery receipts; campaign.Store implements it.
type Receipts interface {
	ApplyReceipt(ctx context.Context, r campaign.Receipt) (bool, error)
}

// OptOuts sets a number's marketing opt-out in every tenant that has it.
type OptOuts interface {
	OptOutEverywhere(ctx context.Context, msisdn string, optedOut bool) (int64, error)
}

// TwilioWebhooks are the routes Twilio calls: delivery receipts and inbound
// SMS. Both are accepted only with a valid X-Twilio-Signature computed over
// the configured public URL (not the Host header a proxy may rewrite).
type TwilioWebhooks struct {
	AuthToken string
	PublicURL string // e.g. https://outreach.example.vn, no trailing slash
	Receipts  Receipts
	OptOuts   OptOuts
	Keywords  subscriber.Keywords
	Logger    *slog.Logger
	// MaxBodyBytes bounds a callback body (default 64 KiB).
	MaxBodyBytes int64

	// doneStatus and doneInbound remember the callbacks handled lately,
	// by message and status: Twilio's signature has no time in it, so a
	// captured callback could be replayed at any rate, and each would
	// write to the store. A repeat is answered as the first was, from
	// memory. Inbound messages have a memory of their own, so that a
	// campaign's receipts do not push a captured STOP out of it in a
	// minute.
	doneStatus, doneInbound *recentKeys
}

// recentKeys is a bounded set of strings; the oldest go first.
type recentKeys struct {
	mu    sync.Mutex
	set   map[string]struct{}
	order []string
	next  int
}

func newRecentKeys(n int) *recentKeys {
	return &recentKeys{set: make(map[string]struct{}, n), order: make([]string, n)}
}

func (r *recentKeys) has(k string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.set[k]
	return ok
}

func (r *recentKeys) add(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.set[k]; ok {
		return
	}
	if old := r.order[r.next]; old != "" {
		delete(r.set, old)
	}
	r.order[r.next] = k
	r.set[k] = struct{}{}
	r.next = (r.next + 1) % len(r.order)
}

// Register adds POST /webhooks/twilio/status and /webhooks/twilio/inbound.
func (w TwilioWebhooks) Register(r *gin.Engine) {
	if w.MaxBodyBytes <= 0 {
		w.MaxBodyBytes = 64 << 10
	}
	if w.Logger == nil {
		w.Logger = slog.Default()
	}
	w.doneStatus, w.doneInbound = newRecentKeys(100_000), newRecentKeys(100_000)
	r.POST("/webhooks/twilio/status", w.verified(w.status))
	r.POST("/webhooks/twilio/inbound", w.verified(w.inbound))
}

// verified parses the form and checks the signature before handle runs; a
// forged or tampered request gets 403 and changes nothing.
func (w TwilioWebhooks) verified(handle func(c *gin.Context, form url.Values)) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, w.MaxBodyBytes)
		if err := c.Request.ParseForm(); err != nil {
			// %w twice: a body over MaxBodyBytes keeps its
			// *http.MaxBytesError, which classify answers 413 too_large.
			WriteError(c, fmt.Errorf("%w: callback body: %w", apperr.ErrMalformed, err))
			return
		}
		form := c.Request.PostForm
		fullURL := w.PublicURL + c.Request.URL.RequestURI()
		if w.AuthToken == "" || !twilio.ValidateSignature(w.AuthToken, fullURL, form, c.GetHeader("X-Twilio-Signature")) {
			WriteError(c, &Error{Err: apperr.ErrForbidden, Code: "bad_signature",
				Message: "X-Twilio-Signature does not match this request"})
			return
		}
		handle(c, form)
	}
}

func (w TwilioWebhooks) status(c *gin.Context, form url.Values) {
	cb, err := twilio.ParseStatus(form)
	if err != nil {
		WriteError(c, fmt.Errorf("%w: %v", apperr.ErrMalformed, err))
		return
	}
	st, ok := campaign.ReceiptStatus(cb.Status)
	key := "status\x00" + cb.MessageSID + "\x00" + cb.Status + "\x00" + cb.ErrorCode + "\x00" + c.Query(campaign.DeliveryParam)
	if !ok || w.doneStatus.has(key) {
		c.Status(http.StatusNoContent)
		return
	}
	r := campaign.Receipt{Provider: twilio.ProviderName, MessageID: cb.MessageSID, Status: st,
		ErrorCode: cb.ErrorCode, At: time.Now()}
	// The worker names the delivery in each message's callback URL (signed
	// with the rest): a send whose answer was lost is found by it.
	if d := c.Query(campaign.DeliveryParam); d != "" {
		key, err := campaign.ParseDeliveryKey(d)
		if err != nil {
			WriteError(c, apperr.FieldErrors{campaign.DeliveryParam: err.Error()})
			return
		}
		r.Delivery = &key
	}
	if _, err := w.Receipts.ApplyReceipt(c.Request.Context(), r); err != nil {
		WriteError(c, err)
		return
	}
	// Twilio may report that the recipient opted out (21610) here rather
	// than in the create call's answer: it opts them out the same way, in
	// every tenant, as an inbound STOP does.
	if twilio.IsOptOutCode(cb.ErrorCode) {
		if msisdn, err := subscriber.LookupMSISDN(cb.To); err == nil {
			n, err := w.OptOuts.OptOutEverywhere(c.Request.Context(), msisdn, true)
			if err != nil {
				WriteError(c, err)
				return
			}
			w.Logger.Info("opted out by the provider", "subscriber", subscriber.Mask(msisdn), "code", cb.ErrorCode, "subscribers", n)
		}
	}
	w.doneStatus.add(key)
	c.Status(http.StatusNoContent)
}

func (w TwilioWebhooks) inbound(c *gin.Context, form url.Values) {
	in, err := twilio.ParseInbound(form)
	if err != nil {
		WriteError(c, fmt.Errorf("%w: %v", apperr.ErrMalformed, err))
		return
	}
	key := "inbound\x00" + in.MessageSID
	if w.doneInbound.has(key) {
		emptyTwiML(c)
		return
	}
	kw := w.Keywords.Match(in.Body)
	// Twilio's Advanced Opt-Out has already acted on the sender's own
	// keywords (a STOP there blocks the number at Twilio, a START unblocks
	// it): the ledger follows it, whatever the words.
	switch in.OptOutType {
	case "STOP":
		kw = subscriber.KeywordOptOut
	case "START":
		kw = subscriber.KeywordOptIn
	}
	if kw == subscriber.KeywordOptOut || kw == subscriber.KeywordOptIn {
		msisdn, err := subscriber.LookupMSISDN(in.From)
		if err != nil {
			// No subscriber has a number that fails validation, so this
			// keyword opts nobody out: answer as for any other message
			// (Twilio would retry an error), never echoing the number.
			w.Logger.Info("inbound keyword from an invalid number", "from", maskInvalidFrom(in.From),
				"opt_out", kw == subscriber.KeywordOptOut)
			emptyTwiML(c)
			return
		}
		n, err := w.OptOuts.OptOutEverywhere(c.Request.Context(), msisdn, kw == subscriber.KeywordOptOut)
		if err != nil {
			WriteError(c, err)
			return
		}
		w.Logger.Info("inbound keyword", "subscriber", subscriber.Mask(msisdn), "opt_out", kw == subscriber.KeywordOptOut, "subscribers", n)
	}
	w.doneInbound.add(key)
	emptyTwiML(c)
}

// emptyTwiML answers an inbound message with an empty TwiML response:
// Twilio's own keyword handling (or none) replies.
func emptyTwiML(c *gin.Context) {
	c.Data(http.StatusOK, "text/xml", []byte(`<?xml version="1.0" encoding="UTF-8"?><Response></Response>`))
}

// maskInvalidFrom is a From that failed validation, masked for the log as
// subscriber.Mask does (its last 3 characters kept) but counting characters,
// not bytes, and with at most 16 stars.
func maskInvalidFrom(from string) string {
	r := []rune(from)
	if len(r) <= 3 {
		return "***"
	}
	return strings.Repeat("*", min(len(r)-3, 16)) + string(r[len(r)-3:])
}

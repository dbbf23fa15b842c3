// Package logprov is the "log" provider of the embedded default setup: it
// sends nothing, writes each SMS and push to a slog.Logger with the
// recipient masked (MSISDN to its last 3 digits, push token to its last 4
// characters) and the last path segment of every link in the text masked
// (a per-recipient install link names its delivery), and keeps the last N
// messages in memory, unmasked, for inspection (Outbox). It implements provider.SMSSender and
// provider.PushSender and is safe for concurrent use.
package logprov

import (
	"context"
	"log/slog"
	"maps"
	"outreach/templates"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"outreach/provider"
)

// linkTail is a link's last path segment, after at least one slash past
// the host: the referral code of an install link.
var linkTail = regexp.MustCompile(`(https?://[^\s/]+/(?:[^\s/]*/)*)([A-Za-z0-9_~-]+)`)

// MaskLinks replaces the last path segment of every http(s) link in s with
// "***": http://localhost:8080/i/yaFAkRfpV becomes
// http://localhost:8080/i/***.
func MaskLinks(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return linkTail.ReplaceAllString(s, "${1}***")
}

// Name is the provider name.
const Name = "log"

// DefaultCapacity is how many entries Outbox keeps by default.
const DefaultCapacity = 1000

// Entry is one message as the provider saw it. To is the full MSISDN (SMS)
// or push token (push).
type Entry struct {
	Seq       uint64
	MessageID string
	Channel   string // "sms" or "push"
	To        string
	Body      string
	Segments  int
	At        time.Time

	// SMS only.
	StatusCallback string
	ValidityPeriod time.Duration

	// Push only.
	Platform string
	Title    string
	Data     map[string]string
	Urgent   bool
	TTL      time.Duration
}

// Provider logs messages instead of sending them.
type Provider struct {
	log *slog.Logger
	seq atomic.Uint64

	mu   sync.Mutex
	ring []Entry
	next int // index of the slot the next entry goes to
	full bool
}

var (
	_ provider.SMSSender  = (*Provider)(nil)
	_ provider.PushSender = (*Provider)(nil)
)

// Option configures a Provider.
type Option func(*Provider)

// WithCapacity sets how many entries Outbox keeps (at least 1).
func WithCapacity(n int) Option {
	return func(p *Provider) { p.ring = make([]Entry, max(n, 1)) }
}

// New returns a Provider writing to logger (slog.Default() when nil).
func New(logger *slog.Logger, opts ...Option) *Provider {
	if logger == nil {
		logger = slog.Default()
	}
	p := &Provider{log: logger}
	for _, o := range opts {
		o(p)
	}
	if p.ring == nil {
		p.ring = make([]Entry, DefaultCapacity)
	}
	return p
}

// Name is "log".
func (p *Provider) Name() string { return Name }

// SendSMS logs m and returns a MessageID "log-<n>" and the segment count.
func (p *Provider) SendSMS(ctx context.Context, m provider.SMS) (provider.Result, error) {
	if err := ctx.Err(); err != nil {
		return provider.Result{}, &provider.Error{Provider: Name, Class: provider.Transient, Message: "not sent: " + err.Error(), Err: err}
	}
	if m.To == "" {
		return provider.Result{}, &provider.Error{Provider: Name, Class: provider.Permanent, Message: "missing To"}
	}
	e := Entry{
		Channel:        "sms",
		To:             m.To,
		Body:           m.Body,
		Segments:       Segments(m.Body),
		StatusCallback: m.StatusCallback,
		ValidityPeriod: m.ValidityPeriod,
	}
	p.add(&e)
	p.log.LogAttrs(ctx, slog.LevelInfo, "sms",
		slog.String("provider", Name),
		slog.String("message_id", e.MessageID),
		slog.String("to", MaskMSISDN(m.To)),
		slog.Int("segments", e.Segments),
		slog.Int("chars", utf8.RuneCountInString(m.Body)),
		slog.String("body", MaskLinks(m.Body)),
	)
	return provider.Result{MessageID: e.MessageID, Segments: e.Segments}, nil
}

// SendPush logs m and returns a MessageID "log-<n>".
func (p *Provider) SendPush(ctx context.Context, m provider.Push) (provider.Result, error) {
	if err := ctx.Err(); err != nil {
		return provider.Result{}, &provider.Error{Provider: Name, Class: provider.Transient, Message: "not sent: " + err.Error(), Err: err}
	}
	if m.Token == "" {
		return provider.Result{}, &provider.Error{Provider: Name, Class: provider.TokenInvalid, Message: "empty push token"}
	}
	e := Entry{
		Channel:  "push",
		To:       m.Token,
		Body:     m.Body,
		Platform: m.Platform,
		Title:    m.Title,
		Data:     maps.Clone(m.Data),
		Urgent:   m.Urgent,
		TTL:      m.TTL,
	}
	p.add(&e)
	p.log.LogAttrs(ctx, slog.LevelInfo, "push",
		slog.String("provider", Name),
		slog.String("message_id", e.MessageID),
		slog.String("platform", m.Platform),
		slog.String("token", MaskToken(m.Token)),
		slog.Bool("urgent", m.Urgent),
		slog.String("title", MaskLinks(m.Title)),
		slog.String("body", MaskLinks(m.Body)),
	)
	return provider.Result{MessageID: e.MessageID}, nil
}

func (p *Provider) add(e *Entry) {
	e.Seq = p.seq.Add(1)
	e.MessageID = "log-" + strconv.FormatUint(e.Seq, 10)
	e.At = time.Now()
	p.mu.Lock()
	p.ring[p.next] = *e
	p.next++
	if p.next == len(p.ring) {
		p.next = 0
		p.full = true
	}
	p.mu.Unlock()
}

// Outbox returns a copy of the kept entries, oldest first.
func (p *Provider) Outbox() []Entry {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.full {
		return append([]Entry(nil), p.ring[:p.next]...)
	}
	out := make([]Entry, 0, len(p.ring))
	out = append(out, p.ring[p.next:]...)
	return append(out, p.ring[:p.next]...)
}

// Sent is the number of messages accepted since New (not bounded by the outbox).
func (p *Provider) Sent() int { return int(p.seq.Load()) }

// Reset empties the outbox (Sent and the id sequence keep counting).
func (p *Provider) Reset() {
	p.mu.Lock()
	clear(p.ring)
	p.next, p.full = 0, false
	p.mu.Unlock()
}

// MaskMSISDN keeps the last 3 digits: "+84912345678" → "*********678".
// The mask has the length of the input; 3 characters or fewer are all masked.
func MaskMSISDN(s string) string { return maskKeep(s, 3) }

// MaskToken keeps the last 4 characters of a push token, behind a fixed
// "****" (tokens are long and their length says nothing useful).
func MaskToken(s string) string {
	if utf8.RuneCountInString(s) <= 4 {
		return "****"
	}
	r := []rune(s)
	return "****" + string(r[len(r)-4:])
}

func maskKeep(s string, keep int) string {
	n := utf8.RuneCountInString(s)
	if n <= keep {
		return strings.Repeat("*", n)
	}
	r := []rune(s)
	return strings.Repeat("*", n-keep) + string(r[n-keep:])
}

// Segments is what an SMS of this body costs, as the engine counts it.
func Segments(body string) int { return templates.CountSMS(body).Segments }

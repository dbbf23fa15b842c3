// Package provider is the contract between the engine and the systems that
// carry its messages (SMS gateways, push services) and grant rewards (the
// carrier's provisioning API). Concrete backends live in sub-packages; each
// classifies its errors into the classes below at the boundary.
package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SMS is one text message to send.
type SMS struct {
	To   string // E.164
	Body string
	// ValidityPeriod bounds how long the provider may queue the message.
	ValidityPeriod time.Duration
	// StatusCallback is where the provider posts delivery receipts.
	StatusCallback string
}

// Push is one notification to one device.
type Push struct {
	Platform string // "fcm" or "apns"
	Token    string
	Title    string
	Body     string
	Data     map[string]string
	// Urgent asks for immediate delivery (exposure alerts).
	Urgent bool
	TTL    time.Duration
	// CollapseID names the message on the device: a second push with the
	// same id replaces the first in the notification list rather than
	// showing beside it (APNs apns-collapse-id; through FCM, Android's
	// notification tag and apns-collapse-id). At most MaxCollapseIDBytes.
	CollapseID string
}

// MaxCollapseIDBytes is the longest collapse id APNs takes (BadCollapseId
// beyond it).
const MaxCollapseIDBytes = 64

// ReservedDataKey names the push service that reserves key for itself in
// a message's data ("" when neither does): FCM refuses "from",
// "message_type" and keys beginning with "google" or "gcm" (checked here
// in any case), and APNs keeps "aps" for its own dictionary.
func ReservedDataKey(key string) string {
	k := strings.ToLower(key)
	switch {
	case k == "from" || k == "message_type" || strings.HasPrefix(k, "google") || strings.HasPrefix(k, "gcm"):
		return "FCM"
	case k == "aps":
		return "APNs"
	}
	return ""
}

// MaxPushPayloadBytes is the largest push payload both services take:
// APNs refuses a notification over 4 KB (PayloadTooLarge) and FCM a
// message whose notification and data exceed 4,096 bytes.
const MaxPushPayloadBytes = 4096

// PushPayloadBytes is the size of a push's payload as APNs receives it
// ({"aps":{"alert":{"title","body"}}, data keys…}), the larger of the two
// services' encodings.
func PushPayloadBytes(title, body string, data map[string]string) int {
	p := make(map[string]any, len(data)+1)
	for k, v := range data {
		p[k] = v
	}
	p["aps"] = map[string]any{"alert": map[string]string{"title": title, "body": body}}
	b, _ := json.Marshal(p)
	return len(b)
}

// Result is what a provider answered for an accepted message.
type Result struct {
	MessageID string
	// Segments the provider billed (SMS); 0 when unknown.
	Segments int
}

// SMSSender sends text messages.
type SMSSender interface {
	Name() string
	SendSMS(ctx context.Context, m SMS) (Result, error)
}

// SMSFinder looks up the messages a provider holds. A send whose answer
// was lost (Ambiguous) may or may not have been taken: the engine asks
// the provider afterwards instead of sending it again blindly.
type SMSFinder interface {
	// FindSMS lists the messages to `to` that the provider took from this
	// deployment's sender, created between since and until, newest first.
	FindSMS(ctx context.Context, to string, since, until time.Time) ([]Found, error)
}

// Found is a message a provider holds.
type Found struct {
	MessageID string
	Body      string
	// Segments the provider billed; 0 when unknown.
	Segments int
	// Created is when the provider took it (to its own clock).
	Created time.Time
}

// PushSender sends push notifications.
type PushSender interface {
	Name() string
	SendPush(ctx context.Context, m Push) (Result, error)
}

// Grant is one data-bonus provisioning request.
type Grant struct {
	RewardID   string `json:"reward_id"`
	CampaignID string `json:"campaign_id"`
	MSISDN     string `json:"msisdn"`
	DataMB     int64  `json:"data_mb"`
}

// Provisioner credits data bonuses on subscribers' lines. Granting the same
// reward id twice must be harmless (the id is the idempotency key).
type Provisioner interface {
	Grant(ctx context.Context, g Grant) error
}

// Class says what the engine should do about a failed call.
type Class int

const (
	// Transient: retry later with backoff (timeouts, 5xx, 429).
	Transient Class = iota
	// Permanent: fail now, never retry (invalid number, bad request).
	Permanent
	// OptedOut: permanent, and the recipient opted out at the provider
	// (Twilio 21610): the subscriber's marketing opt-out is set.
	OptedOut
	// TokenInvalid: permanent, and the push token is dead: remove the device.
	TokenInvalid
	// Ambiguous: the request may have been accepted (the answer was lost);
	// do not resend blindly.
	Ambiguous
)

func (c Class) String() string {
	switch c {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	case OptedOut:
		return "opted_out"
	case TokenInvalid:
		return "token_invalid"
	case Ambiguous:
		return "ambiguous"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Error is a classified provider failure.
type Error struct {
	Provider string
	Class    Class
	// Code is the provider's own error code ("21610", "UNREGISTERED").
	Code    string
	Message string
	// RetryAfter is the provider's hint, zero when none.
	RetryAfter time.Duration
	// Setup says the refusal may be the deployment's account, not the
	// message: a run of them opens the provider's circuit breaker, which
	// holds the rest of the messages until an operator fixes it, though
	// each one is failed as its Class says.
	Setup bool
	Err   error
}

func (e *Error) Error() string {
	msg := e.Provider + ": " + e.Class.String()
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Err != nil && e.Message == "" {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// IsSetup reports whether err is a provider refusal that may be the
// deployment's setup (Error.Setup).
func IsSetup(err error) bool {
	var pe *Error
	return errors.As(err, &pe) && pe.Setup
}

// ClassOf returns the class of err; an unclassified error is transient.
func ClassOf(err error) Class {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Class
	}
	return Transient
}

// CodeOf returns the provider error code of err, or "".
func CodeOf(err error) string {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// RetryAfterOf returns the provider's retry hint, or 0.
func RetryAfterOf(err error) time.Duration {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.RetryAfter
	}
	return 0
}

package twilio

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/twilio/twilio-go/client"
)

// ValidateSignature reports whether signature (the X-Twilio-Signature
// header) is Twilio's HMAC-SHA1 under authToken of fullURL and the POSTed
// form. fullURL must be the URL Twilio was configured with, built from the
// app's configured public URL (not from r.Host), including any query string.
// A URL with or without the default port both validate.
func ValidateSignature(authToken, fullURL string, form url.Values, signature string) bool {
	if authToken == "" || signature == "" {
		return false
	}
	params := make(map[string]string, len(form))
	for k, v := range form {
		if len(v) > 0 {
			params[k] = v[0] // twilio-go signs with the first value of a key
		} else {
			params[k] = ""
		}
	}
	v := client.NewRequestValidator(authToken)
	return v.Validate(fullURL, params, signature)
}

// ErrMissingField is wrapped by ParseStatus and ParseInbound when a required
// form field is absent or empty.
var ErrMissingField = errors.New("missing required field")

// StatusCallback is a message status webhook (delivery receipt).
type StatusCallback struct {
	MessageSID string
	// Status is lower-case: queued, sending, sent, delivered, undelivered,
	// failed, canceled, read, ... (Twilio adds values without notice).
	Status string
	// ErrorCode is Twilio's code on failure ("30003"), else "".
	ErrorCode string
	To        string
	From      string
}

// ParseStatus reads a status callback form. MessageSid (or SmsSid) and
// MessageStatus (or SmsStatus) are required; other fields are optional.
func ParseStatus(form url.Values) (StatusCallback, error) {
	sc := StatusCallback{
		MessageSID: first(form, "MessageSid", "SmsSid"),
		Status:     strings.ToLower(first(form, "MessageStatus", "SmsStatus")),
		ErrorCode:  strings.TrimSpace(form.Get("ErrorCode")),
		To:         form.Get("To"),
		From:       form.Get("From"),
	}
	if sc.MessageSID == "" {
		return StatusCallback{}, missing("status callback", "MessageSid")
	}
	if sc.Status == "" {
		return StatusCallback{}, missing("status callback", "MessageStatus")
	}
	if sc.ErrorCode == "0" {
		sc.ErrorCode = ""
	}
	return sc, nil
}

// Inbound is an incoming SMS webhook.
type Inbound struct {
	MessageSID string
	From       string
	To         string
	// Body may be empty (a media-only message).
	Body string
	// OptOutType is what Twilio's Advanced Opt-Out made of the message,
	// with the sender's own keywords: STOP, START or HELP; empty when it
	// did not handle it.
	OptOutType string
}

// ParseInbound reads an inbound message form. MessageSid (or SmsMessageSid
// or SmsSid), From and To are required.
func ParseInbound(form url.Values) (Inbound, error) {
	in := Inbound{
		MessageSID: first(form, "MessageSid", "SmsMessageSid", "SmsSid"),
		From:       strings.TrimSpace(form.Get("From")),
		To:         strings.TrimSpace(form.Get("To")),
		Body:       form.Get("Body"),
		OptOutType: strings.ToUpper(strings.TrimSpace(form.Get("OptOutType"))),
	}
	switch {
	case in.MessageSID == "":
		return Inbound{}, missing("inbound message", "MessageSid")
	case in.From == "":
		return Inbound{}, missing("inbound message", "From")
	case in.To == "":
		return Inbound{}, missing("inbound message", "To")
	}
	return in, nil
}

func first(form url.Values, keys ...string) string {
	for _, k := range keys {
		if v := strings.TrimSpace(form.Get(k)); v != "" {
			return v
		}
	}
	return ""
}

func missing(what, field string) error {
	return fmt.Errorf("twilio: %s: %w %q", what, ErrMissingField, field)
}

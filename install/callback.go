package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"outreach/internal/apperr"
	"outreach/internal/textcheck"
	"outreach/subscriber"
)

// Platform of the device the app was installed on.
type Platform string

const (
	PlatformAndroid Platform = "android"
	PlatformIOS     Platform = "ios"
)

// Limits on a callback's fields.
const (
	MaxDeviceIDLength     = 200
	MaxReferralCodeLength = 64
	// MaxBodyBytes bounds a callback body; a real one is ~200 bytes.
	MaxBodyBytes = 16 << 10
)

// EarliestInstall is the earliest installed_at a callback may carry (the
// latest is the receiver's clock plus MaxSkew). No install tracked here is
// older; an earlier time is a backend's unset or broken clock (Go's zero
// time, the Unix epoch), which would otherwise be stored as a real install
// time and, attributed, fall outside every campaign's window.
var EarliestInstall = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Callback is the body of POST /v1/installs.
type Callback struct {
	MSISDN       string    `json:"msisdn,omitempty"`
	ReferralCode string    `json:"referral_code,omitempty"`
	DeviceID     string    `json:"device_id"`
	Platform     Platform  `json:"platform"`
	InstalledAt  time.Time `json:"installed_at"`
}

// MalformedError is a body that is not the callback's JSON at all (400);
// Field names an unknown field when that was the problem.
type MalformedError struct {
	Field   string
	Message string
}

func (e *MalformedError) Error() string { return e.Message }

// Unwrap makes it an apperr.ErrMalformed.
func (e *MalformedError) Unwrap() error { return apperr.ErrMalformed }

// ParseCallback decodes and validates a callback body. Unknown fields,
// malformed JSON or trailing data are an apperr.ErrMalformed (a
// *MalformedError); invalid fields an apperr.FieldErrors naming each one.
// The MSISDN comes back in E.164 and installed_at in UTC at microsecond
// precision (what the stores keep, so a replay is recognised).
func ParseCallback(body []byte) (Callback, error) {
	var raw struct {
		MSISDN       *string `json:"msisdn"`
		ReferralCode *string `json:"referral_code"`
		DeviceID     *string `json:"device_id"`
		Platform     *string `json:"platform"`
		InstalledAt  *string `json:"installed_at"`
	}
	body = textcheck.TrimBOM(body) // after the signature, which is over the bytes sent
	if len(bytes.TrimSpace(body)) == 0 {
		return Callback{}, &MalformedError{Message: "empty body: want a JSON object"}
	}
	if p := textcheck.BodyProblem(body); p != "" {
		return Callback{}, &MalformedError{Message: p}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return Callback{}, malformed(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Callback{}, &MalformedError{Message: "malformed JSON: data after the object"}
	}
	fe := apperr.FieldErrors{}
	var cb Callback
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return strings.TrimSpace(*p)
	}
	if m := str(raw.MSISDN); m != "" {
		n, err := subscriber.NormalizeMSISDN(m)
		if err != nil {
			fe.Add("msisdn", "not a valid phone number")
		}
		cb.MSISDN = n
	}
	if code := str(raw.ReferralCode); code != "" {
		if !validCode(code) {
			fe.Add("referral_code", "must be 1 to %d letters and digits", MaxReferralCodeLength)
		}
		cb.ReferralCode = code
	}
	if str(raw.MSISDN) == "" && str(raw.ReferralCode) == "" {
		fe.Add("msisdn", "required unless referral_code is given")
	}
	switch d := str(raw.DeviceID); {
	case d == "":
		fe.Add("device_id", "required")
	case len(d) > MaxDeviceIDLength:
		fe.Add("device_id", "at most %d bytes", MaxDeviceIDLength)
	case textcheck.Problem(d) != "":
		fe.Add("device_id", "%s", textcheck.Problem(d))
	default:
		cb.DeviceID = d
	}
	switch p := Platform(str(raw.Platform)); p {
	case PlatformAndroid, PlatformIOS:
		cb.Platform = p
	case "":
		fe.Add("platform", "required: android or ios")
	default:
		fe.Add("platform", "must be android or ios, not %q", p)
	}
	if at := str(raw.InstalledAt); at == "" {
		fe.Add("installed_at", "required: an RFC 3339 time such as 2026-11-24T10:00:00Z")
	} else if t, err := time.Parse(time.RFC3339Nano, at); err != nil {
		fe.Add("installed_at", "must be an RFC 3339 time such as 2026-11-24T10:00:00Z")
	} else if t.Before(EarliestInstall) {
		fe.Add("installed_at", "must not be before %s", EarliestInstall.Format(time.RFC3339))
	} else {
		cb.InstalledAt = t.UTC().Truncate(time.Microsecond)
	}
	if err := fe.Err(); err != nil {
		return Callback{}, err
	}
	return cb, nil
}

// ValidCode reports whether s can be a referral code: 1 to
// MaxReferralCodeLength ASCII letters and digits.
func ValidCode(s string) bool { return validCode(s) }

func validCode(s string) bool {
	if s == "" || len(s) > MaxReferralCodeLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func malformed(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return &MalformedError{Message: fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, syn.Error())}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &MalformedError{Message: "malformed JSON: unexpected end of the body"}
	case errors.As(err, &typ):
		if typ.Field == "" {
			return &MalformedError{Message: "want a JSON object"}
		}
		return apperr.FieldErrors{typ.Field: "must be a string"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &MalformedError{Field: field, Message: fmt.Sprintf("unknown field %q", field)}
	}
	return &MalformedError{Message: "malformed JSON: " + err.Error()}
}

package subscriber

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// DefaultRegion is the country assumed for numbers written in national form.
const DefaultRegion = "VN"

// ErrInvalidMSISDN is returned for anything that is not a valid mobile number.
var ErrInvalidMSISDN = errors.New("invalid phone number")

// NormalizeMSISDN returns the E.164 form of a Vietnamese (or any
// international) number: 0912345678, 84912345678 and +84912345678 all become
// +84912345678.
func NormalizeMSISDN(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidMSISDN)
	}
	if len(s) > 32 {
		return "", fmt.Errorf("%w: too long", ErrInvalidMSISDN)
	}
	// 84xxxxxxxxx without the plus is the carrier's usual export format.
	if !strings.HasPrefix(s, "+") && !strings.HasPrefix(s, "0") && strings.HasPrefix(s, "84") && len(digitsOnly(s)) >= 11 {
		s = "+" + s
	}
	num, err := phonenumbers.Parse(s, DefaultRegion)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidMSISDN, raw, err)
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", fmt.Errorf("%w: %q", ErrInvalidMSISDN, raw)
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	// libphonenumber's metadata allows some national numbers (German ones)
	// longer than E.164's 15 digits; no SMS route takes them.
	if len(e164) > 16 {
		return "", fmt.Errorf("%w: %q: longer than 15 digits", ErrInvalidMSISDN, raw)
	}
	return e164, nil
}

// Mask hides all but the last three digits, for logs.
func Mask(msisdn string) string {
	if len(msisdn) <= 3 {
		return "***"
	}
	return strings.Repeat("*", len(msisdn)-3) + msisdn[len(msisdn)-3:]
}

func digitsOnly(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

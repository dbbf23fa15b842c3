package subscriber

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"unicode"

	"github.com/nyaruka/phonenumbers"
)

// DefaultRegion is the country assumed for numbers written in national form.
const DefaultRegion = "VN"

// ErrInvalidMSISDN is returned for anything that is not a valid mobile number.
var ErrInvalidMSISDN = errors.New("invalid phone number")

// ErrNotMobile is a valid number that is not a mobile one (a landline,
// toll-free or premium-rate number); it comes wrapped with ErrInvalidMSISDN.
var ErrNotMobile = errors.New("not a mobile number")

// NormalizeMSISDN returns the E.164 form of a Vietnamese (or any
// international) number: 0912345678, 84912345678 and +84912345678 all become
// +84912345678.
//
// Vietnamese numbers written 0…, 84… or +84… with digits only take a cached
// path (see vnCache); everything else takes libphonenumber's full parse.
func NormalizeMSISDN(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	key, nsn, fast := vnKey(s)
	if !fast {
		return parseMSISDN(raw, s)
	}
	if vnCache.has(key) {
		return "+84" + nsn, nil
	}
	e164, err := parseMSISDN(raw, s)
	if err == nil && e164 == "+84"+nsn {
		// Only what spares a parse: a key known bad would be parsed
		// again anyway.
		vnCache.put(key)
	}
	return e164, err
}

// LookupMSISDN is NormalizeMSISDN for finding a subscriber already
// stored, by the API or an inbound SMS: it also takes a valid number that
// is not a mobile one, as a subscriber imported before the mobile-only
// rule may have, so that it can still be read and opted out.
func LookupMSISDN(raw string) (string, error) {
	e164, err := NormalizeMSISDN(raw)
	if err == nil {
		return e164, nil
	}
	if e, aerr := parseNumber(raw, strings.TrimSpace(raw), false); aerr == nil {
		return e, nil
	}
	return "", err
}

// parseMSISDN is the full parse of s (raw trimmed).
func parseMSISDN(raw, s string) (string, error) { return parseNumber(raw, s, true) }

// parseNumber is the full parse of s (raw trimmed); mobileOnly refuses a
// valid number of another type.
func parseNumber(raw, s string, mobileOnly bool) (string, error) {
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
	if !plainNumber(s) {
		// libphonenumber reads letters as keypad digits (0912-ABC-678 is
		// +84912222678) and drops what it cannot read (an O for a 0, a
		// name, an extension): a garbled cell would become someone else's
		// number.
		return "", fmt.Errorf("%w: %q: only digits, spaces, \".()-\" and a leading + may be in a number", ErrInvalidMSISDN, raw)
	}
	num, err := phonenumbers.Parse(s, DefaultRegion)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidMSISDN, raw, err)
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", fmt.Errorf("%w: %q", ErrInvalidMSISDN, raw)
	}
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
	default:
		if !mobileOnly {
			break
		}
		// A landline, toll-free or premium-rate number takes no SMS and
		// no mobile data.
		return "", fmt.Errorf("%w: %q: %w", ErrInvalidMSISDN, raw, ErrNotMobile)
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	// libphonenumber's metadata allows some national numbers (German ones)
	// longer than E.164's 15 digits; no SMS route takes them.
	if len(e164) > 16 {
		return "", fmt.Errorf("%w: %q: longer than 15 digits", ErrInvalidMSISDN, raw)
	}
	return e164, nil
}

// plainNumber reports whether s is written as a phone number: digits,
// spaces and the separators ".()-", a + only in front.
func plainNumber(s string) bool {
	for i, r := range s {
		switch {
		case '0' <= r && r <= '9', r == '.', r == '(', r == ')', r == '-', unicode.IsSpace(r):
		case r == '+' && i == 0:
		default:
			return false
		}
	}
	return true
}

// Mask hides all but the last three digits, for logs.
func Mask(msisdn string) string {
	if len(msisdn) <= 3 {
		return "***"
	}
	return strings.Repeat("*", len(msisdn)-3) + msisdn[len(msisdn)-3:]
}

// digitRun is a run of 6 or more digits, single separators allowed
// between them, as in "+84 912 345 678" or "0912-345-678".
var digitRun = regexp.MustCompile(`[0-9](?:[ ./()-]?[0-9]){5,}`)

// RedactNumbers masks each run of 6 or more digits in s (single
// separators " ./()-" allowed between them) as Mask masks a number, for
// text from outside that may quote a subscriber's number: a provider's
// error message, a carrier API's answer.
func RedactNumbers(s string) string {
	return digitRun.ReplaceAllStringFunc(s, func(run string) string { return Mask(digitsOnly(run)) })
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

// vnCache spares the full libphonenumber parse (about 11 µs and 60
// allocations a number) for numbers written the usual Vietnamese ways: an
// import of millions of rows, an alert's thousands of contacts and every
// install callback go through here. Whether a Vietnamese number is valid,
// and its E.164 form, depend only on how it is written (0…, 84…, +84…), the
// first digits of its national number and its length: the metadata
// patterns look at most four digits deep (checked over every four-digit
// prefix and length 7 to 11), the key takes five. So the full
// parse runs once per key; a key whose sample was valid and came out as +84
// followed by the national number answers the same for every number of
// that key; only such keys are kept. Anything else (spaces, other
// countries, invalid numbers) takes the full parse every time.
var vnCache = &msisdnCache{ok: make(map[msisdnKey]struct{})}

type msisdnCache struct {
	mu sync.RWMutex
	ok map[msisdnKey]struct{}
}

type msisdnKey struct {
	form   byte // '0', '8' (84…) or '+' (+84…)
	n      uint8
	prefix [5]byte
}

// maxMSISDNKeys bounds the cache (a few MB) whatever the input.
const maxMSISDNKeys = 1 << 17

// has reports whether k is a key of valid numbers.
func (c *msisdnCache) has(k msisdnKey) bool {
	c.mu.RLock()
	_, ok := c.ok[k]
	c.mu.RUnlock()
	return ok
}

// put caches k as a key of valid numbers. A full cache starts afresh
// rather than keep its first keys for good, which made every later number
// cost the full parse.
func (c *msisdnCache) put(k msisdnKey) {
	c.mu.Lock()
	if len(c.ok) >= maxMSISDNKeys {
		c.ok = make(map[msisdnKey]struct{})
	}
	c.ok[k] = struct{}{}
	c.mu.Unlock()
}

// vnKey splits a number written as 0…, 84… or +84… with digits only into
// its cache key and national number.
func vnKey(raw string) (msisdnKey, string, bool) {
	var k msisdnKey
	var nsn string
	switch {
	case strings.HasPrefix(raw, "+84"):
		k.form, nsn = '+', raw[3:]
	case strings.HasPrefix(raw, "84") && len(raw) >= 11: // as parseMSISDN reads it
		k.form, nsn = '8', raw[2:]
	case strings.HasPrefix(raw, "0"):
		k.form, nsn = '0', raw[1:]
	default:
		return k, "", false
	}
	if len(nsn) < len(k.prefix) || len(nsn) > 12 {
		return k, "", false
	}
	for i := 0; i < len(nsn); i++ {
		if nsn[i] < '0' || nsn[i] > '9' {
			return k, "", false
		}
	}
	k.n = uint8(len(nsn))
	copy(k.prefix[:], nsn)
	return k, nsn, true
}

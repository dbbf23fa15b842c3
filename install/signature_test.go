package install

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"outreach/internal/apperr"
)

func TestSignMatchesTheSpecScheme(t *testing.T) {
	// HMAC-SHA256("secret", "1700000000.{}") computed independently
	// (openssl dgst -sha256 -hmac secret).
	got := Sign("secret", "1700000000", []byte("{}"))
	if want := "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"; got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	if got == Sign("secret", "1700000001", []byte("{}")) || got == Sign("other", "1700000000", []byte("{}")) {
		t.Error("the signature does not cover the timestamp and the secret")
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_764_000_000, 0)
	body := []byte(`{"msisdn":"+84912345678","device_id":"d","platform":"android","installed_at":"2026-11-24T10:00:00Z"}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	good := Sign("s3cret", ts, body)
	at := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	cases := []struct {
		name       string
		secret, ts string
		body       []byte
		sig        string
		want       error
	}{
		{"a body signed with the secret at the current time passes", "s3cret", ts, body, good, nil},
		{"a signature 4 minutes old passes", "s3cret", at(-4 * time.Minute), body, Sign("s3cret", at(-4*time.Minute), body), nil},
		{"a changed body fails", "s3cret", ts, append([]byte(" "), body...), good, ErrBadSignature},
		{"another secret fails", "other", ts, body, good, ErrBadSignature},
		{"a changed timestamp fails the signature", "s3cret", at(-time.Second), body, good, ErrBadSignature},
		{"a timestamp 6 minutes old is stale", "s3cret", at(-6 * time.Minute), body, Sign("s3cret", at(-6*time.Minute), body), ErrTimestampStale},
		{"a timestamp 6 minutes ahead is refused", "s3cret", at(6 * time.Minute), body, Sign("s3cret", at(6*time.Minute), body), ErrTimestampFuture},
		{"no signature", "s3cret", ts, body, "", ErrSignatureMissing},
		{"another scheme", "s3cret", ts, body, strings.Replace(good, "sha256=", "sha1=", 1), ErrSignatureMalformed},
		{"a short signature", "s3cret", ts, body, good[:20], ErrSignatureMalformed},
		{"a signature that is not hex", "s3cret", ts, body, "sha256=" + strings.Repeat("zz", 32), ErrSignatureMalformed},
		{"no timestamp", "s3cret", "", body, good, ErrTimestampMissing},
		{"a timestamp in milliseconds-with-fraction form", "s3cret", ts + ".5", body, good, ErrTimestampMalformed},
		{"a negative timestamp", "s3cret", "-" + ts, body, good, ErrTimestampMalformed},
		{"an absurdly long timestamp", "s3cret", strings.Repeat("9", 30), body, good, ErrTimestampMalformed},
		{"no secret at all", "", ts, body, Sign("", ts, body), ErrNoSecret},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(c.secret, c.ts, c.body, c.sig, now)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
			status := apperr.ErrUnauthorized
			if c.want == ErrBadSignature {
				status = apperr.ErrForbidden // forged
			}
			if err != nil && !errors.Is(err, status) {
				t.Errorf("%v is not an %v", err, status)
			}
		})
	}
}

package install_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"outreach/install"
	"outreach/internal/apperr"
	"outreach/subscriber"
)

func FuzzParseCallback(f *testing.F) {
	for _, seed := range []string{
		`{"msisdn":"0912345678","referral_code":"aB3xY9kPq","device_id":" dev-1 ","platform":"ios","installed_at":"2026-11-24T17:00:00.1234567+07:00"}`,
		`{"referral_code":"abc","device_id":"d","platform":"android","installed_at":"2026-11-24T10:00:00Z"}`,
		`{"msisdn":"84912345678","device_id":"d","platform":"android","installed_at":"2026-11-24T10:00:00Z"}`,
		`{"msisdn":"12","device_id":"d","platform":"android","installed_at":"2026-11-24T10:00:00Z"}`,
		`{"referral_code":"a/b","device_id":"d","platform":"android","installed_at":"2026-11-24T10:00:00Z"}`,
		`{"msisdn":"0912345678","device_id":"d","platform":"ios","installed_at":"2026-11-24T10:00:00Z","bonus_mb":99999}`,
		`{"msisdn":912345678,"device_id":"d","platform":"ios","installed_at":"2026-11-24T10:00:00Z"}`,
		`{"msisdn":null,"referral_code":"abc","device_id":"d","platform":"ios","installed_at":"0000-01-01T00:00:00+23:59"}`,
		`{"msisdn":"0912345678","device_id":"d","platform":"ios","installed_at":"9999-12-31T23:59:59-23:59"}`,
		`{"msisdn":"0912345678"} {}`, `[]`, `null`, `"x"`, ``, ` `, `{`, `{"MSISDN":"0912345678"}`,
		`{"msisdn":"\u0000","device_id":"\ud800","platform":"ios","installed_at":"2026-11-24T10:00:00Z"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		cb, err := install.ParseCallback(body)
		if err != nil {
			// Every refusal is the client's fault (400 or 422), never a 500.
			var fe apperr.FieldErrors
			if !errors.Is(err, apperr.ErrMalformed) && !errors.As(err, &fe) {
				t.Fatalf("ParseCallback(%q) failed with %v: neither malformed nor field errors", body, err)
			}
			if cb != (install.Callback{}) {
				t.Fatalf("ParseCallback(%q) failed but returned %+v", body, cb)
			}
			return
		}
		if cb.MSISDN == "" && cb.ReferralCode == "" {
			t.Fatalf("ParseCallback(%q) accepted a callback with neither msisdn nor referral_code", body)
		}
		if cb.MSISDN != "" {
			if n, err := subscriber.NormalizeMSISDN(cb.MSISDN); err != nil || n != cb.MSISDN {
				t.Fatalf("ParseCallback(%q).MSISDN = %q, not normalised", body, cb.MSISDN)
			}
		}
		if cb.ReferralCode != "" && !install.ValidCode(cb.ReferralCode) {
			t.Fatalf("ParseCallback(%q).ReferralCode = %q, not a valid code", body, cb.ReferralCode)
		}
		if cb.DeviceID == "" || len(cb.DeviceID) > install.MaxDeviceIDLength || cb.DeviceID != strings.TrimSpace(cb.DeviceID) {
			t.Fatalf("ParseCallback(%q).DeviceID = %q", body, cb.DeviceID)
		}
		if cb.Platform != install.PlatformAndroid && cb.Platform != install.PlatformIOS {
			t.Fatalf("ParseCallback(%q).Platform = %q", body, cb.Platform)
		}
		if cb.InstalledAt.Location() != time.UTC || !cb.InstalledAt.Equal(cb.InstalledAt.Truncate(time.Microsecond)) {
			t.Fatalf("ParseCallback(%q).InstalledAt = %v, not UTC to the microsecond", body, cb.InstalledAt)
		}
		if cb.InstalledAt.Before(install.EarliestInstall) {
			t.Fatalf("ParseCallback(%q).InstalledAt = %v, before %v", body, cb.InstalledAt, install.EarliestInstall)
		}
		// What was accepted reads back the same once re-encoded: a replay of
		// the same install is recognised.
		again, err := json.Marshal(cb)
		if err != nil {
			return // a year outside 0000-9999 after the shift to UTC
		}
		if cb2, err := install.ParseCallback(again); err != nil || cb2 != cb {
			t.Fatalf("ParseCallback(%q) = %+v, re-encoded %s parses as %+v, %v", body, cb, again, cb2, err)
		}
	})
}

func FuzzVerify(f *testing.F) {
	body := []byte(`{"msisdn":"+84912345678","device_id":"d","platform":"android","installed_at":"2026-11-24T10:00:00Z"}`)
	const now = 1_764_000_000
	for _, s := range []struct {
		secret, ts, sig string
		body            []byte
		offset          int64
	}{
		{"s3cret", "1764000000", install.Sign("s3cret", "1764000000", body), body, 0},
		{"s3cret", " 1764000000 ", strings.ToUpper(install.Sign("s3cret", "1764000000", body)), body, -240},
		{"s3cret", "1764000000", install.Sign("other", "1764000000", body), body, 0},
		{"s3cret", "1764000000", install.Sign("s3cret", "1764000000", body), append([]byte(" "), body...), 0},
		{"s3cret", "1763999000", install.Sign("s3cret", "1763999000", body), body, 0},
		{"s3cret", "+1764000000", "sha256=" + strings.Repeat("0", 64), body, 0},
		{"", "1764000000", install.Sign("", "1764000000", body), body, 0},
		{"s3cret\x00", "1764000000", install.Sign("s3cret", "1764000000", body), body, 0},
		{"s3cret", "", "", nil, 0},
		{"s3cret", "999999999999", "sha1=abc", nil, 0},
	} {
		f.Add(s.secret, s.ts, s.body, s.sig, s.offset)
	}
	f.Fuzz(func(t *testing.T, secret, ts string, body []byte, sig string, offset int64) {
		at := time.Unix(now, 0).Add(time.Duration(offset%86400) * time.Second)
		err := install.Verify(secret, ts, body, sig, at)
		if err != nil {
			var ae *install.AuthError
			if !errors.As(err, &ae) || !errors.Is(err, apperr.ErrUnauthorized) && !errors.Is(err, apperr.ErrForbidden) {
				t.Fatalf("Verify failed with %v, not an AuthError (401 or 403)", err)
			}
		} else {
			// Accepted: the signature must be the HMAC under the secret, as
			// computed here without the package's help.
			m := hmac.New(sha256.New, []byte(secret))
			m.Write([]byte(strings.TrimSpace(ts) + "."))
			m.Write(body)
			want := hex.EncodeToString(m.Sum(nil))
			got := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(sig), "sha256="))
			if secret == "" || got != want {
				t.Fatalf("Verify(%q, %q, %q, %q) accepted a signature not made with the secret", secret, ts, body, sig)
			}
		}

		// A callback signed with the secret now passes; with anything
		// changed it fails.
		if secret == "" {
			return
		}
		stamp := strconv.FormatInt(at.Unix(), 10)
		good := install.Sign(secret, stamp, body)
		if err := install.Verify(secret, stamp, body, good, at); err != nil {
			t.Fatalf("a callback signed with %q is refused: %v", secret, err)
		}
		if err := install.Verify(secret+"x", stamp, body, good, at); !errors.Is(err, install.ErrBadSignature) {
			t.Fatalf("another secret verified the signature: %v", err)
		}
		if err := install.Verify(secret, stamp, append(bytes.Clone(body), 'x'), good, at); !errors.Is(err, install.ErrBadSignature) {
			t.Fatalf("a changed body verified: %v", err)
		}
		if err := install.Verify(secret, strconv.FormatInt(at.Unix()+1, 10), body, good, at); !errors.Is(err, install.ErrBadSignature) {
			t.Fatalf("a changed timestamp verified: %v", err)
		}
	})
}

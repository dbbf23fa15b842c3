package install

import (
	"errors"
	"strings"
	"testing"
	"time"

	"outreach/internal/apperr"
)

func TestParseCallback(t *testing.T) {
	t.Run("a full callback is normalised", func(t *testing.T) {
		cb, err := ParseCallback([]byte(`{"msisdn":"0912345678","referral_code":"aB3xY9kPq","device_id":" dev-1 ",
			"platform":"ios","installed_at":"2026-11-24T17:00:00.1234567+07:00"}`))
		if err != nil {
			t.Fatal(err)
		}
		want := Callback{MSISDN: "+84912345678", ReferralCode: "aB3xY9kPq", DeviceID: "dev-1", Platform: PlatformIOS,
			InstalledAt: time.Date(2026, 11, 24, 10, 0, 0, 123456000, time.UTC)}
		if cb != want {
			t.Errorf("got %+v\nwant %+v", cb, want)
		}
	})
	t.Run("an install at the earliest time allowed is accepted", func(t *testing.T) {
		cb, err := ParseCallback([]byte(`{"referral_code":"abc","device_id":"d","platform":"ios","installed_at":"2020-01-01T07:00:00+07:00"}`))
		if err != nil || !cb.InstalledAt.Equal(EarliestInstall) {
			t.Fatalf("installed_at %v, err %v", cb.InstalledAt, err)
		}
	})
	t.Run("a body that begins with a UTF-8 byte-order mark is read", func(t *testing.T) {
		cb, err := ParseCallback([]byte("\xef\xbb\xbf" + `{"msisdn":"0912345678","device_id":"d","platform":"ios","installed_at":"2026-11-24T10:00:00Z"}`))
		if err != nil || cb.MSISDN != "+84912345678" || cb.DeviceID != "d" {
			t.Fatalf("got %+v, err %v", cb, err)
		}
	})
	t.Run("a body that is not UTF-8 is malformed, naming the byte", func(t *testing.T) {
		// Read as U+FFFD, "dev-\xe01" and "dev-\xe11" were one device.
		for _, dev := range []string{"dev-\xe01", "dev-\xe11"} {
			_, err := ParseCallback([]byte(`{"msisdn":"0912345678","device_id":"` + dev + `","platform":"android","installed_at":"2026-11-24T10:00:00Z"}`))
			var me *MalformedError
			if !errors.As(err, &me) || !strings.Contains(me.Message, "not UTF-8 text (byte 40)") {
				t.Errorf("device id %q: %v, want malformed", dev, err)
			}
		}
	})
	t.Run("a referral code alone is enough", func(t *testing.T) {
		if _, err := ParseCallback([]byte(`{"referral_code":"abc","device_id":"d","platform":"android","installed_at":"2026-11-24T10:00:00Z"}`)); err != nil {
			t.Fatal(err)
		}
	})
	fieldCases := []struct {
		name, body string
		fields     []string
	}{
		{"neither msisdn nor referral code", `{"device_id":"d","platform":"android","installed_at":"2026-11-24T10:00:00Z"}`, []string{"msisdn"}},
		{"a bad number", `{"msisdn":"12","device_id":"d","platform":"android","installed_at":"2026-11-24T10:00:00Z"}`, []string{"msisdn"}},
		{"a device id with a NUL", `{"msisdn":"0912345678","device_id":"d\u0000x","platform":"android","installed_at":"2026-11-24T10:00:00Z"}`, []string{"device_id"}},
		{"a referral code with punctuation", `{"referral_code":"a/b","device_id":"d","platform":"android","installed_at":"2026-11-24T10:00:00Z"}`, []string{"referral_code"}},
		{"everything else missing", `{"msisdn":"0912345678"}`, []string{"device_id", "installed_at", "platform"}},
		{"an unknown platform and a bad time", `{"msisdn":"0912345678","device_id":"d","platform":"windows","installed_at":"yesterday"}`, []string{"installed_at", "platform"}},
		{"a device id too long", `{"msisdn":"0912345678","device_id":"` + strings.Repeat("x", 201) + `","platform":"ios","installed_at":"2026-11-24T10:00:00Z"}`, []string{"device_id"}},
		{"an install before 2020 (an unset clock)", `{"msisdn":"0912345678","device_id":"d","platform":"ios","installed_at":"1970-01-01T00:00:00Z"}`, []string{"installed_at"}},
		{"an install a second before 2020", `{"msisdn":"0912345678","device_id":"d","platform":"ios","installed_at":"2020-01-01T06:59:59+07:00"}`, []string{"installed_at"}},
		{"a number where a string belongs", `{"msisdn":912345678,"device_id":"d","platform":"ios","installed_at":"2026-11-24T10:00:00Z"}`, []string{"msisdn"}},
	}
	for _, c := range fieldCases {
		t.Run(c.name+" names its fields", func(t *testing.T) {
			_, err := ParseCallback([]byte(c.body))
			var fe apperr.FieldErrors
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want field errors", err)
			}
			for _, f := range c.fields {
				if fe[f] == "" {
					t.Errorf("field %s not named in %v", f, fe)
				}
			}
			if len(fe) != len(c.fields) {
				t.Errorf("fields %v, want exactly %v", fe, c.fields)
			}
		})
	}
	malformedCases := []struct{ name, body, field string }{
		{"an unknown field", `{"msisdn":"0912345678","device_id":"d","platform":"ios","installed_at":"2026-11-24T10:00:00Z","bonus_mb":99999}`, "bonus_mb"},
		{"an empty body", ``, ""},
		{"broken JSON", `{"msisdn":`, ""},
		{"two objects", `{} {}`, ""},
		{"an array", `[]`, ""},
	}
	for _, c := range malformedCases {
		t.Run(c.name+" is malformed", func(t *testing.T) {
			_, err := ParseCallback([]byte(c.body))
			var me *MalformedError
			if !errors.As(err, &me) || !errors.Is(err, apperr.ErrMalformed) {
				t.Fatalf("err = %v, want malformed", err)
			}
			if me.Field != c.field {
				t.Errorf("field %q, want %q", me.Field, c.field)
			}
		})
	}
}

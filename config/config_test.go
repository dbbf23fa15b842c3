package config

import (
	"os"
	"strings"
	"testing"
	"time"
	_ "time/tzdata"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultsAreTheEmbeddedSetup(t *testing.T) {
	c, err := Load(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if d, p, _ := c.Database(); d != "sqlite" || p != "./outreach.db" {
		t.Errorf("database = %s %s, want sqlite ./outreach.db", d, p)
	}
	if c.RedisURL != "" || c.SMSProvider != "log" || c.PushProvider != "log" || c.SMSRate != 100 || c.PushRate != 1000 {
		t.Errorf("unexpected defaults: %+v", c)
	}
	if c.FrequencyCap != (Cap{3, 24 * time.Hour}) || c.SendWindow != (Window{7 * 60, 22 * 60}) {
		t.Errorf("policy defaults: cap %v window %v", c.FrequencyCap, c.SendWindow)
	}
	if c.InstallBaseURL != "http://localhost:8080/i/" || c.AlertRetention != 14*24*time.Hour {
		t.Errorf("install base %q, retention %v", c.InstallBaseURL, c.AlertRetention)
	}
	if c.WorkerConcurrency != 50 || c.BacklogSeconds != 5 {
		t.Errorf("worker concurrency %d, backlog %d s", c.WorkerConcurrency, c.BacklogSeconds)
	}
}

func TestABadVariableIsNamedInTheError(t *testing.T) {
	cases := map[string]map[string]string{
		"OUTREACH_SMS_RATE":      {"OUTREACH_SMS_RATE": "fast"},
		"OUTREACH_SEND_WINDOW":   {"OUTREACH_SEND_WINDOW": "7-22"},
		"OUTREACH_FREQUENCY_CAP": {"OUTREACH_FREQUENCY_CAP": "three"},
		"OUTREACH_TIMEZONE":      {"OUTREACH_TIMEZONE": "Mars/Olympus"},
		"OUTREACH_DATABASE_URL":  {"OUTREACH_DATABASE_URL": "mysql://x"},
		"OUTREACH_REDIS_URL":     {"OUTREACH_REDIS_URL": "http://x"},
		"TWILIO_ACCOUNT_SID":     {"OUTREACH_SMS_PROVIDER": "twilio", "OUTREACH_PUBLIC_URL": "https://outreach.example.vn"},
		"OUTREACH_PUBLIC_URL": {"OUTREACH_SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t",
			"OUTREACH_TWILIO_FROM": "+84900000000"},
		"OUTREACH_SMS_PROVIDER":     {"OUTREACH_SMS_PROVIDER": "carrier-pigeon"},
		"OUTREACH_ALERT_RETENTION":  {"OUTREACH_ALERT_RETENTION": "forever"},
		"OUTREACH_BACKLOG_SECONDS":  {"OUTREACH_BACKLOG_SECONDS": "0"},
		"OUTREACH_LOG_LEVEL":        {"OUTREACH_LOG_LEVEL": "verbose"},
		"OUTREACH_TRUSTED_PROXIES":  {"OUTREACH_TRUSTED_PROXIES": "10.0.0.0/8, lb.internal"},
		"OUTREACH_STALE_AFTER":      {"OUTREACH_STALE_AFTER": "110000d"}, // would overflow into a negative duration
		"OUTREACH_REWARDS_URL":      {"OUTREACH_REWARDS_URL": "http://", "OUTREACH_REWARDS_SECRET": "s"},
		"OUTREACH_REWARDS_SECRET":   {"OUTREACH_REWARDS_URL": "https://prov.example/grant"},
		"OUTREACH_OPT_OUT_KEYWORDS": {"OUTREACH_OPT_OUT_KEYWORDS": "NGUNG, ?!"},
		"OUTREACH_OPT_IN_KEYWORDS":  {"OUTREACH_OPT_OUT_KEYWORDS": "Ngừng", "OUTREACH_OPT_IN_KEYWORDS": "ngung"},
		"OUTREACH_FCM_ENDPOINT":     {"OUTREACH_FCM_ENDPOINT": "ftp://fcm.example"},
		"OUTREACH_APNS_HOST":        {"OUTREACH_APNS_HOST": "http://[::1"},
		"OUTREACH_TWILIO_BASE_URL":  {"OUTREACH_TWILIO_BASE_URL": "ftp://u:s3cret@x"},
		"TWILIO_AUTH_TOKEN": {"OUTREACH_SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "tok_secret_abc",
			"OUTREACH_TWILIO_FROM": "+84900000000", "OUTREACH_PUBLIC_URL": "https://outreach.example.vn"},
	}
	for name, env := range cases {
		_, err := Load(envOf(env))
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: error %v does not name %s", env, err, name)
		}
		if err != nil && (strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "tok_secret")) {
			t.Errorf("%v: error %v shows a password", env, err)
		}
	}
	// A bare host is what "host override" invites: it means https.
	c, err := Load(envOf(map[string]string{"OUTREACH_APNS_HOST": "api.sandbox.push.apple.com",
		"OUTREACH_FCM_ENDPOINT": "127.0.0.1:9443"}))
	if err != nil || c.APNsHost != "https://api.sandbox.push.apple.com" || c.FCMEndpoint != "https://127.0.0.1:9443" {
		t.Errorf("bare hosts: %v, %q, %q", err, c.APNsHost, c.FCMEndpoint)
	}
}

func TestRedactedNeverShowsSecrets(t *testing.T) {
	for _, dbURL := range []string{"postgres://u:dbpass@db/x", "postgres://u@db/x?sslmode=disable&password=dbpass"} {
		c, err := Load(envOf(map[string]string{"OUTREACH_SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": "AC1",
			"OUTREACH_PUBLIC_URL": "https://twilio:pubpass@outreach.example.vn", "TWILIO_AUTH_TOKEN": "toksecret42", "OUTREACH_TWILIO_FROM": "+84900000000",
			"OUTREACH_DATABASE_URL": dbURL, "OUTREACH_INSTALL_SECRET": "inst-secret",
			"OUTREACH_REDIS_URL":       "redis://:redispass@cache:6379/0",
			"OUTREACH_REWARDS_URL":     "https://carrier:rewpass@prov.example/api?token=rewtoken&region=vn",
			"OUTREACH_REWARDS_SECRET":  "rew-secret",
			"OUTREACH_TWILIO_BASE_URL": "http://tw:twpass@127.0.0.1:9/", "OUTREACH_FCM_ENDPOINT": "https://u:fcmpass@fcm.example"}))
		if err != nil {
			t.Fatal(err)
		}
		out := strings.Join(func() []string {
			var s []string
			for k, v := range c.Redacted() {
				s = append(s, k, toString(v))
			}
			return s
		}(), " ")
		for _, secret := range []string{"pubpass", "toksecret42", "dbpass", "inst-secret", "redispass", "rewpass", "rewtoken", "rew-secret", "twpass", "fcmpass"} {
			if strings.Contains(out, secret) {
				t.Errorf("Redacted shows %q (database URL %s)", secret, dbURL)
			}
		}
		if !strings.Contains(out, "db/x") || !strings.Contains(out, "prov.example/api") || !strings.Contains(out, "region=vn") {
			t.Errorf("Redacted hides more than the secrets: %s", out)
		}
	}
}

// Basic credentials in the public URL (for Twilio's callbacks) stay out of
// the install links sent to every subscriber; a link base given with
// credentials is refused.
func TestInstallLinksNeverCarryCredentials(t *testing.T) {
	c, err := Load(envOf(map[string]string{"OUTREACH_PUBLIC_URL": "https://twilio:pubpass@sms.carrier.example"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.InstallBaseURL != "https://sms.carrier.example/i/" || c.PublicURL != "https://twilio:pubpass@sms.carrier.example" {
		t.Errorf("install base %q, public %q: want the base without the credentials, the public URL with them", c.InstallBaseURL, c.PublicURL)
	}
	for _, name := range []string{"OUTREACH_INSTALL_BASE_URL", "OUTREACH_INSTALL_STORE_URL"} {
		_, err := Load(envOf(map[string]string{name: "https://u:linkpass@go.example/i/"}))
		if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "linkpass") {
			t.Errorf("%s with credentials: %v, want refused naming it, without the password", name, err)
		}
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

func TestWindowsAcrossMidnightAndNextOpen(t *testing.T) {
	w, _ := ParseWindow("07:00-22:00")
	zone := time.FixedZone("ICT", 7*3600)
	late := time.Date(2026, 11, 24, 23, 30, 0, 0, zone)
	if w.Contains(late) {
		t.Error("23:30 is inside 07:00-22:00")
	}
	if got := w.NextOpen(late); !got.Equal(time.Date(2026, 11, 25, 7, 0, 0, 0, zone)) {
		t.Errorf("next open after 23:30 = %v", got)
	}
	night, _ := ParseWindow("22:00-06:00")
	if !night.Contains(late) || night.Contains(time.Date(2026, 11, 24, 12, 0, 0, 0, zone)) {
		t.Error("a window across midnight is wrong")
	}
	always, _ := ParseWindow("00:00-24:00")
	if !always.Always() || !always.Contains(late) {
		t.Error("00:00-24:00 is not always open")
	}
}

// A zone that changes its offset (a deployment outside Vietnam) opens the
// window at the wall clock's start on the day of the change too.
func TestNextOpenFollowsTheWallClockAcrossAnOffsetChange(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York") // time/tzdata is linked in
	if err != nil {
		t.Fatal(err)
	}
	w, _ := ParseWindow("07:00-22:00")
	for _, night := range []time.Time{
		time.Date(2026, 3, 8, 1, 0, 0, 0, ny),  // clocks go forward at 02:00
		time.Date(2026, 11, 1, 1, 0, 0, 0, ny), // and back
	} {
		got := w.NextOpen(night)
		if h, m, _ := got.Clock(); h != 7 || m != 0 || got.Day() != night.Day() {
			t.Errorf("next open after %v = %v, want 07:00 that day", night, got)
		}
	}
}

func lookupOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// TestEmptyMarketingLabelMeansNone: the README says an empty
// OUTREACH_MARKETING_LABEL means no label, so set-to-empty must differ from
// unset (the default QC). OUTREACH_OPT_OUT_TEXT is required by the rules on
// every marketing SMS: empty there still means the default.
func TestEmptyMarketingLabelMeansNone(t *testing.T) {
	const defOptOut = "Tu choi: soan TC gui 9241"
	cases := []struct {
		name          string
		env           map[string]string
		label, optOut string
	}{
		{"unset means the defaults", nil, "QC", defOptOut},
		{"an empty label means none", map[string]string{"OUTREACH_MARKETING_LABEL": ""}, "", defOptOut},
		{"a blank label means none", map[string]string{"OUTREACH_MARKETING_LABEL": "  "}, "", defOptOut},
		{"a label is trimmed", map[string]string{"OUTREACH_MARKETING_LABEL": " [QC] "}, "[QC]", defOptOut},
		{"an empty opt-out text means the default", map[string]string{"OUTREACH_OPT_OUT_TEXT": ""}, "QC", defOptOut},
		{"an opt-out text is taken", map[string]string{"OUTREACH_OPT_OUT_TEXT": "Tu choi QC soan TC gui 199"},
			"QC", "Tu choi QC soan TC gui 199"},
	}
	for _, tc := range cases {
		c, err := LoadLookup(lookupOf(tc.env))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.MarketingLabel != tc.label || c.OptOutText != tc.optOut {
			t.Errorf("%s: label %q, opt-out %q; want %q, %q", tc.name, c.MarketingLabel, c.OptOutText, tc.label, tc.optOut)
		}
	}

	// A plain getenv cannot say a variable is set to "": it reads as unset,
	// as it always did.
	c, err := Load(envOf(map[string]string{"OUTREACH_MARKETING_LABEL": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if c.MarketingLabel != "QC" {
		t.Errorf("Load(envOf) with an empty label: %q, want the default QC", c.MarketingLabel)
	}
}

// TestEmptyMarketingLabelFromTheProcessEnvironment: the process reads its
// environment through os.LookupEnv (cmd/outreach passes it), so a
// deployment's OUTREACH_MARKETING_LABEL= means no label.
func TestEmptyMarketingLabelFromTheProcessEnvironment(t *testing.T) {
	t.Setenv("OUTREACH_MARKETING_LABEL", "")
	for name, load := range map[string]func() (*Config, error){
		"LoadLookup(nil)":          func() (*Config, error) { return LoadLookup(nil) },
		"LoadLookup(os.LookupEnv)": func() (*Config, error) { return LoadLookup(os.LookupEnv) },
	} {
		c, err := load()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.MarketingLabel != "" {
			t.Errorf("%s with OUTREACH_MARKETING_LABEL set empty: label %q, want none", name, c.MarketingLabel)
		}
	}
	os.Unsetenv("OUTREACH_MARKETING_LABEL") // t.Setenv restores it after the test
	c, err := LoadLookup(os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.MarketingLabel != "QC" {
		t.Errorf("OUTREACH_MARKETING_LABEL unset: label %q, want QC", c.MarketingLabel)
	}
}

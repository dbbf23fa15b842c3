// Package config loads the one Config of a process from OUTREACH_*
// environment variables (and the providers' own), with defaults, and
// validates it at start-up: a bad variable stops the process with its name.
package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"outreach/subscriber"
)

// Config is every setting of the engine. Secrets are tagged json:"-" and
// blanked by Redacted.
type Config struct {
	HTTPAddr string `json:"http_addr"`
	// TrustedProxies: the load balancers (addresses or CIDR ranges) whose
	// X-Forwarded-For names the client.
	TrustedProxies []string `json:"trusted_proxies"`
	DatabaseURL    string   `json:"-"`
	RedisURL       string   `json:"-"`
	PublicURL      string   `json:"-"` // may carry Basic credentials for Twilio's callbacks

	SMSProvider  string `json:"sms_provider"`  // log | twilio
	PushProvider string `json:"push_provider"` // log | native

	TwilioAccountSID          string `json:"twilio_account_sid"`
	TwilioAuthToken           string `json:"-"`
	TwilioFrom                string `json:"twilio_from"`
	TwilioMessagingServiceSID string `json:"twilio_messaging_service_sid"`
	TwilioBaseURL             string `json:"twilio_base_url"`

	FCMCredentials string `json:"fcm_credentials"` // a path
	FCMEndpoint    string `json:"fcm_endpoint"`

	APNsKey    string `json:"apns_key"` // a path to the .p8
	APNsKeyID  string `json:"apns_key_id"`
	APNsTeamID string `json:"apns_team_id"`
	APNsTopic  string `json:"apns_topic"`
	APNsHost   string `json:"apns_host"`

	SMSRate  int `json:"sms_rate"`
	PushRate int `json:"push_rate"`

	Timezone       *time.Location `json:"-"`
	TimezoneName   string         `json:"timezone"`
	SendWindow     Window         `json:"send_window"`
	FrequencyCap   Cap            `json:"frequency_cap"`
	MarketingLabel string         `json:"marketing_label"`
	OptOutText     string         `json:"opt_out_text"`
	// OptOutKeywords and OptInKeywords are inbound SMS words added to the
	// defaults (subscriber.DefaultKeywords).
	OptOutKeywords  []string `json:"opt_out_keywords"`
	OptInKeywords   []string `json:"opt_in_keywords"`
	InstallBaseURL  string   `json:"install_base_url"`
	InstallStoreURL string   `json:"install_store_url"`
	InstallSecret   string   `json:"-"`
	RewardsURL      string   `json:"rewards_url"`
	RewardsSecret   string   `json:"-"`
	AdoptionTarget  int64    `json:"adoption_target"`

	WorkerConcurrency int `json:"worker_concurrency"`
	// BacklogSeconds: how many seconds of a campaign's rate its fan-out
	// may queue in Redis ahead of sending.
	BacklogSeconds int           `json:"backlog_seconds"`
	AlertRetention time.Duration `json:"alert_retention"`
	// StaleAfter: a pending delivery or reward with no progress this long
	// has lost its task and is re-driven; SendingStaleAfter: a delivery claimed this
	// long ago by a worker that never finished goes back to pending.
	StaleAfter        time.Duration `json:"stale_after"`
	SendingStaleAfter time.Duration `json:"sending_stale_after"`
	// RetryBase is the first backoff after a transient provider error.
	RetryBase      time.Duration `json:"retry_base"`
	MigrateOnStart bool          `json:"migrate_on_start"`
	LogLevel       string        `json:"log_level"`
}

// Window is a daily send window in the tenant's zone, as minutes after
// midnight; Start 0 and End 1440 mean always.
type Window struct {
	Start, End int
}

func (w Window) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", w.Start/60, w.Start%60, w.End/60, w.End%60)
}

// MarshalText lets the window print in Redacted output.
func (w Window) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// Always reports whether the window never closes.
func (w Window) Always() bool { return w.Start == 0 && w.End >= 1440 }

// Contains reports whether t (already in the tenant's zone) is inside.
func (w Window) Contains(t time.Time) bool {
	if w.Always() {
		return true
	}
	m := t.Hour()*60 + t.Minute()
	if w.Start <= w.End {
		return m >= w.Start && m < w.End
	}
	return m >= w.Start || m < w.End // a window across midnight
}

// NextOpen returns the first instant at or after t when the window is open.
func (w Window) NextOpen(t time.Time) time.Time {
	if w.Contains(t) {
		return t
	}
	// The wall clock's Start on t's day, or the next (not midnight plus
	// elapsed minutes: on a day that changes the zone's offset those
	// differ by the change).
	open := time.Date(t.Year(), t.Month(), t.Day(), w.Start/60, w.Start%60, 0, 0, t.Location())
	if !open.After(t) {
		open = time.Date(t.Year(), t.Month(), t.Day()+1, w.Start/60, w.Start%60, 0, 0, t.Location())
	}
	return open
}

// ParseWindow reads "HH:MM-HH:MM"; "00:00-24:00" means always.
func ParseWindow(s string) (Window, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return Window{}, fmt.Errorf("want HH:MM-HH:MM, got %q", s)
	}
	start, err := parseClock(a)
	if err != nil {
		return Window{}, err
	}
	end, err := parseClock(b)
	if err != nil {
		return Window{}, err
	}
	if start == end {
		return Window{}, fmt.Errorf("empty window %q", s)
	}
	return Window{Start: start, End: end}, nil
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("bad time of day %q", s)
	}
	return hh*60 + mm, nil
}

// Cap is a frequency cap: at most Count marketing messages per Period;
// Count 0 means no cap.
type Cap struct {
	Count  int
	Period time.Duration
}

func (c Cap) String() string {
	if c.Count == 0 {
		return "0"
	}
	// 24h, not 24h0m0s: the form OUTREACH_FREQUENCY_CAP is written in.
	period := c.Period.String()
	if strings.HasSuffix(period, "m0s") {
		period = period[:len(period)-2]
	}
	if strings.HasSuffix(period, "h0m") {
		period = period[:len(period)-2]
	}
	return fmt.Sprintf("%d/%s", c.Count, period)
}

// MarshalText lets the cap print in Redacted output.
func (c Cap) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// ParseCap reads "3/24h", or "0" for none.
func ParseCap(s string) (Cap, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return Cap{}, nil
	}
	n, p, ok := strings.Cut(s, "/")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count < 0 {
		return Cap{}, fmt.Errorf("want COUNT/DURATION like 3/24h, or 0, got %q", s)
	}
	period, err := time.ParseDuration(p)
	if err != nil || period <= 0 {
		return Cap{}, fmt.Errorf("bad period in %q", s)
	}
	return Cap{Count: count, Period: period}, nil
}

// Load reads the environment through getenv (a test's map, say), which
// cannot tell a variable set to "" from an unset one: "" means unset. The
// process reads its environment through LoadLookup(os.LookupEnv).
func Load(getenv func(string) string) (*Config, error) {
	if getenv == nil {
		return LoadLookup(nil)
	}
	return LoadLookup(func(name string) (string, bool) {
		v := getenv(name)
		return v, v != ""
	})
}

// LoadLookup is Load through lookup, which answers like os.LookupEnv:
// whether the variable is set, and its value. nil means os.LookupEnv.
func LoadLookup(lookup func(string) (string, bool)) (*Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	l := loader{lookup: lookup}
	c := &Config{
		HTTPAddr:                  l.str("OUTREACH_HTTP_ADDR", ":8080"),
		DatabaseURL:               l.str("OUTREACH_DATABASE_URL", "sqlite://./outreach.db"),
		RedisURL:                  l.str("OUTREACH_REDIS_URL", ""),
		PublicURL:                 strings.TrimRight(l.str("OUTREACH_PUBLIC_URL", "http://localhost:8080"), "/"),
		SMSProvider:               l.str("OUTREACH_SMS_PROVIDER", "log"),
		PushProvider:              l.str("OUTREACH_PUSH_PROVIDER", "log"),
		TwilioAccountSID:          l.str("TWILIO_ACCOUNT_SID", ""),
		TwilioAuthToken:           l.str("TWILIO_AUTH_TOKEN", ""),
		TwilioFrom:                l.str("OUTREACH_TWILIO_FROM", ""),
		TwilioMessagingServiceSID: l.str("OUTREACH_TWILIO_MESSAGING_SERVICE_SID", ""),
		TwilioBaseURL:             l.str("OUTREACH_TWILIO_BASE_URL", ""),
		FCMCredentials:            l.str("OUTREACH_FCM_CREDENTIALS", ""),
		FCMEndpoint:               originURL(l.str("OUTREACH_FCM_ENDPOINT", "")),
		APNsKey:                   l.str("OUTREACH_APNS_KEY", ""),
		APNsKeyID:                 l.str("OUTREACH_APNS_KEY_ID", ""),
		APNsTeamID:                l.str("OUTREACH_APNS_TEAM_ID", ""),
		APNsTopic:                 l.str("OUTREACH_APNS_TOPIC", ""),
		APNsHost:                  originURL(l.str("OUTREACH_APNS_HOST", "")),
		SMSRate:                   l.positive("OUTREACH_SMS_RATE", 100),
		PushRate:                  l.positive("OUTREACH_PUSH_RATE", 1000),
		TimezoneName:              l.str("OUTREACH_TIMEZONE", "Asia/Ho_Chi_Minh"),
		MarketingLabel:            l.strOrNone("OUTREACH_MARKETING_LABEL", "QC"),
		OptOutText:                l.str("OUTREACH_OPT_OUT_TEXT", "Tu choi: soan TC gui 9241"),
		InstallStoreURL:           l.str("OUTREACH_INSTALL_STORE_URL", "https://bluezone.gov.vn/"),
		InstallSecret:             l.str("OUTREACH_INSTALL_SECRET", ""),
		RewardsURL:                l.str("OUTREACH_REWARDS_URL", ""),
		RewardsSecret:             l.str("OUTREACH_REWARDS_SECRET", ""),
		AdoptionTarget:            int64(l.positive("OUTREACH_ADOPTION_TARGET", 50_000_000)),
		WorkerConcurrency:         l.positive("OUTREACH_WORKER_CONCURRENCY", 50),
		BacklogSeconds:            l.positive("OUTREACH_BACKLOG_SECONDS", 5),
		AlertRetention:            l.duration("OUTREACH_ALERT_RETENTION", 14*24*time.Hour),
		StaleAfter:                l.duration("OUTREACH_STALE_AFTER", 2*time.Minute),
		SendingStaleAfter:         l.duration("OUTREACH_SENDING_STALE_AFTER", 5*time.Minute),
		RetryBase:                 l.duration("OUTREACH_RETRY_BASE", time.Second),
		MigrateOnStart:            l.boolean("OUTREACH_MIGRATE_ON_START", true),
		LogLevel:                  l.str("OUTREACH_LOG_LEVEL", "info"),
	}
	// The default drops the public URL's user and password (Basic
	// credentials for Twilio's callbacks): the base goes into every
	// install-promotion SMS.
	c.InstallBaseURL = l.str("OUTREACH_INSTALL_BASE_URL", withoutUser(c.PublicURL)+"/i/")
	c.TrustedProxies = commaList(l.str("OUTREACH_TRUSTED_PROXIES", ""))
	c.OptOutKeywords = commaList(l.str("OUTREACH_OPT_OUT_KEYWORDS", ""))
	c.OptInKeywords = commaList(l.str("OUTREACH_OPT_IN_KEYWORDS", ""))
	for name, words := range map[string][]string{"OUTREACH_OPT_OUT_KEYWORDS": c.OptOutKeywords, "OUTREACH_OPT_IN_KEYWORDS": c.OptInKeywords} {
		for _, w := range words {
			if p := subscriber.CheckKeyword(w); p != "" {
				l.fail(name, "%s", p)
			}
		}
	}
	for _, w := range c.OptOutKeywords {
		if slices.ContainsFunc(c.OptInKeywords, func(in string) bool {
			return subscriber.Keywords{OptOut: []string{w}}.Match(in) == subscriber.KeywordOptOut
		}) {
			l.fail("OUTREACH_OPT_IN_KEYWORDS", "%q is an opt-out keyword too (OUTREACH_OPT_OUT_KEYWORDS)", w)
		}
	}
	var err error
	if c.Timezone, err = time.LoadLocation(c.TimezoneName); err != nil {
		l.fail("OUTREACH_TIMEZONE", "unknown time zone %q", c.TimezoneName)
	}
	if c.SendWindow, err = ParseWindow(l.str("OUTREACH_SEND_WINDOW", "07:00-22:00")); err != nil {
		l.fail("OUTREACH_SEND_WINDOW", "%v", err)
	}
	if c.FrequencyCap, err = ParseCap(l.str("OUTREACH_FREQUENCY_CAP", "3/24h")); err != nil {
		l.fail("OUTREACH_FREQUENCY_CAP", "%v", err)
	}
	if c.SMSProvider == "twilio" && strings.TrimSpace(l.getenv("OUTREACH_PUBLIC_URL")) == "" {
		// The default is this machine: every install link would read
		// http://localhost:8080/i/… and no delivery receipt would come back.
		l.fail("OUTREACH_PUBLIC_URL", "required when OUTREACH_SMS_PROVIDER=twilio: the https address subscribers and Twilio reach this service at (install links and delivery receipts use it)")
	}
	if l.err != nil {
		return nil, l.err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks the settings that depend on one another.
func (c *Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if _, _, err := c.Database(); err != nil {
		bad("OUTREACH_DATABASE_URL", "%v", err)
	}
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "redis-sentinel" && u.Scheme != "redis-cluster") {
			bad("OUTREACH_REDIS_URL", "want redis://, rediss://, redis-sentinel:// or redis-cluster://")
		}
	}
	for name, v := range map[string]string{"OUTREACH_PUBLIC_URL": c.PublicURL, "OUTREACH_INSTALL_BASE_URL": c.InstallBaseURL,
		"OUTREACH_INSTALL_STORE_URL": c.InstallStoreURL} {
		if !httpURL(v) {
			bad(name, "want an http(s) URL, got %q", redactURL(v))
		}
	}
	// What goes to subscribers (the link in an SMS, the page it leads to)
	// never carries a user or password.
	for name, v := range map[string]string{"OUTREACH_INSTALL_BASE_URL": c.InstallBaseURL, "OUTREACH_INSTALL_STORE_URL": c.InstallStoreURL} {
		if u, err := url.Parse(v); err == nil && u.User != nil {
			bad(name, "must not carry a user or password: it is sent to every subscriber (got %q)", redactURL(v))
		}
	}
	// Overrides of the providers' addresses (fakes, staging): a value
	// neither client could use would fail every send, quietly, as a
	// transient error retried for ever.
	for name, v := range map[string]string{"OUTREACH_TWILIO_BASE_URL": c.TwilioBaseURL,
		"OUTREACH_FCM_ENDPOINT": c.FCMEndpoint, "OUTREACH_APNS_HOST": c.APNsHost} {
		if v != "" && !httpURL(v) {
			bad(name, "want an http(s) URL such as https://host[:port], got %q", redactURL(v))
		}
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				bad("OUTREACH_TRUSTED_PROXIES", "%q is neither an IP address nor a CIDR range", p)
			}
		}
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("OUTREACH_LOG_LEVEL", "want debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.RewardsURL != "" {
		if !httpURL(c.RewardsURL) {
			bad("OUTREACH_REWARDS_URL", "want an http(s) URL with a host")
		}
		if c.RewardsSecret == "" {
			// Unsigned grants are refused by the carrier, and each reward
			// would fail for good.
			bad("OUTREACH_REWARDS_SECRET", "required when OUTREACH_REWARDS_URL is set: the carrier checks each grant's signature")
		}
	}
	switch c.SMSProvider {
	case "log":
	case "twilio":
		// Twilio's SIDs and tokens are letters and digits; the values are
		// not repeated (the token is a secret).
		for _, v := range []struct {
			name, value string
			required    bool
		}{{"TWILIO_ACCOUNT_SID", c.TwilioAccountSID, true}, {"TWILIO_AUTH_TOKEN", c.TwilioAuthToken, true},
			{"OUTREACH_TWILIO_MESSAGING_SERVICE_SID", c.TwilioMessagingServiceSID, false}} {
			switch {
			case v.value == "" && v.required:
				bad(v.name, "required when OUTREACH_SMS_PROVIDER=twilio")
			case strings.IndexFunc(v.value, func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') }) >= 0:
				bad(v.name, "must be letters and digits only, as Twilio's are (check for a stray quote, space or dash)")
			}
		}
		if c.TwilioFrom == "" && c.TwilioMessagingServiceSID == "" {
			bad("OUTREACH_TWILIO_FROM", "OUTREACH_TWILIO_FROM or OUTREACH_TWILIO_MESSAGING_SERVICE_SID is required when OUTREACH_SMS_PROVIDER=twilio")
		}
	default:
		bad("OUTREACH_SMS_PROVIDER", "want log or twilio, got %q", c.SMSProvider)
	}
	switch c.PushProvider {
	case "log":
	case "native":
		if c.FCMCredentials == "" && c.APNsKey == "" {
			bad("OUTREACH_FCM_CREDENTIALS", "OUTREACH_FCM_CREDENTIALS or OUTREACH_APNS_KEY is required when OUTREACH_PUSH_PROVIDER=native")
		}
		if c.APNsKey != "" && (c.APNsKeyID == "" || c.APNsTeamID == "" || c.APNsTopic == "") {
			bad("OUTREACH_APNS_KEY_ID", "OUTREACH_APNS_KEY_ID, OUTREACH_APNS_TEAM_ID and OUTREACH_APNS_TOPIC are required with OUTREACH_APNS_KEY")
		}
	default:
		bad("OUTREACH_PUSH_PROVIDER", "want log or native, got %q", c.PushProvider)
	}
	return errors.Join(errs...)
}

// httpURL reports whether v is an absolute http(s) URL with a host.
func httpURL(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// originURL takes a bare host[:port] (what "host override" invites) as
// https://host[:port]; anything else is left as given.
func originURL(v string) string {
	if v != "" && !strings.Contains(v, "://") {
		return "https://" + v
	}
	return v
}

// Database splits OUTREACH_DATABASE_URL into a driver ("postgres" or
// "sqlite") and what that driver opens.
func (c *Config) Database() (driver, dsn string, err error) {
	switch {
	case strings.HasPrefix(c.DatabaseURL, "postgres://"), strings.HasPrefix(c.DatabaseURL, "postgresql://"):
		return "postgres", c.DatabaseURL, nil
	case strings.HasPrefix(c.DatabaseURL, "sqlite://"):
		p := strings.TrimPrefix(c.DatabaseURL, "sqlite://")
		if p == "" {
			return "", "", fmt.Errorf("sqlite:// needs a path")
		}
		return "sqlite", p, nil
	}
	return "", "", fmt.Errorf("want postgres://… or sqlite://PATH")
}

// Redacted is a copy safe to log or show: secrets are blanked and URLs lose
// their passwords.
func (c *Config) Redacted() map[string]any {
	out := map[string]any{
		"http_addr": c.HTTPAddr, "trusted_proxies": c.TrustedProxies, "database_url": redactURL(c.DatabaseURL), "redis_url": redactURL(c.RedisURL),
		"public_url": redactURL(c.PublicURL), "sms_provider": c.SMSProvider, "push_provider": c.PushProvider,
		"twilio_account_sid": c.TwilioAccountSID, "twilio_auth_token": secret(c.TwilioAuthToken),
		"twilio_from": c.TwilioFrom, "twilio_messaging_service_sid": c.TwilioMessagingServiceSID,
		"twilio_base_url": redactURL(c.TwilioBaseURL), "fcm_credentials": c.FCMCredentials, "fcm_endpoint": redactURL(c.FCMEndpoint),
		"apns_key": c.APNsKey, "apns_key_id": c.APNsKeyID, "apns_team_id": c.APNsTeamID, "apns_topic": c.APNsTopic,
		"apns_host": redactHost(c.APNsHost), "sms_rate": c.SMSRate, "push_rate": c.PushRate, "timezone": c.TimezoneName,
		"send_window": c.SendWindow.String(), "frequency_cap": c.FrequencyCap.String(),
		"marketing_label": c.MarketingLabel, "opt_out_text": c.OptOutText,
		"install_base_url": redactURL(c.InstallBaseURL), "install_store_url": redactURL(c.InstallStoreURL),
		"opt_out_keywords": c.OptOutKeywords, "opt_in_keywords": c.OptInKeywords,
		"install_secret": secret(c.InstallSecret), "rewards_url": redactURL(c.RewardsURL), "rewards_secret": secret(c.RewardsSecret),
		"adoption_target": c.AdoptionTarget, "worker_concurrency": c.WorkerConcurrency,
		"backlog_seconds": c.BacklogSeconds,
		"alert_retention": c.AlertRetention.String(), "stale_after": c.StaleAfter.String(),
		"sending_stale_after": c.SendingStaleAfter.String(), "retry_base": c.RetryBase.String(),
		"migrate_on_start": c.MigrateOnStart, "log_level": c.LogLevel,
	}
	return out
}

func secret(s string) string {
	if s == "" {
		return ""
	}
	return "[set]"
}

// redactURL blanks a URL's password, in its user part or as a query
// parameter (PostgreSQL accepts ?password=); a URL that does not parse is
// not shown at all.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "[unparsable]"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q, changed := u.Query(), false
	for k := range q {
		if secretParam(k) {
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// withoutUser is the URL s without its user and password; s as it is when
// it has none or does not parse.
func withoutUser(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}

// redactHost is redactURL for a value that may be a bare host[:port],
// which has no credentials to hide (and which url.Parse may refuse).
func redactHost(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return redactURL(s)
}

// secretParam reports whether a URL's query parameter looks like a
// credential (password, sslpassword, token, access_token, api_key,
// secret, sig, signature…).
func secretParam(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"password", "token", "secret", "key", "sig"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

type loader struct {
	lookup func(string) (string, bool)
	err    error
}

func (l *loader) getenv(name string) string {
	v, _ := l.lookup(name)
	return v
}

func (l *loader) fail(name, format string, args ...any) {
	l.err = errors.Join(l.err, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

func (l *loader) str(name, def string) string {
	if v := strings.TrimSpace(l.getenv(name)); v != "" {
		return v
	}
	return def
}

// strOrNone is str for a variable whose empty value means none: unset is
// def, set to "" (or to blanks) is "". OUTREACH_MARKETING_LABEL is one;
// OUTREACH_OPT_OUT_TEXT is not: Vietnam's rules want opt-out instructions on
// every marketing SMS, so an empty one means the default.
func (l *loader) strOrNone(name, def string) string {
	v, ok := l.lookup(name)
	if !ok {
		return def
	}
	return strings.TrimSpace(v)
}

func (l *loader) positive(name string, def int) int {
	v := l.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		l.fail(name, "want a positive integer, got %q", v)
		return def
	}
	return n
}

// maxDurationDays is the most days a duration may be given as: a
// time.Duration of more would overflow into a negative one.
const maxDurationDays = int(math.MaxInt64 / int64(24*time.Hour))

func (l *loader) duration(name string, def time.Duration) time.Duration {
	v := l.getenv(name)
	if v == "" {
		return def
	}
	// Days are the natural unit for retention: accept "14d".
	if strings.HasSuffix(v, "d") {
		if n, err := strconv.Atoi(strings.TrimSuffix(v, "d")); err == nil && n > 0 {
			if n > maxDurationDays {
				l.fail(name, "want at most %dd, got %q", maxDurationDays, v)
				return def
			}
			return time.Duration(n) * 24 * time.Hour
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		l.fail(name, "want a duration like 14d or 336h, got %q", v)
		return def
	}
	return d
}

func (l *loader) boolean(name string, def bool) bool {
	v := l.getenv(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		l.fail(name, "want true or false, got %q", v)
		return def
	}
	return b
}

// commaList splits a comma-separated value, trimmed, without empty items.
func commaList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

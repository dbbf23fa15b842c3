package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"outreach/config"
)

// Two processes on one embedded store would each run an in-process Redis
// and together send at twice the sender's rate: the second is refused
// while the first runs, and starts once it has stopped.
func TestASecondProcessOnTheEmbeddedStoreIsRefused(t *testing.T) {
	ctx := context.Background()
	db := "sqlite://" + filepath.Join(t.TempDir(), "outreach.db")
	cfg := loadConfig(t, map[string]string{"OUTREACH_DATABASE_URL": db})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	first, err := newApp(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newApp(ctx, cfg, log); err == nil || !strings.Contains(err.Error(), "OUTREACH_REDIS_URL") {
		t.Errorf("a second process on the same embedded store: %v, want refused", err)
	}
	first.Close()
	again, err := newApp(ctx, cfg, log)
	if err != nil {
		t.Fatalf("after the first stopped: %v", err)
	}
	again.Close()
}

// With OUTREACH_MIGRATE_ON_START=false a store whose schema is behind the
// binary is refused at start, instead of a process that reports ready and
// fails every request; once migrated it starts.
func TestAStoreBehindTheBinaryIsRefusedWhenNotMigrating(t *testing.T) {
	ctx := context.Background()
	db := "sqlite://" + filepath.Join(t.TempDir(), "outreach.db")
	env := map[string]string{"OUTREACH_DATABASE_URL": db, "OUTREACH_MIGRATE_ON_START": "false"}
	cfg := loadConfig(t, env)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := newApp(ctx, cfg, log); err == nil || !strings.Contains(err.Error(), "outreach migrate") {
		t.Fatalf("an unmigrated store: %v, want refused with `outreach migrate`", err)
	}
	st, err := openStore(ctx, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	if pending, err := st.PendingMigrations(ctx); err != nil || len(pending) != 0 {
		t.Errorf("after migrating: pending %v, %v", pending, err)
	}
	st.Close()
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		t.Fatalf("a migrated store: %v", err)
	}
	a.Close()
}

// A claim timeout shorter than a slow send is warned of at start: a live
// worker's claims would be sent twice.
func TestAShortSendingStaleAfterIsWarnedOf(t *testing.T) {
	for _, tc := range []struct {
		value string
		warn  bool
	}{{"1s", true}, {"5m", false}} {
		cfg := loadConfig(t, map[string]string{"OUTREACH_SENDING_STALE_AFTER": tc.value})
		var buf strings.Builder
		warnSettings(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
		if got := strings.Contains(buf.String(), "OUTREACH_SENDING_STALE_AFTER is shorter"); got != tc.warn {
			t.Errorf("OUTREACH_SENDING_STALE_AFTER=%s: warned %v, want %v:\n%s", tc.value, got, tc.warn, buf.String())
		}
	}
}

// A tenant name the X-Outreach-Tenant header could not carry, or stray
// arguments, are refused by `keys create`.
func TestKeysCreateRefusesANameNoHeaderCanCarry(t *testing.T) {
	getenv, _ := embedded(t)
	for _, args := range [][]string{
		{"--tenant", "   ", "--role", "admin"},
		{"--tenant", "viettel ", "--role", "admin"},
		{"--tenant", "viettel", "--role", "admin", "extra"},
	} {
		err := realMain(context.Background(), append([]string{"keys", "create"}, args...), io.Discard, io.Discard, getenv)
		if err == nil {
			t.Errorf("keys create %q: accepted", args)
		}
	}
	createKey(t, getenv, "viettel", "admin")
}

// loadConfig loads the configuration from env alone.
func loadConfig(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A command given an argument it does not take (a listen address, a URL)
// refuses it instead of ignoring it; a store or Redis that cannot be used
// is named by its variable; keys' help says which subcommands create the
// tenant.
func TestCommandsSayWhatIsWrongWithWhatTheyAreGiven(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	env := mapEnv(map[string]string{"OUTREACH_DATABASE_URL": "sqlite://" + filepath.Join(dir, "outreach.db"),
		"OUTREACH_HTTP_ADDR": "127.0.0.1:1"})
	for _, args := range [][]string{{"serve", "127.0.0.1:18094"}, {"migrate", "please"},
		{"healthcheck", "http://127.0.0.1:18080"}, {"demo", "now"}} {
		err := realMain(ctx, args, io.Discard, io.Discard, env)
		if err == nil || !strings.Contains(err.Error(), "unexpected arguments") {
			t.Errorf("outreach %s: %v, want the argument refused", strings.Join(args, " "), err)
		}
	}
	missing := mapEnv(map[string]string{"OUTREACH_DATABASE_URL": "sqlite://" + filepath.Join(dir, "no", "such", "x.db")})
	if err := realMain(ctx, []string{"serve"}, io.Discard, io.Discard, missing); err == nil ||
		!strings.Contains(err.Error(), "OUTREACH_DATABASE_URL") {
		t.Errorf("a store in a directory that does not exist: %v, want OUTREACH_DATABASE_URL named", err)
	}
	badDB := mapEnv(map[string]string{"OUTREACH_DATABASE_URL": "sqlite://" + filepath.Join(dir, "r.db"),
		"OUTREACH_REDIS_URL": "redis://127.0.0.1:1/0"})
	if err := realMain(ctx, []string{"migrate"}, io.Discard, io.Discard, badDB); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	if err := realMain(ctx, []string{"worker"}, io.Discard, &logs, badDB); err == nil ||
		!strings.Contains(err.Error(), "OUTREACH_REDIS_URL") {
		t.Errorf("a Redis nobody answers at: %v, want OUTREACH_REDIS_URL named", err)
	}
	// The Redis client's own complaints come into the process's log, as
	// JSON like every other line (they used to be plain text on stderr).
	if !strings.Contains(logs.String(), "failed to dial") {
		t.Errorf("the Redis client's dial failures are not in the log: %q", logs.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if line != "" && !json.Valid([]byte(line)) {
			t.Errorf("a log line that is not JSON: %q", line)
		}
	}
	// A worker with no Redis at all is refused before anything says it is
	// running on the embedded default.
	logs.Reset()
	noRedis := mapEnv(map[string]string{"OUTREACH_DATABASE_URL": "sqlite://" + filepath.Join(dir, "r.db")})
	if err := realMain(ctx, []string{"worker"}, io.Discard, &logs, noRedis); err == nil ||
		!strings.Contains(err.Error(), "OUTREACH_REDIS_URL") || strings.Contains(logs.String(), "EMBEDDED MODE") {
		t.Errorf("a worker without OUTREACH_REDIS_URL: %v, logging %q; want it refused before any embedded-mode warning", err, logs.String())
	}
	var help strings.Builder
	realMain(ctx, []string{"keys", "list", "--help"}, io.Discard, &help, env)
	if !strings.Contains(help.String(), "it must exist") {
		t.Errorf("keys list --help: %s", help.String())
	}
	var usage strings.Builder
	realMain(ctx, []string{"help"}, &usage, io.Discard, env)
	if !strings.Contains(usage.String(), "keys revoke") || !strings.Contains(usage.String(), "keys list") {
		t.Errorf("usage omits keys list or revoke: %s", usage.String())
	}
}

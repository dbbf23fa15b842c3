package main

import (
	"context"
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

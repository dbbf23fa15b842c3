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
	cfg, err := config.Load(func(k string) string {
		if k == "OUTREACH_DATABASE_URL" {
			return db
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
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

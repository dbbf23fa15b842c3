package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"outreach/store/sqlite"
	"outreach/store/storetest"
)

// Migration 0007 makes a push token unique per tenant; applied to a base
// where tokens were registered on several numbers, it keeps the most
// recently created registration of each and touches no other tenant.
func TestDeviceTokenMigrationKeepsNewestRegistration(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "outreach.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	db := s.DB()
	// Migrate up to 0006: 0007 is marked applied, then unmarked.
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`,
		`INSERT INTO schema_migrations (version, applied_at) VALUES ('0007_device_token_owner', 'x')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	tn, err := s.EnsureTenant(ctx, "viettel")
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.EnsureTenant(ctx, "mobifone")
	if err != nil {
		t.Fatal(err)
	}
	const a, b, c = "+84912345678", "+84988000002", "+84988000003"
	ids, err := s.EnsureSubscribers(ctx, tn.ID, []string{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	otherIDs, err := s.EnsureSubscribers(ctx, other.ID, []string{a})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	stamp := func(d time.Duration) string { return t0.Add(d).Format("2006-01-02T15:04:05.000000Z") }
	for _, r := range []struct {
		id              int64
		platform, token string
		at              string
	}{
		{ids[c], "apns", "tok-1", stamp(0)},
		{ids[a], "fcm", "tok-1", stamp(time.Hour)},
		{ids[b], "fcm", "tok-1", stamp(2 * time.Hour)}, // newest: kept
		{ids[a], "fcm", "tok-2", stamp(time.Hour)},
		{ids[a], "apns", "tok-2", stamp(2 * time.Hour)}, // newest: kept
		{ids[a], "fcm", "tok-3", stamp(0)},
		{otherIDs[a], "fcm", "tok-1", stamp(0)}, // another tenant: kept
	} {
		if _, err := db.ExecContext(ctx, `INSERT INTO devices (subscriber_id, platform, token, created_at) VALUES (?, ?, ?, ?)`,
			r.id, r.platform, r.token, r.at); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := db.ExecContext(ctx, `DELETE FROM schema_migrations WHERE version = '0007_device_token_owner'`); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate over duplicate tokens: %v", err)
	}

	storetest.CheckMigratedDeviceTokens(t, s, tn.ID, other.ID, a, b, c)
}

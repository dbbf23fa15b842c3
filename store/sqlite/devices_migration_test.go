package sqlite_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"outreach/store/sqlite"
	"outreach/subscriber"
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

	devices := func(tenantID, msisdn string) []string {
		t.Helper()
		sub, err := s.GetSubscriber(ctx, tenantID, msisdn)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range sub.Devices {
			out = append(out, string(d.Platform)+":"+d.Token)
		}
		return out
	}
	for _, w := range []struct {
		tenant, msisdn string
		want           []string
	}{
		{tn.ID, a, []string{"fcm:tok-3", "apns:tok-2"}},
		{tn.ID, b, []string{"fcm:tok-1"}},
		{tn.ID, c, nil},
		{other.ID, a, []string{"fcm:tok-1"}},
	} {
		if got := devices(w.tenant, w.msisdn); !slices.Equal(got, w.want) {
			t.Errorf("devices of %s in %s = %v, want %v", w.msisdn, w.tenant, got, w.want)
		}
	}

	// The migrated table takes registrations under the new rule.
	if err := s.PutDevice(ctx, tn.ID, c, subscriber.Device{Platform: subscriber.PlatformFCM, Token: "tok-3"}); err != nil {
		t.Fatal(err)
	}
	if got := devices(tn.ID, a); !slices.Equal(got, []string{"apns:tok-2"}) {
		t.Errorf("devices of A after moving tok-3 = %v", got)
	}
}

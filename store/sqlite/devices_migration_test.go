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

	storetest.CheckDeviceTokenMigration(t, s,
		func(id int64, platform, token string, at time.Time) error {
			_, err := db.ExecContext(ctx, `INSERT INTO devices (subscriber_id, platform, token, created_at) VALUES (?, ?, ?, ?)`,
				id, platform, token, at.Format("2006-01-02T15:04:05.000000Z"))
			return err
		},
		func() error {
			if _, err := db.ExecContext(ctx, `DELETE FROM schema_migrations WHERE version = '0007_device_token_owner'`); err != nil {
				return err
			}
			return s.Migrate(ctx)
		})
}

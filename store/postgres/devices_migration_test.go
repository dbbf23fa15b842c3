package postgres_test

import (
	"context"
	"testing"
	"time"

	"outreach/internal/testenv"
	"outreach/store/postgres"
	"outreach/store/storetest"
)

// Migration 0007 makes a push token unique per tenant; applied to a base
// where tokens were registered on several numbers, it keeps the most
// recently created registration of each and touches no other tenant.
func TestDeviceTokenMigrationKeepsNewestRegistration(t *testing.T) {
	ctx := context.Background()
	s, err := postgres.Open(ctx, testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	db := s.Pool()
	// Migrate up to 0006: 0007 is marked applied, then unmarked.
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS schema_migrations (
			version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
		`INSERT INTO schema_migrations (version) VALUES ('0007_device_token_owner')`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	storetest.CheckDeviceTokenMigration(t, s,
		func(id int64, platform, token string, at time.Time) error {
			_, err := db.Exec(ctx, `INSERT INTO devices (subscriber_id, platform, token, created_at) VALUES ($1, $2, $3, $4)`,
				id, platform, token, at)
			return err
		},
		func() error {
			if _, err := db.Exec(ctx, `DELETE FROM schema_migrations WHERE version = '0007_device_token_owner'`); err != nil {
				return err
			}
			return s.Migrate(ctx)
		})
}

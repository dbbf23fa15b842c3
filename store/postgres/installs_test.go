package postgres_test

import (
	"context"
	"testing"

	"outreach/internal/testenv"
	"outreach/store/postgres"
	"outreach/store/storetest"
)

// openInstallStore opens a migrated store on a fresh schema of the test
// database, or skips when no database is configured.
func openInstallStore(tb testing.TB) *postgres.Store {
	tb.Helper()
	url := testenv.PostgresURL(tb)
	ctx := context.Background()
	s, err := postgres.Open(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestInstallContract(t *testing.T) {
	storetest.RunInstalls(t, func(t *testing.T) storetest.InstallStore { return openInstallStore(t) })
}

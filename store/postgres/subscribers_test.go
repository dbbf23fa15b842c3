package postgres_test

import (
	"context"
	"testing"

	"outreach/internal/testenv"
	"outreach/store/postgres"
	"outreach/store/storetest"
)

// openSubscriberStore opens a migrated store on a fresh schema of the test
// database, or skips when no database is configured.
func openSubscriberStore(t testing.TB) *postgres.Store {
	t.Helper()
	url := testenv.PostgresURL(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSubscriberContract(t *testing.T) {
	storetest.RunSubscribers(t, func(t *testing.T) storetest.SubscriberStore { return openSubscriberStore(t) })
}

package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"outreach/store/sqlite"
	"outreach/store/storetest"
)

// openSubscriberStore opens a migrated store in a file of a temporary directory.
func openSubscriberStore(t testing.TB) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "outreach.db"))
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

package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"outreach/store/sqlite"
	"outreach/store/storetest"
)

func openInstallStore(tb testing.TB) *sqlite.Store {
	tb.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "outreach.db"))
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

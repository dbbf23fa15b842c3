package sqlite_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"outreach/store/sqlite"
)

// Processes migrating one new file at once (serve's migrate on start and
// an `outreach migrate`) apply each migration once and all succeed; a
// database a newer binary migrated is refused, naming the migration.
func TestMigrationsRunOnceAcrossProcessesAndANewerSchemaIsRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outreach.db")
	const n = 4
	stores := make([]*sqlite.Store, n)
	for i := range stores {
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, s := range stores {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.Migrate(ctx) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migration %d of %d at once: %v", i+1, n, err)
		}
	}
	pending, err := stores[0].PendingMigrations(ctx)
	if err != nil || len(pending) != 0 {
		t.Fatalf("after the migrations: pending %v, %v", pending, err)
	}
	if _, err := stores[0].DB().ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ('9999_from_the_future', 'x')`); err != nil {
		t.Fatal(err)
	}
	if err := stores[1].Migrate(ctx); err == nil || !strings.Contains(err.Error(), "9999_from_the_future") {
		t.Errorf("Migrate on a newer schema: %v, want it refused naming 9999_from_the_future", err)
	}
	if _, err := stores[1].PendingMigrations(ctx); err == nil || !strings.Contains(err.Error(), "newer version") {
		t.Errorf("PendingMigrations on a newer schema: %v, want it refused", err)
	}
}

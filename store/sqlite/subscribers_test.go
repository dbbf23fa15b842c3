package sqlite_test

import (
	"context"
	"os"
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

// The database is the file at the path given, whatever characters a URI
// would read as its own ("#" a fragment, "?" parameters, "%" an escape):
// a path such as /srv/a#1/outreach.db used to open /srv/a.
func TestTheDatabaseIsTheFileAtThePathGiven(t *testing.T) {
	ctx := context.Background()
	for _, dir := range []string{"a#1", "p%41q", "x?y", "sp ace"} {
		path := filepath.Join(t.TempDir(), dir, "outreach.db")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatalf("Open(%q): %v", path, err)
		}
		err = s.Migrate(ctx)
		s.Close()
		if err != nil {
			t.Fatalf("Migrate(%q): %v", path, err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
			t.Errorf("%q: %v, %v: the database went elsewhere", path, fi, err)
		}
	}
}

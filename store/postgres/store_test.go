package postgres_test

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"outreach/internal/testenv"
	"outreach/store/postgres"
)

// The pool holds four connections a core and at least 8, unless the URL
// names its own size.
func TestThePoolSizeFollowsTheCoresUnlessTheURLSetsIt(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		url  string
		want int32
	}{
		{"default", testenv.PostgresURL(t), int32(max(8, 4*runtime.GOMAXPROCS(0)))},
		{"the URL's own", testenv.WithPoolMax(t, testenv.PostgresURL(t), 3), 3},
		{"the URL's own, larger", testenv.WithPoolMax(t, testenv.PostgresURL(t), 40), 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := postgres.Open(ctx, tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := s.Pool().Config().MaxConns; got != tc.want {
				t.Errorf("MaxConns = %d, want %d", got, tc.want)
			}
		})
	}
}

// PendingMigrations lists every migration on an empty schema and none once
// it is migrated.
func TestPendingMigrations(t *testing.T) {
	ctx := context.Background()
	s, err := postgres.Open(ctx, testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pending, err := s.PendingMigrations(ctx)
	if err != nil || len(pending) == 0 || pending[0] != "0001_core" {
		t.Fatalf("on an empty schema: %v, %v; want every migration from 0001_core", pending, err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if pending, err := s.PendingMigrations(ctx); err != nil || len(pending) != 0 {
		t.Errorf("after Migrate: %v, %v", pending, err)
	}
	// A newer binary's migration: this one refuses to run on it, naming it.
	if _, err := s.Pool().Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ('9999_from_the_future')`); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err == nil || !strings.Contains(err.Error(), "9999_from_the_future") {
		t.Errorf("Migrate on a newer schema: %v, want it refused naming 9999_from_the_future", err)
	}
	if _, err := s.PendingMigrations(ctx); err == nil || !strings.Contains(err.Error(), "newer version") {
		t.Errorf("PendingMigrations on a newer schema: %v, want it refused", err)
	}
}

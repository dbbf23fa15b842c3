// Package sqlite implements the domain stores on an embedded SQLite file
// (pure Go, no cgo): the single-node default.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"fmt"
	"slices"
	"strings"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" driver

	"outreach/campaign"
	"outreach/store/internal/storesql"
)

func init() {
	// new_referral_code() gives a claimed delivery of an install promotion
	// its referral code (ClaimDeliveries), from the same generator as on
	// PostgreSQL rather than SQLite's own pseudo-random source.
	sqlite.MustRegisterScalarFunction("new_referral_code", 0,
		func(*sqlite.FunctionContext, []driver.Value) (driver.Value, error) {
			return campaign.NewReferralCode(), nil
		})
}

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the SQLite implementation of every domain store.
type Store struct {
	db *sql.DB
}

// Open opens (creating if needed) the SQLite database at path. ":memory:"
// is not supported: use a file in a temporary directory.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlite: empty path")
	}
	// cache_size: SQLite's default page cache is 2 MB, so with millions of
	// subscribers nearly every index page an import or a fan-out touches
	// is a read syscall; 64 MB per connection (allocated as used) halved
	// the time of a 1M-row import.
	dsn := "file:" + uriPath.Replace(path) + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_pragma=cache_size(-65536)&_txlock=immediate"
	registered, err := sql.Open("sqlite", dsn) // opens no connection: it finds the driver
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	drv := registered.Driver()
	registered.Close()
	db := sql.OpenDB(connector{drv: drv, dsn: dsn})
	// One writer at a time is SQLite's model; a small pool still lets reads
	// proceed beside a write in WAL mode.
	db.SetMaxOpenConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// uriPath escapes what a "file:" URI would read as its own: "?" starts
// the parameters, "#" a fragment, and "%" an escape. Unescaped, a path
// such as /srv/a#1/outreach.db opened the file /srv/a.
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// queryColumn runs a query of one column and returns its values in order.
func queryColumn[T any](ctx context.Context, db *sql.DB, query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// DB exposes the handle to tests and benchmarks.
func (s *Store) DB() *sql.DB { return s.db }

// PendingMigrations lists the migrations built in that the database has
// not applied, oldest first (all of them on an empty database).
func (s *Store) PendingMigrations(ctx context.Context) ([]string, error) {
	var applied []string
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n); err != nil {
		return nil, fmt.Errorf("sqlite: pending migrations: %w", err)
	}
	if n > 0 {
		var err error
		if applied, err = queryColumn[string](ctx, s.db, `SELECT version FROM schema_migrations`); err != nil {
			return nil, fmt.Errorf("sqlite: pending migrations: %w", err)
		}
	}
	return storesql.Pending(migrations, applied)
}

// Migrate applies every embedded migration not applied yet, in name order;
// it refuses a database a newer binary migrated (storesql.Newer). Each
// migration checks that it is still to apply inside its own write
// transaction (BEGIN IMMEDIATE, see Open), so two processes migrating at
// once apply each migration once, the second waiting for the first.
func (s *Store) Migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	versions, err := storesql.Versions(migrations)
	if err != nil {
		return err
	}
	applied, err := queryColumn[string](ctx, s.db, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if err := storesql.Newer(versions, applied); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	for _, version := range versions {
		if slices.Contains(applied, version) {
			continue
		}
		if err := s.migrateOne(ctx, version); err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", version, err)
		}
	}
	return nil
}

// migrateOne applies one migration unless another process has meanwhile.
func (s *Store) migrateOne(ctx context.Context, version string) error {
	body, err := migrations.ReadFile("migrations/" + version + ".sql")
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		version, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	return tx.Commit()
}

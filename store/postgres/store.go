// Package postgres implements the domain stores on PostgreSQL through pgx:
// the production store.
package postgres

import (
	"context"
	"embed"
	"fmt"
	"outreach/store/internal/storesql"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the PostgreSQL implementation of every domain store.
type Store struct {
	pool *pgxpool.Pool
	// batches gathers concurrent install callbacks (installbatch.go).
	batches installBatches
	// shardTurns deals rewards to budget shards (rewards.go).
	shardTurns shardTurns
	// beforeCommit, in tests, runs before an import batch or a number's
	// opt-out commits (op "import" or "opt-out"), and after the opt-out
	// commits, before it sets the subscribers again ("opt-out committed"),
	// to interleave them.
	beforeCommit func(op string)
}

// Open connects to the database at url (postgres://…).
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	// An explicit pool_max_conns in the URL is the operator's to keep.
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns(runtime.GOMAXPROCS(0))
	}
	// Every time read comes back in UTC, whatever the host's zone: the API
	// writes one format on every store (a read that forgot .UTC() answered
	// +07:00 on a host in Asia/Ho_Chi_Minh).
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		c.TypeMap().RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID,
			Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC}})
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	return &Store{pool: pool}, nil
}

// defaultMaxConns is the pool size for a process on procs cores: four
// connections a core, and no fewer than 8. pgxpool's own default (one a
// core, at least 4) starves the send tasks, which spend most of their time
// on the provider; many more connections than that only add backends that
// contend for PostgreSQL's locks and, where PostgreSQL shares the cores,
// for the CPU: in the campaign bench on two cores shared with PostgreSQL,
// 8 connections cost about a tenth less PostgreSQL CPU per message than 16
// (BENCHMARKS.md).
func defaultMaxConns(procs int) int32 {
	return int32(max(8, 4*procs))
}

// Close closes the pool.
func (s *Store) Close() error { s.batches.close(); s.pool.Close(); return nil }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Pool exposes the pool to tests and benchmarks.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// migrateLock serialises migrations when many processes start at once.
const migrateLock = 7_404_241

// PendingMigrations lists the migrations built in that the database has
// not applied, oldest first (all of them on an empty database).
func (s *Store) PendingMigrations(ctx context.Context) ([]string, error) {
	var applied []string
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("postgres: pending migrations: %w", err)
	}
	if exists {
		rows, err := s.pool.Query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return nil, fmt.Errorf("postgres: pending migrations: %w", err)
		}
		if applied, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return nil, fmt.Errorf("postgres: pending migrations: %w", err)
		}
	}
	return storesql.Pending(migrations, applied)
}

// Migrate applies every embedded migration not applied yet, in name order,
// under an advisory lock.
func (s *Store) Migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLock); err != nil {
		return fmt.Errorf("postgres: migrate lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLock)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	versions, err := storesql.Versions(migrations)
	if err != nil {
		return err
	}
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if err := storesql.Newer(versions, applied); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	for _, version := range versions {
		if slices.Contains(applied, version) {
			continue // the advisory lock keeps anyone else from applying it meanwhile
		}
		body, err := migrations.ReadFile("migrations/" + version + ".sql")
		if err != nil {
			return err
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return fmt.Errorf("postgres: migrate %s: %w", version, err)
		}
		if _, err := tx.Exec(ctx, string(body)); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("postgres: migrate %s: %w", version, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, version); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("postgres: migrate %s: %w", version, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("postgres: migrate %s: %w", version, err)
		}
	}
	return nil
}

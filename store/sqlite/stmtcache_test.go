package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func openRaw(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "cache.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The statement cache keeps answers right however statements are used: the
// same text again while its rows are open, errors, scripts, more texts
// than it keeps (some evicted while their rows are open), transactions.
func TestTheStatementCacheKeepsAnswersRight(t *testing.T) {
	ctx := context.Background()
	s := openRaw(t)
	db := s.DB()
	db.SetMaxOpenConns(1) // every statement below on the one connection
	// A script of several statements goes the uncached way.
	if _, err := db.ExecContext(ctx, `CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT NOT NULL);
		CREATE TABLE log (n INTEGER NOT NULL);`); err != nil {
		t.Fatal(err)
	}
	const insert = `INSERT INTO kv (k, v) VALUES (?, ?)`
	for k := range 10 {
		if _, err := db.ExecContext(ctx, insert, k, fmt.Sprint("v", k)); err != nil {
			t.Fatal(err)
		}
	}
	// A failing exec (the key exists) leaves the statement usable.
	if _, err := db.ExecContext(ctx, insert, 3, "again"); err == nil || !strings.Contains(err.Error(), "UNIQUE") {
		t.Fatalf("duplicate key: %v", err)
	}
	if _, err := db.ExecContext(ctx, insert, 10, "v10"); err != nil {
		t.Fatalf("the statement after its error: %v", err)
	}
	// The same query while its own rows are open (nested, in a transaction).
	const get = `SELECT k, v FROM kv WHERE k >= ? ORDER BY k`
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	outer, err := tx.QueryContext(ctx, get, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for outer.Next() {
		var k int
		var v string
		if err := outer.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		if v != fmt.Sprint("v", k) {
			t.Fatalf("outer row %d = %q", k, v)
		}
		var inner int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM kv WHERE k >= ?`, k).Scan(&inner); err != nil {
			t.Fatal(err)
		}
		rows, err := tx.QueryContext(ctx, get, k)
		if err != nil {
			t.Fatal(err)
		}
		m := 0
		for rows.Next() {
			m++
		}
		rows.Close()
		if m != inner || m != 11-k {
			t.Fatalf("from %d: %d rows, count %d, want %d", k, m, inner, 11-k)
		}
		n++
	}
	if err := outer.Err(); err != nil || n != 11 {
		t.Fatalf("outer: %d rows, %v", n, err)
	}
	outer.Close()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// More distinct texts than the cache keeps, one of them with rows open
	// while the others evict it (in a transaction: on the connection that
	// holds those rows).
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	open, err := tx.QueryContext(ctx, `SELECT v FROM kv WHERE k < ? ORDER BY k`, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range stmtCacheSize + 20 {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO log (n) VALUES (? + %d)`, i), 1); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for open.Next() {
		var v string
		open.Scan(&v)
		got = append(got, v)
	}
	open.Close()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "v0,v1,v2" {
		t.Fatalf("rows read across the evictions: %v", got)
	}
	var sum int
	if err := db.QueryRowContext(ctx, `SELECT sum(n) FROM log`).Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if want := (stmtCacheSize + 20) * (stmtCacheSize + 21) / 2; sum != want {
		t.Fatalf("log sums to %d, want %d", sum, want)
	}
	// The evicted one compiles again.
	if err := db.QueryRowContext(ctx, `SELECT v FROM kv WHERE k < ? ORDER BY k`, 1).Scan(&got[0]); err != nil || got[0] != "v0" {
		t.Fatalf("again: %q, %v", got[0], err)
	}
	// A rolled-back transaction through cached statements writes nothing.
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, insert, 99, "gone"); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	var c int
	db.QueryRowContext(ctx, `SELECT count(*) FROM kv WHERE k >= ?`, 0).Scan(&c)
	if c != 11 {
		t.Fatalf("%d rows after the rollback, want 11", c)
	}
}

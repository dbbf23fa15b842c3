// Package testenv finds the real services tests run against. A suite that
// needs PostgreSQL or Redis skips, naming the variable that enables it,
// unless OUTREACH_TEST_REQUIRE_SERVICES=1 (set by CI), which turns a missing
// service into a failure so that no suite is left out silently.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

const (
	// PostgresVar enables the PostgreSQL suites.
	PostgresVar = "OUTREACH_TEST_DATABASE_URL"
	// RedisVar enables the real-Redis suites.
	RedisVar = "OUTREACH_TEST_REDIS_URL"
	// RequireVar turns a missing service into a failure.
	RequireVar = "OUTREACH_TEST_REQUIRE_SERVICES"
)

func need(t testing.TB, name, variable string) string {
	t.Helper()
	v := os.Getenv(variable)
	if v != "" {
		return v
	}
	if os.Getenv(RequireVar) == "1" {
		t.Fatalf("%s is required (%s=1) but %s is not set", name, RequireVar, variable)
	}
	t.Skipf("real-service suite left out: set %s to run it against %s", variable, name)
	return ""
}

// RedisURL returns a URL to a database of the real Redis that this test
// has to itself (emptied before and after), or skips. Test packages run in
// parallel and asynq's queue names are fixed, so each test borrows one of
// databases 1-15, leased through database 0.
func RedisURL(t testing.TB) string {
	t.Helper()
	base := need(t, "Redis", RedisVar)
	opt, err := redis.ParseURL(base)
	if err != nil {
		t.Fatalf("parse %s: %v", RedisVar, err)
	}
	ctx := context.Background()
	opt.DB = 0
	lease := redis.NewClient(opt)
	defer lease.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for db := 1; db <= 15; db++ {
			key := fmt.Sprintf("outreach:test-db-lease:%d", db)
			// Longer than any test may run (the suite's timeout is 20
			// minutes); the owner token keeps a cleanup from releasing a
			// lease that expired and went to another test.
			owner := schemaSuffix()
			ok, err := lease.SetNX(ctx, key, owner, time.Hour).Result()
			if err != nil {
				t.Fatalf("lease a test database on %s: %v", RedisVar, err)
			}
			if !ok {
				continue
			}
			o := *opt
			o.DB = db
			c := redis.NewClient(&o)
			c.FlushDB(ctx)
			c.Close()
			t.Cleanup(func() {
				o := *opt
				o.DB = db
				c := redis.NewClient(&o)
				c.FlushDB(context.Background())
				c.Close()
				o.DB = 0
				l := redis.NewClient(&o)
				if v, _ := l.Get(context.Background(), key).Result(); v == owner {
					l.Del(context.Background(), key)
				}
				l.Close()
			})
			u, _ := url.Parse(base)
			u.Path = fmt.Sprintf("/%d", db)
			return u.String()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no free test database on %s", RedisVar)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PostgresURL returns a URL to a fresh, empty schema of the test database
// (dropped at the end of the test), or skips.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := need(t, "PostgreSQL", PostgresVar)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect %s: %v", PostgresVar, err)
	}
	defer conn.Close(ctx)
	schema := "t_" + schemaSuffix()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresVar, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Describe names the real-service suites this environment leaves out.
func Describe() string {
	var out string
	for _, v := range []string{PostgresVar, RedisVar} {
		if os.Getenv(v) == "" {
			out += fmt.Sprintf("left out: suites needing %s (set it to enable them)\n", v)
		}
	}
	return out
}

func schemaSuffix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// WithPoolMax sets pgxpool's pool_max_conns on a PostgreSQL URL: suites
// that run many stores or processes at once stay within the server's
// connections.
func WithPoolMax(t testing.TB, raw string, n int) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresVar, err)
	}
	q := u.Query()
	q.Set("pool_max_conns", fmt.Sprint(n))
	u.RawQuery = q.Encode()
	return u.String()
}

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"outreach/internal/testenv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// These run each bench with tiny sizes on SQLite and the in-process Redis:
// they check the wiring and the counts a bench reports, never its timings.

func runBenchCmd(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	noEnv := func(string) (string, bool) { return "", false }
	if err := realMain(ctx, append([]string{"bench"}, args...), &out, &errb, noEnv); err != nil {
		t.Fatalf("outreach bench %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

func wantLine(t *testing.T, out string, parts ...string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok {
			return
		}
	}
	t.Errorf("no output line contains all of %q in:\n%s", parts, out)
}

func TestBenchCeilingSendsEveryMessageToTheSink(t *testing.T) {
	out := runBenchCmd(t, "ceiling", "--messages", "300", "--concurrency", "8")
	wantLine(t, out, "messages", "300 (0 errors)")
	wantLine(t, out, "messages/s")
	wantLine(t, out, "CPU per 100,000 messages")
	wantLine(t, out, "peak RSS")
}

func TestBenchCampaignMessagesEveryRecipientExactlyOnce(t *testing.T) {
	out := runBenchCmd(t, "campaign", "--recipients", "300", "--store", "sqlite",
		"--ceiling-messages", "200", "--concurrency", "8", "--batch", "25", "--fanout-chunk", "100")
	wantLine(t, out, "ceiling: twilio-go alone")
	wantLine(t, out, "messages", "200 (0 errors)")
	wantLine(t, out, "check: the sink saw 300 messages (want 300), 300 recipients exactly once, 0 with another count, 0 to unknown numbers; the store has 300 sent: OK")
	wantLine(t, out, "fan-out rows", "300 in")
	wantLine(t, out, "fan-out rows/s, the store alone", "(300 rows in")
	wantLine(t, out, "end to end / ceiling")
	wantLine(t, out, "peak Redis used_memory", "n/a")
	wantLine(t, out, "campaign state", "completed")
}

func TestBenchAlertReachesEveryContactOnceWhileMarketingRuns(t *testing.T) {
	out := runBenchCmd(t, "alert", "--marketing", "400", "--contacts", "50", "--rate", "500",
		"--saturate", "200ms", "--store", "sqlite", "--concurrency", "8")
	wantLine(t, out, "alert: 50 contacts (5 not yet subscribers) during a 400-recipient marketing campaign at 500/s")
	wantLine(t, out, "check: 50 alert messages (want 50), each contact exactly once; marketing finished: 400 marketing messages, each subscriber exactly 1", ": OK")
	wantLine(t, out, "first alert message at the sink")
	wantLine(t, out, "per message, call → sink: p50 / p99")
}

func TestBenchCommandsExplainThemselves(t *testing.T) {
	for _, cmd := range []string{"ceiling", "campaign", "alert"} {
		var errb bytes.Buffer
		err := realMain(context.Background(), []string{"bench", cmd, "--help"}, io.Discard, &errb, func(string) (string, bool) { return "", false })
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("bench %s --help: %v, want flag.ErrHelp", cmd, err)
		}
		if !strings.Contains(errb.String(), "Usage: outreach bench "+cmd) {
			t.Errorf("bench %s --help printed:\n%s", cmd, errb.String())
		}
	}
	if err := realMain(context.Background(), []string{"bench", "nonsense"}, io.Discard, io.Discard, func(string) (string, bool) { return "", false }); err == nil {
		t.Error("bench nonsense: no error")
	}
}

// The bench flushes the Redis database it runs on, so it never takes the
// service's own OUTREACH_REDIS_URL (nor its database): without --redis-url
// it runs on the in-process Redis.
func TestBenchNeverFlushesTheServicesRedis(t *testing.T) {
	redisURL := testenv.RedisURL(t)
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Set(ctx, "outreach:canary", "live queue", 0).Err(); err != nil {
		t.Fatal(err)
	}
	serviceEnv := func(k string) (string, bool) {
		switch k {
		case "OUTREACH_REDIS_URL":
			return redisURL, true
		case "OUTREACH_DATABASE_URL":
			return "postgres://postgres@127.0.0.1:5432/production", true
		}
		return "", false
	}
	var out, errb bytes.Buffer
	if err := realMain(ctx, []string{"bench", "campaign", "--recipients", "50", "--store", "sqlite", "--ceiling=false",
		"--fanout-probe=false", "--concurrency", "4"}, &out, &errb, serviceEnv); err != nil {
		t.Fatalf("bench: %v\n%s", err, errb.String())
	}
	wantLine(t, out.String(), "in-process Redis")
	if v, err := rdb.Get(ctx, "outreach:canary").Result(); err != nil || v != "live queue" {
		t.Errorf("the service's Redis database was flushed: %q, %v", v, err)
	}
	err = realMain(ctx, []string{"bench", "campaign", "--recipients", "50", "--store", "postgres"}, &out, &errb, serviceEnv)
	if err == nil || !strings.Contains(err.Error(), "--database-url") {
		t.Errorf("--store postgres without --database-url: %v, want it asked for", err)
	}
}

// Every command has --help, as the README says: keys too, before its
// sub-commands (it used to take --help for an unknown sub-command).
func TestKeysExplainsItself(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	for _, arg := range []string{"--help", "-h", "help"} {
		var out, errb bytes.Buffer
		if err := realMain(context.Background(), []string{"keys", arg}, &out, &errb, noEnv); err != nil {
			t.Errorf("keys %s: %v", arg, err)
		}
		if !strings.Contains(out.String(), "outreach keys create --tenant NAME") {
			t.Errorf("keys %s printed %q", arg, out.String())
		}
	}
	var errb bytes.Buffer
	err := realMain(context.Background(), []string{"keys", "create", "--help"}, io.Discard, &errb, noEnv)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errb.String(), "Usage: outreach keys create") {
		t.Errorf("keys create --help: %v, printed %q", err, errb.String())
	}
}

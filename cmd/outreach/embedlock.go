package main

import (
	"errors"
	"fmt"

	"outreach/config"
	"outreach/internal/queue"
)

var errLocked = errors.New("locked by another process")

// lockEmbedded keeps a second process off an embedded SQLite store while
// this one runs its in-process Redis: each process would have a Redis of
// its own, so each would run the campaigns' fan-out and its own rate
// limit, and together send at twice the sender's rate. With
// OUTREACH_REDIS_URL the processes share one Redis (its queue, leases and
// limits) and any number may run.
func lockEmbedded(cfg *config.Config) (release func(), err error) {
	driver, path, err := cfg.Database()
	if err != nil || driver != "sqlite" || cfg.RedisURL != "" {
		return func() {}, nil
	}
	release, err = lockFile(path + ".lock")
	switch {
	case errors.Is(err, errLocked):
		return nil, fmt.Errorf("another outreach process is running on %s with an in-process Redis of its own: "+
			"stop it, or set OUTREACH_REDIS_URL (and a PostgreSQL OUTREACH_DATABASE_URL) to run several", path)
	case err != nil:
		// A directory that does not exist, say: the store would not open
		// either.
		return nil, fmt.Errorf("OUTREACH_DATABASE_URL: the SQLite store %s cannot be used: %w", path, err)
	}
	return release, nil
}

// soleWorker reports whether this process is the only worker on its store
// with a queue new at start: the in-process Redis on an embedded SQLite
// store, which lockEmbedded holds (worker.Settings.SoleWorker).
func soleWorker(cfg *config.Config, q *queue.Conn) bool {
	driver, _, err := cfg.Database()
	return err == nil && driver == "sqlite" && q.Embedded && locksHeld
}

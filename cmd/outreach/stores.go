package main

import (
	"context"
	"fmt"

	"outreach/campaign"
	"outreach/config"
	"outreach/install"
	"outreach/reward"
	"outreach/store/postgres"
	"outreach/store/sqlite"
	"outreach/subscriber"
	"outreach/tenant"
)

// store is everything the binary needs of a store implementation.
type store interface {
	tenant.Store
	subscriber.Store
	campaign.Store
	install.Store
	reward.Store
	campaign.RewardStats
	Ping(ctx context.Context) error
	Migrate(ctx context.Context) error
	PendingMigrations(ctx context.Context) ([]string, error)
	Close() error
}

var (
	_ store = (*sqlite.Store)(nil)
	_ store = (*postgres.Store)(nil)
)

// openStore opens the configured store and, unless disabled, migrates it.
func openStore(ctx context.Context, cfg *config.Config, migrate bool) (store, error) {
	driver, dsn, err := cfg.Database()
	if err != nil {
		return nil, fmt.Errorf("OUTREACH_DATABASE_URL: %w", err)
	}
	var st store
	switch driver {
	case "postgres":
		st, err = postgres.Open(ctx, dsn)
	default:
		st, err = sqlite.Open(ctx, dsn)
	}
	if err != nil {
		return nil, fmt.Errorf("OUTREACH_DATABASE_URL: open the store: %w", err)
	}
	if migrate {
		if err := st.Migrate(ctx); err != nil {
			st.Close()
			return nil, fmt.Errorf("migrate store: %w", err)
		}
		return st, nil
	}
	// Not migrating: a schema behind the binary would answer every request
	// with an error while the process reported ready.
	pending, err := st.PendingMigrations(ctx)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if len(pending) > 0 {
		st.Close()
		return nil, fmt.Errorf("OUTREACH_MIGRATE_ON_START=false and the store's schema is behind this binary "+
			"(%d migrations to apply, from %s): run `outreach migrate` first", len(pending), pending[0])
	}
	return st, nil
}

package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestThePurgeCanLookEachContactUpByIndex: the retention purge asks, for
// each of an alert's contacts, whether another alert names it; an index on
// the contacts' subscriber lets it ask without reading every alert's list
// (on SQLite the scan was quadratic and held the writer for minutes).
func TestThePurgeCanLookEachContactUpByIndex(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	var plan []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `EXPLAIN `+purgeAlertOnlySQL, "00000000-0000-4000-8000-000000000000")
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(plan, "\n"), "campaign_contacts_subscriber_idx on campaign_contacts o") {
		t.Errorf("the other alerts' contacts are not looked up by subscriber:\n%s", strings.Join(plan, "\n"))
	}
}

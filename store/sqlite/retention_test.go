package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestThePurgeLooksEachContactUpByIndex: the retention purge asks, for each
// of an alert's contacts, whether another alert names it. Read by a scan of
// every alert's contacts, that was quadratic: a purge of 30,000 contacts
// held the store's one writer for about a minute, and exposure alerts
// created meanwhile failed with SQLITE_BUSY.
func TestThePurgeLooksEachContactUpByIndex(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "outreach.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := s.db.QueryContext(ctx, `EXPLAIN QUERY PLAN `+purgeAlertOnlySQL, "00000000-0000-4000-8000-000000000000")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, step := range plan {
		if strings.HasPrefix(step, "SCAN") {
			t.Errorf("the purge scans a table: %q\nplan: %q", step, plan)
		}
	}
	if !strings.Contains(strings.Join(plan, "\n"), "SEARCH o USING COVERING INDEX campaign_contacts_subscriber_idx") {
		t.Errorf("the other alerts' contacts are not searched by subscriber: %q", plan)
	}
}

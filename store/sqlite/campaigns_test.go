package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"outreach/store/sqlite"
	"outreach/store/storetest"
)

// campaignTestStore adds to the store what the contract needs from another
// store: marking subscribers installed.
type campaignTestStore struct{ *sqlite.Store }

func (s campaignTestStore) MarkInstalled(ctx context.Context, ids []int64) error {
	for _, id := range ids {
		if _, err := s.DB().ExecContext(ctx, `UPDATE subscribers SET installed = 1 WHERE id = ?`, id); err != nil {
			return err
		}
	}
	return nil
}

func openCampaignStore(tb testing.TB) *sqlite.Store {
	tb.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "outreach.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestCampaignContract(t *testing.T) {
	storetest.RunCampaigns(t, func(t *testing.T) storetest.CampaignStore {
		return campaignTestStore{openCampaignStore(t)}
	})
}

// BenchmarkInsertDeliveries writes fan-out batches of 5,000 new deliveries.
func BenchmarkInsertDeliveries(b *testing.B) {
	storetest.BenchInsertDeliveries(b, campaignTestStore{openCampaignStore(b)})
}

// BenchmarkClaimAndRecord claims batches of 100 deliveries and records their
// outcomes, as a send task does.
func BenchmarkClaimAndRecord(b *testing.B) {
	storetest.BenchClaimAndRecord(b, campaignTestStore{openCampaignStore(b)})
}

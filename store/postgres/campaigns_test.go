package postgres_test

import (
	"context"
	"testing"

	"outreach/internal/testenv"
	"outreach/store/postgres"
	"outreach/store/storetest"
)

// campaignTestStore adds to the store what the contract needs from another
// store: marking subscribers installed.
type campaignTestStore struct{ *postgres.Store }

func (s campaignTestStore) MarkInstalled(ctx context.Context, ids []int64) error {
	_, err := s.Pool().Exec(ctx, `UPDATE subscribers SET installed = true WHERE id = ANY($1)`, ids)
	return err
}

// openCampaignStore opens a migrated store on a fresh schema of the test
// database, or skips when no database is configured.
func openCampaignStore(tb testing.TB) *postgres.Store {
	tb.Helper()
	url := testenv.PostgresURL(tb)
	ctx := context.Background()
	s, err := postgres.Open(ctx, url)
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

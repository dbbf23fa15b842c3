package postgres

import (
	"context"
	"errors"
	"time"

	"outreach/campaign"
)

func (s *Store) InsertDeliveries(ctx context.Context, c campaign.Campaign, ch campaign.Channel, ds []campaign.NewDelivery) (int, error) {
	return 0, errors.New("not implemented")
}

func (s *Store) ClaimDeliveries(ctx context.Context, campaignID string, ch campaign.Channel, subscriberIDs []int64) ([]campaign.Recipient, error) {
	return nil, errors.New("not implemented")
}

func (s *Store) RecordOutcomes(ctx context.Context, outs []campaign.Outcome) error {
	return errors.New("not implemented")
}

func (s *Store) MarketingSent(ctx context.Context, tenantID string, subscriberIDs []int64, since time.Time) (map[int64]int, error) {
	return nil, errors.New("not implemented")
}

func (s *Store) UnfinishedPage(ctx context.Context, campaignID string, ch campaign.Channel, afterID int64, olderThan time.Time, limit int) ([]int64, error) {
	return nil, errors.New("not implemented")
}

func (s *Store) CountUnfinished(ctx context.Context, campaignID string) (int64, error) {
	return 0, errors.New("not implemented")
}

func (s *Store) ApplyReceipt(ctx context.Context, provider, messageID string, status campaign.Status, errorCode string, at time.Time) (bool, error) {
	return false, errors.New("not implemented")
}

func (s *Store) DeliveryCounts(ctx context.Context, tenantID, campaignID string) (campaign.Counts, error) {
	return campaign.Counts{}, errors.New("not implemented")
}

func (s *Store) ListDeliveries(ctx context.Context, tenantID, campaignID string, status campaign.Status, afterID int64, limit int) ([]campaign.Delivery, error) {
	return nil, errors.New("not implemented")
}

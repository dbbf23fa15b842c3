package postgres

import (
	"context"
	"errors"
	"time"

	"outreach/campaign"
)

var _ campaign.Store = (*Store)(nil)

func (s *Store) CreateCampaign(ctx context.Context, c *campaign.Campaign) error {
	return errors.New("not implemented")
}

func (s *Store) GetCampaign(ctx context.Context, tenantID, id string) (campaign.Campaign, error) {
	return campaign.Campaign{}, errors.New("not implemented")
}

func (s *Store) CampaignByID(ctx context.Context, id string) (campaign.Campaign, error) {
	return campaign.Campaign{}, errors.New("not implemented")
}

func (s *Store) ListCampaigns(ctx context.Context, tenantID string, kind campaign.Kind, limit int) ([]campaign.Campaign, error) {
	return nil, errors.New("not implemented")
}

func (s *Store) TransitionCampaign(ctx context.Context, tenantID, id string, from []campaign.State, to campaign.State, at time.Time) (campaign.Campaign, error) {
	return campaign.Campaign{}, errors.New("not implemented")
}

func (s *Store) DueScheduled(ctx context.Context, now time.Time) ([]campaign.Campaign, error) {
	return nil, errors.New("not implemented")
}

func (s *Store) ActiveCampaigns(ctx context.Context) ([]campaign.Campaign, error) {
	return nil, errors.New("not implemented")
}

func (s *Store) AddContacts(ctx context.Context, campaignID string, subscriberIDs []int64) error {
	return errors.New("not implemented")
}

func (s *Store) AudiencePage(ctx context.Context, c campaign.Campaign, afterID int64, limit int) ([]int64, error) {
	return nil, errors.New("not implemented")
}

func (s *Store) SetFanoutProgress(ctx context.Context, campaignID string, cursor int64, done bool) error {
	return errors.New("not implemented")
}

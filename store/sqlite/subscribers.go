package sqlite

import (
	"context"
	"errors"

	"outreach/subscriber"
)

var _ subscriber.Store = (*Store)(nil)

func (s *Store) UpsertSubscribers(ctx context.Context, tenantID string, rows []subscriber.Row, list string) (subscriber.UpsertResult, error) {
	return subscriber.UpsertResult{}, errors.New("not implemented")
}

func (s *Store) EnsureSubscribers(ctx context.Context, tenantID string, msisdns []string) (map[string]int64, error) {
	return nil, errors.New("not implemented")
}

func (s *Store) GetSubscriber(ctx context.Context, tenantID, msisdn string) (subscriber.Subscriber, error) {
	return subscriber.Subscriber{}, errors.New("not implemented")
}

func (s *Store) PutDevice(ctx context.Context, tenantID, msisdn string, d subscriber.Device) error {
	return errors.New("not implemented")
}

func (s *Store) RemoveDevice(ctx context.Context, tenantID string, platform subscriber.Platform, token string) error {
	return errors.New("not implemented")
}

func (s *Store) SetOptOut(ctx context.Context, tenantID, msisdn string, optedOut bool) error {
	return errors.New("not implemented")
}

func (s *Store) ReplaceRegions(ctx context.Context, tenantID string, regions []subscriber.Region) error {
	return errors.New("not implemented")
}

func (s *Store) ListRegions(ctx context.Context, tenantID string) ([]subscriber.Region, error) {
	return nil, errors.New("not implemented")
}

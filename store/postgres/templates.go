package postgres

import (
	"context"
	"errors"

	"outreach/campaign"
)

// CreateTemplate stores a template, generating its id when empty.
func (s *Store) CreateTemplate(ctx context.Context, t *campaign.MessageTemplate) error {
	return errors.New("not implemented")
}

// GetTemplate reads a template of this tenant.
func (s *Store) GetTemplate(ctx context.Context, tenantID, id string) (campaign.MessageTemplate, error) {
	return campaign.MessageTemplate{}, errors.New("not implemented")
}

package postgres

import (
	"context"
	"errors"

	"outreach/campaign"
)

// Audit appends to the audit trail.
func (s *Store) Audit(ctx context.Context, e campaign.AuditEntry) error {
	return errors.New("not implemented")
}

// ListAudit lists the tenant's audit trail, newest first.
func (s *Store) ListAudit(ctx context.Context, tenantID string, limit int) ([]campaign.AuditEntry, error) {
	return nil, errors.New("not implemented")
}

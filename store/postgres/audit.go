package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"outreach/campaign"
)

// Audit appends to the audit trail; an unset time is now.
func (s *Store) Audit(ctx context.Context, e campaign.AuditEntry) error {
	if e.At.IsZero() {
		e.At = nowMicro()
	}
	var details []byte // nil: NULL
	if len(e.Details) > 0 {
		if !json.Valid(e.Details) {
			return fmt.Errorf("postgres: audit: details are not JSON")
		}
		details = e.Details
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_log
		(tenant_id, actor, action, object_type, object_id, details, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		e.TenantID, e.Actor, e.Action, e.ObjectType, e.ObjectID, details, e.At)
	if err != nil {
		return fmt.Errorf("postgres: audit: %w", err)
	}
	return nil
}

// ListAudit lists the tenant's audit trail newest first; a limit of 0 or
// less means 100.
func (s *Store) ListAudit(ctx context.Context, tenantID string, limit int) ([]campaign.AuditEntry, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT id, tenant_id, actor, action, object_type, object_id,
			details, at
		FROM audit_log WHERE tenant_id = $1 ORDER BY at DESC, id DESC LIMIT $2`, tenantID, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: list audit: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (campaign.AuditEntry, error) {
		var (
			e       campaign.AuditEntry
			details []byte
		)
		err := r.Scan(&e.ID, &e.TenantID, &e.Actor, &e.Action, &e.ObjectType, &e.ObjectID, &details, &e.At)
		if details != nil {
			e.Details = json.RawMessage(details)
		}
		e.At = e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list audit: %w", err)
	}
	return out, nil
}

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"outreach/campaign"
)

// Audit appends to the audit trail; an unset time is now.
func (s *Store) Audit(ctx context.Context, e campaign.AuditEntry) error {
	if e.At.IsZero() {
		e.At = nowMicro()
	}
	var details any
	if len(e.Details) > 0 {
		if !json.Valid(e.Details) {
			return fmt.Errorf("sqlite: audit: details are not JSON")
		}
		details = string(e.Details)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO audit_log
		(tenant_id, actor, action, object_type, object_id, details, at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.TenantID, e.Actor, e.Action, e.ObjectType, e.ObjectID, details, stamp(e.At))
	if err != nil {
		return fmt.Errorf("sqlite: audit: %w", err)
	}
	return nil
}

// ListAudit lists the tenant's audit trail newest first; a limit of 0 or
// less means 100.
func (s *Store) ListAudit(ctx context.Context, tenantID string, limit int) ([]campaign.AuditEntry, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, tenant_id, actor, action, object_type, object_id,
			details, at
		FROM audit_log WHERE tenant_id = ? ORDER BY at DESC, id DESC LIMIT ?`, tenantID, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	defer rows.Close()
	var out []campaign.AuditEntry
	for rows.Next() {
		var (
			e       campaign.AuditEntry
			details sql.NullString
			at      string
		)
		if err := rows.Scan(&e.ID, &e.TenantID, &e.Actor, &e.Action, &e.ObjectType, &e.ObjectID,
			&details, &at); err != nil {
			return nil, fmt.Errorf("sqlite: list audit: %w", err)
		}
		if details.Valid {
			e.Details = json.RawMessage(details.String)
		}
		if e.At, err = unstamp(at); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	return out, nil
}

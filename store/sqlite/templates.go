package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"outreach/campaign"
	"outreach/internal/apperr"
)

// CreateTemplate stores a template; an empty id gets a new uuid and an
// unset creation time is now.
func (s *Store) CreateTemplate(ctx context.Context, t *campaign.MessageTemplate) error {
	if t.ID == "" {
		t.ID = uuid.NewString()
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = nowMicro()
	}
	var data any
	if t.Data != nil {
		b, err := json.Marshal(t.Data)
		if err != nil {
			return fmt.Errorf("sqlite: create template: %w", err)
		}
		data = string(b)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO templates
		(id, tenant_id, name, channel, locale, body, title, data, transliterate, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.TenantID, t.Name, string(t.Channel), t.Locale, t.Body, t.Title, data, t.Transliterate,
		stamp(t.CreatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: create template: %w", err)
	}
	return nil
}

// GetTemplate reads a template of this tenant.
func (s *Store) GetTemplate(ctx context.Context, tenantID, id string) (campaign.MessageTemplate, error) {
	var (
		t         campaign.MessageTemplate
		data      sql.NullString
		createdAt string
	)
	err := s.db.QueryRowContext(ctx, `SELECT id, tenant_id, name, channel, locale, body, title, data,
			transliterate, created_at
		FROM templates WHERE id = ? AND tenant_id = ?`, id, tenantID).
		Scan(&t.ID, &t.TenantID, &t.Name, &t.Channel, &t.Locale, &t.Body, &t.Title, &data,
			&t.Transliterate, &createdAt)
	if errors.Is(err, sql.ErrNoRows) {
		return t, apperr.NotFound("template")
	}
	if err != nil {
		return t, fmt.Errorf("sqlite: get template: %w", err)
	}
	if data.Valid {
		if err := json.Unmarshal([]byte(data.String), &t.Data); err != nil {
			return t, fmt.Errorf("sqlite: template %s data: %w", t.ID, err)
		}
	}
	if t.CreatedAt, err = unstamp(createdAt); err != nil {
		return t, err
	}
	return t, nil
}

package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

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
	var data []byte // nil: NULL
	if t.Data != nil {
		var err error
		if data, err = json.Marshal(t.Data); err != nil {
			return fmt.Errorf("postgres: create template: %w", err)
		}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO templates
		(id, tenant_id, name, channel, locale, body, title, data, transliterate, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		t.ID, t.TenantID, t.Name, string(t.Channel), t.Locale, t.Body, t.Title, data, t.Transliterate,
		t.CreatedAt)
	if err != nil {
		return fmt.Errorf("postgres: create template: %w", err)
	}
	return nil
}

// GetTemplate reads a template of this tenant.
func (s *Store) GetTemplate(ctx context.Context, tenantID, id string) (campaign.MessageTemplate, error) {
	var t campaign.MessageTemplate
	err := s.pool.QueryRow(ctx, `SELECT id, tenant_id, name, channel, locale, body, title, data,
			transliterate, created_at
		FROM templates WHERE id = $1 AND tenant_id = $2`, id, tenantID).
		Scan(&t.ID, &t.TenantID, &t.Name, &t.Channel, &t.Locale, &t.Body, &t.Title, &t.Data,
			&t.Transliterate, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, apperr.NotFound("template")
	}
	if err != nil {
		return t, fmt.Errorf("postgres: get template: %w", err)
	}
	t.CreatedAt = t.CreatedAt.UTC()
	return t, nil
}

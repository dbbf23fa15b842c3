package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"outreach/internal/apperr"
	"outreach/tenant"
)

var _ tenant.Store = (*Store)(nil)

// EnsureTenant returns the tenant with this name, creating it if needed; it
// is safe to call concurrently for the same name.
func (s *Store) EnsureTenant(ctx context.Context, name string) (tenant.Tenant, error) {
	if name == "" {
		return tenant.Tenant{}, apperr.FieldErrors{"name": "is required"}
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO tenants (id, name) VALUES ($1, $2)
		ON CONFLICT (name) DO NOTHING`, uuid.NewString(), name); err != nil {
		return tenant.Tenant{}, fmt.Errorf("postgres: ensure tenant: %w", err)
	}
	return s.TenantByName(ctx, name)
}

// TenantByName reads a tenant; apperr.ErrNotFound if there is none.
func (s *Store) TenantByName(ctx context.Context, name string) (tenant.Tenant, error) {
	var t tenant.Tenant
	err := s.pool.QueryRow(ctx, `SELECT id, name, install_secret, created_at FROM tenants WHERE name = $1`, name).
		Scan(&t.ID, &t.Name, &t.InstallSecret, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return tenant.Tenant{}, apperr.NotFound("tenant")
	}
	if err != nil {
		return tenant.Tenant{}, fmt.Errorf("postgres: tenant by name: %w", err)
	}
	return t, nil
}

// SetInstallSecret sets the tenant's install-callback secret.
func (s *Store) SetInstallSecret(ctx context.Context, tenantID, secret string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE tenants SET install_secret = $2 WHERE id = $1`, tenantID, secret)
	if err != nil {
		return fmt.Errorf("postgres: set install secret: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return apperr.NotFound("tenant")
	}
	return nil
}

// CreateAPIKey stores a key; an empty ID gets a fresh one. Unknown tenant →
// apperr.ErrNotFound; a hash already stored → apperr.ErrConflict.
func (s *Store) CreateAPIKey(ctx context.Context, k tenant.APIKey) error {
	if k.ID == "" {
		k.ID = uuid.NewString()
	}
	if _, err := tenant.ParseRole(string(k.Role)); err != nil {
		return apperr.FieldErrors{"role": err.Error()}
	}
	var err error
	if k.CreatedAt.IsZero() {
		_, err = s.pool.Exec(ctx, `INSERT INTO api_keys (id, tenant_id, role, hash) VALUES ($1, $2, $3, $4)`,
			k.ID, k.TenantID, string(k.Role), k.Hash)
	} else {
		_, err = s.pool.Exec(ctx, `INSERT INTO api_keys (id, tenant_id, role, hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
			k.ID, k.TenantID, string(k.Role), k.Hash, k.CreatedAt)
	}
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pgErr) && pgErr.Code == "23503": // foreign_key_violation
		return apperr.NotFound("tenant")
	case errors.As(err, &pgErr) && pgErr.Code == "23505": // unique_violation
		return apperr.Conflict("api key already exists")
	}
	return fmt.Errorf("postgres: create api key: %w", err)
}

// APIKeys lists the tenant's keys, oldest first.
func (s *Store) APIKeys(ctx context.Context, tenantID string) ([]tenant.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, tenant_id, role, created_at FROM api_keys
		WHERE tenant_id = $1 ORDER BY created_at, id`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("postgres: api keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tenant.APIKey, error) {
		var k tenant.APIKey
		var role string
		err := r.Scan(&k.ID, &k.TenantID, &role, &k.CreatedAt)
		k.Role, k.CreatedAt = tenant.Role(role), k.CreatedAt.UTC()
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: api keys: %w", err)
	}
	return keys, nil
}

// DeleteAPIKey revokes one of the tenant's keys.
func (s *Store) DeleteAPIKey(ctx context.Context, tenantID, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM api_keys WHERE tenant_id = $1 AND id = $2`, tenantID, id)
	if err != nil {
		return fmt.Errorf("postgres: delete api key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return apperr.NotFound("api key")
	}
	return nil
}

// PrincipalByKeyHash resolves a key hash to its caller.
func (s *Store) PrincipalByKeyHash(ctx context.Context, hash string) (tenant.Principal, error) {
	var p tenant.Principal
	var role string
	err := s.pool.QueryRow(ctx, `SELECT k.id, k.tenant_id, t.name, k.role
		FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.hash = $1`, hash).
		Scan(&p.KeyID, &p.TenantID, &p.TenantName, &role)
	if errors.Is(err, pgx.ErrNoRows) {
		return tenant.Principal{}, apperr.NotFound("api key")
	}
	if err != nil {
		return tenant.Principal{}, fmt.Errorf("postgres: principal by key: %w", err)
	}
	p.Role = tenant.Role(role)
	return p, nil
}

// TenantPolicy reads the tenant's policy settings.
func (s *Store) TenantPolicy(ctx context.Context, tenantID string) (tenant.Policy, error) {
	var p tenant.Policy
	err := s.pool.QueryRow(ctx, `SELECT policy FROM tenants WHERE id = $1`, tenantID).Scan(&p)
	if errors.Is(err, pgx.ErrNoRows) {
		return tenant.Policy{}, apperr.NotFound("tenant")
	}
	if err != nil {
		return tenant.Policy{}, fmt.Errorf("postgres: tenant policy: %w", err)
	}
	return p, nil
}

// SetTenantPolicy replaces the tenant's policy settings.
func (s *Store) SetTenantPolicy(ctx context.Context, tenantID string, p tenant.Policy) error {
	tag, err := s.pool.Exec(ctx, `UPDATE tenants SET policy = $2 WHERE id = $1`, tenantID, p)
	if err != nil {
		return fmt.Errorf("postgres: set tenant policy: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return apperr.NotFound("tenant")
	}
	return nil
}

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"outreach/internal/apperr"
	"outreach/tenant"
)

var _ tenant.Store = (*Store)(nil)

// coreStampLayout is the stored form of every time (see 0001_core.sql):
// fixed width and UTC, so that times compare as text.
const coreStampLayout = "2006-01-02T15:04:05.000000Z"

func coreStamp(t time.Time) string { return t.UTC().Format(coreStampLayout) }

func coreUnstamp(s string) (time.Time, error) {
	t, err := time.Parse(coreStampLayout, s)
	if err != nil {
		if t2, err2 := time.Parse(time.RFC3339Nano, s); err2 == nil {
			return t2.UTC(), nil
		}
		return time.Time{}, fmt.Errorf("sqlite: bad time %q: %w", s, err)
	}
	return t, nil
}

// coreIsConstraint reports whether err is this SQLite constraint failure
// (sqlite3.SQLITE_CONSTRAINT_UNIQUE, …).
func coreIsConstraint(err error, code int) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == code
}

// EnsureTenant returns the tenant with this name, creating it if needed.
func (s *Store) EnsureTenant(ctx context.Context, name string) (tenant.Tenant, error) {
	if name == "" {
		return tenant.Tenant{}, apperr.FieldErrors{"name": "is required"}
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, uuid.NewString(), name, coreStamp(time.Now())); err != nil {
		return tenant.Tenant{}, fmt.Errorf("sqlite: ensure tenant: %w", err)
	}
	return s.TenantByName(ctx, name)
}

// TenantByName reads a tenant; apperr.ErrNotFound if there is none.
func (s *Store) TenantByName(ctx context.Context, name string) (tenant.Tenant, error) {
	var t tenant.Tenant
	var created string
	err := s.db.QueryRowContext(ctx, `SELECT id, name, install_secret, created_at FROM tenants WHERE name = ?`, name).
		Scan(&t.ID, &t.Name, &t.InstallSecret, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return tenant.Tenant{}, apperr.NotFound("tenant")
	}
	if err != nil {
		return tenant.Tenant{}, fmt.Errorf("sqlite: tenant by name: %w", err)
	}
	if t.CreatedAt, err = coreUnstamp(created); err != nil {
		return tenant.Tenant{}, err
	}
	return t, nil
}

// SetInstallSecret sets the tenant's install-callback secret.
func (s *Store) SetInstallSecret(ctx context.Context, tenantID, secret string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE tenants SET install_secret = ? WHERE id = ?`, secret, tenantID)
	if err != nil {
		return fmt.Errorf("sqlite: set install secret: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
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
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	if _, err := tenant.ParseRole(string(k.Role)); err != nil {
		return apperr.FieldErrors{"role": err.Error()}
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO api_keys (id, tenant_id, role, hash, created_at) VALUES (?, ?, ?, ?, ?)`,
		k.ID, k.TenantID, string(k.Role), k.Hash, coreStamp(k.CreatedAt))
	switch {
	case err == nil:
		return nil
	case coreIsConstraint(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY):
		return apperr.NotFound("tenant")
	case coreIsConstraint(err, sqlite3.SQLITE_CONSTRAINT_UNIQUE), coreIsConstraint(err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY):
		return apperr.Conflict("api key already exists")
	}
	return fmt.Errorf("sqlite: create api key: %w", err)
}

// APIKeys lists the tenant's keys, oldest first.
func (s *Store) APIKeys(ctx context.Context, tenantID string) ([]tenant.APIKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, tenant_id, role, created_at FROM api_keys
		WHERE tenant_id = ? ORDER BY created_at, id`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: api keys: %w", err)
	}
	defer rows.Close()
	var keys []tenant.APIKey
	for rows.Next() {
		var k tenant.APIKey
		var role, created string
		if err := rows.Scan(&k.ID, &k.TenantID, &role, &created); err != nil {
			return nil, fmt.Errorf("sqlite: api keys: %w", err)
		}
		if k.CreatedAt, err = coreUnstamp(created); err != nil {
			return nil, err
		}
		k.Role = tenant.Role(role)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: api keys: %w", err)
	}
	return keys, nil
}

// DeleteAPIKey revokes one of the tenant's keys.
func (s *Store) DeleteAPIKey(ctx context.Context, tenantID, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM api_keys WHERE tenant_id = ? AND id = ?`, tenantID, id)
	if err != nil {
		return fmt.Errorf("sqlite: delete api key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return apperr.NotFound("api key")
	}
	return nil
}

// PrincipalByKeyHash resolves a key hash to its caller.
func (s *Store) PrincipalByKeyHash(ctx context.Context, hash string) (tenant.Principal, error) {
	var p tenant.Principal
	var role string
	err := s.db.QueryRowContext(ctx, `SELECT k.id, k.tenant_id, t.name, k.role
		FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.hash = ?`, hash).
		Scan(&p.KeyID, &p.TenantID, &p.TenantName, &role)
	if errors.Is(err, sql.ErrNoRows) {
		return tenant.Principal{}, apperr.NotFound("api key")
	}
	if err != nil {
		return tenant.Principal{}, fmt.Errorf("sqlite: principal by key: %w", err)
	}
	p.Role = tenant.Role(role)
	return p, nil
}

// TenantPolicy reads the tenant's policy settings.
func (s *Store) TenantPolicy(ctx context.Context, tenantID string) (tenant.Policy, error) {
	var raw string
	err := s.db.QueryRowContext(ctx, `SELECT policy FROM tenants WHERE id = ?`, tenantID).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return tenant.Policy{}, apperr.NotFound("tenant")
	}
	if err != nil {
		return tenant.Policy{}, fmt.Errorf("sqlite: tenant policy: %w", err)
	}
	var p tenant.Policy
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return tenant.Policy{}, fmt.Errorf("sqlite: tenant policy: %w", err)
	}
	return p, nil
}

// SetTenantPolicy replaces the tenant's policy settings.
func (s *Store) SetTenantPolicy(ctx context.Context, tenantID string, p tenant.Policy) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("sqlite: set tenant policy: %w", err)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE tenants SET policy = ? WHERE id = ?`, string(raw), tenantID)
	if err != nil {
		return fmt.Errorf("sqlite: set tenant policy: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err != nil {
			return err
		}
		return apperr.NotFound("tenant")
	}
	return nil
}

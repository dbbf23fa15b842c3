// Package tenant holds tenants (carriers, health authorities), their API keys
// and roles.
package tenant

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"
)

// Role is what an API key may do inside its tenant.
type Role string

const (
	RoleAdmin    Role = "admin"
	RoleMarketer Role = "marketer"
	RoleHealth   Role = "health"
	RoleViewer   Role = "viewer"
)

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAdmin, RoleMarketer, RoleHealth, RoleViewer:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want admin, marketer, health or viewer)", s)
}

// Allows reports whether a key with role r may act where need is required:
// admin may do everything; marketer and health may read what viewer may.
func (r Role) Allows(need Role) bool {
	switch {
	case r == RoleAdmin, r == need:
		return true
	case need == RoleViewer:
		return r == RoleMarketer || r == RoleHealth
	}
	return false
}

// Tenant is one carrier or health authority.
type Tenant struct {
	ID   string
	Name string
	// InstallSecret signs install callbacks; empty means the deployment-wide
	// OUTREACH_INSTALL_SECRET applies.
	InstallSecret string `json:"-"`
	CreatedAt     time.Time
}

// APIKey is a stored key; only its hash is kept.
type APIKey struct {
	ID        string
	TenantID  string
	Role      Role
	Hash      string `json:"-"`
	CreatedAt time.Time
}

// Principal is the caller an API key resolves to.
type Principal struct {
	KeyID      string
	TenantID   string
	TenantName string
	Role       Role
}

// Store is what this package needs from persistence.
type Store interface {
	// EnsureTenant returns the tenant with this name, creating it if needed.
	EnsureTenant(ctx context.Context, name string) (Tenant, error)
	TenantByName(ctx context.Context, name string) (Tenant, error)
	SetInstallSecret(ctx context.Context, tenantID, secret string) error
	CreateAPIKey(ctx context.Context, k APIKey) error
	// APIKeys lists the tenant's keys, oldest first: ids, roles and
	// times (a key itself is shown once, at creation, and never stored).
	APIKeys(ctx context.Context, tenantID string) ([]APIKey, error)
	// DeleteAPIKey revokes one of the tenant's keys at once;
	// apperr.ErrNotFound if the tenant has no key with that id.
	DeleteAPIKey(ctx context.Context, tenantID, id string) error
	// PrincipalByKeyHash resolves a key hash; apperr.ErrNotFound if unknown.
	PrincipalByKeyHash(ctx context.Context, hash string) (Principal, error)
	// TenantPolicy reads the tenant's policy settings (none set: the zero
	// Policy); SetTenantPolicy replaces them. apperr.ErrNotFound for an
	// unknown tenant.
	TenantPolicy(ctx context.Context, tenantID string) (Policy, error)
	SetTenantPolicy(ctx context.Context, tenantID string, p Policy) error
}

const keyPrefix = "ok_"

// NewKey returns a fresh random API key and the hash to store.
func NewKey() (plain, hash string) {
	plain = keyPrefix + randomToken(32)
	return plain, HashKey(plain)
}

// HashKey hashes an API key for storage and lookup. Keys carry 256 bits of
// randomness, so a fast hash is safe and keeps every request cheap.
func HashKey(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}

// NewSecret returns a random secret for install-callback signatures.
func NewSecret() string { return randomToken(32) }

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

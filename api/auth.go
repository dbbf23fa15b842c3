package api

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gin-gonic/gin"

	"outreach/internal/apperr"
	"outreach/tenant"
)

// auth resolves "Authorization: Bearer KEY" to a principal: 401 when the key
// is missing or unknown, 403 when its role allows none of roles. It runs
// before any object is read, so a role that may not act never learns whether
// an id exists.
func (s *server) auth(roles ...tenant.Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		key, ok := bearer(c.GetHeader("Authorization"))
		if !ok {
			c.Header("WWW-Authenticate", `Bearer realm="outreach"`)
			writeError(c, &Error{Err: apperr.ErrUnauthorized, Message: "missing API key: send Authorization: Bearer KEY"})
			return
		}
		p, err := s.d.Tenants.PrincipalByKeyHash(c.Request.Context(), tenant.HashKey(key))
		if errors.Is(err, apperr.ErrNotFound) {
			c.Header("WWW-Authenticate", `Bearer realm="outreach", error="invalid_token"`)
			writeError(c, &Error{Err: apperr.ErrUnauthorized, Message: "invalid API key"})
			return
		}
		if err != nil {
			writeError(c, fmt.Errorf("resolve API key: %w", err))
			return
		}
		c.Set(keyPrincipal, p)
		if !allows(p.Role, roles) {
			writeError(c, &Error{Err: apperr.ErrForbidden,
				Message: fmt.Sprintf("a %s key may not do this (needs %s)", p.Role, rolesText(roles))})
			return
		}
		if err := s.knownQuery(c); err != nil {
			writeError(c, err)
			return
		}
		c.Next()
	}
}

func bearer(h string) (string, bool) {
	scheme, key, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	key = strings.TrimSpace(key)
	return key, key != "" && len(key) <= 512
}

func allows(r tenant.Role, roles []tenant.Role) bool {
	if len(roles) == 0 {
		return true
	}
	for _, need := range roles {
		if r.Allows(need) {
			return true
		}
	}
	return false
}

func rolesText(roles []tenant.Role) string {
	parts := make([]string, 0, len(roles)+1)
	for _, r := range roles {
		parts = append(parts, string(r))
	}
	if len(roles) > 0 && roles[0] != tenant.RoleAdmin {
		parts = append(parts, string(tenant.RoleAdmin))
	}
	return strings.Join(parts, " or ")
}

// PrincipalOf returns the caller that auth let through.
func PrincipalOf(c *gin.Context) (tenant.Principal, bool) {
	v, ok := c.Get(keyPrincipal)
	if !ok {
		return tenant.Principal{}, false
	}
	p, ok := v.(tenant.Principal)
	return p, ok
}

// principal is PrincipalOf for handlers behind auth.
func principal(c *gin.Context) tenant.Principal {
	p, _ := PrincipalOf(c)
	return p
}

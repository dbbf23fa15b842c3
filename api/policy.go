package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"outreach/tenant"
)

// getPolicy answers the tenant's marketing policy in effect: its own
// settings over the deployment's defaults.
func (s *server) getPolicy(c *gin.Context) {
	p, err := s.d.Service.GetPolicy(c.Request.Context(), principal(c))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

// putPolicy replaces the tenant's own policy settings; a field left out
// takes the deployment's default. It answers the policy in effect.
func (s *server) putPolicy(c *gin.Context) {
	var in tenant.Policy
	if err := DecodeJSON(c, &in); err != nil {
		writeError(c, err)
		return
	}
	p, err := s.d.Service.SetPolicy(c.Request.Context(), principal(c), in)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

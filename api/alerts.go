package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"outreach/campaign"
)

// createAlert creates and starts an exposure alert: 202 with its id, the
// number of contacts it goes to and the invalid ones by position.
func (s *server) createAlert(c *gin.Context) {
	var in campaign.AlertInput
	if err := DecodeJSON(c, &in); err != nil {
		writeError(c, err)
		return
	}
	in.IdempotencyKey = c.GetHeader("Idempotency-Key")
	res, err := s.d.Service.CreateAlert(c.Request.Context(), principal(c), in)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, res)
}

func (s *server) getAlert(c *gin.Context) {
	id, err := idParam(c, "alert")
	if err != nil {
		writeError(c, err)
		return
	}
	v, err := s.d.Service.GetAlert(c.Request.Context(), principal(c), id)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

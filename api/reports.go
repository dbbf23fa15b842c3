package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"outreach/internal/apperr"
)

// adoption is the adoption report by region and national progress, JSON or
// (?format=csv) CSV.
func (h *installRoutes) adoption(c *gin.Context) {
	format := c.DefaultQuery("format", "json")
	if format != "json" && format != "csv" {
		WriteError(c, apperr.FieldErrors{"format": "must be json or csv"})
		return
	}
	p, _ := PrincipalOf(c)
	rep, err := h.d.Installs.Adoption(c.Request.Context(), p.TenantID, h.d.AdoptionTarget)
	if err != nil {
		WriteError(c, err)
		return
	}
	if format == "json" {
		c.JSON(http.StatusOK, rep)
		return
	}
	WriteCSV(c, "adoption.csv", rep.CSV())
}

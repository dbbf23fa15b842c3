package api

import (
	"encoding/csv"
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
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="adoption.csv"`)
	c.Status(http.StatusOK)
	w := csv.NewWriter(c.Writer)
	_ = w.WriteAll(rep.CSV())
}

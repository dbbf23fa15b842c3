package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"outreach/campaign"
	"outreach/internal/apperr"
)

// idParam returns the :id path parameter. Ids are UUIDs; anything else
// cannot name an object, so it is a 404 before any store sees it.
func idParam(c *gin.Context, what string) (string, error) {
	id := c.Param("id")
	u, err := uuid.Parse(id)
	if err != nil || len(id) != 36 {
		return "", apperr.NotFound(what)
	}
	return u.String(), nil
}

func (s *server) createTemplate(c *gin.Context) {
	var in campaign.TemplateInput
	if err := DecodeJSON(c, &in); err != nil {
		writeError(c, err)
		return
	}
	t, err := s.d.Service.CreateTemplate(c.Request.Context(), principal(c), in)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, t)
}

func (s *server) getTemplate(c *gin.Context) {
	id, err := idParam(c, "template")
	if err != nil {
		writeError(c, err)
		return
	}
	t, err := s.d.Service.GetTemplate(c.Request.Context(), principal(c), id)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, t)
}

// previewTemplate renders a template: {"vars": {...}} → text, encoding,
// characters, segments. The body is optional.
func (s *server) previewTemplate(c *gin.Context) {
	id, err := idParam(c, "template")
	if err != nil {
		writeError(c, err)
		return
	}
	var in campaign.PreviewInput
	if err := decodeJSON(c, &in, true); err != nil {
		writeError(c, err)
		return
	}
	pv, err := s.d.Service.PreviewTemplate(c.Request.Context(), principal(c), id, in)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, pv)
}

package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"outreach/internal/apperr"
)

// link is an install link: it counts the click on the delivery with this
// referral code and sends the subscriber to the app store. An unknown code
// is sent there too (the subscriber wants the app either way) and records
// nothing; a store failure goes to the access log and never stands between
// the subscriber and the store, nor does a flood of clicks from one source
// (past InstallDeps.Clicks the click is not counted, the redirect is made).
func (h *installRoutes) link(c *gin.Context) {
	if h.d.StoreURL == "" {
		WriteError(c, &Error{Err: apperr.ErrNotFound, Message: "no app store URL is configured"})
		return
	}
	if ok, _ := h.d.Clicks.Allow(c.ClientIP()); ok {
		if _, err := h.d.Installs.Click(c.Request.Context(), c.Param("code")); err != nil {
			_ = c.Error(err)
		}
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Referrer-Policy", "no-referrer")
	c.Redirect(http.StatusFound, h.d.StoreURL)
}

package api

import (
	"cmp"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"outreach/internal/apperr"
	"outreach/reward"
)

// listRewards pages the tenant's rewards: ?campaign_id=&status=&after=&limit=
// (state= is taken for status too).
func (h *installRoutes) listRewards(c *gin.Context) {
	if h.d.Ledger == nil {
		WriteError(c, &Error{Err: apperr.ErrNotFound, Message: "rewards are not enabled"})
		return
	}
	p, _ := PrincipalOf(c)
	after, err := intQuery(c, "after")
	if err != nil {
		WriteError(c, err)
		return
	}
	limit, err := intQuery(c, "limit")
	if err != nil {
		WriteError(c, err)
		return
	}
	// status and state are two names of one filter: both, they must agree.
	status, state := c.Query("status"), c.Query("state")
	if status != "" && state != "" && status != state {
		WriteError(c, apperr.FieldErrors{"state": fmt.Sprintf("status=%s and state=%s disagree: give one", status, state)})
		return
	}
	status = cmp.Or(status, state)
	page, err := h.d.Ledger.List(c.Request.Context(), p.TenantID, reward.Query{
		CampaignID: c.Query("campaign_id"), State: reward.State(status), After: after, Limit: int(limit)})
	if err != nil {
		WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

package api

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

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
	if id := c.Query("campaign_id"); id != "" && h.d.Campaigns != nil {
		if _, err := uuid.Parse(id); err == nil {
			// Another tenant's campaign, or none: a 404, as its
			// deliveries answer, rather than a page that reads "no
			// rewards yet".
			if _, err := h.d.Campaigns.GetCampaign(c.Request.Context(), p.TenantID, id); err != nil {
				WriteError(c, err)
				return
			}
		}
	}
	page, err := h.d.Ledger.List(c.Request.Context(), p.TenantID, reward.Query{
		CampaignID: c.Query("campaign_id"), State: reward.State(status), After: after, Limit: int(limit)})
	var fe apperr.FieldErrors
	if errors.As(err, &fe) && c.Query("status") == "" && fe["status"] != "" {
		// The value came as state=: name the parameter the client sent.
		err = apperr.FieldErrors{"state": fe["status"]}
	}
	if err != nil {
		WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

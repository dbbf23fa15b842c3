package api

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"outreach/campaign"
	"outreach/install"
	"outreach/internal/apperr"
	"outreach/reward"
	"outreach/tenant"
)

// InstallDeps is what the install, reward, report and install-link routes
// need. Installs is required; Ledger serves GET /v1/rewards (absent: 404).
type InstallDeps struct {
	Installs *install.Service
	Ledger   *reward.Ledger
	// AdoptionTarget is the national install target
	// (OUTREACH_ADOPTION_TARGET).
	AdoptionTarget int64
	// StoreURL is where GET /i/{code} sends the subscriber
	// (OUTREACH_INSTALL_STORE_URL).
	StoreURL string
	// Clicks, when set, bounds the clicks recorded per source: past it a
	// link still redirects (a carrier's NAT puts thousands of subscribers
	// behind one address) and the click is not counted.
	Clicks *PerSourceLimiter
	// MaxCallbackBytes limits an install callback's body (default
	// install.MaxBodyBytes, 16 KiB).
	MaxCallbackBytes int64
	// Campaigns, when set, answers whether a campaign named in a filter
	// (GET /v1/rewards?campaign_id=) is the tenant's: another tenant's or
	// an unknown one is a 404, not an empty page.
	Campaigns CampaignReader
}

// CampaignReader reads one of a tenant's campaigns (campaign.Store).
type CampaignReader interface {
	GetCampaign(ctx context.Context, tenantID, id string) (campaign.Campaign, error)
}

// RegisterInstallRoutes adds POST /v1/installs (signed, no API key),
// GET /v1/rewards and GET /v1/reports/adoption (viewer) and GET /i/:code
// (public). Call it from Deps.Extra.
func RegisterInstallRoutes(r *gin.Engine, auth AuthFunc, d InstallDeps) {
	if d.MaxCallbackBytes <= 0 {
		d.MaxCallbackBytes = install.MaxBodyBytes
	}
	h := &installRoutes{d: d}
	r.POST("/v1/installs", h.postInstall)
	r.GET("/v1/rewards", auth(tenant.RoleViewer), h.listRewards)
	r.GET("/v1/reports/adoption", auth(tenant.RoleViewer), h.adoption)
	r.GET("/i/:code", h.link)
}

// InstallRoutes binds RegisterInstallRoutes to d, to use as Deps.Extra.
func InstallRoutes(d InstallDeps) func(r *gin.Engine, auth AuthFunc) {
	return func(r *gin.Engine, auth AuthFunc) { RegisterInstallRoutes(r, auth, d) }
}

type installRoutes struct{ d InstallDeps }

// postInstall takes an install callback. The raw body is read once, under
// the limit, because the signature covers its exact bytes. A callback whose
// signature does not match is a 403 (bad_signature; so is one naming a
// tenant that is unknown or has no secret, install.Service.Authenticate);
// one with a header missing or malformed, or a stale timestamp, is a 401
// with a code saying which. Nothing is written.
func (h *installRoutes) postInstall(c *gin.Context) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, h.d.MaxCallbackBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			WriteError(c, err)
			return
		}
		WriteError(c, &Error{Err: apperr.ErrMalformed, Message: "could not read the request body"})
		return
	}
	res, err := h.d.Installs.Handle(c.Request.Context(), install.Signed{
		Tenant:    c.GetHeader(install.HeaderTenant),
		Timestamp: c.GetHeader(install.HeaderTimestamp),
		Signature: c.GetHeader(install.HeaderSignature),
		Body:      body,
	})
	if err != nil {
		WriteError(c, installError(err))
		return
	}
	c.JSON(http.StatusOK, res)
}

// installError gives the install package's refusals their own codes.
func installError(err error) error {
	var ae *install.AuthError
	if errors.As(err, &ae) {
		return &Error{Err: err, Code: ae.Code, Message: ae.Message}
	}
	var me *install.MalformedError
	if errors.As(err, &me) {
		if me.Field != "" {
			return &Error{Err: err, Code: "unknown_field", Message: me.Message, Details: map[string]string{"field": me.Field}}
		}
		return &Error{Err: err, Message: me.Message}
	}
	return err
}

package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"outreach/internal/apperr"
	"outreach/internal/textcheck"
	"outreach/subscriber"
	"outreach/tenant"
)

const maxListName = 100

// msisdnParam normalises the :msisdn path parameter; any accepted form of
// the number (0912…, 84912…, +84912…) finds the same subscriber.
func msisdnParam(c *gin.Context) (string, error) {
	num, err := subscriber.LookupMSISDN(c.Param("msisdn"))
	if err != nil {
		return "", apperr.FieldErrors{"msisdn": "not a valid phone number"}
	}
	return num, nil
}

// importSubscribers streams a CSV body straight into the Importer; the body
// is never held whole in memory. ?list=NAME tags every row into a list.
func (s *server) importSubscribers(c *gin.Context) {
	if err := wantCSV(c); err != nil {
		writeError(c, err)
		return
	}
	list, given := c.GetQuery("list")
	list = strings.TrimSpace(list)
	if given && list == "" {
		// An unset variable in the caller's script: the rows would land
		// in no list, and a campaign to that list would find none.
		writeError(c, apperr.FieldErrors{"list": "must name a list; leave ?list= out to tag the rows into none"})
		return
	}
	if utf8.RuneCountInString(list) > maxListName || strings.IndexFunc(list, unicode.IsControl) >= 0 || textcheck.Problem(list) != "" {
		writeError(c, apperr.FieldErrors{"list": fmt.Sprintf("at most %d printable characters", maxListName)})
		return
	}
	if s.d.Importer == nil {
		writeError(c, fmt.Errorf("import: no importer configured"))
		return
	}
	p := principal(c)
	body := http.MaxBytesReader(c.Writer, c.Request.Body, limitsOf(c).upload)
	res, err := s.d.Importer.Import(c.Request.Context(), p.TenantID, body, list)
	if err != nil {
		if res.Imported+res.Updated+res.Rejected > 0 {
			// The batches before the failure are written: say what landed.
			s.d.Service.Audit(c.Request.Context(), p, "subscribers.import_partial", "subscribers", "", countsOnly(res))
			// The cause stays in the log; the client learns what landed and
			// that sending the file again finishes it.
			err = &Error{Err: err, Code: "import_incomplete", Details: res,
				Message: "the import stopped at a server error; the rows before it were imported (see details): " +
					"send the file again to finish it (rows already imported are updated, not added twice)"}
		}
		writeError(c, err)
		return
	}
	details := countsOnly(res)
	if list != "" {
		details["list"] = list
	}
	s.d.Service.Audit(c.Request.Context(), p, "subscribers.import", "subscribers", "", details)
	c.JSON(http.StatusOK, res)
}

// countsOnly keeps the numbers of an import result for the audit trail; the
// rejected rows, which may quote phone numbers, stay out.
func countsOnly(v any) map[string]any {
	out := map[string]any{}
	b, err := json.Marshal(v)
	if err != nil {
		return out
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return out
	}
	for k, x := range m {
		if n, ok := x.(float64); ok {
			out[k] = n
		}
	}
	return out
}

func (s *server) getSubscriber(c *gin.Context) {
	num, err := msisdnParam(c)
	if err != nil {
		writeError(c, err)
		return
	}
	p := principal(c)
	sub, err := s.d.Subscribers.GetSubscriber(c.Request.Context(), p.TenantID, num)
	if err == nil {
		err = visible(p, sub)
	}
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, subscriberJSON(sub))
}

// visible answers apperr.ErrNotFound for a number that only an exposure
// alert named (alert_only) unless p is the health authority's: to anyone
// else it is not a subscriber, since its existence and created_at would
// tell that it was a contact of an alert, and when.
func visible(p tenant.Principal, sub subscriber.Subscriber) error {
	if sub.AlertOnly && !p.Role.Allows(tenant.RoleHealth) {
		return apperr.NotFound("subscriber")
	}
	return nil
}

// checkVisible is visible for a route that changes the subscriber: it
// reads the subscriber first, for keys that are not health's.
func (s *server) checkVisible(ctx context.Context, p tenant.Principal, num string) error {
	if p.Role.Allows(tenant.RoleHealth) {
		return nil
	}
	sub, err := s.d.Subscribers.GetSubscriber(ctx, p.TenantID, num)
	if err != nil {
		return err
	}
	return visible(p, sub)
}

func subscriberJSON(sub subscriber.Subscriber) subscriber.Subscriber {
	if sub.Attributes == nil {
		sub.Attributes = map[string]string{}
	}
	if sub.Devices == nil {
		sub.Devices = []subscriber.Device{}
	}
	if sub.Lists == nil {
		sub.Lists = []string{}
	}
	return sub
}

type deviceInput struct {
	Platform subscriber.Platform `json:"platform"`
	Token    string              `json:"token"`
}

// putDevice registers a push token and answers the subscriber.
func (s *server) putDevice(c *gin.Context) {
	num, err := msisdnParam(c)
	if err != nil {
		writeError(c, err)
		return
	}
	var in deviceInput
	if err := DecodeJSON(c, &in); err != nil {
		writeError(c, err)
		return
	}
	fe := apperr.FieldErrors{}
	switch in.Platform {
	case subscriber.PlatformFCM, subscriber.PlatformAPNs:
	case "":
		fe.Add("platform", "required: fcm or apns")
	default:
		fe.Add("platform", "must be fcm or apns, not %q", in.Platform)
	}
	token, problem := subscriber.NormalizeToken(in.Platform, in.Token)
	if problem != "" {
		fe.Add("token", "%s", problem)
	}
	if err := fe.Err(); err != nil {
		writeError(c, err)
		return
	}
	p := principal(c)
	ctx := c.Request.Context()
	if err := s.checkVisible(ctx, p, num); err != nil {
		writeError(c, err)
		return
	}
	if err := s.d.Subscribers.PutDevice(ctx, p.TenantID, num, subscriber.Device{Platform: in.Platform, Token: token}); err != nil {
		writeError(c, err)
		return
	}
	s.d.Service.Audit(ctx, p, "subscriber.device", "subscriber", subscriber.Mask(num),
		map[string]any{"platform": in.Platform})
	sub, err := s.d.Subscribers.GetSubscriber(ctx, p.TenantID, num)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, subscriberJSON(sub))
}

// optOut sets (true) or clears (false) the marketing opt-out.
func (s *server) optOut(out bool) gin.HandlerFunc {
	action := "subscriber.opt_in"
	if out {
		action = "subscriber.opt_out"
	}
	return func(c *gin.Context) {
		num, err := msisdnParam(c)
		if err != nil {
			writeError(c, err)
			return
		}
		p := principal(c)
		if err := s.checkVisible(c.Request.Context(), p, num); err != nil {
			writeError(c, err)
			return
		}
		if err := s.d.Subscribers.SetOptOut(c.Request.Context(), p.TenantID, num, out); err != nil {
			writeError(c, err)
			return
		}
		s.d.Service.Audit(c.Request.Context(), p, action, "subscriber", subscriber.Mask(num), nil)
		c.JSON(http.StatusOK, gin.H{"msisdn": num, "opted_out": out})
	}
}

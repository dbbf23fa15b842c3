package api

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"outreach/campaign"
	"outreach/internal/apperr"
	"outreach/internal/csvcell"
)

func (s *server) createCampaign(c *gin.Context) {
	var in campaign.CampaignInput
	body, err := decodeJSONBody(c, &in, false)
	if err != nil {
		writeError(c, err)
		return
	}
	if fe := emptyAudienceFilters(body); fe != nil {
		writeError(c, fe)
		return
	}
	cp, err := s.d.Service.CreateCampaign(c.Request.Context(), principal(c), in)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, cp)
}

// listCampaigns lists newest first; ?kind= filters, ?limit= caps.
func (s *server) listCampaigns(c *gin.Context) {
	limit, err := intQuery(c, "limit")
	if err != nil {
		writeError(c, err)
		return
	}
	page, err := s.d.Service.List(c.Request.Context(), principal(c), campaign.Kind(c.Query("kind")), c.Query("after"), int(limit))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

func (s *server) getCampaign(c *gin.Context) {
	id, err := idParam(c, "campaign")
	if err != nil {
		writeError(c, err)
		return
	}
	cp, err := s.d.Service.Get(c.Request.Context(), principal(c), id)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, cp)
}

// act is a state change: start, pause, resume or cancel. An illegal move is
// a 409.
func (s *server) act(a campaign.Action) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, err := idParam(c, "campaign")
		if err != nil {
			writeError(c, err)
			return
		}
		cp, err := s.d.Service.Act(c.Request.Context(), principal(c), id, a)
		if err != nil {
			writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, cp)
	}
}

type testInput struct {
	MSISDN string `json:"msisdn"`
}

// sendTest sends the campaign's rendered messages to one number now.
func (s *server) sendTest(c *gin.Context) {
	id, err := idParam(c, "campaign")
	if err != nil {
		writeError(c, err)
		return
	}
	var in testInput
	if err := DecodeJSON(c, &in); err != nil {
		writeError(c, err)
		return
	}
	res, err := s.d.Service.SendTest(c.Request.Context(), principal(c), id, in.MSISDN)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"results": res})
}

// campaignStats is the campaign report, JSON or (?format=csv) CSV.
func (s *server) campaignStats(c *gin.Context) {
	id, err := idParam(c, "campaign")
	if err != nil {
		writeError(c, err)
		return
	}
	format := c.DefaultQuery("format", "json")
	if format != "json" && format != "csv" {
		writeError(c, apperr.FieldErrors{"format": "must be json or csv"})
		return
	}
	st, err := s.d.Service.Stats(c.Request.Context(), principal(c), id)
	if err != nil {
		writeError(c, err)
		return
	}
	if format == "json" {
		c.JSON(http.StatusOK, st)
		return
	}
	WriteCSV(c, fmt.Sprintf("campaign-%s-stats.csv", st.ID), statsRows(st))
}

// emptyAudienceFilters names an audience filter given empty ("list": "",
// "list": null, "regions": [], "installed": null, "attributes": {}, an
// attribute's value "", the audience itself null): decoded, it is the same as one left out,
// which means no such filter, and a campaign to one list or some regions
// would go to the tenant's whole base. That is what a script's unset
// variable sends: it is refused, and a filter is left out to mean none.
func emptyAudienceFilters(body []byte) apperr.FieldErrors {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return nil
	}
	fe := apperr.FieldErrors{}
	// encoding/json matches a field's name in any case ("Regions", as a
	// PowerShell hashtable sends it), and the last of two spellings wins:
	// every spelling is looked at.
	for _, raw := range members(top, "audience") {
		if isNull(raw) {
			fe.Add("audience", "must be an object; {} for the tenant's whole base")
			continue
		}
		var aud map[string]json.RawMessage
		if json.Unmarshal(raw, &aud) != nil {
			continue // the decoder names it
		}
		for _, raw := range members(aud, "list") {
			var name *string
			if json.Unmarshal(raw, &name) == nil && (name == nil || strings.TrimSpace(*name) == "") {
				fe.Add("audience.list", "must name a list; leave it out to send to the audience's other filters (with none, the whole base)")
			}
		}
		for _, raw := range members(aud, "regions") {
			var codes []string
			if json.Unmarshal(raw, &codes) == nil && len(codes) == 0 {
				fe.Add("audience.regions", "must name at least one region; leave it out for every region")
			}
		}
		for _, raw := range members(aud, "installed") {
			if isNull(raw) {
				fe.Add("audience.installed", "must be true or false; leave it out for subscribers whether or not they installed the app")
			}
		}
		for _, raw := range members(aud, "attributes") {
			var attrs map[string]*string
			if json.Unmarshal(raw, &attrs) != nil {
				continue
			}
			if len(attrs) == 0 {
				fe.Add("audience.attributes", "must name at least one attribute; leave it out for no attribute filter")
			}
			for k, v := range attrs {
				if v == nil || strings.TrimSpace(*v) == "" {
					// An import's empty cell keeps no value: it would match nobody.
					fe.Add("audience.attributes."+k, "must be a value; no subscriber has an empty attribute")
				}
			}
		}
	}
	if len(fe) == 0 {
		return nil
	}
	return fe
}

// members are the values of obj's members named name in any case, as
// encoding/json matches a struct field.
func members(obj map[string]json.RawMessage, name string) []json.RawMessage {
	var out []json.RawMessage
	for k, v := range obj {
		if strings.EqualFold(k, name) {
			out = append(out, v)
		}
	}
	return out
}

// isNull reports whether raw is the JSON null.
func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// WriteCSV answers 200 with rows as a CSV attachment named filename, in
// UTF-8 led by a byte-order mark: without it Excel, where marketers open
// reports, reads the file in the Windows code page and garbles every
// Vietnamese letter (Đà Nẵng). CSV readers skip it (Python's utf-8-sig,
// pandas, LibreOffice; outreach's own importers too).
func WriteCSV(c *gin.Context, filename string, rows [][]string) {
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, filename))
	c.Status(http.StatusOK)
	_, _ = c.Writer.WriteString(utf8BOM)
	w := csv.NewWriter(c.Writer)
	_ = w.WriteAll(rows)
}

// utf8BOM is the UTF-8 byte-order mark.
const utf8BOM = "\ufeff"

// statsRows is the report as metric,value rows, in a fixed order.
func statsRows(st campaign.Stats) [][]string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	rows := [][]string{
		{"metric", "value"},
		// Text cells go through csvcell.Text (a name is the user's choice); the
		// numbers below are written as they are.
		{"id", csvcell.Text(st.ID)},
		{"name", csvcell.Text(st.Name)},
		{"kind", csvcell.Text(string(st.Kind))},
		{"state", csvcell.Text(string(st.State))},
		{"counted_at", st.CountedAt.Format(time.RFC3339)},
		{"audience", i(st.Audience)},
	}
	for _, status := range campaign.AllStatuses {
		rows = append(rows, []string{"deliveries." + string(status), i(st.Deliveries[status])})
	}
	reasons := make([]string, 0, len(st.Skipped))
	for r := range st.Skipped {
		reasons = append(reasons, string(r))
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		rows = append(rows, []string{"skipped." + r, i(st.Skipped[campaign.SkipReason(r)])})
	}
	channels := make([]string, 0, len(st.Channels))
	for ch := range st.Channels {
		channels = append(channels, string(ch))
	}
	sort.Strings(channels)
	for _, ch := range channels {
		rows = append(rows, []string{"channels." + ch, i(st.Channels[campaign.Channel(ch)])})
	}
	return append(rows,
		[]string{"segments", i(st.Segments)},
		[]string{"installs", i(st.Installs)},
		[]string{"conversion_rate", strconv.FormatFloat(st.ConversionRate, 'f', -1, 64)},
		[]string{"rewards.granted", i(st.Rewards.Granted)},
		[]string{"rewards.mb", i(st.Rewards.MB)},
	)
}

// campaignDeliveries pages deliveries: ?status=&after=&limit=.
func (s *server) campaignDeliveries(c *gin.Context) {
	id, err := idParam(c, "campaign")
	if err != nil {
		writeError(c, err)
		return
	}
	after, err := intQuery(c, "after")
	if err != nil {
		writeError(c, err)
		return
	}
	limit, err := intQuery(c, "limit")
	if err != nil {
		writeError(c, err)
		return
	}
	page, err := s.d.Service.Deliveries(c.Request.Context(), principal(c), id, campaign.DeliveryQuery{
		Status: campaign.Status(c.Query("status")), After: after, Limit: int(limit)})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

// intQuery reads an optional whole-number query parameter (0 when absent).
func intQuery(c *gin.Context, name string) (int64, error) {
	v := c.Query(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > 1<<53 {
		return 0, apperr.FieldErrors{name: "must be a whole number of 0 or more"}
	}
	if n == 0 && name == "limit" { // 0 is what a missing limit reads as
		return 0, apperr.FieldErrors{name: "must be 1 or more; leave it out for the default page"}
	}
	return n, nil
}

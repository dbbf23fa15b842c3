package api

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"outreach/internal/apperr"
)

// queryParams is every query parameter an API-key route reads, by method
// and route. A parameter not listed here, or one given twice, answers 422
// naming it: a mistyped filter (?stauts=failed) would otherwise be ignored
// and answer with everything, which looks like a right answer and is not.
// Routes not listed take none.
//
// Only the API-key routes are checked (auth calls knownQuery): install
// callbacks, install links and provider webhooks come from apps, SMS
// clients and providers that may add parameters of their own, and refusing
// them would lose an install or a receipt.
var queryParams = map[string][]string{
	"POST /v1/subscribers/import":      {"list"},
	"GET /v1/campaigns":                {"kind", "after", "limit"},
	"GET /v1/campaigns/:id/stats":      {"format"},
	"GET /v1/campaigns/:id/deliveries": {"status", "after", "limit"},
	"GET /v1/rewards":                  {"campaign_id", "status", "state", "after", "limit"},
	"GET /v1/reports/adoption":         {"format"},
}

// knownQuery checks the request's query parameters against queryParams.
func knownQuery(c *gin.Context) error {
	q := c.Request.URL.Query()
	if len(q) == 0 {
		return nil
	}
	allowed := queryParams[c.Request.Method+" "+c.FullPath()]
	fe := apperr.FieldErrors{}
	for name, values := range q {
		switch {
		case !slices.Contains(allowed, name):
			if len(allowed) == 0 {
				fe[name] = "unknown query parameter: this route takes none"
			} else {
				fe[name] = "unknown query parameter: this route takes " + strings.Join(slices.Sorted(slices.Values(allowed)), ", ")
			}
		case len(values) > 1:
			fe[name] = fmt.Sprintf("given %d times: give it once", len(values))
		}
	}
	if len(fe) == 0 {
		return nil
	}
	return fe
}

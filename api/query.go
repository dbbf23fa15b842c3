package api

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"outreach/internal/apperr"
)

// queryParams is every query parameter an API-key route of this package
// reads, by method and route; the other API-key routes of this package
// (routes) take none. A parameter not listed, or one given twice, answers
// 422 naming it: a mistyped filter (?stauts=failed) would otherwise be
// ignored and answer with everything, which looks like a right answer and
// is not.
//
// Only the API-key routes are checked (auth calls knownQuery): install
// callbacks, install links and provider webhooks come from apps, SMS
// clients and providers that may add parameters of their own, and refusing
// them would lose an install or a receipt. Routes added through Deps.Extra
// by other packages are not checked: this table does not know them.
var queryParams = map[string][]string{
	"POST /v1/subscribers/import":      {"list"},
	"GET /v1/campaigns":                {"kind", "after", "limit"},
	"GET /v1/campaigns/:id/stats":      {"format"},
	"GET /v1/campaigns/:id/deliveries": {"status", "after", "limit"},
	"GET /v1/rewards":                  {"campaign_id", "status", "state", "after", "limit"},
	"GET /v1/reports/adoption":         {"format"},
}

// checkedQueries is queryParams with every API-key route of routes that
// takes no parameter (nil).
func checkedQueries(routes []route) map[string][]string {
	m := make(map[string][]string, len(routes))
	for _, rt := range routes {
		if rt.roles != nil {
			m[rt.method+" "+rt.path] = nil
		}
	}
	for k, v := range queryParams {
		m[k] = v
	}
	return m
}

// knownQuery checks the request's query parameters against s.queries.
func (s *server) knownQuery(c *gin.Context) error {
	q := c.Request.URL.Query()
	if len(q) == 0 {
		return nil
	}
	allowed, checked := s.queries[c.Request.Method+" "+c.FullPath()]
	if !checked {
		return nil
	}
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

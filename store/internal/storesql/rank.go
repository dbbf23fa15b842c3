// Package storesql holds SQL both store implementations render the same way.
package storesql

import (
	"fmt"
	"strings"

	"outreach/campaign"
)

// StatusRank orders the statuses as campaign.Status.Advances does: a
// status's rank is the number of statuses it advances from.
func StatusRank(s campaign.Status) int {
	r := 0
	for _, t := range campaign.AllStatuses {
		if t.Advances(s) {
			r++
		}
	}
	return r
}

// StatusRankSQL renders StatusRank as a SQL CASE over expr, so that a
// receipt only moves a delivery forward in one statement.
func StatusRankSQL(expr string) string {
	var b strings.Builder
	b.WriteString("CASE " + expr)
	for _, s := range campaign.AllStatuses {
		fmt.Fprintf(&b, " WHEN '%s' THEN %d", s, StatusRank(s))
	}
	b.WriteString(" ELSE 0 END")
	return b.String()
}

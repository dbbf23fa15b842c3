package api

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"outreach/internal/apperr"
	"outreach/internal/textcheck"
	"outreach/subscriber"
)

// Limits of a regions CSV (Vietnam has 63 provinces and about 10,000
// communes).
const (
	maxRegions       = 100_000
	maxRegionErrors  = 50
	maxRegionCodeLen = subscriber.MaxRegionCodeLen
	// maxPopulation bounds a region's population (the national total sums
	// up to maxRegions of them).
	maxPopulation     = 10_000_000_000
	maxRegionNameRune = 200
)

// RowError is one bad CSV row, by its line number in the file.
type RowError struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// putRegions replaces the tenant's regions with a CSV of code,name,population
// (an optional header line is skipped). Every bad row is reported with its
// line number, and then nothing is replaced.
func (s *server) putRegions(c *gin.Context) {
	if err := wantCSV(c); err != nil {
		writeError(c, err)
		return
	}
	regions, err := readRegions(http.MaxBytesReader(c.Writer, c.Request.Body, limitsOf(c).body))
	if err != nil {
		writeError(c, err)
		return
	}
	p := principal(c)
	if err := s.d.Subscribers.ReplaceRegions(c.Request.Context(), p.TenantID, regions); err != nil {
		writeError(c, err)
		return
	}
	s.d.Service.Audit(c.Request.Context(), p, "regions.replace", "regions", "", map[string]any{"regions": len(regions)})
	c.JSON(http.StatusOK, gin.H{"regions": len(regions)})
}

func readRegions(body io.Reader) ([]subscriber.Region, error) {
	r := csv.NewReader(body)
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	var (
		regions []subscriber.Region
		bad     []RowError
		seen    = map[string]int{}
		first   = true
	)
	for len(bad) < maxRegionErrors {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			first = false
			bad = append(bad, RowError{Line: pe.StartLine, Reason: pe.Err.Error()})
			if errors.Is(pe.Err, csv.ErrFieldCount) {
				continue
			}
			break // a quoting error leaves the reader lost
		}
		if err != nil {
			return nil, err // the body limit, or the connection
		}
		line, _ := r.FieldPos(0)
		if first {
			first = false
			rec[0] = strings.TrimPrefix(rec[0], "\uFEFF")
			if strings.EqualFold(strings.TrimSpace(rec[0]), "code") {
				continue
			}
		}
		reg, reason := parseRegion(rec)
		if reason == "" {
			if prev, dup := seen[reg.Code]; dup {
				reason = fmt.Sprintf("code %q repeats line %d", reg.Code, prev)
			}
		}
		if reason != "" {
			bad = append(bad, RowError{Line: line, Reason: reason})
			continue
		}
		seen[reg.Code] = line
		if len(regions) == maxRegions {
			return nil, &Error{Err: apperr.ErrTooLarge, Message: fmt.Sprintf("more than %d regions", maxRegions)}
		}
		regions = append(regions, reg)
	}
	if len(bad) > 0 {
		msg := fmt.Sprintf("line %d: %s", bad[0].Line, bad[0].Reason)
		if len(bad) > 1 {
			msg += fmt.Sprintf(" (and %d more bad rows)", len(bad)-1)
		}
		return nil, &Error{Err: errInvalid, Code: "invalid_rows",
			Message: "no region was replaced: " + msg, Details: map[string]any{"rows": bad}}
	}
	if len(regions) == 0 {
		return nil, &Error{Err: errInvalid, Code: "invalid_rows",
			Message: "no regions in the file: want CSV rows code,name,population"}
	}
	return regions, nil
}

func parseRegion(rec []string) (subscriber.Region, string) {
	if len(rec) != 3 {
		return subscriber.Region{}, fmt.Sprintf("want 3 fields code,name,population, got %d", len(rec))
	}
	code, name, pop := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1]), strings.TrimSpace(rec[2])
	switch {
	case code == "":
		return subscriber.Region{}, "empty code"
	case len(code) > maxRegionCodeLen:
		return subscriber.Region{}, fmt.Sprintf("code over %d characters", maxRegionCodeLen)
	case textcheck.Problem(code) != "":
		return subscriber.Region{}, "code " + textcheck.Problem(code)
	case name == "":
		return subscriber.Region{}, "empty name"
	case textcheck.Problem(name) != "" || utf8.RuneCountInString(name) > maxRegionNameRune:
		return subscriber.Region{}, fmt.Sprintf("name must be UTF-8 text without NUL, of at most %d characters", maxRegionNameRune)
	}
	n, err := strconv.ParseInt(pop, 10, 64)
	if err != nil || n < 0 || n > maxPopulation {
		return subscriber.Region{}, fmt.Sprintf("population %q is not a whole number from 0 to %d", pop, int64(maxPopulation))
	}
	return subscriber.Region{Code: code, Name: name, Population: n}, ""
}

// wantCSV refuses a body declared as something other than CSV; no
// Content-Type at all is taken as CSV.
func wantCSV(c *gin.Context) error {
	ct := c.ContentType()
	switch ct {
	case "", "text/csv", "application/csv", "text/plain", "application/vnd.ms-excel", "application/octet-stream":
		return nil
	}
	return &Error{Err: errUnsupport, Message: fmt.Sprintf("want a text/csv body, not %s", ct)}
}

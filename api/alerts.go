package api

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"outreach/campaign"
)

// createAlert creates and starts an exposure alert: 202 with its id, the
// number of contacts it goes to and the invalid ones by position.
func (s *server) createAlert(c *gin.Context) {
	var req alertRequest
	if err := DecodeJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	in := req.AlertInput
	in.Contacts = contactTexts(req.Contacts)
	in.IdempotencyKey = c.GetHeader("Idempotency-Key")
	res, err := s.d.Service.CreateAlert(c.Request.Context(), principal(c), in)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, res)
}

func (s *server) getAlert(c *gin.Context) {
	id, err := idParam(c, "alert")
	if err != nil {
		writeError(c, err)
		return
	}
	v, err := s.d.Service.GetAlert(c.Request.Context(), principal(c), id)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// alertRequest is the body of POST /v1/alerts. Its contacts are read one by
// one, so that one contact that is not a string does not refuse the whole
// list: it is reported by its position like any other invalid contact.
type alertRequest struct {
	campaign.AlertInput
	Contacts []json.RawMessage `json:"contacts"`
}

// contactTexts gives each contact as text: a string as it is, a number as
// its digits (a spreadsheet's phone column exported as numbers:
// 84912345678, or as floats by pandas: 84912345678.0), null as empty,
// anything else as its JSON, which is no phone number.
func contactTexts(raw []json.RawMessage) []string {
	if raw == nil {
		return nil
	}
	out := make([]string, len(raw))
	for i, r := range raw {
		r = bytes.TrimSpace(r)
		switch {
		case bytes.Equal(r, []byte("null")):
		case len(r) > 0 && r[0] == '"':
			json.Unmarshal(r, &out[i]) // a valid string: the decoder checked it
		default:
			out[i] = numberDigits(string(r))
		}
	}
	return out
}

// numberDigits writes a JSON number that is a whole number (84912345678,
// 84912345678.0, 8.4912345678e10) as its digits; anything else as it came.
func numberDigits(n string) string {
	if !strings.ContainsAny(n, ".eE") {
		return n
	}
	f, err := strconv.ParseFloat(n, 64)
	if err != nil || f != math.Trunc(f) || f < 0 || f >= 1e15 {
		return n
	}
	return strconv.FormatFloat(f, 'f', 0, 64)
}

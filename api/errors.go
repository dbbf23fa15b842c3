package api

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"

	"outreach/campaign"
	"outreach/internal/apperr"
)

// Local error kinds with no domain sentinel.
var (
	errNoRoute   = errors.New("no such route")
	errMethod    = errors.New("method not allowed")
	errUnsupport = errors.New("unsupported media type")
	// errInvalid is a 422 whose details are not a FieldErrors map (say,
	// CSV rows by line).
	errInvalid = errors.New("invalid input")
)

// statusTable is the one place an error becomes an HTTP status and code.
// Anything not matched here is a 500 "internal error", its detail logged.
var statusTable = []struct {
	err    error
	status int
	code   string
}{
	{apperr.ErrMalformed, http.StatusBadRequest, "malformed"},
	{apperr.ErrUnauthorized, http.StatusUnauthorized, "unauthorized"},
	{apperr.ErrForbidden, http.StatusForbidden, "forbidden"},
	{apperr.ErrNotFound, http.StatusNotFound, "not_found"},
	{errNoRoute, http.StatusNotFound, "not_found"},
	{errMethod, http.StatusMethodNotAllowed, "method_not_allowed"},
	{campaign.ErrAlertInProgress, http.StatusConflict, "in_progress"},
	{apperr.ErrConflict, http.StatusConflict, "conflict"},
	{apperr.ErrTooLarge, http.StatusRequestEntityTooLarge, "too_large"},
	{errUnsupport, http.StatusUnsupportedMediaType, "unsupported_media_type"},
	{errInvalid, http.StatusUnprocessableEntity, "invalid_fields"},
	{apperr.ErrLimited, http.StatusTooManyRequests, "limited"},
	{context.DeadlineExceeded, http.StatusServiceUnavailable, "timeout"},
	// The client went away; nobody reads this answer, but the log and the
	// metrics should not count it as a server failure.
	{context.Canceled, 499, "canceled"},
}

// Error is an error with a chosen message and details for the client. Err
// decides the status through statusTable; Code, when set, replaces the
// table's code.
type Error struct {
	Err     error
	Code    string
	Message string
	Details any
}

func (e *Error) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Details   any    `json:"details"` // null when there are none: the SPEC's shape always has it
	RequestID string `json:"request_id,omitempty"`
}

// classify returns the status and the body for err. Field errors carry their
// own details; everything else goes through statusTable.
func classify(err error) (int, errorDetail) {
	var fe apperr.FieldErrors
	if errors.As(err, &fe) {
		return http.StatusUnprocessableEntity, errorDetail{Code: "invalid_fields", Message: fe.Error(), Details: fe}
	}
	var ae *Error
	errors.As(err, &ae)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) && !errors.Is(err, apperr.ErrTooLarge) {
		tl := &Error{Err: apperr.ErrTooLarge, Message: "request body over the " + byteSize(mbe.Limit) + " limit"}
		if ae != nil {
			tl.Details = ae.Details
		}
		err, ae = tl, tl
	}
	for _, row := range statusTable {
		if !errors.Is(err, row.err) {
			continue
		}
		d := errorDetail{Code: row.code, Message: err.Error()}
		if ae != nil {
			if ae.Code != "" {
				d.Code = ae.Code
			}
			d.Details = ae.Details
		}
		return row.status, d
	}
	if ae != nil && ae.Details != nil && ae.Code != "" && ae.Message != "" {
		// A server failure whose handler chose what the client may know
		// (what an import wrote before it failed).
		return http.StatusInternalServerError, errorDetail{Code: ae.Code, Message: ae.Message, Details: ae.Details}
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) {
		// PostgreSQL or Redis unreachable (a failover, a restart), or its
		// connection cut mid-answer: the request may well succeed in a
		// moment, which a 500 does not say. (A request body cut short is
		// malformed, above.)
		return http.StatusServiceUnavailable, errorDetail{Code: "unavailable",
			Message: "a service this request needs (the database or the queue) is not reachable; try again shortly"}
	}
	return http.StatusInternalServerError, errorDetail{Code: "internal", Message: "internal error"}
}

// WriteError answers with err in the API's error shape and status, and
// aborts the handler chain. Unmapped errors answer 500 "internal error" and
// are logged with the request id.
func WriteError(c *gin.Context, err error) { writeError(c, err) }

func writeError(c *gin.Context, err error) {
	status, d := classify(err)
	d.RequestID = requestIDOf(c)
	if status >= 500 {
		cause := err
		if ae := (*Error)(nil); errors.As(err, &ae) && ae.Err != nil {
			cause = ae.Err // its Message was for the client
		}
		loggerOf(c).ErrorContext(c.Request.Context(), "request failed",
			"request_id", d.RequestID, "route", routeOf(c), "err", cause)
	}
	if d.Code == "unavailable" || d.Code == "in_progress" || d.Code == "timeout" {
		c.Header("Retry-After", "5")
	}
	_ = c.Error(err)
	c.AbortWithStatusJSON(status, errorBody{Error: d})
}

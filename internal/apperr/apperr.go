// Package apperr holds the error kinds every domain package shares. The api
// package maps each kind to one HTTP status in a single table.
package apperr

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

var (
	// ErrNotFound: the object does not exist, or belongs to another tenant.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the object exists but is in a state that forbids the change.
	ErrConflict = errors.New("conflict")
	// ErrUnauthorized: missing or bad credentials or signature.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: authenticated, but the role may not do this.
	ErrForbidden = errors.New("forbidden")
	// ErrMalformed: the request could not be parsed at all.
	ErrMalformed = errors.New("malformed request")
	// ErrTooLarge: the request body is over its limit.
	ErrTooLarge = errors.New("request too large")
	// ErrLimited: over a rate or budget limit.
	ErrLimited = errors.New("over limit")
)

// FieldErrors reports invalid fields by name; it maps to 422.
type FieldErrors map[string]string

func (f FieldErrors) Error() string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+f[k])
	}
	return "invalid fields: " + strings.Join(parts, "; ")
}

// Add records a problem with one field.
func (f FieldErrors) Add(field, format string, args ...any) {
	f[field] = fmt.Sprintf(format, args...)
}

// Err returns nil when no field is invalid.
func (f FieldErrors) Err() error {
	if len(f) == 0 {
		return nil
	}
	return f
}

// NotFound wraps ErrNotFound with what was missing.
func NotFound(what string) error { return fmt.Errorf("%s %w", what, ErrNotFound) }

// Conflict wraps ErrConflict with an explanation.
func Conflict(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, args...))
}

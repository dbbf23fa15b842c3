package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"outreach/internal/apperr"
	"outreach/internal/textcheck"
)

// DecodeJSON reads the request body (at most Deps.MaxBodyBytes) into v.
// Malformed JSON, an unknown field (named in the details) or trailing data
// is a 400, a value of the wrong type a 422 naming its field, a body over
// the limit a 413, an empty body a 400.
func DecodeJSON(c *gin.Context, v any) error { return decodeJSON(c, v, false) }

// decodeJSON is DecodeJSON; with optional an empty body leaves v as it is.
func decodeJSON(c *gin.Context, v any, optional bool) error {
	_, err := decodeJSONBody(c, v, optional)
	return err
}

// decodeJSONBody is decodeJSON answering the body too, for a check the
// decoded value cannot make (a field given empty, not left out).
func decodeJSONBody(c *gin.Context, v any, optional bool) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limitsOf(c).body))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, &Error{Err: apperr.ErrMalformed, Message: "could not read the request body"}
	}
	body = textcheck.TrimBOM(body)
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return body, nil
		}
		return nil, &Error{Err: apperr.ErrMalformed, Message: "empty body: want a JSON object"}
	}
	if p := textcheck.BodyProblem(body); p != "" {
		return nil, &Error{Err: apperr.ErrMalformed, Message: p}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		jerr := jsonError(err, body)
		if fe, ok := jerr.(apperr.FieldErrors); ok {
			return nil, everyFieldError(body, v, fe)
		}
		return nil, jerr
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &Error{Err: apperr.ErrMalformed, Message: "malformed JSON: data after the object"}
	}
	return body, nil
}

func jsonError(err error, body []byte) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tpe *time.ParseError
	switch {
	case errors.As(err, &syn):
		return &Error{Err: apperr.ErrMalformed, Message: fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, syn.Error())}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Err: apperr.ErrMalformed, Message: "malformed JSON: unexpected end of the body"}
	case errors.As(err, &typ):
		if typ.Field == "" {
			return &Error{Err: apperr.ErrMalformed, Message: fmt.Sprintf("the body must be %s in JSON, not %s", kindName(typ.Type), typ.Value)}
		}
		return apperr.FieldErrors{typ.Field: fmt.Sprintf("must be %s, not %s", kindName(typ.Type), typ.Value)}
	case errors.As(err, &tpe):
		// time.Time does not say which field it was; find the value.
		msg := "must be an RFC 3339 time such as 2026-11-25T08:00:00+07:00"
		if field := fieldWithValue(body, tpe.Value); field != "" {
			return apperr.FieldErrors{field: msg}
		}
		return &Error{Err: apperr.ErrMalformed, Message: fmt.Sprintf("a time %s, not %q", msg, tpe.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &Error{Err: apperr.ErrMalformed, Code: "unknown_field",
			Message: fmt.Sprintf("unknown field %q", field), Details: map[string]string{"field": field}}
	}
	return &Error{Err: apperr.ErrMalformed, Message: "malformed JSON: " + err.Error()}
}

// everyFieldError decodes each member of the body's object on its own into
// a fresh value of v's type, so that the first value of the wrong type does
// not hide the others: the answer names every such field. first is the
// decoder's own answer, kept when the members cannot be told apart.
func everyFieldError(body []byte, v any, first apperr.FieldErrors) apperr.FieldErrors {
	var members map[string]json.RawMessage
	t := reflect.TypeOf(v)
	if json.Unmarshal(body, &members) != nil || t.Kind() != reflect.Pointer {
		return first
	}
	all := apperr.FieldErrors{}
	for k, raw := range members {
		one, err := json.Marshal(map[string]json.RawMessage{k: raw})
		if err != nil {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(one))
		dec.DisallowUnknownFields()
		if err := dec.Decode(reflect.New(t.Elem()).Interface()); err != nil {
			if fe, ok := jsonError(err, one).(apperr.FieldErrors); ok {
				maps.Copy(all, fe)
			}
		}
	}
	if len(all) == 0 {
		return first
	}
	return all
}

// kindName says what JSON a Go type wants, for messages.
func kindName(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	if t == reflect.TypeOf(time.Time{}) {
		return "an RFC 3339 time"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return kindName(t.Elem())
	}
	return "a " + t.String()
}

// fieldWithValue returns the dotted path of the first string in body (in
// key order) equal to value, or "".
func fieldWithValue(body []byte, value string) string {
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return ""
	}
	var walk func(prefix string, x any) string
	walk = func(prefix string, x any) string {
		switch x := x.(type) {
		case string:
			if x == value {
				return prefix
			}
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				if f := walk(p, x[k]); f != "" {
					return f
				}
			}
		case []any:
			for i, y := range x {
				if f := walk(fmt.Sprintf("%s[%d]", prefix, i), y); f != "" {
					return f
				}
			}
		}
		return ""
	}
	return walk("", doc)
}

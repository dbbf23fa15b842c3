// Package textcheck says whether a string from outside can be stored as
// text. Both stores keep text that is valid UTF-8 without NUL: PostgreSQL's
// text type refuses anything else (the request would fail as a whole), and
// SQLite would keep it and hand it back to templates, CSV exports and
// providers.
package textcheck

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Problem returns why s cannot be stored as text, or "" when it can.
func Problem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "must be UTF-8 text"
	case strings.IndexByte(s, 0) >= 0:
		return "must not contain NUL characters"
	}
	return ""
}

// TrimBOM drops a UTF-8 byte-order mark from the start of a JSON body.
// RFC 8259 lets a parser ignore one, and Windows tools (PowerShell's
// Out-File, Notepad) write one; encoding/json would call the body
// malformed at its first byte.
func TrimBOM(b []byte) []byte { return bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) }

// BodyProblem says why a request body is not UTF-8 text, naming the byte
// where it stops being so, or "" when it is. encoding/json would decode
// each bad byte as U+FFFD: text in a legacy encoding would be stored
// garbled, and two different values could become one.
func BodyProblem(b []byte) string {
	if utf8.Valid(b) {
		return ""
	}
	off := 0
	for off < len(b) {
		r, n := utf8.DecodeRune(b[off:])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		off += n
	}
	return fmt.Sprintf("the body is not UTF-8 text (byte %d); send JSON in UTF-8", off)
}

// Map returns the Problem of the first key or value of m that has one
// (keys in no set order), with the key when it is a value's.
func Map(m map[string]string) string {
	for k, v := range m {
		if p := Problem(k); p != "" {
			return "names " + p
		}
		if p := Problem(v); p != "" {
			return "the value of " + quote(k) + " " + p
		}
	}
	return ""
}

func quote(k string) string { return `"` + k + `"` }

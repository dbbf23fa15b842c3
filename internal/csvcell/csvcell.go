// Package csvcell makes the text cells of the CSV reports safe to open in a
// spreadsheet.
package csvcell

// Text makes a text cell (a name, a code: anything a user chose) safe to
// open in a spreadsheet: a cell that begins with = + - @, a tab or a
// carriage return would be read as a formula (CSV injection), so it gets a
// leading single quote, as OWASP advises. Numbers the code writes itself
// must not go through it: a negative number would be mangled.
func Text(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}

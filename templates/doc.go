// Package templates renders campaign messages and measures what they cost to
// send: GSM-7 or UCS-2 encoding, characters, and SMS segments. It also folds
// Vietnamese text to plain Latin so that it fits GSM-7.
//
// The package does no I/O: templates see a fixed set of fields and only
// text/template's builtins, so a template cannot reach the system, loop, or
// build more text than MaxOutputBytes.
package templates

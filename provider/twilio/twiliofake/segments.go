package twiliofake

import "outreach/templates"

// Encoding is "GSM-7" or "UCS-2", as Twilio would send body.
func Encoding(body string) string { return string(templates.CountSMS(body).Encoding) }

// NumSegments counts the SMS parts body needs (GSM-7 160/153 septets,
// else UCS-2 70/67 UTF-16 units, never splitting an escape or a surrogate
// pair). Twilio bills an empty body as 1 segment.
func NumSegments(body string) int { return max(templates.CountSMS(body).Segments, 1) }

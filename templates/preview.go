package templates

import "golang.org/x/text/unicode/norm"

// Preview returns the text to send, transliterated if asked and NFC
// normalised, with its count. Send this text, not the input: the count is
// only true for the normalised form.
func Preview(text string, transliterate bool) (string, Count) {
	if transliterate {
		text = Transliterate(text)
	}
	text = norm.NFC.String(text)
	return text, CountSMS(text)
}

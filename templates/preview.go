package templates

import "golang.org/x/text/unicode/norm"

// SMSText returns the text to hand to the provider: transliterated if asked,
// and NFC normalised. CountSMS and SplitSMS measure the NFC form, so only
// this form costs what they say: decomposed Vietnamese ("a" + U+0300, as
// Unikey's "Unicode tổ hợp" and macOS type it) sent as it is would make a
// carrier encode the message in UCS-2, at twice the segments or more.
// Normalising text that already is NFC allocates nothing.
func SMSText(text string, transliterate bool) string {
	if transliterate {
		text = Transliterate(text)
	}
	return norm.NFC.String(text)
}

// Preview returns the text to send, as SMSText makes it, with its count.
// Send this text, not the input: the count is only true for the normalised
// form.
func Preview(text string, transliterate bool) (string, Count) {
	text = SMSText(text, transliterate)
	return text, CountSMS(text)
}

package templates

import (
	"golang.org/x/text/unicode/norm"
)

// Encoding is the SMS data coding a text needs.
type Encoding string

const (
	GSM7 Encoding = "GSM-7"
	UCS2 Encoding = "UCS-2"
)

// Segment sizes: a lone SMS carries 140 octets; each part of a concatenated
// one loses 6 octets to its header (7 septets, 3 UTF-16 units).
const (
	gsmSingle  = 160
	gsmPart    = 153
	ucs2Single = 70
	ucs2Part   = 67
)

// MaxSMSCharacters is the longest SMS text sent: Twilio refuses a body over
// 1,600 characters (error 21617), about ten GSM-7 segments.
const MaxSMSCharacters = 1600

// Count is what a text costs to send as SMS.
type Count struct {
	Encoding   Encoding `json:"encoding"`
	Characters int      `json:"characters"` // runes after NFC
	Units      int      `json:"units"`      // septets (GSM-7) or UTF-16 units (UCS-2)
	Segments   int      `json:"segments"`
}

// CountSMS measures text as a phone would receive it, after NFC normalisation:
// decomposed Vietnamese ("a" + U+0300) would otherwise look like UCS-2 when
// the composed "à" is GSM-7. Empty text is GSM-7 with 0 segments, since
// nothing would be sent. UCS-2 is counted in UTF-16 units, as phones and
// providers do, so a character outside the BMP (an emoji) costs 2.
func CountSMS(text string) Count {
	s := norm.NFC.String(text)
	c := measure(s)
	c.Segments = split(s, c, nil)
	return c
}

// SplitSMS returns the NFC text cut into the parts a phone would receive,
// nil for empty text. A cut never falls inside an extension character's ESC
// pair or a UTF-16 surrogate pair: such a character moves whole to the next
// part. The parts always agree with CountSMS.
func SplitSMS(text string) []string {
	s := norm.NFC.String(text)
	c := measure(s)
	var parts []string
	split(s, c, func(p string) { parts = append(parts, p) })
	return parts
}

// measure fills in everything but Segments for NFC text s.
func measure(s string) Count {
	c := Count{Encoding: GSM7}
	septets, utf16 := 0, 0
	for _, r := range s {
		c.Characters++
		utf16 += ucs2Units(r)
		if c.Encoding == GSM7 {
			if n := gsmSeptets(r); n > 0 {
				septets += n
			} else {
				c.Encoding = UCS2
			}
		}
	}
	c.Units = septets
	if c.Encoding == UCS2 {
		c.Units = utf16
	}
	return c
}

// split packs s into segments greedily, which is optimal when parts must stay
// in order, and returns how many it used. emit, when not nil, gets each part.
func split(s string, c Count, emit func(string)) int {
	if c.Units == 0 {
		return 0
	}
	single, part := gsmSingle, gsmPart
	if c.Encoding == UCS2 {
		single, part = ucs2Single, ucs2Part
	}
	if c.Units <= single {
		if emit != nil {
			emit(s)
		}
		return 1
	}
	n, used, start := 1, 0, 0
	for i, r := range s {
		u := unitCost(r, c.Encoding)
		if used+u > part {
			if emit != nil {
				emit(s[start:i])
			}
			n, used, start = n+1, 0, i
		}
		used += u
	}
	if emit != nil {
		emit(s[start:])
	}
	return n
}

func unitCost(r rune, e Encoding) int {
	if e == GSM7 {
		return gsmSeptets(r)
	}
	return ucs2Units(r)
}

// ucs2Units counts r in UTF-16. Invalid UTF-8 decodes to U+FFFD, one unit,
// which is what a provider would put in its place.
func ucs2Units(r rune) int {
	if r >= 0x10000 {
		return 2
	}
	return 1
}

package twiliofake

import "unicode/utf8"

// gsmBasic is the GSM 03.38 default alphabet (without the escape itself).
const gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

// gsmExt is the GSM 03.38 extension table: each costs two septets (ESC + char).
const gsmExt = "\f^{}\\[~]|€"

var gsmCost = func() map[rune]int {
	m := make(map[rune]int, 140)
	for _, r := range gsmBasic {
		m[r] = 1
	}
	for _, r := range gsmExt {
		m[r] = 2
	}
	return m
}()

// gsmUnit returns the septets r costs in GSM-7, or 0 when r is not in it.
func gsmUnit(r rune) int {
	if r < 0x80 {
		// Fast path for ASCII: everything printable is in one table or the other
		// except the backtick; most control characters are not.
		switch {
		case r == '`':
			return 0
		case r >= ' ' && r <= '~':
			if r == '^' || r == '{' || r == '}' || r == '\\' || r == '[' || r == ']' || r == '~' || r == '|' {
				return 2
			}
			return 1
		}
	}
	return gsmCost[r]
}

// Encoding names the alphabet Twilio would pick for body.
func Encoding(body string) string {
	for _, r := range body {
		if gsmUnit(r) == 0 {
			return "UCS-2"
		}
	}
	return "GSM-7"
}

// NumSegments counts the SMS parts body needs: GSM-7 160 septets (153 per
// part when concatenated, extension characters cost 2), otherwise UCS-2 70
// UTF-16 units (67 per part, astral characters cost 2). An ESC pair or a
// surrogate pair is never split across parts. An empty body is 1 segment.
func NumSegments(body string) int {
	gsm := true
	total := 0
	for _, r := range body {
		u := gsmUnit(r)
		if u == 0 {
			gsm = false
			break
		}
		total += u
	}
	single, multi := 160, 153
	unit := gsmUnit
	if !gsm {
		single, multi = 70, 67
		unit = utf16Units
		total = 0
		for _, r := range body {
			total += utf16Units(r)
		}
	}
	if total <= single {
		return 1
	}
	segs, used := 1, 0
	for _, r := range body {
		u := unit(r)
		if used+u > multi {
			segs++
			used = 0
		}
		used += u
	}
	return segs
}

func utf16Units(r rune) int {
	if r >= 0x10000 && r <= utf8.MaxRune {
		return 2
	}
	return 1
}

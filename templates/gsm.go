package templates

// gsmBasic is the GSM 03.38 default alphabet in code order, 16 codes per
// line, so that a rune's index is its septet. Code 0x1B is the escape to the
// extension table, not a character: U+001B in a message is not GSM-7.
const gsmBasic = "" +
	"@£$¥èéùìòÇ\nØø\rÅå" +
	"Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ" +
	" !\"#¤%&'()*+,-./" +
	"0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNO" +
	"PQRSTUVWXYZÄÖÑÜ§" +
	"¿abcdefghijklmno" +
	"pqrstuvwxyzäöñüà"

// gsmExtension holds the characters of the GSM 03.38 extension table, each
// sent as ESC plus one septet.
const gsmExtension = "\f^{}\\[~]|€"

// gsmTable maps every rune below its length to its GSM-7 cost in septets (0:
// not GSM-7). It covers up to Ω, the highest basic character; € is the only
// GSM-7 rune above it and is handled in gsmSeptets. It is computed once and
// never written again.
var gsmTable = func() (t [0x3AA]uint8) {
	for _, r := range gsmBasic {
		if r != 0x1B {
			t[r] = 1
		}
	}
	for _, r := range gsmExtension {
		if r < rune(len(t)) {
			t[r] = 2
		}
	}
	return t
}()

// gsmSeptets is what r costs in GSM-7, or 0 if GSM-7 cannot carry it.
func gsmSeptets(r rune) int {
	if r >= 0 && r < rune(len(gsmTable)) {
		return int(gsmTable[r])
	}
	if r == '€' {
		return 2
	}
	return 0
}

package campaign

import "crypto/rand"

// ReferralCodeLength is the length of the referral codes of install
// promotions' deliveries.
const ReferralCodeLength = 9

const referralAlphabet = "23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"

// NewReferralCode returns a 9-character code from a 55-symbol alphabet
// without look-alikes (0/O, 1/l/I): about 52 bits of randomness, short
// enough for an SMS link.
func NewReferralCode() string { return NewReferralCodes(1)[0] }

// NewReferralCodes returns n codes as NewReferralCode makes them, from one
// read of the system's random source.
func NewReferralCodes(n int) []string {
	b := make([]byte, n*ReferralCodeLength)
	rand.Read(b)
	// Rejection-free: 256 % 55 skews by under 2%, which costs well under a
	// bit of the 52.
	for i := range b {
		b[i] = referralAlphabet[int(b[i])%len(referralAlphabet)]
	}
	s := string(b)
	out := make([]string, n)
	for i := range out {
		out[i] = s[i*ReferralCodeLength : (i+1)*ReferralCodeLength]
	}
	return out
}

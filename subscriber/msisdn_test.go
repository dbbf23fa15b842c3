package subscriber_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"outreach/subscriber"
)

// TestNormalizeCachedAgreesWithFullParse draws numbers over every
// Vietnamese prefix and length, in all three written forms, and checks the
// cached answer against libphonenumber's own, twice (the first call fills
// the cache, the second reads it).
func TestNormalizeCachedAgreesWithFullParse(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	forms := []string{"0%s", "84%s", "+84%s"}
	valid := 0
	for i := 0; i < 5_000; i++ {
		n := 7 + rng.IntN(5) // national numbers of 7 to 11 digits
		nsn := make([]byte, n)
		for j := range nsn {
			nsn[j] = byte('0' + rng.IntN(10))
		}
		raw := fmt.Sprintf(forms[rng.IntN(len(forms))], nsn)
		want, werr := subscriber.ParseMSISDN(raw)
		for pass := 0; pass < 2; pass++ {
			got, err := subscriber.NormalizeMSISDN(raw)
			if got != want || (err == nil) != (werr == nil) {
				t.Fatalf("pass %d: NormalizeMSISDN(%q) = %q, %v; full parse %q, %v", pass, raw, got, err, want, werr)
			}
		}
		if werr == nil {
			valid++
		}
	}
	if valid < 100 {
		t.Fatalf("only %d of the drawn numbers were valid: the draw does not exercise the cache", valid)
	}
}

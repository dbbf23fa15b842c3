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

// A garbled cell is refused rather than read as someone else's number
// (libphonenumber reads letters as keypad digits and drops what it cannot
// read), and a landline, toll-free or premium-rate number is refused: it
// takes no SMS and no mobile data. Numbers written the usual ways pass.
func TestOnlyMobileNumbersWrittenAsNumbersAreAccepted(t *testing.T) {
	for _, raw := range []string{
		"0912-ABC-678", "091-CALL-NOW", "0912345O678", "0912345678x1", "Anh 0912345678",
		"\xff\xfe0912345678", "0912345678/0987654321", "+84+912345678",
		"02438255555", "+842438255555", "18001091", "1900123456",
	} {
		if got, err := subscriber.NormalizeMSISDN(raw); err == nil {
			t.Errorf("NormalizeMSISDN(%q) = %q, want refused", raw, got)
		}
	}
	for raw, want := range map[string]string{
		"0912345678": "+84912345678", "84912345678": "+84912345678", "+84 912 345 678": "+84912345678",
		"(091) 234-5678": "+84912345678", "091.234.5678": "+84912345678", "0912\u00a0345\u00a0678": "+84912345678",
		"0352345678": "+84352345678", "+1 415 555 2671": "+14155552671",
	} {
		if got, err := subscriber.NormalizeMSISDN(raw); err != nil || got != want {
			t.Errorf("NormalizeMSISDN(%q) = %q, %v, want %s", raw, got, err, want)
		}
	}
}

package subscriber

import "testing"

func BenchmarkNormalizeMSISDN(b *testing.B) {
	in := []string{"0912345678", "+84912345678", "84987654321", "0383456789"}
	for i := 0; i < b.N; i++ {
		if _, err := NormalizeMSISDN(in[i%len(in)]); err != nil {
			b.Fatal(err)
		}
	}
}

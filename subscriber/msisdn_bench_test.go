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

// The number cache keeps valid numbers' keys only (a key known bad spares
// nothing: it is parsed again), and a full one starts afresh instead of
// making every later number cost the full parse.
func TestTheNumberCacheKeepsCachingValidNumbers(t *testing.T) {
	saved := vnCache
	t.Cleanup(func() { vnCache = saved })
	vnCache = &msisdnCache{ok: make(map[msisdnKey]struct{})}
	if _, err := NormalizeMSISDN("0123456789"); err == nil {
		t.Fatal("0123456789 is valid?")
	}
	if len(vnCache.ok) != 0 {
		t.Errorf("an invalid number took %d cache keys", len(vnCache.ok))
	}
	for i := range maxMSISDNKeys {
		vnCache.put(msisdnKey{form: '0', n: uint8(9 + i%3), prefix: [5]byte{byte(i), byte(i >> 8), byte(i >> 16)}})
	}
	if _, err := NormalizeMSISDN("0912345678"); err != nil {
		t.Fatal(err)
	}
	k, _, _ := vnKey("0912345678")
	if known := vnCache.has(k); !known || len(vnCache.ok) > maxMSISDNKeys {
		t.Errorf("after the cache filled: 0912345678's key cached %v, %d keys", known, len(vnCache.ok))
	}
}

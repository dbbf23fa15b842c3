package worker

import (
	"regexp"
	"strings"
	"testing"
)

// On Redis Cluster a script may touch only the keys it is given, and they
// must share a hash slot: the rate-limit script used to derive its priority
// key from KEYS[1] inside the script, which a cluster refuses ("a non
// local key"), and no message was ever sent.
func TestTheRateLimitScriptTouchesOnlyItsKeysInOneSlot(t *testing.T) {
	if regexp.MustCompile(`KEYS\[\d\]\s*\.\.`).MatchString(rateScriptSource) {
		t.Error("the script builds a key name from KEYS: a cluster refuses keys it is not given")
	}
	if got := clusterSlot("123456789"); got != 12739 { // CLUSTER KEYSLOT 123456789
		t.Fatalf("clusterSlot(123456789) = %d, want 12739", got)
	}
	for _, key := range []string{"sms:+84900000000", "push", "test:tenant-1", "alert:{odd}"} {
		keys := rateKeys(key)
		if len(keys) != 2 || clusterSlot(keys[0]) != clusterSlot(keys[1]) {
			t.Errorf("rate keys %q are in slots %d and %d", keys, clusterSlot(keys[0]), clusterSlot(keys[1]))
		}
	}
}

// clusterSlot is Redis Cluster's hash slot of key: CRC16 (XMODEM) of its
// hash tag (the part between the first { and the next }, when not empty)
// or of the whole key, modulo 16384.
func clusterSlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for _, b := range []byte(key) {
		crc ^= uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

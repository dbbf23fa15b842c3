package subscriber

import (
	"fmt"
	"strings"
)

// MaxTokenBytes bounds a push token: FCM's are about 160 characters, and
// an index entry of the token must fit in a PostgreSQL B-tree page.
const MaxTokenBytes = 2048

// apnsTokenBytes bound an APNs device token: 32 bytes today, and Apple
// warns that the size may grow, so up to 100.
const (
	minAPNsTokenBytes = 32
	maxAPNsTokenBytes = 100
)

// NormalizeToken checks a push token for its platform and returns it as it
// is stored, or a reason it is refused. An APNs token is hexadecimal (a
// device token of 32 bytes or more) and stored in lower case, so that one
// device registered in both cases is one device, not two pushes. An FCM
// registration token is URL-safe text (letters, digits, "-", "_", ":",
// "."). A token neither provider could take is refused here rather than
// retried at every send.
func NormalizeToken(p Platform, token string) (string, string) {
	token = strings.TrimSpace(token)
	switch {
	case token == "":
		return "", "required"
	case len(token) > MaxTokenBytes:
		return "", fmt.Sprintf("at most %d bytes", MaxTokenBytes)
	}
	switch p {
	case PlatformAPNs:
		token = strings.ToLower(token)
		if len(token)%2 != 0 || len(token) < 2*minAPNsTokenBytes || len(token) > 2*maxAPNsTokenBytes ||
			strings.IndexFunc(token, func(r rune) bool { return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') }) >= 0 {
			return "", fmt.Sprintf("an APNs device token is %d to %d bytes in hexadecimal (64 characters today)",
				minAPNsTokenBytes, maxAPNsTokenBytes)
		}
	case PlatformFCM:
		if strings.IndexFunc(token, func(r rune) bool {
			return !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || strings.ContainsRune("-_:.", r))
		}) >= 0 {
			return "", "an FCM registration token has only letters, digits, '-', '_', ':' and '.'"
		}
	}
	return token, ""
}

package subscriber

import "strings"

// ParseMSISDN is the full libphonenumber parse, without the cache.
func ParseMSISDN(raw string) (string, error) {
	return parseMSISDN(raw, strings.TrimSpace(raw))
}

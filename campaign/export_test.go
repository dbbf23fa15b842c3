package campaign

import "time"

// SetAlertCreateTimeout sets how long an alert's creation may take, until
// the test ends.
func SetAlertCreateTimeout(d time.Duration) (restore func()) {
	old := alertCreateTimeout
	alertCreateTimeout = d
	return func() { alertCreateTimeout = old }
}

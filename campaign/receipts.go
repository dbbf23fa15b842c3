package campaign

// ReceiptStatus maps a provider's delivery-receipt status to a delivery
// status; ok is false for statuses that say nothing new (queued, accepted,
// sending: the delivery is already sent from the engine's side).
func ReceiptStatus(providerStatus string) (s Status, ok bool) {
	switch providerStatus {
	case "sent":
		return StatusSent, true
	case "delivered", "read":
		return StatusDelivered, true
	case "undelivered", "partially_delivered":
		return StatusUndelivered, true
	case "failed", "canceled":
		return StatusFailed, true
	}
	return "", false
}

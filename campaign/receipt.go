package campaign

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Receipt is a provider's later word on a message it took.
type Receipt struct {
	Provider  string
	MessageID string
	// Delivery names the delivery when the provider hands it back (an SMS
	// status callback carries it in its URL). A send whose answer was lost
	// (unknown) has no message id on record and is found this way only.
	Delivery  *DeliveryKey
	Status    Status
	ErrorCode string
	At        time.Time
}

// DeliveryKey identifies a delivery: one per (campaign, subscriber,
// channel).
type DeliveryKey struct {
	CampaignID   string
	SubscriberID int64
	Channel      Channel
}

// DeliveryParam is the query parameter of a status callback URL that
// names its delivery (see CallbackURL).
const DeliveryParam = "d"

// CallbackURL is the status callback URL of delivery k's message: base
// with k in DeliveryParam, so that the receipt finds its delivery even when
// the provider's message id never reached the store. "" stays "".
func CallbackURL(base string, k DeliveryKey) string {
	if base == "" {
		return ""
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + DeliveryParam + "=" + k.String()
}

// String renders k for a URL: "campaign.subscriber.channel".
func (k DeliveryKey) String() string {
	return k.CampaignID + "." + strconv.FormatInt(k.SubscriberID, 10) + "." + string(k.Channel)
}

// ParseDeliveryKey reads what DeliveryKey.String wrote.
func ParseDeliveryKey(s string) (DeliveryKey, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return DeliveryKey{}, fmt.Errorf("delivery key %q: want campaign.subscriber.channel", s)
	}
	if _, err := uuid.Parse(parts[0]); err != nil || len(parts[0]) != 36 {
		return DeliveryKey{}, fmt.Errorf("delivery key %q: campaign is not a UUID", s)
	}
	sub, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || sub <= 0 {
		return DeliveryKey{}, fmt.Errorf("delivery key %q: subscriber is not a positive integer", s)
	}
	ch := Channel(parts[2])
	if ch != ChannelSMS && ch != ChannelPush {
		return DeliveryKey{}, fmt.Errorf("delivery key %q: channel is not sms or push", s)
	}
	return DeliveryKey{CampaignID: strings.ToLower(parts[0]), SubscriberID: sub, Channel: ch}, nil
}

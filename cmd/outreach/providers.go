package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"outreach/config"
	"outreach/provider"
	"outreach/provider/apns"
	"outreach/provider/fcm"
	"outreach/provider/logprov"
	"outreach/provider/twilio"
	"outreach/subscriber"
)

// providers are the concrete senders chosen by configuration. The log
// providers are the default, so a staging box never texts a subscriber by
// accident.
type providers struct {
	SMS    provider.SMSSender
	Push   map[subscriber.Platform]provider.PushSender
	Outbox *logprov.Provider // non-nil when a log provider is in use
	sender string            // the SMS sender the shared rate limit is keyed on
}

func buildProviders(ctx context.Context, cfg *config.Config, log *slog.Logger) (*providers, error) {
	p := &providers{Push: map[subscriber.Platform]provider.PushSender{}, sender: "log"}
	var lp *logprov.Provider
	logProvider := func() *logprov.Provider {
		if lp == nil {
			lp = logprov.New(log)
		}
		return lp
	}
	switch cfg.SMSProvider {
	case "twilio":
		c, err := twilio.New(twilio.Config{AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken,
			From: cfg.TwilioFrom, MessagingServiceSID: cfg.TwilioMessagingServiceSID, BaseURL: cfg.TwilioBaseURL})
		if err != nil {
			return nil, fmt.Errorf("OUTREACH_SMS_PROVIDER=twilio: %w", err)
		}
		p.SMS = c
		p.sender = cfg.TwilioFrom + cfg.TwilioMessagingServiceSID
	default:
		p.SMS = logProvider()
	}
	switch cfg.PushProvider {
	case "native":
		if cfg.FCMCredentials != "" {
			js, err := os.ReadFile(cfg.FCMCredentials)
			if err != nil {
				return nil, fmt.Errorf("OUTREACH_FCM_CREDENTIALS: %w", err)
			}
			c, err := fcm.New(ctx, fcm.Config{CredentialsJSON: js, Endpoint: cfg.FCMEndpoint})
			if err != nil {
				return nil, fmt.Errorf("OUTREACH_FCM_CREDENTIALS: %w", err)
			}
			p.Push[subscriber.PlatformFCM] = c
		}
		if cfg.APNsKey != "" {
			key, err := os.ReadFile(cfg.APNsKey)
			if err != nil {
				return nil, fmt.Errorf("OUTREACH_APNS_KEY: %w", err)
			}
			c, err := apns.New(apns.Config{KeyPEM: key, KeyID: cfg.APNsKeyID, TeamID: cfg.APNsTeamID,
				Topic: cfg.APNsTopic, Host: cfg.APNsHost})
			if err != nil {
				return nil, fmt.Errorf("OUTREACH_APNS_KEY: %w", err)
			}
			p.Push[subscriber.PlatformAPNs] = c
		}
	default:
		l := logProvider()
		p.Push[subscriber.PlatformFCM] = l
		p.Push[subscriber.PlatformAPNs] = l
	}
	p.Outbox = lp
	return p, nil
}

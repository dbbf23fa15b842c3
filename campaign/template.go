package campaign

import "time"

// MessageTemplate is a stored template for one channel and locale. Body,
// Title and Data values use the templates package's syntax.
type MessageTemplate struct {
	ID            string            `json:"id"`
	TenantID      string            `json:"-"`
	Name          string            `json:"name"`
	Channel       Channel           `json:"channel"`
	Locale        string            `json:"locale"`
	Body          string            `json:"body"`
	Title         string            `json:"title,omitempty"`
	Data          map[string]string `json:"data,omitempty"`
	Transliterate bool              `json:"transliterate"`
	CreatedAt     time.Time         `json:"created_at"`
}

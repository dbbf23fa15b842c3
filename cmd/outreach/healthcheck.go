package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"outreach/config"
)

// runHealthcheck asks the local API's /readyz; the container healthcheck
// uses it because the image has no shell or curl.
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer, getenv env) error {
	fs := newFlags("healthcheck", "Exits 0 when the local API answers /readyz with 200.", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.LoadLookup(getenv)
	if err != nil {
		return err
	}
	addr := cfg.HTTPAddr
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /readyz answered %d", resp.StatusCode)
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}

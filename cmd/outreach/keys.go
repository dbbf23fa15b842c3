package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"outreach/config"
	"outreach/tenant"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv env) error {
	fs := newFlags("migrate", "Applies every store migration not applied yet.", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.LoadLookup(getenv)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

const keysUsage = "Usage:\n  outreach keys create --tenant NAME --role admin|marketer|health|viewer\n" +
	"  outreach keys list --tenant NAME\n  outreach keys revoke --tenant NAME --id KEY_ID\n" +
	"  outreach keys install-secret --tenant NAME\n\nRun outreach keys COMMAND --help for one command's flags.\n"

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer, getenv env) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return errors.New("keys: want create, list, revoke or install-secret")
	}
	sub, rest := args[0], args[1:]
	if sub == "help" || sub == "-h" || sub == "--help" {
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	var fs = newFlags("keys "+sub, "", stderr)
	tenantHelp := "tenant name (it must exist)"
	if sub == "create" || sub == "install-secret" {
		tenantHelp = "tenant name (created if it does not exist)"
	}
	name := fs.String("tenant", "", tenantHelp)
	var role, keyID *string
	switch sub {
	case "create":
		fs.Usage = func() {
			fmt.Fprint(stderr, "Usage: outreach keys create --tenant NAME --role ROLE\n\nCreates the tenant if needed and prints a new API key, once, alone on the last line.\n")
			fs.PrintDefaults()
		}
		role = fs.String("role", "", "admin, marketer, health or viewer")
	case "list":
		fs.Usage = func() {
			fmt.Fprint(stderr, "Usage: outreach keys list --tenant NAME\n\nLists the tenant's API keys: id, role and creation time (never a key itself).\n")
			fs.PrintDefaults()
		}
	case "revoke":
		fs.Usage = func() {
			fmt.Fprint(stderr, "Usage: outreach keys revoke --tenant NAME --id KEY_ID\n\nRevokes one of the tenant's API keys: it is refused from the next request on.\n")
			fs.PrintDefaults()
		}
		keyID = fs.String("id", "", "the key's id (keys create and keys list print it)")
	case "install-secret":
		fs.Usage = func() {
			fmt.Fprint(stderr, "Usage: outreach keys install-secret --tenant NAME\n\nSets a new install-callback secret for the tenant and prints it once.\n")
			fs.PrintDefaults()
		}
	default:
		return fmt.Errorf("keys: unknown command %q (want create, list, revoke or install-secret)", sub)
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	switch {
	case *name == "":
		return errors.New("keys: --tenant is required")
	case strings.TrimSpace(*name) != *name || strings.IndexFunc(*name, unicode.IsControl) >= 0 || !utf8.ValidString(*name):
		// The X-Outreach-Tenant header could never name it (and "viettel "
		// would be a second tenant beside "viettel").
		return fmt.Errorf("keys: --tenant %q: no leading or trailing spaces or control characters", *name)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("keys: unexpected arguments %q", fs.Args())
	}
	var r tenant.Role
	if role != nil {
		var err error
		if r, err = tenant.ParseRole(*role); err != nil {
			return fmt.Errorf("keys: --role: %w", err)
		}
	}
	cfg, err := config.LoadLookup(getenv)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, cfg.MigrateOnStart)
	if err != nil {
		return err
	}
	defer st.Close()
	if sub == "list" || sub == "revoke" {
		return listOrRevokeKeys(ctx, st, *name, keyID, stdout, stderr)
	}
	t, err := st.EnsureTenant(ctx, *name)
	if err != nil {
		return fmt.Errorf("tenant %s: %w", *name, err)
	}
	if sub == "install-secret" {
		secret := tenant.NewSecret()
		if err := st.SetInstallSecret(ctx, t.ID, secret); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "install-callback secret for tenant %s (shown once):\n", t.Name)
		fmt.Fprintln(stdout, secret)
		return nil
	}
	plain, hash := tenant.NewKey()
	k := tenant.APIKey{ID: uuid.NewString(), TenantID: t.ID, Role: r, Hash: hash, CreatedAt: time.Now().UTC()}
	if err := st.CreateAPIKey(ctx, k); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "API key %s for tenant %s, role %s (shown once):\n", k.ID, t.Name, r)
	fmt.Fprintln(stdout, plain)
	return nil
}

// listOrRevokeKeys lists the keys of tenant name, or, with keyID, revokes
// that one. Neither creates the tenant.
func listOrRevokeKeys(ctx context.Context, st tenant.Store, name string, keyID *string, stdout, stderr io.Writer) error {
	t, err := st.TenantByName(ctx, name)
	if err != nil {
		return fmt.Errorf("keys: tenant %q: %w", name, err)
	}
	if keyID != nil {
		if *keyID == "" {
			return errors.New("keys: --id is required")
		}
		if err := st.DeleteAPIKey(ctx, t.ID, *keyID); err != nil {
			return fmt.Errorf("keys: revoke %s of tenant %s: %w", *keyID, t.Name, err)
		}
		fmt.Fprintf(stderr, "API key %s of tenant %s revoked\n", *keyID, t.Name)
		return nil
	}
	keys, err := st.APIKeys(ctx, t.ID)
	if err != nil {
		return err
	}
	for _, k := range keys {
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", k.ID, k.Role, k.CreatedAt.UTC().Format(time.RFC3339))
	}
	return nil
}

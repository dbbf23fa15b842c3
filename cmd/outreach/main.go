// Command outreach is the carrier SMS and push outreach campaign engine:
// admin API, workers, migrations, keys, a demo and benchmarks in one binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "outreach:", err)
		os.Exit(1)
	}
}

const usage = `outreach: a carrier SMS and push outreach campaign engine

Usage:
  outreach serve                 API and workers in one process
  outreach api                   the admin API only
  outreach worker                the workers only
  outreach migrate               apply store migrations
  outreach keys create --tenant NAME --role ROLE
                                 create a tenant if needed and print a new API key
  outreach keys list --tenant NAME
                                 list a tenant's API keys (ids and roles, never a key)
  outreach keys revoke --tenant NAME --id KEY_ID
                                 revoke one of them
  outreach keys install-secret --tenant NAME
                                 set and print a tenant's install-callback secret
  outreach healthcheck           exit 0 when the local API is ready (container healthcheck)
  outreach demo                  a self-contained tour on the embedded default
  outreach bench ...             benchmarks (see BENCHMARKS.md)

Configuration comes from OUTREACH_* environment variables (see README.md).
Run "outreach COMMAND --help" for a command's flags.
`

// env looks up one environment variable, as os.LookupEnv does: a variable
// set to "" is not an unset one (OUTREACH_MARKETING_LABEL= means no label).
type env func(string) (string, bool)

// mapEnv is an env over fixed settings (the demo's, a test's).
func mapEnv(vars map[string]string) env {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv env) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve", "api", "worker":
		return runServer(ctx, cmd, rest, stdout, stderr, getenv)
	case "migrate":
		return runMigrate(ctx, rest, stdout, stderr, getenv)
	case "keys":
		return runKeys(ctx, rest, stdout, stderr, getenv)
	case "healthcheck":
		return runHealthcheck(ctx, rest, stdout, stderr, getenv)
	case "demo":
		return runDemo(ctx, rest, stdout, stderr, getenv)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// newFlags returns a flag set whose --help prints the command's summary.
func newFlags(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("outreach "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: outreach %s\n\n%s\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses a command's flags; the commands take no other
// arguments, and one given (a listen address, a URL) would otherwise be
// ignored without a word.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q (settings come from OUTREACH_* variables; see --help)",
			strings.TrimPrefix(fs.Name(), "outreach "), fs.Args())
	}
	return nil
}

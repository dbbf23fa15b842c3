package chaos

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"outreach/internal/testenv"
)

// binary is the outreach binary TestMain built, or "" with buildErr saying
// why not.
var (
	binary   string
	buildErr error
)

// TestMain builds cmd/outreach once, from the module root, into a temporary
// directory that it removes at the end. It builds only when the real
// services are configured (or required): without them every test skips.
func TestMain(m *testing.M) {
	var dir string
	if os.Getenv(testenv.PostgresVar) != "" || os.Getenv(testenv.RedisVar) != "" ||
		os.Getenv(testenv.RequireVar) == "1" {
		dir, binary, buildErr = build()
	}
	// The scenarios mostly wait (for outages, leases, backoffs): four run
	// at once unless -test.parallel says otherwise.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		flag.Set("test.parallel", strconv.Itoa(scenariosAtOnce))
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// scenariosAtOnce is how many scenarios run in parallel by default.
const scenariosAtOnce = 4

func build() (dir, bin string, err error) {
	root, err := moduleRoot()
	if err != nil {
		return "", "", err
	}
	dir, err = os.MkdirTemp("", "outreach-chaos-")
	if err != nil {
		return "", "", err
	}
	bin = filepath.Join(dir, "tmp", "outreach")
	args := []string{"build"}
	// OUTREACH_CHAOS_RACE=1 builds the processes under test with the race
	// detector too (slower: use it with a lower OUTREACH_SMS_RATE in mind).
	if os.Getenv("OUTREACH_CHAOS_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "-o", bin, "./cmd/outreach")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return dir, "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	fmt.Fprintf(os.Stderr, "chaos: built %s in %v\n", bin, time.Since(start).Round(time.Millisecond))
	return dir, bin, nil
}

// moduleRoot is the directory of the go.mod above the package.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a module")
	}
	return filepath.Dir(mod), nil
}

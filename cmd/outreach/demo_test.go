package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestTheDemoRunsTheWholeTourAndPrintsTheAdoptionReport(t *testing.T) {
	var out bytes.Buffer
	dir := filepath.Join(t.TempDir(), "not", "yet") // --dir is created
	noEnv := func(string) (string, bool) { return "", false }
	err := realMain(context.Background(), []string{"demo", "--subscribers", "400", "--dir", dir}, &out, io.Discard, noEnv)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	// A second run on the same directory would count nothing (everyone
	// installed and paid already): it is refused, saying why.
	if err := realMain(context.Background(), []string{"demo", "--subscribers", "400", "--dir", dir}, io.Discard, io.Discard,
		noEnv); err == nil || !strings.Contains(err.Error(), "earlier run") {
		t.Errorf("a second demo in the same --dir: %v, want refused", err)
	}
	for _, want := range []string{"install campaign completed", "exposure alert to 200 contacts delivered",
		"installs reported", "rewards:", "Adoption by region", "Đà Nẵng", "National:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	// Skip reasons read as words, not a Go map.
	if !regexp.MustCompile(`install campaign completed: \d+ sent, \d+ skipped \(no_device \d+`).MatchString(out.String()) ||
		strings.Contains(out.String(), "map[") {
		t.Errorf("the install campaign's line does not read as words:\n%s", out.String())
	}
	// Every granted reward was confirmed by SMS, once.
	m := regexp.MustCompile(`rewards: (\d+) granted.*; (\d+) confirmation SMS sent`).FindStringSubmatch(out.String())
	if m == nil || m[1] != m[2] || m[1] == "0" {
		t.Errorf("granted rewards and confirmations: %q, want as many of each, more than none", m)
	}
}

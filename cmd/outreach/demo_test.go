package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

func TestTheDemoRunsTheWholeTourAndPrintsTheAdoptionReport(t *testing.T) {
	var out bytes.Buffer
	err := realMain(context.Background(), []string{"demo", "--subscribers", "400", "--dir", t.TempDir()}, &out, io.Discard,
		func(string) string { return "" })
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"install campaign completed", "exposure alert to 200 contacts delivered",
		"installs reported", "rewards:", "Adoption by region", "Đà Nẵng", "National:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

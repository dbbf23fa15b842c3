package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
)

// An operator lists a tenant's keys (ids and roles, never a key) and
// revokes a leaked one: the API refuses it from the next request on, and
// the tenant's other keys go on working. Neither command creates a tenant.
func TestAKeyIsListedAndRevoked(t *testing.T) {
	getenv, base := embedded(t)
	keyOf := func(tenantName, role string) (key, id string) {
		var out, errb bytes.Buffer
		if err := realMain(context.Background(), []string{"keys", "create", "--tenant", tenantName, "--role", role}, &out, &errb, getenv); err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`API key (\S+) for tenant`).FindStringSubmatch(errb.String())
		if m == nil {
			t.Fatalf("keys create printed %q: no id", errb.String())
		}
		return strings.TrimSpace(out.String()), m[1]
	}
	leaked, leakedID := keyOf("viettel", "marketer")
	kept, keptID := keyOf("viettel", "admin")
	_, otherID := keyOf("mobifone", "admin")
	keys := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := realMain(context.Background(), append([]string{"keys"}, args...), &out, io.Discard, getenv)
		return out.String(), err
	}
	list, err := keys("list", "--tenant", "viettel")
	if err != nil || !strings.Contains(list, leakedID+"\tmarketer\t") || !strings.Contains(list, keptID+"\tadmin\t") ||
		strings.Contains(list, otherID) || strings.Contains(list, leaked) || strings.Contains(list, kept) {
		t.Fatalf("keys list: %v\n%s", err, list)
	}

	serve(t, getenv)
	waitReady(t, base)
	status := func(key string) int {
		return client{t: t, base: base, key: key}.do("GET", "/v1/campaigns", "", nil, nil)
	}
	if status(leaked) != 200 {
		t.Fatal("the key does not work before it is revoked")
	}
	if _, err := keys("revoke", "--tenant", "viettel", "--id", otherID); err == nil {
		t.Error("another tenant's key was revoked")
	}
	if _, err := keys("revoke", "--tenant", "viettel", "--id", leakedID); err != nil {
		t.Fatal(err)
	}
	if got := status(leaked); got != 401 {
		t.Errorf("a revoked key: %d, want 401", got)
	}
	if got := status(kept); got != 200 {
		t.Errorf("the tenant's other key: %d, want 200", got)
	}
	if list, _ := keys("list", "--tenant", "viettel"); strings.Contains(list, leakedID) || !strings.Contains(list, keptID) {
		t.Errorf("keys list after the revocation:\n%s", list)
	}
	if _, err := keys("list", "--tenant", "nobody"); err == nil {
		t.Error("keys list of an unknown tenant: no error")
	}
	if _, err := keys("revoke", "--tenant", "viettel"); err == nil {
		t.Error("keys revoke without --id: no error")
	}
}

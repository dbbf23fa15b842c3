package storesql

import (
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
)

// Pending lists the migrations in fsys (migrations/*.sql, named by their
// version) that are not in applied, oldest first. A version in applied that
// fsys does not hold is an error (see Newer).
func Pending(fsys fs.FS, applied []string) ([]string, error) {
	versions, err := Versions(fsys)
	if err != nil {
		return nil, err
	}
	if err := Newer(versions, applied); err != nil {
		return nil, err
	}
	var out []string
	for _, v := range versions {
		if !slices.Contains(applied, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// Versions lists the migrations in fsys by version, oldest first.
func Versions(fsys fs.FS) ([]string, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	for i, name := range names {
		names[i] = strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
	}
	return names, nil
}

// Newer refuses a database that holds a migration this binary does not
// know: a newer version of outreach migrated it (a rollback, or an old
// process started after a new one's upgrade), and this one would write rows
// the new schema refuses, or read columns wrong.
func Newer(versions, applied []string) error {
	var unknown []string
	for _, v := range applied {
		if !slices.Contains(versions, v) {
			unknown = append(unknown, v)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return fmt.Errorf("the database holds migration %s, which this binary does not know: "+
		"a newer version of outreach migrated it; run that version or a later one (this binary knows up to %s)",
		strings.Join(unknown, ", "), versions[len(versions)-1])
}

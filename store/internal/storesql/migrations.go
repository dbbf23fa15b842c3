package storesql

import (
	"io/fs"
	"slices"
	"sort"
	"strings"
)

// Pending lists the migrations in fsys (migrations/*.sql, named by their
// version) that are not in applied, oldest first.
func Pending(fsys fs.FS, applied []string) ([]string, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []string
	for _, name := range names {
		if v := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql"); !slices.Contains(applied, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

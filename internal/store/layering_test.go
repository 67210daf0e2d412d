package store_test

import (
	"go/build"
	"strings"
	"testing"
)

// TestBackendsDoNotImportTheDomain keeps this package the leaf that the backends and the domain
// share: a backend that imports a domain package (token, tenant, keys) to reach a type has put the
// type in the wrong place, and an import cycle or a backend that knows the domain's rules follows.
func TestBackendsDoNotImportTheDomain(t *testing.T) {
	const module = "github.com/tokenauthority/tokenauthority/"
	allowed := map[string]bool{
		module + "internal/store":      true,
		module + "internal/revocation": true, // the event log's record type
	}
	for _, dir := range []string{".", "memory", "redis"} {
		pkg, err := build.Default.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("read package in %s: %v", dir, err)
		}
		for _, imp := range pkg.Imports {
			if strings.HasPrefix(imp, module) && !allowed[imp] {
				t.Errorf("store package %s imports %s; the store's shared types belong in internal/store", pkg.ImportPath, imp)
			}
		}
	}
}

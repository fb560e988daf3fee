package freshhost

import (
	"testing"

	"github.com/regctl/regctl/internal/testenv"
)

// StaticRegctl is testenv.BuildStaticRegctl: the regctl binary for a host
// to run (bind it in with Options.Binds). `regctl init` copies itself into
// a FROM scratch image and refuses a dynamically linked binary.
func StaticRegctl(t testing.TB) string {
	t.Helper()
	return testenv.BuildStaticRegctl(t)
}

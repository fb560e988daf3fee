package cli

import (
	"runtime/debug"
	"testing"

	"github.com/regctl/regctl/internal/cli/cmdutil"
)

func TestVersionFrom(t *testing.T) {
	info := func(version string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Path: "github.com/regctl/regctl", Version: version}, Settings: settings}, true
		}
	}
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "6cce245e0f4c1a2b3c4d5e6f708192a3b4c5d6e7"}
	at := debug.BuildSetting{Key: "vcs.time", Value: "2026-12-06T11:14:41Z"}
	tests := []struct {
		name    string
		stamped string
		read    func() (*debug.BuildInfo, bool)
		want    string
	}{
		{"make build keeps its stamp", "v0.3.0-2-g6cce245", info("v0.0.0-20261206111441-6cce245e0f4c", rev, at), "v0.3.0-2-g6cce245"},
		{"go install of a tag", "dev", info("v0.3.0"), "v0.3.0"},
		{"go build in a clean checkout", "dev", info("v0.0.0-20261206111441-6cce245e0f4c", rev, at, debug.BuildSetting{Key: "vcs.modified", Value: "false"}),
			"v0.0.0-20261206111441-6cce245e0f4c (revision 6cce245e0f4c1a2b3c4d5e6f708192a3b4c5d6e7, 2026-12-06T11:14:41Z)"},
		{"go build with local changes", "dev", info("v0.0.0-20261206111441-6cce245e0f4c+dirty", rev, at, debug.BuildSetting{Key: "vcs.modified", Value: "true"}),
			"v0.0.0-20261206111441-6cce245e0f4c+dirty (revision 6cce245e0f4c1a2b3c4d5e6f708192a3b4c5d6e7, 2026-12-06T11:14:41Z, modified)"},
		{"build without VCS stamping", "dev", info("(devel)"), "(devel)"},
		{"no module version", "dev", info("", rev), "dev (revision 6cce245e0f4c1a2b3c4d5e6f708192a3b4c5d6e7)"},
		{"no build info", "dev", func() (*debug.BuildInfo, bool) { return nil, false }, "dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionFrom(tt.stamped, tt.read); got != tt.want {
				t.Errorf("versionFrom(%q) = %q, want %q", tt.stamped, got, tt.want)
			}
		})
	}
}

// TestVersionFlag checks that `regctl --version` prints what displayVersion
// says, in cobra's "regctl version V" line.
func TestVersionFlag(t *testing.T) {
	ios, _, out, _ := cmdutil.Test()
	if code := Execute(t.Context(), cmdutil.NewFactory(ios), []string{"--version"}); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	want := "regctl version " + displayVersion() + "\n"
	if got := out.String(); got != want {
		t.Errorf("--version printed %q, want %q", got, want)
	}
}

package cli

import (
	"runtime/debug"
	"strings"
)

// displayVersion is what `regctl --version` prints after "regctl version ".
// A make build stamps Version with -ldflags (git describe), and that is
// shown as it is. Any other build (go build, go install) leaves Version at
// "dev"; then the module version and the VCS revision recorded in the
// binary's build info say what it was built from.
func displayVersion() string {
	return versionFrom(Version, debug.ReadBuildInfo)
}

// versionFrom is displayVersion with its inputs passed in, for tests.
func versionFrom(stamped string, readBuildInfo func() (*debug.BuildInfo, bool)) string {
	if stamped != "dev" {
		return stamped
	}
	bi, ok := readBuildInfo()
	if !ok || bi == nil {
		return stamped
	}
	v := bi.Main.Version
	if v == "" {
		v = stamped
	}
	var rev, vcsTime string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			vcsTime = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return v
	}
	details := []string{"revision " + rev}
	if vcsTime != "" {
		details = append(details, vcsTime)
	}
	if modified {
		details = append(details, "modified")
	}
	return v + " (" + strings.Join(details, ", ") + ")"
}

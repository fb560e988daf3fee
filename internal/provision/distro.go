package provision

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// OSReleaseFile describes the running system (os-release(5)).
const OSReleaseFile = "/etc/os-release"

// Distro is the system init runs on, from /etc/os-release.
type Distro struct {
	ID        string // "ubuntu", "debian"
	VersionID string // "24.04", "13"
	Pretty    string // PRETTY_NAME, for messages
}

// ParseOSRelease reads the contents of /etc/os-release.
func ParseOSRelease(b []byte) Distro {
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			kv[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	d := Distro{ID: kv["ID"], VersionID: kv["VERSION_ID"], Pretty: kv["PRETTY_NAME"]}
	if d.Pretty == "" {
		d.Pretty = strings.TrimSpace(d.ID + " " + d.VersionID)
	}
	return d
}

// SupportedSystems names the systems init provisions, for messages.
const SupportedSystems = "Ubuntu 22.04 and 24.04, Debian 12 and 13"

// Supported reports whether init provisions this system.
func (d Distro) Supported() bool {
	switch d.ID {
	case "ubuntu":
		return d.VersionID == "22.04" || d.VersionID == "24.04"
	case "debian":
		return d.VersionID == "12" || d.VersionID == "13"
	}
	return false
}

// DockerPackages are the packages that give this system dockerd, the
// docker CLI and the Compose v2 plugin (`docker compose`), from its own
// archive. haveDockerCE says Docker's own docker-ce is installed, which
// takes its plugin from Docker's repository.
//
//   - Ubuntu: docker.io (engine and CLI) and docker-compose-v2.
//   - Debian 13: docker.io (the engine only), docker-cli, and
//     docker-compose, which is the v2 plugin there.
//   - Debian 12: its docker-compose is Compose v1, a separate Python
//     program, and it has no v2 plugin: Docker's own packages are needed.
func (d Distro) DockerPackages(haveDockerCE bool) ([]string, error) {
	if haveDockerCE {
		return []string{"docker-compose-plugin"}, nil
	}
	switch {
	case d.ID == "ubuntu":
		return []string{"docker.io", "docker-compose-v2"}, nil
	case d.ID == "debian" && d.VersionID == "12":
		return nil, fmt.Errorf("%s has no package of Docker Compose v2 (its docker-compose is v1): install Docker's docker-ce and docker-compose-plugin from Docker's apt repository, then run regctl init again", d.Pretty)
	case d.ID == "debian":
		return []string{"docker.io", "docker-cli", "docker-compose"}, nil
	}
	return nil, fmt.Errorf("%s: no known Docker packages (regctl init supports %s); install Docker with the Compose v2 plugin, then run regctl init again", d.Pretty, SupportedSystems)
}

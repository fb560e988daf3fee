#!/usr/bin/env bash
# Installs and builds everything the test suite needs that is not Go code of
# regctl itself: Debian packages (dockerd, skopeo, distribution 2.8, nginx,
# ufw, fail2ban, logrotate, postgresql, and the interop matrix's podman,
# buildah and containerd with ctr) and, cached under ~/.cache keyed by version, the test
# servers and clients built from the Go module proxy (FerretDB, distribution
# v3.1.2 and v3.0.0, crane, pebble, pebble-challtestsrv, regclient's CLI,
# ORAS, Helm, versitygw) and the linter `make lint` runs (golangci-lint,
# printed as GOLANGCI_LINT).
#
# Prints one line per binary: NAME=PATH, suitable for `eval`.
set -euo pipefail

FERRETDB_VERSION=v1.24.2
DISTRIBUTION_VERSION=v3.1.2
# The interop matrix (internal/interop) also runs the first v3 release.
DISTRIBUTION_V30_VERSION=v3.0.0
CRANE_VERSION=v0.22.1
REGCLIENT_VERSION=v0.11.7
ORAS_VERSION=v1.3.6
# Takes about 4.5 minutes to build: cached like the rest.
HELM_VERSION=v4.3.2
PEBBLE_VERSION=v2.10.3
# The scale-out test's S3 server (internal/systest/scaleout_test.go).
VERSITYGW_VERSION=v1.8.0
# Needs go >= 1.26.0 (its go.mod); bump with .golangci.yml's findings fixed.
GOLANGCI_LINT_VERSION=v2.15.0

cache=${REGCTL_TEST_CACHE:-$HOME/.cache/regctl-test}
mkdir -p "$cache"

log() { printf 'test-deps: %s\n' "$*" >&2; }

# postgresql: the scale-out test's store (FerretDB on a primary and a hot
# standby, internal/systest/scaleout_test.go).
apt_pkgs=(docker.io skopeo docker-registry nginx-light ufw fail2ban logrotate podman buildah containerd postgresql)
missing=()
for p in "${apt_pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	log "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Installing must not start the packages' services (nginx on :80,
	# docker-registry on :5000, dockerd, fail2ban): the tests start their own,
	# on loopback only. policy-rc.d exit 101 tells invoke-rc.d "not now".
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# build_cached NAME VERSION CMD... and go_install PKG@VERSION
source "$(dirname "${BASH_SOURCE[0]}")/build-cached.sh"

build_ferretdb() {
	# The module zip lacks build/version/version.txt, which the binary needs at
	# start, so build from a writable copy of the module source.
	local src tmp
	src=$(cd "$cache" && GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
	tmp=$(mktemp -d)
	cp -r "$src/." "$tmp"
	chmod -R u+w "$tmp"
	echo "$FERRETDB_VERSION" >"$tmp/build/version/version.txt"
	(cd "$tmp" && go build -trimpath -o "$out.tmp" ./cmd/ferretdb)
	mv "$out.tmp" "$out"
	rm -rf "$tmp"
}

build_cached ferretdb "$FERRETDB_VERSION" build_ferretdb
build_cached registry "$DISTRIBUTION_VERSION" go_install "github.com/distribution/distribution/v3/cmd/registry@$DISTRIBUTION_VERSION"
# v3.0.0 lives beside v3.1.2 as registry-v3.0.0/registry; it is printed
# as REGISTRY_V30, since build_cached names both REGISTRY.
registry30=$(build_cached registry "$DISTRIBUTION_V30_VERSION" go_install "github.com/distribution/distribution/v3/cmd/registry@$DISTRIBUTION_V30_VERSION")
echo "REGISTRY_V30=${registry30#REGISTRY=}"
build_cached crane "$CRANE_VERSION" go_install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
build_cached pebble "$PEBBLE_VERSION" go_install "github.com/letsencrypt/pebble/v2/cmd/pebble@$PEBBLE_VERSION"
build_cached pebble-challtestsrv "$PEBBLE_VERSION" go_install "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$PEBBLE_VERSION"
# regclient's binary is also called regctl: it is installed as regclient.
build_regclient() {
	local bin
	bin=$(mktemp -d)
	GOBIN=$bin go install "github.com/regclient/regclient/cmd/regctl@$REGCLIENT_VERSION"
	mv "$bin/regctl" "$out"
	rm -rf "$bin"
}
build_cached regclient "$REGCLIENT_VERSION" build_regclient
build_cached versitygw "$VERSITYGW_VERSION" go_install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
build_cached oras "$ORAS_VERSION" go_install "oras.land/oras/cmd/oras@$ORAS_VERSION"
build_cached helm "$HELM_VERSION" go_install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
build_cached golangci-lint "$GOLANGCI_LINT_VERSION" go_install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION"

# The fresh-host system test (internal/testenv/freshhost) boots throwaway
# hosts with systemd-nspawn: its own script installs what that needs.
"$(dirname "${BASH_SOURCE[0]}")/freshhost-deps.sh"

#!/usr/bin/env bash
# Builds regctl's release files (`make dist` runs it, with VERSION and
# LDFLAGS from the Makefile):
#
#   scripts/dist.sh OUTDIR ARCH...     (ARCH: amd64, arm64)
#
# For each ARCH, into OUTDIR:
#   regctl-linux-ARCH          static binary (CGO_ENABLED=0, -trimpath), as
#                              `make build` stamps it
#   regctl_DEBVERSION_ARCH.deb packaging/nfpm.yaml: that binary as
#                              /usr/bin/regctl, man pages, bash/zsh/fish
#                              completions, the example config
# then OUTDIR/SHA256SUMS over all of them (check with sha256sum -c), and
# prints their paths. Earlier release files in OUTDIR are removed first.
#
# nfpm is built once from the Go module proxy, cached under
# ${REGCTL_BUILD_CACHE:-~/.cache/regctl-build}/nfpm-VERSION. Timestamps
# come from the last commit (SOURCE_DATE_EPOCH), so the same commit builds
# the same packages. MAINTAINER overrides the packages' Maintainer field.
set -euo pipefail

NFPM_VERSION=v2.48.0

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'dist: %s\n' "$*" >&2; }

if (($# < 2)); then
	echo "usage: VERSION=... LDFLAGS=... $0 OUTDIR ARCH... (run make dist)" >&2
	exit 2
fi
: "${VERSION:?set VERSION (make dist sets it from git describe)}"
: "${LDFLAGS:?set LDFLAGS (make dist sets it; -X stamps the version)}"
outdir=$1
shift
archs=("$@")
: "${MAINTAINER:=regctl maintainers <maintainers@regctl.invalid>}"

# deb_version VERSION: git describe's output as a Debian version, which
# must start with a digit and sort in release order:
#   v1.2.3             1.2.3
#   v1.2.3-rc1         1.2.3~rc1            (before 1.2.3)
#   v1.2.3-4-gabc1234  1.2.3+4.gabc1234     (after 1.2.3, before 1.2.4)
#   abc1234 (no tag)   0.0.0+N.gabc1234     (N commits: later sorts later)
#   a -dirty suffix    +dirty, or .dirty after a +
deb_version() {
	local v=${1#v} dirty= snap=
	if [[ $v == *-dirty ]]; then
		dirty=1
		v=${v%-dirty}
	fi
	if [[ $v =~ ^(.*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
		v=${BASH_REMATCH[1]}
		snap="${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}"
	elif [[ $v =~ ^[0-9a-f]{7,}$ ]]; then
		snap="$(git rev-list --count "$v" 2>/dev/null || echo 0).g$v"
		v=0.0.0
	fi
	if [[ ! $v =~ ^[0-9] ]]; then
		snap=${snap:-${v//[^A-Za-z0-9.]/.}}
		v=0.0.0
	fi
	v=${v//-/\~}
	[[ -n $snap ]] && v+="+$snap"
	if [[ -n $dirty ]]; then
		[[ $v == *+* ]] && v+=.dirty || v+=+dirty
	fi
	echo "$v"
}

debv=$(deb_version "$VERSION")
if command -v dpkg >/dev/null; then
	dpkg --validate-version "$debv" || { log "version $VERSION gave $debv, which dpkg refuses"; exit 1; }
fi

cache=${REGCTL_BUILD_CACHE:-$HOME/.cache/regctl-build}
source scripts/build-cached.sh
eval "$(build_cached nfpm "$NFPM_VERSION" go_install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION")"

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export CGO_ENABLED=0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$outdir"
rm -f "$outdir"/regctl-linux-* "$outdir"/regctl_*.deb "$outdir/SHA256SUMS"

# Man pages and completions are the same for every architecture: build the
# generator for this machine, stamped like the binaries (the pages' footer
# names the version).
log "man pages and completions (regctl-docgen)"
env -u GOOS -u GOARCH go run -trimpath -ldflags "$LDFLAGS" ./cmd/regctl-docgen -out "$tmp/docs"

files=()
for arch in "${archs[@]}"; do
	bin=regctl-linux-$arch
	deb=regctl_${debv}_$arch.deb
	log "$bin ($VERSION)"
	GOOS=linux GOARCH=$arch go build -trimpath -ldflags "$LDFLAGS" -o "$outdir/$bin" ./cmd/regctl
	log "$deb"
	ARCH=$arch DEB_VERSION=$debv BIN=$outdir/$bin DOCS=$tmp/docs MAINTAINER=$MAINTAINER \
		"$NFPM" package --config packaging/nfpm.yaml --packager deb --target "$outdir/$deb" >&2
	files+=("$bin" "$deb")
done
(cd "$outdir" && sha256sum "${files[@]}" >SHA256SUMS)
for f in "${files[@]}" SHA256SUMS; do
	echo "$outdir/$f"
done

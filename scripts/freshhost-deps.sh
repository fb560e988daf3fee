#!/usr/bin/env bash
# Installs, idempotently, the Debian packages the fresh-host system test
# (internal/testenv/freshhost) needs on the outer machine: debootstrap (builds
# the cached trixie rootfs), systemd-container (systemd-nspawn boots it),
# dpkg-dev (dpkg-scanpackages indexes the local apt repository), iproute2
# (network namespaces and veth pairs) and util-linux (nsenter).
#
# Called by scripts/test-deps.sh; safe to run alone. Needs root. Prints
# nothing on stdout (test-deps.sh's stdout is NAME=PATH lines).
set -euo pipefail

log() { printf 'freshhost-deps: %s\n' "$*" >&2; }

pkgs=(debootstrap systemd-container dpkg-dev iproute2 util-linux)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]})) || exit 0
log "apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Installing must start no service on this machine (systemd-container ships
# units; there is no systemd here anyway). policy-rc.d exit 101 says "not now".
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 0755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

#!/usr/bin/env bash
# Builds, once, what the fresh-host system test (internal/testenv/freshhost)
# boots and loads, and caches it under $REGCTL_TEST_CACHE/freshhost
# (default ~/.cache/regctl-test/freshhost):
#
#   base-KEY/          Debian trixie, debootstrap --variant=minbase
#   rootfs-bare-KEY/   base + systemd, systemd-sysv, dbus, iproute2,
#                      ca-certificates, procps: a fresh host without docker
#   repo-KEY/          a flat apt repository (Packages.gz) with every .deb
#                      the bare host lacks for docker.io, docker-cli,
#                      docker-compose, ufw, fail2ban, logrotate... (with and
#                      without recommends), plus a stand-in docker-compose-v2
#                      (Ubuntu's package name; depends on docker-compose and
#                      docker-cli)
#   rootfs-full-KEY/   bare + those packages, installed from repo-KEY
#   images-KEY/        docker-archive tarballs for `docker load`:
#                      nginx.tar     regctl-test/nginx:trixie
#                      registry.tar  regctl-test/registry:3.1.2
#                      ferretdb.tar  regctl-test/ferretdb:1.24.2
#   bin/               static (CGO_ENABLED=0) registry and ferretdb builds
#
# KEY is a hash of the release, the package lists and BUILD_REV (bump it when
# the recipe changes), chained so that a new base rebuilds everything on top.
# Each artifact is built in a temporary directory and renamed into place, so
# an interrupted build leaves nothing half-made behind; a lock serialises
# concurrent runs. Everything already cached is reused.
#
# Packages come from the Debian mirror this machine's own apt configuration
# names (the URIs of the stanza whose Suites include this machine's release);
# REGCTL_TEST_DEBIAN_MIRROR overrides it. Only this build, on this machine,
# downloads: the booted hosts get no route out, and no cached rootfs keeps an
# apt source or resolv.conf pointing anywhere.
#
# Prints NAME=PATH lines on stdout (FRESHHOST_ROOTFS_BARE, FRESHHOST_ROOTFS_FULL,
# FRESHHOST_REPO, FRESHHOST_IMAGE_NGINX, FRESHHOST_IMAGE_REGISTRY,
# FRESHHOST_IMAGE_FERRETDB, FRESHHOST_REGISTRY_BIN); progress and timings go to stderr. Needs root,
# debootstrap, dpkg-scanpackages, unshare and Go (scripts/freshhost-deps.sh
# installs the packages).
set -euo pipefail

RELEASE=trixie
BUILD_REV=1
DISTRIBUTION_VERSION=v3.1.2
FERRETDB_VERSION=v1.24.2
NGINX_TAG=regctl-test/nginx:trixie
REGISTRY_TAG=regctl-test/registry:${DISTRIBUTION_VERSION#v}
FERRETDB_TAG=regctl-test/ferretdb:${FERRETDB_VERSION#v}

BARE_PKGS=(systemd systemd-sysv dbus iproute2 ca-certificates procps)
# What `regctl init` installs, what the full variant has preinstalled and
# the local repository serves (with their dependencies).
FULL_PKGS=(docker.io docker-cli docker-compose containerd runc iptables ufw fail2ban logrotate python3)
NGINX_PKGS=(nginx wget)
# Units a throwaway test host must not run: the apt timers would take the
# dpkg lock (and try the network) whenever they please.
MASK_UNITS=(apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer)

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	PATH=$PATH:/usr/local/go/bin
fi
export LC_ALL=C

cache=${REGCTL_TEST_CACHE:-$HOME/.cache/regctl-test}/freshhost
mkdir -p "$cache"

log() { printf 'freshhost-build: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

# timed WHAT CMD...: runs CMD and logs how long it took.
timed() {
	local what=$1 start=$SECONDS
	shift
	log "$what ..."
	"$@"
	log "$what: $((SECONDS - start))s"
}

exec 9>"$cache/.lock"
flock 9

# Leftovers of builds that were interrupted (we hold the lock: no build runs).
for d in "$cache"/tmp.*; do
	[[ -e $d ]] || continue
	log "removing the leftover $d"
	rm -rf --one-file-system "$d"
done

# debian_mirror prints the URI apt on this machine uses for its own release.
debian_mirror() {
	if [[ -n ${REGCTL_TEST_DEBIAN_MIRROR:-} ]]; then
		echo "$REGCTL_TEST_DEBIAN_MIRROR"
		return
	fi
	local rel f uri
	rel=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[[ -n $rel ]] || die "no VERSION_CODENAME in /etc/os-release"
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		# deb822: blank-line separated stanzas; the first whose Suites
		# holds $rel exactly and whose Types holds deb.
		uri=$(awk -v rel="$rel" '
			BEGIN { RS = ""; FS = "\n" }
			{
				uri = ""; suite = 0; deb = 0
				for (i = 1; i <= NF; i++) {
					n = split($i, w, /[ \t]+/)
					if (w[1] == "URIs:") uri = w[2]
					if (w[1] == "Suites:") for (j = 2; j <= n; j++) if (w[j] == rel) suite = 1
					if (w[1] == "Types:") for (j = 2; j <= n; j++) if (w[j] == "deb") deb = 1
				}
				if (uri != "" && suite && deb) { print uri; exit }
			}' "$f")
		if [[ -n $uri ]]; then
			echo "$uri"
			return
		fi
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -r $f ]] || continue
		# deb [options] URI SUITE COMPONENTS...
		uri=$(awk -v rel="$rel" '
			$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
				if ($(i + 1) == rel) { print $i; exit }
			}' "$f")
		if [[ -n $uri ]]; then
			echo "$uri"
			return
		fi
	done
	die "no apt source for $rel found in /etc/apt (set REGCTL_TEST_DEBIAN_MIRROR)"
}

key() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }

# in_root DIR CMD...: runs CMD chrooted in DIR, in new mount and PID
# namespaces (so /proc and anything a maintainer script starts go away with
# it), with a clean environment.
in_root() {
	local dir=$1
	shift
	unshare --mount --pid --fork --kill-child --mount-proc="$dir/proc" \
		chroot "$dir" /usr/bin/env -i \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# online DIR: points DIR's apt at the mirror and its resolver at this
# machine's, and forbids maintainer scripts to start services (no systemd
# runs in a chroot: invoke-rc.d would start them right here).
online() {
	printf 'deb %s %s main\n' "$MIRROR" "$RELEASE" >"$1/etc/apt/sources.list"
	rm -f "$1/etc/resolv.conf"
	cat /etc/resolv.conf >"$1/etc/resolv.conf"
	no_services "$1"
}

no_services() {
	printf '#!/bin/sh\nexit 101\n' >"$1/usr/sbin/policy-rc.d"
	chmod 0755 "$1/usr/sbin/policy-rc.d"
	# A tree that is thrown away if the build fails needs no fsync.
	echo force-unsafe-io >"$1/etc/dpkg/dpkg.cfg.d/freshhost-unsafe-io"
}

# offline DIR: undoes online and drops what apt downloaded, so the cached
# tree names no mirror and resolves nothing.
offline() {
	local dir=$1
	rm -f "$dir/etc/apt/sources.list" "$dir/usr/sbin/policy-rc.d" "$dir/etc/dpkg/dpkg.cfg.d/freshhost-unsafe-io"
	rm -rf "$dir/etc/apt/sources.list.d/"* "$dir/var/lib/apt/lists/"* "$dir/var/cache/apt/"*.bin
	find "$dir/var/cache/apt/archives" -name '*.deb' -delete
	printf '# A throwaway test host: no DNS, and no route out.\n' >"$dir/etc/resolv.conf"
	rm -f "$dir/etc/hostname" "$dir/etc/mailname"
	rm -rf "$dir/debootstrap" "$dir/tmp/"* "$dir/var/tmp/"*
}

# host_fixups DIR: what a rootfs needs to boot as many distinct test hosts.
host_fixups() {
	local dir=$1 u
	# systemd generates a machine ID at boot when the file is empty (and
	# keeps it in a persistent host's upper layer).
	: >"$dir/etc/machine-id"
	rm -f "$dir/var/lib/dbus/machine-id"
	ln -s /etc/machine-id "$dir/var/lib/dbus/machine-id"
	# No /etc/hostname: the host is named after its machine name.
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$dir/etc/hosts"
	for u in "${MASK_UNITS[@]}"; do
		ln -sf /dev/null "$dir/etc/systemd/system/$u"
	done
	# Logs on the console are read by the harness, not a terminal.
	mkdir -p "$dir/etc/systemd/system.conf.d"
	printf '[Manager]\nShowStatus=yes\nDefaultTimeoutStopSec=20s\n' >"$dir/etc/systemd/system.conf.d/freshhost.conf"
	offline "$dir"
}

# copy SRC DST: a full copy of a cached tree (reflinked where the file
# system can).
copy() { cp -a --reflink=auto "$1" "$2"; }

# publish TMP FINAL: the atomic end of every build.
publish() {
	mv -T "$1" "$2"
	log "cached $2 ($(du -sh "$2" | cut -f1))"
}

MIRROR=
need_mirror() {
	[[ -n $MIRROR ]] && return
	MIRROR=$(debian_mirror)
	log "Debian mirror: the one this machine's apt uses for $(. /etc/os-release && echo "$VERSION_CODENAME")"
}

k_base=$(key rev=$BUILD_REV release=$RELEASE base)
k_bare=$(key "$k_base" bare "${BARE_PKGS[@]}" "${MASK_UNITS[@]}")
k_repo=$(key "$k_bare" repo "${FULL_PKGS[@]}")
k_full=$(key "$k_repo" full "${FULL_PKGS[@]}")
k_images=$(key "$k_base" images "${NGINX_PKGS[@]}" "$DISTRIBUTION_VERSION" "$FERRETDB_VERSION" "$NGINX_TAG" "$REGISTRY_TAG" "$FERRETDB_TAG")
base=$cache/base-$k_base
bare=$cache/rootfs-bare-$k_bare
repo=$cache/repo-$k_repo
full=$cache/rootfs-full-$k_full
images=$cache/images-$k_images
bin=$cache/bin

# --- static Go binaries for the images --------------------------------------

registry_bin=$bin/registry-$DISTRIBUTION_VERSION
ferretdb_bin=$bin/ferretdb-$FERRETDB_VERSION

build_registry() {
	local tmp
	tmp=$(mktemp -d "$cache/tmp.XXXXXX")
	(cd "$tmp" && CGO_ENABLED=0 GOBIN=$tmp go install -trimpath \
		-ldflags "-s -w -X github.com/distribution/distribution/v3/version.version=${DISTRIBUTION_VERSION#v}" \
		"github.com/distribution/distribution/v3/cmd/registry@$DISTRIBUTION_VERSION")
	mkdir -p "$bin"
	mv "$tmp/registry" "$registry_bin"
	rm -rf "$tmp"
}

build_ferretdb() {
	# As scripts/test-deps.sh: the module zip lacks build/version/version.txt.
	local src tmp
	tmp=$(mktemp -d "$cache/tmp.XXXXXX")
	src=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" |
		sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
	cp -r "$src/." "$tmp/src"
	chmod -R u+w "$tmp/src"
	echo "$FERRETDB_VERSION" >"$tmp/src/build/version/version.txt"
	(cd "$tmp/src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/ferretdb" ./cmd/ferretdb)
	mkdir -p "$bin"
	mv "$tmp/ferretdb" "$ferretdb_bin"
	rm -rf "$tmp"
}

# The Go builds are CPU-bound and debootstrap is mostly waiting on the
# network: overlap them.
gopid=
if [[ ! -x $registry_bin || ! -x $ferretdb_bin ]]; then
	(
		[[ -x $registry_bin ]] || timed "go build registry $DISTRIBUTION_VERSION (static)" build_registry
		[[ -x $ferretdb_bin ]] || timed "go build ferretdb $FERRETDB_VERSION (static)" build_ferretdb
	) &
	gopid=$!
fi

# --- base: debootstrap --------------------------------------------------------

build_base() {
	need_mirror
	local tmp
	tmp=$(mktemp -d "$cache/tmp.XXXXXX")
	debootstrap --variant=minbase "$RELEASE" "$tmp" "$MIRROR" >"$cache/debootstrap.log" 2>&1 ||
		{
			tail -n 30 "$cache/debootstrap.log" >&2
			die "debootstrap failed (log $cache/debootstrap.log)"
		}
	offline "$tmp"
	chmod 0755 "$tmp" # mktemp's 0700 would lock every user but root out of /
	publish "$tmp" "$base"
}
[[ -d $base ]] || timed "debootstrap $RELEASE minbase" build_base

# --- bare rootfs ------------------------------------------------------------

build_bare() {
	need_mirror
	local tmp
	tmp=$(mktemp -d "$cache/tmp.XXXXXX")
	copy "$base" "$tmp/root"
	online "$tmp/root"
	in_root "$tmp/root" apt-get update -qq
	in_root "$tmp/root" apt-get install -y -qq --no-install-recommends "${BARE_PKGS[@]}" >"$cache/bare.log" 2>&1 ||
		{
			tail -n 30 "$cache/bare.log" >&2
			die "installing ${BARE_PKGS[*]} failed (log $cache/bare.log)"
		}
	host_fixups "$tmp/root"
	mv -T "$tmp/root" "$tmp/done"
	publish "$tmp/done" "$bare"
	rm -rf "$tmp"
}
[[ -d $bare ]] || timed "bare rootfs (${BARE_PKGS[*]})" build_bare

# --- local apt repository ---------------------------------------------------

# stand_in_deb DIR: Ubuntu's docker-compose-v2 (what `regctl init` asks for)
# as an empty package pulling in trixie's equivalents.
stand_in_deb() {
	local pkg=$1/pkg
	mkdir -p "$pkg/DEBIAN" "$pkg/usr/share/doc/docker-compose-v2"
	cat >"$pkg/DEBIAN/control" <<-EOF
		Package: docker-compose-v2
		Version: 2.0+regctltest1
		Architecture: all
		Maintainer: regctl tests <root@localhost>
		Depends: docker-compose, docker-cli
		Section: admin
		Priority: optional
		Description: stand-in for Ubuntu's docker-compose-v2 (regctl tests)
		 Debian ships the compose plugin as docker-compose and the CLI as
		 docker-cli; Ubuntu's docker.io carries the CLI itself.
	EOF
	printf 'Built by scripts/freshhost-build.sh for the fresh-host test.\n' >"$pkg/usr/share/doc/docker-compose-v2/README"
	dpkg-deb --root-owner-group -Zxz --build "$pkg" "$1/docker-compose-v2_2.0+regctltest1_all.deb" >/dev/null
	rm -rf "$pkg"
}

build_repo() {
	need_mirror
	local tmp
	tmp=$(mktemp -d "$cache/tmp.XXXXXX")
	copy "$bare" "$tmp/root"
	online "$tmp/root"
	mkdir -p "$tmp/root/var/tmp/debs/partial"
	in_root "$tmp/root" apt-get update -qq
	# Both with and without recommends: the sets can differ in the
	# alternatives apt picks, and a host may install either way.
	local rec
	for rec in --no-install-recommends --install-recommends; do
		in_root "$tmp/root" apt-get install -y -qq --download-only $rec \
			-o Dir::Cache::Archives=/var/tmp/debs "${FULL_PKGS[@]}" >>"$cache/repo.log" 2>&1 ||
			{
				tail -n 30 "$cache/repo.log" >&2
				die "downloading ${FULL_PKGS[*]} failed (log $cache/repo.log)"
			}
	done
	mkdir "$tmp/repo"
	mv "$tmp/root/var/tmp/debs/"*.deb "$tmp/repo/"
	rm -rf --one-file-system "$tmp/root"
	stand_in_deb "$tmp/repo"
	(cd "$tmp/repo" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages &&
		gzip -9nk Packages)
	log "repo: $(ls "$tmp/repo"/*.deb | wc -l) packages"
	publish "$tmp/repo" "$repo"
	rm -rf "$tmp"
}
[[ -d $repo ]] || timed "local apt repository (${FULL_PKGS[*]} and dependencies)" build_repo

# --- full rootfs: bare + the packages, from the local repository ------------

build_full() {
	local tmp
	tmp=$(mktemp -d "$cache/tmp.XXXXXX")
	copy "$bare" "$tmp/root"
	mkdir -p "$tmp/root/srv/regctl-apt"
	printf 'deb [trusted=yes] file:/srv/regctl-apt ./\n' >"$tmp/root/etc/apt/sources.list.d/local.list"
	no_services "$tmp/root"
	# The repository goes in by a bind mount inside in_root's mount namespace.
	unshare --mount --pid --fork --kill-child --mount-proc="$tmp/root/proc" sh -c '
		mount --bind -o ro "$1" "$2/srv/regctl-apt" && shift 2 && exec "$@"' sh "$repo" "$tmp/root" \
		chroot "$tmp/root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
		DEBIAN_FRONTEND=noninteractive sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends ${FULL_PKGS[*]}" \
		>"$cache/full.log" 2>&1 ||
		{
			tail -n 30 "$cache/full.log" >&2
			die "installing ${FULL_PKGS[*]} from the local repository failed (log $cache/full.log)"
		}
	rmdir "$tmp/root/srv/regctl-apt"
	rm -f "$tmp/root/etc/apt/sources.list.d/local.list"
	host_fixups "$tmp/root"
	mv -T "$tmp/root" "$tmp/done"
	publish "$tmp/done" "$full"
	rm -rf "$tmp"
}
[[ -d $full ]] || timed "full rootfs (${FULL_PKGS[*]})" build_full

# --- images -----------------------------------------------------------------

# docker_archive OUT TAG LAYER CONFIG: writes a `docker load` tarball (the
# format of `docker save`) of a one-layer image. CONFIG is the JSON of the
# image config's "config" object (Entrypoint, Cmd, Env, ...).
docker_archive() {
	local out=$1 tag=$2 layer=$3 config=$4 dir diff cfg
	dir=$(mktemp -d "$cache/tmp.XXXXXX")
	diff=$(sha256sum "$layer" | cut -d' ' -f1)
	mkdir "$dir/$diff"
	mv "$layer" "$dir/$diff/layer.tar"
	printf '{"architecture":"amd64","os":"linux","created":"%s","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"%s","created_by":"scripts/freshhost-build.sh"}]}' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$config" "$diff" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$dir/config.json"
	cfg=$(sha256sum "$dir/config.json" | cut -d' ' -f1)
	mv "$dir/config.json" "$dir/$cfg.json"
	printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cfg" "$tag" "$diff" >"$dir/manifest.json"
	tar --numeric-owner --owner=0 --group=0 -C "$dir" -cf "$out" manifest.json "$cfg.json" "$diff"
	rm -rf "$dir"
}

# layer DIR OUT: the tree DIR as a layer tarball.
layer() {
	chmod 0755 "$1"
	tar --numeric-owner --xattrs --sort=name -C "$1" -cf "$2" .
}

# busybox_tree DIR DEB: unpacks busybox-static into DIR with a symlink per
# applet in /bin (what an Alpine-based image offers: sh, wget, ...).
busybox_tree() {
	local dir=$1 deb=$2 x a
	x=$(mktemp -d "$cache/tmp.XXXXXX")
	dpkg-deb -x "$deb" "$x"
	mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc" "$dir/etc/ssl/certs"
	chmod 1777 "$dir/tmp"
	install -m 0755 "$x/usr/bin/busybox" "$dir/bin/busybox"
	rm -rf "$x"
	for a in $("$dir/bin/busybox" --list); do
		[[ -e $dir/bin/$a || $a == busybox ]] || ln -s busybox "$dir/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
	cp "$bare/etc/ssl/certs/ca-certificates.crt" "$dir/etc/ssl/certs/"
}

build_images() {
	need_mirror
	local tmp root deb
	tmp=$(mktemp -d "$cache/tmp.XXXXXX")
	mkdir "$tmp/out"

	# nginx: Debian's nginx and wget on minbase, trimmed. The image's
	# /etc/nginx is replaced by regctl's rendered one at run time.
	root=$tmp/nginx
	copy "$base" "$root"
	online "$root"
	in_root "$root" apt-get update -qq
	in_root "$root" apt-get install -y -qq --no-install-recommends "${NGINX_PKGS[@]}" >"$cache/images.log" 2>&1 ||
		{
			tail -n 30 "$cache/images.log" >&2
			die "installing ${NGINX_PKGS[*]} failed (log $cache/images.log)"
		}
	in_root "$root" sh -c 'cd /tmp && apt-get download -qq busybox-static' >>"$cache/images.log" 2>&1
	deb=$(ls "$root"/tmp/busybox-static_*.deb)
	mv "$deb" "$tmp/busybox-static.deb"
	offline "$root"
	rm -rf "$root/usr/share/doc/"* "$root/usr/share/man/"* "$root/usr/share/info/"* \
		"$root/usr/share/locale/"* "$root/var/log/"* "$root/var/cache/debconf/"*-old \
		"$root/etc/machine-id" "$root/var/lib/dbus/machine-id"
	find "$root/dev" -mindepth 1 -delete
	# The temp paths regctl's nginx.conf names (/var/cache/nginx) and
	# the compiled-in ones (error log, /var/lib/nginx) must exist.
	mkdir -p "$root/var/cache/nginx" "$root/var/log/nginx" "$root/var/lib/nginx"
	# Debian builds nginx without --user: a config without a user
	# directive (regctl's) makes the workers "nobody:nobody", and Debian
	# has no group nobody.
	grep -q '^nobody:' "$root/etc/group" || echo 'nobody:x:65533:' >>"$root/etc/group"
	layer "$root" "$tmp/nginx.layer"
	rm -rf --one-file-system "$root"
	docker_archive "$tmp/out/nginx.tar" "$NGINX_TAG" "$tmp/nginx.layer" \
		'{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["nginx","-g","daemon off;"],"ExposedPorts":{"80/tcp":{},"443/tcp":{}},"StopSignal":"SIGQUIT","WorkingDir":"/"}'

	if [[ -n $gopid ]]; then
		wait "$gopid" || die "building the static Go binaries failed"
		gopid=
	fi

	# registry: distribution's official image layout: /bin/registry,
	# /etc/distribution/config.yml, an entrypoint that serves a .yml/.yaml
	# first argument (compose passes only the config path) and hands
	# anything else to registry; busybox gives sh and wget.
	root=$tmp/registry
	busybox_tree "$root" "$tmp/busybox-static.deb"
	install -m 0755 "$registry_bin" "$root/bin/registry"
	mkdir -p "$root/etc/distribution" "$root/var/lib/registry"
	cat >"$root/etc/distribution/config.yml" <<-'EOF'
		# Default configuration of the regctl-test registry image.
		version: 0.1
		log:
		  fields:
		    service: registry
		storage:
		  cache:
		    blobdescriptor: inmemory
		  filesystem:
		    rootdirectory: /var/lib/registry
		http:
		  addr: :5000
		  debug:
		    addr: :5001
	EOF
	cat >"$root/entrypoint.sh" <<-'EOF'
		#!/bin/sh
		# A configuration file path means "serve it"; a registry subcommand
		# or flag goes to registry; anything else (sh, wget...) runs as is.
		set -e
		case "$1" in
		*.yml | *.yaml) set -- registry serve "$@" ;;
		serve | garbage-collect | help | -*) set -- registry "$@" ;;
		esac
		exec "$@"
	EOF
	chmod 0755 "$root/entrypoint.sh"
	layer "$root" "$tmp/registry.layer"
	rm -rf "$root"
	docker_archive "$tmp/out/registry.tar" "$REGISTRY_TAG" "$tmp/registry.layer" \
		'{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","OTEL_TRACES_EXPORTER=none"],"Entrypoint":["/entrypoint.sh"],"Cmd":["/etc/distribution/config.yml"],"ExposedPorts":{"5000/tcp":{}},"Volumes":{"/var/lib/registry":{}},"WorkingDir":"/"}'

	# ferretdb: the SQLite backend, state in /state; busybox for
	# healthchecks (wget, sh).
	root=$tmp/ferretdb
	busybox_tree "$root" "$tmp/busybox-static.deb"
	install -m 0755 "$ferretdb_bin" "$root/ferretdb"
	mkdir -p "$root/state"
	layer "$root" "$tmp/ferretdb.layer"
	rm -rf "$root"
	docker_archive "$tmp/out/ferretdb.tar" "$FERRETDB_TAG" "$tmp/ferretdb.layer" \
		'{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","FERRETDB_HANDLER=sqlite","FERRETDB_SQLITE_URL=file:/state/","FERRETDB_STATE_DIR=/state","FERRETDB_LISTEN_ADDR=:27017","FERRETDB_DEBUG_ADDR=127.0.0.1:8088","FERRETDB_TELEMETRY=disable"],"Entrypoint":["/ferretdb"],"ExposedPorts":{"27017/tcp":{}},"Volumes":{"/state":{}},"WorkingDir":"/"}'

	publish "$tmp/out" "$images"
	rm -rf "$tmp"
}
[[ -d $images ]] || timed "images (nginx, registry $DISTRIBUTION_VERSION, ferretdb $FERRETDB_VERSION)" build_images
if [[ -n $gopid ]]; then
	wait "$gopid" || die "building the static Go binaries failed"
fi

echo "FRESHHOST_ROOTFS_BARE=$bare"
echo "FRESHHOST_ROOTFS_FULL=$full"
echo "FRESHHOST_REPO=$repo"
echo "FRESHHOST_IMAGE_NGINX=$images/nginx.tar"
echo "FRESHHOST_IMAGE_REGISTRY=$images/registry.tar"
echo "FRESHHOST_IMAGE_FERRETDB=$images/ferretdb.tar"
echo "FRESHHOST_REGISTRY_BIN=$registry_bin"

#!/usr/bin/env bash
# The project's test command (`make test-all` runs it; so does CI).
#
# Installs the test dependencies (scripts/test-deps.sh), starts the servers
# the integration and end-to-end tests need, all on 127.0.0.1 or a unix
# socket in a temporary directory:
#   - FerretDB (SQLite backend)  -> REGCTL_TEST_MONGO_URI
#   - dockerd (vfs, no networks) -> REGCTL_TEST_DOCKER_HOST
# names the binaries the tests start themselves:
#   REGCTL_TEST_REGISTRY2 (Debian's distribution 2.8), REGCTL_TEST_REGISTRY3
#   (distribution v3.1.2), REGCTL_TEST_REGISTRY30 (v3.0.0), REGCTL_TEST_CRANE,
#   REGCTL_TEST_FERRETDB, REGCTL_TEST_PEBBLE, REGCTL_TEST_REGCLIENT,
#   REGCTL_TEST_ORAS, REGCTL_TEST_HELM, REGCTL_TEST_VERSITYGW (nginx,
#   skopeo, docker, podman, buildah, containerd, ctr, fail2ban, logrotate
#   and postgresql come from PATH or Debian's paths)
# sets REGCTL_TEST_REQUIRE=1 (a missing server fails instead of skipping),
# then runs go vet, `make lint` (gofmt check and the pinned golangci-lint,
# GOLANGCI_LINT from test-deps.sh), all tests with -race and the integration
# tag (the end-to-end package, the interop matrix, whose table of results
# it prints, and then the fresh-host system tests last, each alone), and
# every benchmark once (before the tests). All phases run; the exit status
# is non-zero if any failed. The servers and temporary files are removed on exit.
#
# `scripts/test.sh interop [GO_TEST_ARGS...]` (what `make interop` runs)
# does the setup and then only the interop phase, with GO_TEST_ARGS
# passed to go test (-update rewrites the README's compatibility table
# from the run).
#
# Needs root (apt-get, dockerd) and Go. Progress goes to stderr.
set -euo pipefail

only=
if (($#)); then
	if [[ $1 != interop ]]; then
		printf 'usage: %s [interop [GO_TEST_ARGS...]]\n' "$0" >&2
		exit 2
	fi
	only=$1
	shift
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	PATH=$PATH:/usr/local/go/bin
fi

log() { printf 'test.sh: %s\n' "$*" >&2; }

tmp=$(mktemp -d /tmp/regctl-test.XXXXXX)
ferretdb_pid=
dockerd_pid=

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for pid in $ferretdb_pid $dockerd_pid; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in $ferretdb_pid $dockerd_pid; do
		# dockerd stops its containerd first; give it time, then insist.
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# phase NAME CMD...: runs CMD, logs how long it took, records a failure.
failed=()
summary=()
phase() {
	local name=$1 start=$SECONDS rc=0
	shift
	log "== $name"
	"$@" || rc=$?
	summary+=("$(printf '%-10s %4ds  %s' "$name" $((SECONDS - start)) "$([[ $rc == 0 ]] && echo ok || echo "FAILED (exit $rc)")")")
	if [[ $rc != 0 ]]; then
		failed+=("$name")
		log "$name FAILED (exit $rc) after $((SECONDS - start))s"
	else
		log "$name ok ($((SECONDS - start))s)"
	fi
}

# free_port: a 127.0.0.1 TCP port nothing listens on.
free_port() {
	local port
	for _ in $(seq 50); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	log "no free port found"
	return 1
}

# wait_for WHAT PID LOG SECONDS CMD...: polls CMD until it succeeds; fails
# (printing LOG) if PID exits or SECONDS pass.
wait_for() {
	local what=$1 pid=$2 logfile=$3 deadline=$((SECONDS + $4))
	shift 4
	until "$@" >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "$what exited; its log:"
			tail -n 50 "$logfile" >&2
			return 1
		fi
		if ((SECONDS > deadline)); then
			log "$what not ready after $4s; its log:"
			tail -n 50 "$logfile" >&2
			return 1
		fi
		sleep 0.2
	done
}

deps() {
	local out line
	out=$(scripts/test-deps.sh) || return
	while IFS= read -r line; do
		[[ $line =~ ^[A-Z0-9_]+=/[^[:space:]]+$ ]] || { log "unexpected line from test-deps.sh: $line"; return 1; }
		declare -g "$line"
	done <<<"$out"
	: "${FERRETDB:?test-deps.sh printed no FERRETDB}" "${REGISTRY:?test-deps.sh printed no REGISTRY}" \
		"${CRANE:?test-deps.sh printed no CRANE}" "${PEBBLE:?test-deps.sh printed no PEBBLE}" \
		"${GOLANGCI_LINT:?test-deps.sh printed no GOLANGCI_LINT}" \
		"${REGISTRY_V30:?test-deps.sh printed no REGISTRY_V30}" "${REGCLIENT:?test-deps.sh printed no REGCLIENT}" \
		"${ORAS:?test-deps.sh printed no ORAS}" "${HELM:?test-deps.sh printed no HELM}" \
		"${VERSITYGW:?test-deps.sh printed no VERSITYGW}"
	REGISTRY2=$(command -v docker-registry) || { log "docker-registry (Debian's distribution 2.8) is not installed"; return 1; }
	command -v dockerd docker skopeo podman buildah containerd ctr >&2
}

start_ferretdb() {
	local port dir=$tmp/ferretdb
	port=$(free_port) || return
	mkdir -p "$dir"
	"$FERRETDB" --handler=sqlite --sqlite-url="file:$dir/" --listen-addr="127.0.0.1:$port" \
		--state-dir="$dir" --debug-addr=- --telemetry=disable >"$tmp/ferretdb.log" 2>&1 &
	ferretdb_pid=$!
	wait_for FerretDB "$ferretdb_pid" "$tmp/ferretdb.log" 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" || return
	export REGCTL_TEST_MONGO_URI="mongodb://127.0.0.1:$port/"
	log "FerretDB on 127.0.0.1:$port (log $tmp/ferretdb.log)"
}

start_dockerd() {
	local dir=$tmp/docker
	mkdir -p "$dir"
	dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
		--data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
		-H "unix://$dir/docker.sock" >"$tmp/dockerd.log" 2>&1 &
	dockerd_pid=$!
	wait_for dockerd "$dockerd_pid" "$tmp/dockerd.log" 60 \
		env DOCKER_HOST="unix://$dir/docker.sock" DOCKER_CONFIG="$dir/cli" docker info || return
	export REGCTL_TEST_DOCKER_HOST="unix://$dir/docker.sock"
	log "dockerd on $REGCTL_TEST_DOCKER_HOST (log $tmp/dockerd.log)"
}

# make dist: the release binaries, amd64 and arm64 cross-built, and their
# .debs (building nfpm the first time), into the temporary directory.
dist_build() {
	make dist DIST="$tmp/dist"
}

# Without the servers nothing else can run meaningfully.
phase deps deps
phase ferretdb start_ferretdb
phase dockerd start_dockerd
if ((${#failed[@]})); then
	log "setup failed: ${failed[*]}"
	exit 1
fi
export REGCTL_TEST_REQUIRE=1
export REGCTL_TEST_FERRETDB=$FERRETDB
export REGCTL_TEST_REGISTRY2=$REGISTRY2
export REGCTL_TEST_REGISTRY3=$REGISTRY
export REGCTL_TEST_REGISTRY30=$REGISTRY_V30
export REGCTL_TEST_REGCLIENT=$REGCLIENT
export REGCTL_TEST_ORAS=$ORAS
export REGCTL_TEST_HELM=$HELM
export REGCTL_TEST_CRANE=$CRANE
export REGCTL_TEST_PEBBLE=$PEBBLE
export REGCTL_TEST_CHALLTESTSRV=$PEBBLE_CHALLTESTSRV
export REGCTL_TEST_VERSITYGW=$VERSITYGW
env | grep '^REGCTL_TEST_' | sort >&2

e2e=github.com/regctl/regctl/internal/e2e
interop=github.com/regctl/regctl/internal/interop
systest=(github.com/regctl/regctl/internal/testenv/freshhost github.com/regctl/regctl/internal/systest)
# The interop matrix: every client against every registry configuration,
# through the rendered nginx; its table of results (with the token
# flavours) goes to the log. Its arguments go to go test.
interop_tests() {
	local rc=0
	REGCTL_TEST_INTEROP_REPORT=$tmp/interop.txt go test -race -tags integration -count=1 -timeout 30m "$interop" "$@" || rc=$?
	[[ -f $tmp/interop.txt ]] && cat "$tmp/interop.txt" >&2
	return "$rc"
}
if [[ $only == interop ]]; then
	phase interop interop_tests "$@"
	printf '  %s\n' "${summary[@]}" >&2
	((${#failed[@]} == 0)) || exit 1
	exit 0
fi

phase vet go vet -tags integration ./...
phase lint make lint GOLANGCI_LINT="$GOLANGCI_LINT"
phase dist dist_build
# Benchmarks run once each, only to keep them compiling and working.
phase bench go test -run='^$' -bench=. -benchtime=1x ./...
# The end-to-end tests wait on real servers with deadlines (expiry, revoke
# delay), so they run alone, after the other packages, on a quiet machine;
# so do the fresh-host system tests, which boot hosts and run regctl init
# on them (their cached rootfs, apt repository and images are built first,
# in their own phase: about 9 minutes cold, nothing warm). Those run in
# parallel with each other, each host in namespaces of its own: the
# harness's tests beside the system tests, two of those at a time.
unit_tests() {
	local pkgs
	pkgs=$(go list -tags integration ./... | grep -vx -e "$e2e" -e "$interop" -e "${systest[0]}" -e "${systest[1]}") || return
	go test -race -tags integration -count=1 -timeout 40m $pkgs
}
phase test unit_tests
phase e2e go test -race -tags integration -count=1 -timeout 20m "$e2e"
phase interop interop_tests
phase hostcache scripts/freshhost-build.sh
phase systest go test -race -tags integration -count=1 -p 2 -timeout 40m "${systest[@]}"

log "summary:"
printf '  %s\n' "${summary[@]}" >&2
if ((${#failed[@]})); then
	log "FAILED: ${failed[*]}"
	exit 1
fi
log "all passed"

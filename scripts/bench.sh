#!/usr/bin/env bash
# The load benchmark (`make bench`, issue #8). Builds bin/regctl (make build)
# and bin/regctl-bench, installs wrk if it is missing (Debian, as root), then
# runs regctl-bench, which in one run:
#   - generates keys and populates a store (default: a new SQLite database,
#     100,000 users, 10,000 rules, bcrypt cost 10);
#   - starts `regctl serve` and the floor server (regctl's own token minter
#     and nothing else), both on 127.0.0.1;
#   - drives both with wrk at concurrency 1, 16 and 64 through the warm,
#     cold, mixed and refresh-token workloads (the floor and regctl in turns,
#     twice for warm and refresh, keeping the quieter run);
#   - prints a table and the targets' PASS/FAIL, and writes a JSON report
#     (its path is the last line).
# Arguments go to regctl-bench (bin/regctl-bench -h lists them), e.g.
#   scripts/bench.sh -duration 5s -store ferretdb
#   make bench BENCH_ARGS="-concurrency 16 -workloads warm"
# The default run takes about 8 minutes; regctl-bench bounds each step and
# the whole run (-timeout). Every process it starts is stopped when it ends,
# and killed by the kernel if it dies. Exit status: 0 all targets passed,
# 3 a target failed, 1 an error, 2 bad arguments.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	PATH=$PATH:/usr/local/go/bin
fi

log() { printf 'bench.sh: %s\n' "$*" >&2; }

if ! command -v wrk >/dev/null; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		log "installing wrk (apt-get install wrk)"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2
		apt-get install -y -qq --no-install-recommends wrk >&2
	else
		log "wrk is not installed: apt-get install wrk (or put a wrk 4.x on PATH)"
		exit 1
	fi
fi

log "building bin/regctl and bin/regctl-bench"
make --no-print-directory build >&2
go build -trimpath -o bin/regctl-bench ./cmd/regctl-bench

bench_pid=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $bench_pid ]] && kill -0 "$bench_pid" 2>/dev/null; then
		# regctl-bench stops its servers and removes its work directory.
		kill -TERM "$bench_pid" 2>/dev/null || true
		wait "$bench_pid" 2>/dev/null || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bin/regctl-bench -regctl bin/regctl "$@" &
bench_pid=$!
rc=0
wait "$bench_pid" || rc=$?
bench_pid=
exit "$rc"

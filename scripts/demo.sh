#!/usr/bin/env bash
# The quickstart: regctl on the embedded SQLite store with nothing else
# installed. Builds regctl, generates keys, creates a user with a grant,
# starts `regctl serve` on localhost, and shows one allowed and one denied
# token request with the decoded claims. If Debian's docker-registry and
# skopeo are installed, it also pushes an image through a real registry.
# Everything lives in a temporary directory that is removed on exit or
# Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

port=${REGCTL_DEMO_PORT:-5091}
tmp=$(mktemp -d /tmp/regctl-demo.XXXXXX)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

make -s build
regctl=$PWD/bin/regctl
export REGCTL_STORE="sqlite://$tmp/regctl.db"
password=demo-password-$RANDOM$RANDOM

run "$regctl" keys generate --dir "$tmp/keys"
say "printf '%s\\n' \"\$PASSWORD\" | regctl user add alice --password-stdin --bcrypt-cost 10"
printf '%s\n' "$password" | "$regctl" user add alice --password-stdin --bcrypt-cost 10
run "$regctl" user grant alice 'team/*' --actions pull,push --expires 30d
run "$regctl" user list

say "regctl serve --listen 127.0.0.1:$port --issuer regctl-demo --service registry.local --keys $tmp/keys --reload-interval 1s &"
"$regctl" serve --listen "127.0.0.1:$port" --issuer regctl-demo --service registry.local \
	--keys "$tmp/keys" --reload-interval 1s 2>"$tmp/serve.log" &
pids+=($!)
for _ in $(seq 50); do
	curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
	sleep 0.1
done

token() {
	curl -sf -u "alice:$password" "http://127.0.0.1:$port/auth/token?service=registry.local&scope=$1"
}
say "curl -u alice:\$PASSWORD 'http://127.0.0.1:$port/auth/token?service=registry.local&scope=repository:team/app:pull,push' | regctl token decode --keys $tmp/keys"
token 'repository:team/app:pull,push' | "$regctl" token decode --keys "$tmp/keys"
echo "=> allowed: the token grants pull and push on team/app"

say "curl -u alice:\$PASSWORD '...&scope=repository:prod/app:push' | regctl token decode"
token 'repository:prod/app:push' | "$regctl" token decode --keys "$tmp/keys"
echo "=> denied: the token's access list is empty, so the registry refuses the push"

run "$regctl" acl explain alice push prod/app --service registry.local || true

say "the token server's log"
cat "$tmp/serve.log"

registry=$(command -v docker-registry || true)
if [[ -n $registry ]] && command -v skopeo >/dev/null; then
	rport=$((port + 1))
	cat >"$tmp/registry.yml" <<YAML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $tmp/registry-data}}
http: {addr: 127.0.0.1:$rport}
auth:
  token:
    realm: http://localhost:$port/auth/token
    service: registry.local
    issuer: regctl-demo
    rootcertbundle: $tmp/keys/bundle.pem
YAML
	say "docker-registry serve registry.yml &   (distribution 2.8 with token auth)"
	"$registry" serve "$tmp/registry.yml" >"$tmp/registry.log" 2>&1 &
	pids+=($!)
	sleep 1
	mkdir -p "$tmp/rootfs" && echo hello >"$tmp/rootfs/hello.txt"
	tar -C "$tmp/rootfs" -cf "$tmp/layer.tar" .
	mkdir -p "$tmp/oci/blobs/sha256"
	# A minimal image: skopeo copies it from a directory in OCI layout.
	layer_sha=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
	cp "$tmp/layer.tar" "$tmp/oci/blobs/sha256/$layer_sha"
	printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"config":{}}' "$layer_sha" >"$tmp/config.json"
	config_sha=$(sha256sum "$tmp/config.json" | cut -d' ' -f1)
	cp "$tmp/config.json" "$tmp/oci/blobs/sha256/$config_sha"
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
		"$config_sha" "$(stat -c %s "$tmp/config.json")" "$layer_sha" "$(stat -c %s "$tmp/layer.tar")" >"$tmp/manifest.json"
	manifest_sha=$(sha256sum "$tmp/manifest.json" | cut -d' ' -f1)
	cp "$tmp/manifest.json" "$tmp/oci/blobs/sha256/$manifest_sha"
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d}]}' \
		"$manifest_sha" "$(stat -c %s "$tmp/manifest.json")" >"$tmp/oci/index.json"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$tmp/oci/oci-layout"
	say "skopeo copy oci:image docker://localhost:$rport/team/app:1 --dest-creds alice:\$PASSWORD"
	skopeo copy --quiet --dest-tls-verify=false --dest-creds "alice:$password" "oci:$tmp/oci" "docker://localhost:$rport/team/app:1"
	echo "=> pushed team/app:1"
	say "skopeo copy oci:image docker://localhost:$rport/prod/app:1 --dest-creds alice:\$PASSWORD"
	if skopeo copy --quiet --dest-tls-verify=false --dest-creds "alice:$password" "oci:$tmp/oci" "docker://localhost:$rport/prod/app:1" 2>"$tmp/skopeo.err"; then
		echo "unexpected: the push to prod/app succeeded" >&2
		exit 1
	fi
	sed 's/^/  /' "$tmp/skopeo.err"
	echo "=> denied, as the token said"
else
	echo
	echo "(install Debian's docker-registry and skopeo to also push through a real registry)"
fi
echo
echo "Demo done; cleaning up $tmp"

# Sourced by scripts/test-deps.sh and scripts/dist.sh: builds pinned tools
# once, cached under a directory keyed by name and version.
#
# The caller sets $cache (the cache's root directory) and defines log.

# build_cached NAME VERSION CMD...: runs CMD with $out set to the target
# path ($cache/NAME-VERSION/NAME) unless that binary already exists, then
# prints NAME=PATH (NAME upper-cased, - as _), suitable for `eval`.
build_cached() {
	local name=$1 version=$2
	shift 2
	local dir="$cache/$name-$version"
	out="$dir/$name"
	if [[ ! -x $out ]]; then
		log "building $name $version (cached in $dir)"
		mkdir -p "$dir"
		"$@"
	fi
	local var=${name^^}
	echo "${var//-/_}=$out"
}

# go_install PKG@VERSION: the CMD for build_cached of a Go command.
go_install() {
	GOBIN=$(dirname "$out") go install "$1"
}

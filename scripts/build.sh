#!/usr/bin/env bash
# Builds the SOUL binary with xcaddy, from the pins in xcaddy.json.
#
#   scripts/build.sh OUTPUT
#
# xcaddy is installed, at the version xcaddy.json pins, into bin/tools/ when it
# is missing there or at another version. The build is static (CGO_ENABLED=0),
# trimmed and stripped, and stamps internal/version.Version with $VERSION, else
# `git describe --always --dirty`, else "dev". GOOS and GOARCH pass through for
# cross builds. `make build` and docker/Dockerfile both run this script.
set -euo pipefail

log() { printf 'build: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

if [[ $# -ne 1 || -z $1 ]]; then
	printf 'usage: %s OUTPUT\n' "$0" >&2
	exit 2
fi

# OUTPUT is relative to the caller's directory; everything else runs from the
# repository root, where xcaddy.json's "./" replacement points.
output=$1
if [[ $output != /* ]]; then
	output=$PWD/$output
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

version=${VERSION:-}
if [[ -z $version ]]; then
	version=$(git describe --always --dirty 2>/dev/null || true)
fi
version=${version:-dev}
# The version ends up inside a quoted -ldflags value: keep it to plain characters.
if [[ ! $version =~ ^[A-Za-z0-9._+-]+$ ]]; then
	die "VERSION \"$version\" may only hold letters, digits and . _ + -"
fi

xcaddy_version=$(go run ./scripts/xcaddyargs -print xcaddy-version)
build_args_text=$(go run ./scripts/xcaddyargs -output "$output")
mapfile -t build_args <<<"$build_args_text"

tools=$root/bin/tools
xcaddy=$tools/xcaddy
installed=""
if [[ -x $xcaddy ]]; then
	# `xcaddy version` prints "<version> <sum>".
	installed=$("$xcaddy" version 2>/dev/null || true)
	installed=${installed%% *}
fi
if [[ $installed != "$xcaddy_version" ]]; then
	log "installing xcaddy $xcaddy_version into $tools"
	mkdir -p "$tools"
	GOBIN=$tools CGO_ENABLED=0 go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$xcaddy_version"
fi

# xcaddy passes XCADDY_GO_BUILD_FLAGS to every go command it runs and then
# drops its own defaults, so they are repeated here: -trimpath, -s -w, and the
# tags that leave the unused database back ends of Caddy's ACME server out.
build_flags="-trimpath -tags nobadger,nomysql,nopgx -ldflags '-s -w -X github.com/soulapp/soul/internal/version.Version=$version'"

log "version $version: $xcaddy ${build_args[*]}"
# Settings that would change what xcaddy produces are not inherited.
unset XCADDY_DEBUG XCADDY_RACE_DETECTOR XCADDY_SKIP_BUILD
CGO_ENABLED=0 XCADDY_GO_BUILD_FLAGS=$build_flags "$xcaddy" "${build_args[@]}"

#!/usr/bin/env bash
# Backs up the database at DATABASE_URL with pg_dump, in its custom format.
#
#   DATABASE_URL=postgres://... scripts/backup.sh [DIR]
#
# Writes DIR/soul-<UTC time>.dump (DIR defaults to ./backups) and prints its
# path. The dump is written to a temporary name and renamed only once pg_dump
# has finished and pg_restore can read its table of contents, so a backup that
# failed or timed out never looks like a good one.
#
# DATABASE_URL may use postgres://, postgresql:// or the old stack's
# postgresql+psycopg2://. Settings:
#
#   BACKUP_TIMEOUT  how long pg_dump may run, as for timeout(1) (default 30m)
#   PG_BINDIR       where pg_dump and pg_restore are (default: PATH); use the
#                   server's major version or newer
set -euo pipefail

log() { printf 'backup: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

if [[ $# -gt 1 || ${1:-} == -* ]]; then
	printf 'usage: DATABASE_URL=... %s [DIR]\n' "$0" >&2
	exit 2
fi
dir=${1:-backups}
timeout=${BACKUP_TIMEOUT:-30m}

url=${DATABASE_URL:-}
[[ -n $url ]] || die "DATABASE_URL is not set"
# libpq knows postgres:// and postgresql:// only.
url=${url/#postgresql+psycopg2:\/\//postgresql://}
[[ $url == postgres://* || $url == postgresql://* ]] || die "DATABASE_URL must start with postgres:// or postgresql://"

pg_dump=pg_dump
pg_restore=pg_restore
if [[ -n ${PG_BINDIR:-} ]]; then
	pg_dump=$PG_BINDIR/pg_dump
	pg_restore=$PG_BINDIR/pg_restore
fi
command -v "$pg_dump" >/dev/null || die "$pg_dump not found (Debian: postgresql-client)"

mkdir -p -- "$dir"
file=$dir/soul-$(date -u +%Y%m%dT%H%M%SZ).dump
partial=$file.partial
trap 'rm -f -- "$partial"' EXIT

log "dumping to $file (timeout $timeout)"
if ! timeout --signal=TERM --kill-after=30s "$timeout" \
	"$pg_dump" --format=custom --no-owner --no-privileges --lock-wait-timeout=60s \
	--file="$partial" --dbname="$url"; then
	die "pg_dump failed or ran over $timeout"
fi
"$pg_restore" --list "$partial" >/dev/null || die "the dump is not readable by pg_restore"
mv -- "$partial" "$file"
log "done: $(du -h -- "$file" | cut -f1)"
printf '%s\n' "$file"

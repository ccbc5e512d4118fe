#!/usr/bin/env bash
# Restores a scripts/backup.sh dump into the database at DATABASE_URL.
#
#   DATABASE_URL=postgres://... scripts/restore.sh [--overwrite] FILE
#
# Runs pg_restore --clean --if-exists --no-owner in one transaction: either
# the whole dump is restored or nothing changes. When the target already
# holds tables, it refuses unless --overwrite is given: those tables are
# dropped and replaced by the dump's.
#
# DATABASE_URL may use postgres://, postgresql:// or postgresql+psycopg2://.
# Settings:
#
#   RESTORE_TIMEOUT  how long pg_restore may run, as for timeout(1) (default 60m)
#   PG_BINDIR        where pg_restore and psql are (default: PATH)
set -euo pipefail

log() { printf 'restore: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}
usage() {
	printf 'usage: DATABASE_URL=... %s [--overwrite] FILE\n' "$0" >&2
	exit 2
}

overwrite=0
file=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--overwrite) overwrite=1 ;;
	-h | --help) usage ;;
	-*) usage ;;
	*)
		[[ -z $file ]] || usage
		file=$1
		;;
	esac
	shift
done
[[ -n $file ]] || usage
[[ -f $file && -r $file ]] || die "$file is not a readable file"
timeout=${RESTORE_TIMEOUT:-60m}

url=${DATABASE_URL:-}
[[ -n $url ]] || die "DATABASE_URL is not set"
url=${url/#postgresql+psycopg2:\/\//postgresql://}
[[ $url == postgres://* || $url == postgresql://* ]] || die "DATABASE_URL must start with postgres:// or postgresql://"

pg_restore=pg_restore
psql=psql
if [[ -n ${PG_BINDIR:-} ]]; then
	pg_restore=$PG_BINDIR/pg_restore
	psql=$PG_BINDIR/psql
fi
command -v "$pg_restore" >/dev/null || die "$pg_restore not found (Debian: postgresql-client)"

"$pg_restore" --list "$file" >/dev/null || die "$file is not a pg_dump custom-format archive"

tables=$("$psql" --no-psqlrc --quiet --tuples-only --no-align --dbname="$url" --command \
	"SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')") ||
	die "cannot reach the target database"
if [[ $tables -gt 0 && $overwrite -eq 0 ]]; then
	die "the target database holds $tables tables; add --overwrite to replace them with the dump"
fi

log "restoring $file (target holds $tables tables; timeout $timeout)"
if ! timeout --signal=TERM --kill-after=30s "$timeout" \
	"$pg_restore" --clean --if-exists --no-owner --no-privileges --exit-on-error \
	--single-transaction --dbname="$url" "$file"; then
	die "pg_restore failed or ran over $timeout; the target is unchanged"
fi
log "done"

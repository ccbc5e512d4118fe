#!/usr/bin/env bash
# Runs a command with a throwaway Postgres and Redis on loopback.
#
#   scripts/testenv.sh CMD [ARGS...]
#
# Both servers live in a temporary directory, listen on free 127.0.0.1 ports
# and keep nothing: they are stopped and the directory removed when CMD exits,
# fails or is interrupted. CMD sees:
#
#   SOUL_TEST_DATABASE_URL     superuser URL of the maintenance database
#   SOUL_TEST_REDIS_URL        Redis URL (database 0)
#   SOUL_TEST_REQUIRE_SERVICES 1: tests that need a server fail instead of skipping
#   SOUL_TEST_PG_BINDIR        Postgres bin directory, for tests that start their own
#   SOUL_TEST_REDIS_SERVER     redis-server path, for tests that start their own
#   SOUL_TEST_PGBOUNCER        pgbouncer path, for tests that put one in front of Postgres
#   SOUL_TEST_TMPDIR           where those private servers keep their data
#   SOUL_TEST_CHROMIUM         headless Chromium, for the docs page's browser test
#                              (only with SOUL_TEST_BROWSER=1, as `make test` sets)
#
# Private servers a test binary left behind (it crashed or timed out before
# its cleanup) are stopped too.
#
# Missing server packages (Debian: postgresql, redis-server, pgbouncer) are installed
# with apt-get first, and the test browser (chromium) too when
# SOUL_TEST_BROWSER=1.
set -euo pipefail

readonly start_timeout=30

log() { printf 'testenv: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

if [[ $# -eq 0 ]]; then
	printf 'usage: %s CMD [ARGS...]\n' "$0" >&2
	exit 2
fi

as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root or sudo to run: $*"
	fi
}

pg_bindir() {
	local d best=""
	# Version directories sort numerically: 9.6 < 13 < 15 < 16.
	while IFS= read -r d; do
		[[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] && best=$d
	done < <(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V)
	[[ -n $best ]] && printf '%s\n' "$best"
}

redis_server_path() {
	if command -v redis-server >/dev/null 2>&1; then
		command -v redis-server
	elif [[ -x /usr/bin/redis-server ]]; then
		printf '%s\n' /usr/bin/redis-server
	fi
}

pgbouncer_path() {
	if command -v pgbouncer >/dev/null 2>&1; then
		command -v pgbouncer
	elif [[ -x /usr/sbin/pgbouncer ]]; then
		printf '%s\n' /usr/sbin/pgbouncer
	fi
}

redis_cli_path() {
	if command -v redis-cli >/dev/null 2>&1; then
		command -v redis-cli
	elif [[ -x /usr/bin/redis-cli ]]; then
		printf '%s\n' /usr/bin/redis-cli
	fi
}

# free_port prints a TCP port that nothing listens on at 127.0.0.1.
free_port() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
		return
	fi
	local port i
	for ((i = 0; i < 100; i++)); do
		port=$((20000 + RANDOM % 30000))
		# A refused connection means the port is free.
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			printf '%s\n' "$port"
			return
		fi
	done
	die "no free port found"
}

# --- packages ---------------------------------------------------------------

missing=()
[[ -n $(pg_bindir) ]] || missing+=(postgresql)
[[ -n $(redis_server_path) && -n $(redis_cli_path) ]] || missing+=(redis-server)
[[ -n $(pgbouncer_path) ]] || missing+=(pgbouncer)
if [[ ${SOUL_TEST_BROWSER:-} == 1 ]]; then
	command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
if [[ ${#missing[@]} -gt 0 ]]; then
	log "installing ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

PG_BINDIR=$(pg_bindir) || die "no Postgres under /usr/lib/postgresql/*/bin"
REDIS_SERVER=$(redis_server_path) || true
REDIS_CLI=$(redis_cli_path) || true
[[ -n $REDIS_SERVER && -n $REDIS_CLI ]] || die "redis-server or redis-cli not found"
PGBOUNCER=$(pgbouncer_path) || die "pgbouncer not found"
pg_version=$(basename "$(dirname "$PG_BINDIR")")

# Postgres refuses to run as root, so as root it runs as the postgres user.
pg_run=()
if [[ $EUID -eq 0 ]]; then
	id -u postgres >/dev/null 2>&1 || die "user postgres does not exist"
	pg_run=(runuser -u postgres --)
fi

# --- cleanup ----------------------------------------------------------------

tmp=""
pg_data=""
redis_pid=""
child=""
group=""

# stop_postgres stops the server whose data directory is $1, if it runs.
# shellcheck disable=SC2317 # called from a trap
stop_postgres() {
	local data=$1
	[[ -f $data/postmaster.pid ]] || return 0
	if ! (cd "$tmp" && "${pg_run[@]}" "$PG_BINDIR/pg_ctl" -D "$data" -m immediate -w -t 10 stop) >/dev/null 2>&1; then
		kill -KILL "$(head -n 1 "$data/postmaster.pid")" 2>/dev/null || true
	fi
}

# shellcheck disable=SC2317 # called from a trap
cleanup() {
	local status=$? pidfile pid
	trap - EXIT INT TERM
	# Whatever the command left running in its process group, then private
	# servers found by their pid files (Postgres leaves that group).
	if [[ -n $group ]] && kill -TERM -- "-$group" 2>/dev/null; then
		for ((i = 0; i < 50; i++)); do
			kill -0 -- "-$group" 2>/dev/null || break
			sleep 0.1
		done
	fi
	if [[ -n $tmp && -d $tmp/private ]]; then
		while IFS= read -r -d '' pidfile; do
			stop_postgres "$(dirname "$pidfile")"
		done < <(find "$tmp/private" -name postmaster.pid -print0 2>/dev/null)
		while IFS= read -r -d '' pidfile; do
			pid=$(<"$pidfile")
			if [[ $(ps -o comm= -p "$pid" 2>/dev/null) == redis-server* ]]; then
				kill -KILL "$pid" 2>/dev/null || true
			fi
		done < <(find "$tmp/private" -name redis.pid -print0 2>/dev/null)
		while IFS= read -r -d '' pidfile; do
			pid=$(<"$pidfile")
			if [[ $(ps -o comm= -p "$pid" 2>/dev/null) == pgbouncer* ]]; then
				kill -KILL "$pid" 2>/dev/null || true
			fi
		done < <(find "$tmp/private" -name pgbouncer.pid -print0 2>/dev/null)
	fi
	if [[ -n $pg_data ]]; then
		stop_postgres "$pg_data"
	fi
	if [[ -n $redis_pid ]]; then
		kill -TERM "$redis_pid" 2>/dev/null || true
		wait "$redis_pid" 2>/dev/null || true
	fi
	if [[ -n $tmp ]]; then
		rm -rf -- "$tmp"
	fi
	log "servers stopped"
	exit "$status"
}

# on_signal passes the signal on to the command's process group, waits for the
# command to end and exits, which stops the servers.
# shellcheck disable=SC2317 # called from a trap
on_signal() {
	local sig=$1 code=$2
	if [[ -n $child ]]; then
		kill -s "$sig" -- "-$group" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	exit "$code"
}

trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

tmp=$(mktemp -d "${TMPDIR:-/tmp}/soul-testenv.XXXXXX")
# The postgres user must be able to reach its directory inside.
chmod 755 "$tmp"
mkdir "$tmp/private"

# --- postgres ---------------------------------------------------------------

pg_dir=$tmp/pg
pg_data=$pg_dir/data
pg_log=$pg_dir/postgres.log
pg_port=$(free_port)
mkdir "$pg_dir"
if [[ $EUID -eq 0 ]]; then
	chown postgres: "$pg_dir"
fi

# C.UTF-8 where the C library has it, so that lower() and friends know Unicode.
pg_locale=C
if locale -a 2>/dev/null | grep -qix 'c\.utf-\?8'; then
	pg_locale=C.UTF-8
fi

log "postgres $pg_version: initdb"
if ! (cd "$tmp" && "${pg_run[@]}" "$PG_BINDIR/initdb" -D "$pg_data" -A trust -U postgres -E UTF8 \
	--locale="$pg_locale" --no-sync) >"$tmp/initdb.log" 2>&1; then
	tail -n 20 "$tmp/initdb.log" >&2
	die "initdb failed"
fi

cat >>"$pg_data/postgresql.conf" <<EOF

# testenv: a throwaway server for tests.
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$pg_dir'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

if ! (cd "$tmp" && "${pg_run[@]}" "$PG_BINDIR/pg_ctl" -D "$pg_data" -l "$pg_log" \
	-w -t "$start_timeout" start) >/dev/null 2>&1; then
	tail -n 20 "$pg_log" >&2 || true
	die "postgres did not start"
fi

ready=0
for ((i = 0; i < start_timeout * 10; i++)); do
	if "$PG_BINDIR/pg_isready" -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres; then
		ready=1
		break
	fi
	sleep 0.1
done
if [[ $ready -eq 0 ]]; then
	tail -n 20 "$pg_log" >&2 || true
	die "postgres on 127.0.0.1:$pg_port does not accept connections after ${start_timeout}s"
fi
log "postgres $pg_version on 127.0.0.1:$pg_port"

# --- redis ------------------------------------------------------------------

redis_dir=$tmp/redis
redis_log=$redis_dir/redis.log
redis_port=$(free_port)
mkdir "$redis_dir"

# A child of this script rather than a daemon, so that stopping it can wait
# for its exit; in a process group of its own, so that Ctrl-C at a terminal
# does not stop it under the running tests.
set -m
"$REDIS_SERVER" --bind 127.0.0.1 --port "$redis_port" \
	--save '' --appendonly no --daemonize no \
	--dir "$redis_dir" --logfile "$redis_log" </dev/null >"$redis_dir/stdout.log" 2>&1 &
redis_pid=$!
set +m

ready=0
for ((i = 0; i < start_timeout * 10; i++)); do
	if [[ $("$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null) == PONG ]]; then
		ready=1
		break
	fi
	kill -0 "$redis_pid" 2>/dev/null || break
	sleep 0.1
done
if [[ $ready -eq 0 ]]; then
	tail -n 20 "$redis_dir/stdout.log" "$redis_log" >&2 2>/dev/null || true
	die "redis on 127.0.0.1:$redis_port does not answer PING"
fi
log "redis $("$REDIS_SERVER" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p') on 127.0.0.1:$redis_port"

# --- command ----------------------------------------------------------------

export SOUL_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres?sslmode=disable"
export SOUL_TEST_REDIS_URL="redis://127.0.0.1:$redis_port/0"
export SOUL_TEST_REQUIRE_SERVICES=1
export SOUL_TEST_PG_BINDIR="$PG_BINDIR"
export SOUL_TEST_REDIS_SERVER="$REDIS_SERVER"
export SOUL_TEST_PGBOUNCER="$PGBOUNCER"
export SOUL_TEST_TMPDIR="$tmp/private"
if [[ ${SOUL_TEST_BROWSER:-} == 1 ]]; then
	SOUL_TEST_CHROMIUM=$(command -v chromium) || die "chromium not found"
	export SOUL_TEST_CHROMIUM
fi

log "running: $*"
status=0
if [[ -t 0 ]]; then
	# At a terminal the command stays in the foreground, free to read it, and
	# Ctrl-C reaches it directly; the traps run once it has ended.
	"$@" || status=$?
else
	# Otherwise it runs as its own process group, so that INT/TERM sent to
	# this script reach the whole command (go test and its test binaries) at
	# once, not after it has finished.
	set -m
	"$@" <&0 &
	child=$!
	group=$child
	set +m
	wait "$child" || status=$?
	child=""
fi
exit "$status"

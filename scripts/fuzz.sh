#!/usr/bin/env bash
# Runs every fuzz target in the repository, one after another, each for
# FUZZTIME (default 5s): a duration (60s) or a count of inputs (5000x), as
# go test's -fuzztime takes it.
#
#   FUZZTIME=60s scripts/fuzz.sh
#
# Go 1.26's fuzz coordinator can report its own -fuzztime deadline as a
# failure ("context deadline exceeded", no failing input written) when a
# worker is busy as time runs out, more often on a loaded machine:
# golang.org/issue/75804, fixed in Go 1.27, which ignores it. Here a run
# that fails only that way is run again, up to three times in all, and
# fails for real the third time; a count (5000x) has no deadline to race.
# Any other failure (a failing input, a panic, a test's own message) stops
# the run at once.
#
# Targets are found, not listed: any `func FuzzXxx(f *testing.F)` in a
# _test.go file below the repository root. A failing target stops the run
# and leaves its input under the package's testdata/fuzz for `go test` to
# replay. Run it under scripts/testenv.sh (make fuzz does) so that targets
# needing Postgres or Redis find them.
set -euo pipefail

cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5s}

# "dir name" pairs, sorted, from every fuzz target's declaration.
mapfile -t targets < <(
	git ls-files --cached --others --exclude-standard -- '*_test.go' |
		xargs -r grep -H -o '^func Fuzz[A-Za-z0-9_]*(' |
		sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($#\1 \2#; s#^[^/ ]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($#. \1#' |
		sort -u
)
if [[ ${#targets[@]} -eq 0 ]]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# deadline_only says whether a failed run's output shows nothing but the
# coordinator's deadline: no failing input, no panic, no test's own message.
deadline_only() {
	grep -q 'context deadline exceeded' "$1" &&
		! grep -q -e 'Failing input written' -e '^panic:' -e '_test\.go:[0-9]' "$1"
}

echo "fuzz: ${#targets[@]} targets, ${fuzztime} each" >&2
for t in "${targets[@]}"; do
	dir=${t% *}
	name=${t#* }
	echo "fuzz: $name in ./$dir" >&2
	for attempt in 1 2 3; do
		if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$dir" 2>&1 | tee "$log"; then
			break
		fi
		if [[ $attempt -lt 3 ]] && deadline_only "$log"; then
			echo "fuzz: $name: only the coordinator's own deadline failed (golang.org/issue/75804); running it again" >&2
			continue
		fi
		exit 1
	done
done

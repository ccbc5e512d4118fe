#!/usr/bin/env bash
# Runs every fuzz target in the repository, one after another, each for
# FUZZTIME (default 5s).
#
#   FUZZTIME=60s scripts/fuzz.sh
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

echo "fuzz: ${#targets[@]} targets, ${fuzztime} each" >&2
for t in "${targets[@]}"; do
	dir=${t% *}
	name=${t#* }
	echo "fuzz: $name in ./$dir" >&2
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$dir"
done

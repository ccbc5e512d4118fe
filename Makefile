# SOUL API. `make run` serves locally; `make test` runs every test on real
# Postgres and Redis. See README.md.

SHELL := /bin/bash
BIN   := bin/caddy
GO_SOURCES := $(shell find . -name '*.go' -not -path './bin/*' 2>/dev/null) go.mod go.sum xcaddy.json $(wildcard migrations/*/*.sql)

.PHONY: build run test test-go chaos soak fuzz bench bench-run bench-micro flood lint clean

## build: the binary from xcaddy.json (xcaddy, pinned), into bin/caddy
build: $(BIN)

$(BIN): $(GO_SOURCES)
	scripts/build.sh $(BIN)

## run: serve on http://localhost:8080 with SQLite, in-memory limits, DEV_MODE
# A DATABASE_URL or REDIS_URL left in the shell's environment would quietly
# move make run off SQLite and memory, so both are dropped unless given on
# make's command line: make run DATABASE_URL=postgres://... REDIS_URL=redis://...
RUN_UNSET := $(foreach v,DATABASE_URL REDIS_URL,$(if $(filter command line,$(origin $(v))),,-u $(v)))
run: $(BIN)
	env $(RUN_UNSET) DEV_MODE=$${DEV_MODE:-true} SQLITE_PATH=$${SQLITE_PATH:-data/soul.db} \
		$(BIN) run --config Caddyfile --adapter caddyfile

## test: start throwaway Postgres and Redis, run every test, stop them
test: $(BIN)
	SOUL_TEST_BINARY=$(CURDIR)/$(BIN) SOUL_TEST_BROWSER=1 scripts/testenv.sh $(MAKE) --no-print-directory test-go

# The Go tests proper; needs the services (make test provides them).
test-go:
	# -race: vet then compiles exactly what go test -race below reuses,
	# rather than a second, plain build of Caddy and every dependency.
	go vet -race ./...
	scripts/lint-openapi.sh
	scripts/test-alerts.sh
	FUZZTIME=$${FUZZTIME:-2s} scripts/fuzz.sh
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	@tmp=$$(mktemp -d); \
	  DEV_MODE=true SQLITE_PATH=$$tmp/validate.db XDG_CONFIG_HOME=$$tmp XDG_DATA_HOME=$$tmp \
	  "$${SOUL_TEST_BINARY:-$(BIN)}" validate --config Caddyfile --adapter caddyfile 2>$$tmp/log \
	  && echo "caddy validate: Caddyfile OK" || { cat $$tmp/log; rm -rf $$tmp; exit 1; }; rm -rf $$tmp
	# Caddy fixes its storage and autosave paths when a process starts:
	# point them into the throwaway directory, not $$HOME.
	XDG_DATA_HOME=$${SOUL_TEST_TMPDIR:-$$(mktemp -d)}/xdg-data XDG_CONFIG_HOME=$${SOUL_TEST_TMPDIR:-$$(mktemp -d)}/xdg-config \
	  go test -race -count=1 -timeout 20m ./...

## bench: the built binary on throwaway Postgres and Redis, every route side
## by side with a constant-answer baseline and the list with PocketBase's
## (bench/pocketbase), CPU and allocations per request (bench/results.json,
## .png), then the micro-benchmarks of the hot paths; about two and a half minutes
bench: $(BIN)
	scripts/testenv.sh $(MAKE) --no-print-directory bench-run bench-micro

# The load run proper; needs the services (make bench provides them).
bench-run:
	go run ./bench/cmd/soulbench -binary $(BIN) -out bench/results.json -png bench/results.png -cpuprofile bench/cpu.pprof

# Token verification, limiter check and mood-list encoding, benchstat-ready.
bench-micro:
	go test -run '^$$' -bench 'BenchmarkVerify$$|BenchmarkAllow|BenchmarkEncodeMoodList' -benchmem -count 5 -benchtime 300ms \
		./internal/token ./internal/limiter ./bench

## flood: RSS of the binary after FLOOD_REQUESTS (default 1,000,000) requests from distinct IPv4 addresses and from distinct IPv6 /64s
flood: $(BIN)
	go run ./bench/cmd/soulflood -binary $(BIN) -requests $${FLOOD_REQUESTS:-1000000} -out bench/flood.json

## chaos: the reliability suite (chaos/): outages, reloads and SIGTERM under load
chaos: $(BIN)
	SOUL_TEST_BINARY=$(CURDIR)/$(BIN) scripts/testenv.sh \
	  go test -race -count=1 -tags chaos -timeout 10m -skip '^TestSoak$$' -v ./chaos/

## soak: compressed soak (SOAK_DURATION, default 3m): mixed traffic, one Redis kill; fails when RSS, goroutines, open files or Postgres connections keep growing
soak: $(BIN)
	SOUL_TEST_BINARY=$(CURDIR)/$(BIN) SOUL_SOAK_DURATION=$${SOAK_DURATION:-3m} scripts/testenv.sh go test -count=1 -tags chaos -timeout 0 -run '^TestSoak$$' -v ./chaos/

## fuzz: every fuzz target, FUZZTIME (default 60s) each
fuzz:
	FUZZTIME=$${FUZZTIME:-60s} scripts/testenv.sh scripts/fuzz.sh

clean:
	rm -rf bin

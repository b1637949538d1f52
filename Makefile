# Parapet: `make run` (demo proxy + origin), `make test` (whole suite), `make bench`.
# Every target installs what it needs on Debian (as root, or with sudo).

SHELL := /bin/bash
CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench check deps bench-deps release

# Pingora builds zlib-ng with cmake; curl is used by tests where installed.
deps:
	@command -v cmake >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake; }
	@command -v cc >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential; }

bench-deps: deps
	@command -v nginx >/dev/null && command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk; }

release: deps
	$(CARGO) build --release --bins

# The demo: two origins on 127.0.0.1:8081 and :8082, Parapet on 127.0.0.1:8080.
run: release
	@target/release/parapet-origin --listen 127.0.0.1:8081 --listen 127.0.0.1:8082 & \
	origin=$$!; trap 'kill $$origin 2>/dev/null' EXIT INT TERM; \
	echo "Parapet on http://127.0.0.1:8080/ (Ctrl-C to stop)"; \
	target/release/parapet -c conf/parapet.yaml

test: deps
	$(CARGO) test --all-targets

check:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

bench: bench-deps release
	bench/run.sh

# Parapet: `make run` (demo proxy + origin), `make test` (whole suite), `make bench`.
# Every target installs what it needs on Debian (as root, or with sudo).

SHELL := /bin/bash
CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-deps bench check deps bench-deps release demo install

# Pingora builds zlib-ng with cmake; curl is used by tests where installed.
deps:
	@command -v cmake >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake; }
	@command -v cc >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential; }

bench-deps: deps
	@command -v nginx >/dev/null && command -v wrk >/dev/null && command -v h2load >/dev/null && command -v openssl >/dev/null && command -v redis-server >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk nghttp2-client openssl redis-server; }

release: deps
	$(CARGO) build --release --bins

# The demo origin is behind the `demo` feature, out of the library's default surface.
demo: deps
	$(CARGO) build --release --bins --features demo

# The demo: two origins on 127.0.0.1:8081 and :8082, Parapet on 127.0.0.1:8080.
run: demo
	@target/release/parapet-origin --listen 127.0.0.1:8081 --listen 127.0.0.1:8082 & \
	origin=$$!; trap 'kill $$origin 2>/dev/null' EXIT INT TERM; \
	echo "Parapet on http://127.0.0.1:8080/ (Ctrl-C to stop)"; \
	target/release/parapet -c conf/parapet.yaml

# systemd-analyze verifies the unit in the suite (the test says SKIPPED without it);
# ss(8) is how parapet-reload sees the hand-off complete; the fleet's tests start
# their own redis-server (Debian's package) on a free loopback port; the dashboard's
# browser test drives Debian's chromium through chromium-driver (it fails without them).
test-deps: deps
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }
	@command -v ss >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2; }
	@command -v systemd-analyze >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd; } || echo "systemd-analyze unavailable: the unit check will be skipped"

test: test-deps
	$(CARGO) test --all-targets

check:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# One release build for the binaries and the bench's examples: built apart, the
# examples' dev-dependencies (tokio's process feature) would make cargo build the
# whole graph a second time. The counting build (allocations per request) goes to
# target/alloc-count, beside the release build rather than over it, and only when
# the allocations part runs. PARTS picks parts, comma-separated (bench/run.sh lists
# them): `make bench PARTS=cache`; unset, every part.
bench: bench-deps
	$(CARGO) build --release --bins --example bare_pingora --example open_loop
	case ",$(or $(PARTS),all)," in *,all,*|*,allocations,*) \
		$(CARGO) build --profile alloc-count --features count-alloc --bin parapet --example bare_pingora ;; esac
	PARTS='$(PARTS)' bench/run.sh

# Install the binary, the reload helper, the systemd unit, a default configuration
# (never overwriting an existing one) and the `parapet` system user.
# DESTDIR=/some/root installs into a staging tree (no user, no systemctl).
DESTDIR ?=
PREFIX ?= /usr/local
install: release
	install -D -m 0755 target/release/parapet $(DESTDIR)$(PREFIX)/bin/parapet
	install -D -m 0755 systemd/parapet-reload $(DESTDIR)$(PREFIX)/lib/parapet/parapet-reload
	install -D -m 0644 systemd/parapet.service $(DESTDIR)/etc/systemd/system/parapet.service
	install -D -m 0644 systemd/parapet.logrotate $(DESTDIR)/etc/logrotate.d/parapet
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/parapet/README.md
	@if [ -e $(DESTDIR)/etc/parapet/parapet.yaml ]; then \
		echo "keeping existing $(DESTDIR)/etc/parapet/parapet.yaml"; \
	else \
		install -D -m 0644 conf/examples/etc-parapet.yaml $(DESTDIR)/etc/parapet/parapet.yaml; \
	fi
	@if [ -z "$(DESTDIR)" ]; then \
		id parapet >/dev/null 2>&1 || $(SUDO) useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin parapet; \
		if [ -d /run/systemd/system ]; then $(SUDO) systemctl daemon-reload; fi; \
		echo "installed; start with: systemctl enable --now parapet"; \
	fi

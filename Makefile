# Two commands for a fresh Debian machine, run as root:
#   make demo   the kill switch shown live in throwaway network namespaces
#   make test   every test (unit + namespace lab), lint first
# Both install what they need (Debian packages, a virtualenv) and touch
# nothing outside the namespaces they create: the lab parts run under
# `unshare --net`, and the lab refuses to start in the initial namespace.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEBS   := wireguard-tools wireguard-go iptables nftables ipset iproute2 curl dnsutils dnsmasq-base \
          psmisc procps util-linux e2fsprogs busybox python3-venv strace openssl \
          dbus-daemon dbus-system-bus-common libevent-2.1-7 libnghttp2-14 libpython3.11
PYTEST_ARGS ?=

.PHONY: all deps install demo test lint unit lab bench clean clean-lab install-systemd

all: test

deps:
	@missing=$$(for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# A plain, non-editable install, run from another directory: what users get (the product only).
# Then the test lab (lab/, distribution wgkill-lab, package wgkill_lab), also non-editable:
# only these targets install it, never `pip install .`.
install: deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# setuptools builds in the tree and never prunes build/lib: a module moved away would still ship
	@rm -rf build *.egg-info lab/build lab/*.egg-info
	@cd / && $(CURDIR)/$(BIN)/pip install -q --disable-pip-version-check "$(CURDIR)[test]"
	@cd / && $(CURDIR)/$(BIN)/pip install -q --disable-pip-version-check --no-deps --force-reinstall "$(CURDIR)"
	@cd / && $(CURDIR)/$(BIN)/pip install -q --disable-pip-version-check --no-deps --force-reinstall "$(CURDIR)/lab"
	@# systemd-resolved, unbound and openresolv for the DNS lab: unpacked into a cache, never installed
	@cd / && $(CURDIR)/$(BIN)/python -m wgkill_lab.bundles fetch

demo: install
	unshare --net -- $(BIN)/python -m wgkill_lab.demo

lint: install
	$(BIN)/ruff check wgkill templates tests bench lab

test: lint
	unshare --net -- $(BIN)/pytest $(PYTEST_ARGS)

unit: install
	$(BIN)/pytest -m "not lab" $(PYTEST_ARGS)

lab: install
	unshare --net -- $(BIN)/pytest -m lab $(PYTEST_ARGS)

# Benchmarks against the article's rules and against no rules (issue 8): writes docs/benchmarks.md.
bench: install
	unshare --net -- $(BIN)/python bench/run.py

# Boot-time re-application of engaged blocks (needs wgkill installed where root's PATH finds it,
# or WGKILL_BOOT=/path/to/wgkill-boot).
WGKILL_BOOT ?= $(shell command -v wgkill-boot || echo $(CURDIR)/$(BIN)/wgkill-boot)
install-systemd:
	@test -x "$(WGKILL_BOOT)" || { echo "wgkill-boot not found: pip install . first, or set WGKILL_BOOT"; exit 1; }
	sed 's|@WGKILL_BOOT@|$(WGKILL_BOOT)|' hooks/wgkill-boot.service > /etc/systemd/system/wgkill-boot.service
	systemctl daemon-reload
	systemctl enable wgkill-boot.service

clean-lab: install
	$(BIN)/python -c "from wgkill_lab.netns import reap_stale; print('removed:', *reap_stale())"

clean:
	rm -rf $(VENV) build *.egg-info lab/build lab/*.egg-info .pytest_cache .ruff_cache

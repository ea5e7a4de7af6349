# Two commands for a fresh Debian machine, run as root:
#   make demo   the kill switch shown live in throwaway network namespaces
#   make test   every test (unit + namespace lab + packaging), lint first
# Both install what they need (Debian packages, a virtualenv in .venv) and touch
# nothing outside the namespaces they create: the lab parts run under
# `unshare --net`, and the lab refuses to start in the initial namespace.
#
# Installing wgkill for real (README, "Use"):
#   make deb         a Debian package in dist/ (debian/, pybuild)
#   make install     elsewhere: a virtualenv in /opt/wgkill, links in /usr/local/sbin,
#                    man pages, the boot unit; `make uninstall` removes exactly that
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEBS   := wireguard-tools wireguard-go iptables nftables ipset iproute2 curl dnsutils dnsmasq-base \
          psmisc procps util-linux e2fsprogs busybox python3-venv strace openssl \
          dbus-daemon dbus-system-bus-common libevent-2.1-7 libnghttp2-14 libpython3.11 \
          man-db systemd python3-apt
PYTEST_ARGS ?=
# Built before the lab's `unshare --net`, so the make-install test runs pip offline.
WHEELS := build/wheels
# ansible-core for the Ansible role's lab test, which installs it offline into a throwaway
# virtualenv (python3-apt above: the role's apt module runs on the system's Python).
ANSIBLE_WHEELS := build/ansible-wheels
ANSIBLE_CORE   := ansible-core>=2.18,<2.19

.PHONY: all deps deb-deps venv wheels demo test lint unit lab bench clean clean-lab \
        deb install uninstall install-unit uninstall-unit alert-series

all: test

deps:
	@missing=$$(for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Packaging: the build dependencies debian/control names, and lintian.
deb-deps: deps
	@dpkg-checkbuilddeps 2>/dev/null || { echo "installing the build dependencies of debian/control"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq $(CURDIR) >/dev/null; }
	@dpkg-query -W -f='$${Status}\n' lintian 2>/dev/null | grep -q 'install ok installed' || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian >/dev/null; }

# The developers' virtualenv: a plain, non-editable install, run from another
# directory: what users get (the product only), with the test tools. Then the test
# lab (lab/, distribution wgkill-lab, package wgkill_lab), also non-editable: only
# these targets install it, never `pip install .`.
venv: deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# setuptools builds in the tree and never prunes build/lib: a module moved away would still ship
	@rm -rf build *.egg-info lab/build lab/*.egg-info
	@cd / && $(CURDIR)/$(BIN)/pip install -q --disable-pip-version-check "$(CURDIR)[test]"
	@cd / && $(CURDIR)/$(BIN)/pip install -q --disable-pip-version-check --no-deps --force-reinstall "$(CURDIR)"
	@cd / && $(CURDIR)/$(BIN)/pip install -q --disable-pip-version-check --no-deps --force-reinstall "$(CURDIR)/lab"
	@# systemd-resolved, unbound and openresolv for the DNS lab: unpacked into a cache, never installed
	@cd / && $(CURDIR)/$(BIN)/python -m wgkill_lab.bundles fetch

wheels: venv
	@cd / && $(CURDIR)/$(BIN)/pip wheel -q --disable-pip-version-check -w $(CURDIR)/$(WHEELS) \
	  "$(CURDIR)" setuptools wheel
	@ls $(ANSIBLE_WHEELS)/ansible_core-*.whl >/dev/null 2>&1 || (cd / && $(CURDIR)/$(BIN)/pip download -q \
	  --disable-pip-version-check --only-binary=:all: -d $(CURDIR)/$(ANSIBLE_WHEELS) "$(ANSIBLE_CORE)")

demo: venv
	unshare --net -- $(BIN)/python -m wgkill_lab.demo

# Style, then types (mypy --strict, pyproject.toml), the layers' import contracts (import-linter,
# pyproject.toml), dead code (vulture; lint/vulture_whitelist.py names what only templates use) and
# complexity (radon: none above 30, at most five above 20; lint/complexity.py).
lint: venv
	$(BIN)/ruff check wgkill templates tests bench lab lint
	$(BIN)/mypy
	cd $(CURDIR) && $(BIN)/lint-imports
	$(BIN)/vulture wgkill lint/vulture_whitelist.py
	$(BIN)/radon cc -j wgkill | $(BIN)/python lint/complexity.py

test: lint deb-deps wheels
	unshare --net -- $(BIN)/pytest $(PYTEST_ARGS)

unit: venv
	$(BIN)/pytest -m "not lab" $(PYTEST_ARGS)

lab: venv deb-deps wheels
	unshare --net -- $(BIN)/pytest -m lab $(PYTEST_ARGS)

# Benchmarks against the article's rules and against no rules (issue 8): writes docs/benchmarks.md;
# bench/guard_idle.py prints what an idle wgkill-guard costs (issue 21).
bench: venv
	unshare --net -- $(BIN)/python bench/run.py
	unshare --net -- $(BIN)/python bench/backends.py
	unshare --net -- $(BIN)/python bench/reconnect.py
	unshare --net -- $(BIN)/python bench/budget.py
	unshare --net -- $(BIN)/python bench/guard_idle.py

# The alert rules' test series (contrib/prometheus), captured anew from the lab: after a change to
# wgkill-status's metrics, when tests/lab/test_alert_series_lab.py says the lab prints other series.
alert-series: venv
	unshare --net -- $(BIN)/python -m wgkill_lab.alerting capture tests/golden/prometheus
	$(BIN)/python -m wgkill_lab.alerting tests tests/golden/prometheus >contrib/prometheus/wgkill.rules.test.yml

# ---- installing for real (issue 14) ----------------------------------------------

# A Debian package in dist/, built in a temporary copy of the checkout (without
# lab/, tests/, bench/): the checkout itself is left as it was, dist/ aside.
# The build sees only the system's PATH: Debian's python3, never a pyenv or venv one.
deb: deb-deps
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; mkdir "$$tmp/wgkill"; \
	tar -C $(CURDIR) --exclude=./.git --exclude=./.venv --exclude=./dist --exclude=./build \
	  --exclude=./lab --exclude=./tests --exclude=./bench --exclude='*.egg-info' \
	  --exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache -cf - . | tar -C "$$tmp/wgkill" -xf -; \
	(cd "$$tmp/wgkill" && PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -b -us -uc \
	  >"$$tmp/build.log" 2>&1) || \
	  { tail -n 40 "$$tmp/build.log"; exit 1; }; \
	mkdir -p dist; rm -f dist/wgkill_*.deb; cp "$$tmp"/wgkill_*.deb dist/; ls dist/wgkill_*.deb

# Everyone else: a virtualenv in PREFIX on the system's Python, links in SBINDIR
# (on wg-quick@.service's PATH), man pages in MANDIR, the units in UNITDIR with
# ExecStart in SBINDIR, enabled. `make uninstall` removes exactly what it recorded.
# pipx instead: PIPX_HOME=/opt/pipx PIPX_BIN_DIR=/usr/local/sbin pipx install . && make install-unit
PREFIX         ?= /opt/wgkill
SBINDIR        ?= /usr/local/sbin
MANDIR         ?= /usr/local/share/man
UNITDIR        ?= /etc/systemd/system
INSTALL_PYTHON ?= /usr/bin/python3
PIP_ARGS       ?=
INSTALL_ENV = PREFIX="$(PREFIX)" SBINDIR="$(SBINDIR)" MANDIR="$(MANDIR)" UNITDIR="$(UNITDIR)" \
              PYTHON="$(INSTALL_PYTHON)" PIP_ARGS="$(PIP_ARGS)"

install:
	@$(INSTALL_ENV) sh hooks/install.sh install

uninstall:
	@$(INSTALL_ENV) sh hooks/install.sh uninstall

install-unit:
	@$(INSTALL_ENV) sh hooks/install.sh units

uninstall-unit:
	@$(INSTALL_ENV) sh hooks/install.sh remove-units

clean-lab: venv
	$(BIN)/python -c "from wgkill_lab.netns import reap_stale; print('removed:', *reap_stale())"

clean:
	rm -rf $(VENV) build dist *.egg-info lab/build lab/*.egg-info .pytest_cache .ruff_cache

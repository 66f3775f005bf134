# churnlens: `make demo` runs the main job, `make test` runs the whole test suite.
# Both install everything first (uv from PyPI, then the locked dependencies into .venv).

PYTHON ?= python3
UV := $(PYTHON) -m uv
HOME_DIR ?= churnlens-data
PYTEST_ARGS ?=

.PHONY: install browsers engines demo test lint audit bench clean

install:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv \
		|| $(PYTHON) -m pip install --quiet --break-system-packages uv
	$(UV) sync --frozen

# Debian's Chromium and its driver, for the browser tests of the CSM pages
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browsers:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
		|| { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver; }

# Java 17+ for Spark in local mode and PostgreSQL's server binaries, for the scale-out tests
JAVA_OK := $(shell java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])' && echo yes)
PG_OK := $(shell ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && echo yes)
engines:
ifneq ($(JAVA_OK)$(PG_OK),yesyes)
	$(SUDO) mkdir -p /usr/share/man/man1
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless postgresql
endif

demo: install
	$(UV) run churnlens --home $(HOME_DIR) demo

test: install browsers engines
	$(UV) run pytest -n 2 --dist loadfile --durations=15 $(PYTEST_ARGS)

lint: install
	$(UV) run ruff check src tests bench
	$(UV) run mypy

# uv.lock against the vulnerability advisories: exit 0 clean, 1 vulnerabilities found,
# 2 the advisory database could not be reached (said plainly; CI runs it with the network)
audit: install
	$(UV) run python scripts/audit.py

bench: install
	$(UV) run python bench/synth_validate.py

clean:
	rm -rf $(HOME_DIR) .pytest_cache .ruff_cache .mypy_cache

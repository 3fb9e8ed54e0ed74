# lowcode-engine developer tasks.
#
#   make install   create .venv (python3.11, else python3) and install the project with its test extra
#   make run       migrate, load examples/bank, print a new admin API token and serve on http://127.0.0.1:8000 (docs at /docs)
#   make test      run the suite on SQLite, then again on PostgreSQL if LOWCODE_TEST_DATABASE_URL is set
#   make bench     run benchmarks/run_all.sh
#   make clean     remove build artefacts and caches; `make distclean` also removes .venv and var/
#
# Variables: PYTHON (interpreter for the venv), PYTEST_ARGS (extra pytest arguments, e.g.
# PYTEST_ARGS="-x tests/api"), HOST / PORT for `make run`. The database for `make run` is
# LOWCODE_DATABASE_URL when set, else the engine's default sqlite:///var/lowcode.db.

SHELL := /bin/sh

VENV        := .venv
VENV_PY     := $(VENV)/bin/python
LOWCODE     := $(VENV)/bin/lowcode
STAMP       := $(VENV)/.install-stamp
PYTHON      ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
PYTEST_ARGS ?=
HOST        ?= 127.0.0.1
PORT        ?= 8000

.DEFAULT_GOAL := help

.PHONY: help venv install run test bench clean distclean

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

# The interpreter is an order-only prerequisite: its mtime (a symlink to the system Python) must
# not trigger reinstalls. The stamp is newer than pyproject.toml once the install has succeeded,
# so a second `make test` installs nothing until pyproject.toml changes.
$(VENV_PY):
	@test -n "$(PYTHON)" || { echo "make: neither python3.11 nor python3 found" >&2; exit 1; }
	"$(PYTHON)" -m venv $(VENV)

$(STAMP): pyproject.toml | $(VENV_PY)
	$(VENV_PY) -m pip install --disable-pip-version-check -e '.[test]'
	@touch $@

venv install: $(STAMP)

run: $(STAMP)
	mkdir -p var
	@echo "== database: $${LOWCODE_DATABASE_URL:-engine default (sqlite:///var/lowcode.db)} =="
	$(LOWCODE) migrate
	$(LOWCODE) load examples/bank
	@token=$$($(LOWCODE) tokens create --user admin --roles admin --expires 7d --note "make run") && \
	  echo "== development admin token (valid 7 days; shown once, \`lowcode tokens list\` lists them):" && \
	  echo "   $$token" && \
	  echo "   curl -H \"Authorization: Bearer $$token\" http://$(HOST):$(PORT)/api/v1/definitions"
	$(LOWCODE) serve --host $(HOST) --port $(PORT)

# Both runs always happen (when PostgreSQL is configured), so one report shows both databases.
# Any non-zero pytest exit fails the target, including 5 ("no tests collected").
test: $(STAMP)
	@sqlite_rc=0; pg_rc=0; \
	echo "== SQLite =="; \
	env -u LOWCODE_TEST_DATABASE_URL $(VENV_PY) -m pytest -q $(PYTEST_ARGS) || sqlite_rc=$$?; \
	if [ -n "$${LOWCODE_TEST_DATABASE_URL:-}" ]; then \
	  shown=$$(printf '%s' "$$LOWCODE_TEST_DATABASE_URL" | sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#'); \
	  echo "== PostgreSQL: $$shown =="; \
	  LOWCODE_TEST_DATABASE_URL="$$LOWCODE_TEST_DATABASE_URL" $(VENV_PY) -m pytest -q $(PYTEST_ARGS) || pg_rc=$$?; \
	else \
	  echo "(LOWCODE_TEST_DATABASE_URL not set: PostgreSQL run skipped)"; \
	fi; \
	for pair in "SQLite:$$sqlite_rc" "PostgreSQL:$$pg_rc"; do \
	  name=$${pair%%:*}; rc=$${pair##*:}; \
	  case $$rc in \
	    0) ;; \
	    5) echo "make test: $$name run collected no tests (pytest exit 5)" >&2 ;; \
	    *) echo "make test: $$name run failed (pytest exit $$rc)" >&2 ;; \
	  esac; \
	done; \
	[ $$sqlite_rc -eq 0 ] && [ $$pg_rc -eq 0 ]

# The bench extra (SpiffWorkflow, the peer of benchmarks/workflow_vs_spiff.py) on top of the test install.
$(VENV)/.bench-stamp: pyproject.toml $(STAMP)
	$(VENV_PY) -m pip install --disable-pip-version-check -e '.[test,bench]'
	@touch $@

bench: $(VENV)/.bench-stamp
	@if [ -f benchmarks/run_all.sh ]; then \
	  PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash benchmarks/run_all.sh; \
	else \
	  echo "benchmarks/run_all.sh not found: nothing to run"; \
	fi

clean:
	rm -rf build dist wheelhouse .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) var

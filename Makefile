# `make demo` and `make test` each set up .venv on first use (scripts/setup.sh).
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/quickstart.yaml

$(VENV)/.toolweave-ready: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

.PHONY: setup demo test test-quick bench docs
setup: $(VENV)/.toolweave-ready

demo: setup
	$(VENV)/bin/toolweave run $(CONFIG)

# two pytest-xdist workers: the tests that start Ray, engines or clusters in one, in order (tests/conftest.py
# groups them), the unit tests in both (one pytest process left the second core idle about half the time)
test: setup
	$(PY) -m pytest -q -n 2 --dist loadgroup --durations=40 tests

test-quick: setup
	$(PY) -m pytest -q -n 2 -m "not integration and not slow and not cluster and not configs" tests

bench: setup
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

# the documentation site (docs/, mkdocs.yml) into site/; --strict: a broken link or anchor, or a page off
# the nav, fails (not with --quiet: mkdocs 1.6 then stops counting the warnings)
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

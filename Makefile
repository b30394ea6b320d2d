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

# the unit tier in a second pytest process beside the tiers that start Ray, engines and clusters (one
# process left the second core idle about half the time; two heavy tests at once ran this 2-core,
# 24 GiB machine out of memory); the unit tier's report is printed after the rest
QUICK := not integration and not slow and not cluster and not configs
test: setup
	@unit_log=$$(mktemp); \
	$(PY) -m pytest -q -p no:cacheprovider -m "$(QUICK)" tests >$$unit_log 2>&1 & unit=$$!; \
	$(PY) -m pytest -q --durations=40 -m "not ($(QUICK))" tests; heavy=$$?; \
	wait $$unit; unit_rc=$$?; echo "== the unit tier ($(QUICK)), run beside the rest:"; \
	cat $$unit_log; rm -f $$unit_log; exit $$(( heavy || unit_rc ))

test-quick: setup
	$(PY) -m pytest -q -n 2 -m "$(QUICK)" tests

bench: setup
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

# the documentation site (docs/, mkdocs.yml) into site/; --strict: a broken link or anchor, or a page off
# the nav, fails (not with --quiet: mkdocs 1.6 then stops counting the warnings)
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

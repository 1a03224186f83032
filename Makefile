# Two commands do all the set-up on a fresh machine:
#   make run    index a demo library (or FOLDER=...) and serve it on http://127.0.0.1:8765
#   make test   run the whole test suite
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: run test lint bench install browser

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,semantic,faces,diffusers,nsfw,postgresql,s3]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(if $(FOLDER),$(VENV)/bin/dreamdepot $(if $(LIBRARY),--library $(LIBRARY)) add $(FOLDER) &&) \
	$(VENV)/bin/dreamdepot $(if $(LIBRARY),--library $(LIBRARY)) serve $(ARGS)

# The UI tests drive Debian's Chromium (Playwright never downloads a browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian chromium for the UI tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing and cannot be installed here: UI tests will be skipped"; fi; }

# The suite runs on the embedded SQLite catalog, then its catalog-facing tests run again
# with every test library's catalog in PostgreSQL (pgserver, started by the tests).
PG_TESTS = tests --ignore=tests/test_readers.py --ignore=tests/test_readers_round_two.py \
	--ignore=tests/test_fuzz.py --ignore=tests/test_corpus_conformance.py \
	--ignore=tests/test_layers.py --ignore=tests/test_ui.py

test: $(STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)
	DREAMDEPOT_TEST_ENGINE=postgresql $(PY) -m pytest $(PG_TESTS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

bench: $(STAMP) browser
	$(PY) bench/ingest.py
	$(PY) bench/metadata.py
	$(PY) bench/thumbs.py
	$(PY) bench/query.py
	$(PY) bench/ui.py
	$(PY) bench/generate.py
	$(PY) bench/comfyui.py
	$(PY) bench/workers.py
	$(PY) bench/service.py
	$(PY) bench/shared_cache.py

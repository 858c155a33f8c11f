# Two commands for a fresh machine: `make demo` and `make test`.
# Both create .venv and install everything first (torch's CPU build first, so
# the package's torch range is already satisfied and no CUDA build is fetched).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench-classical clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/inrcodec demo

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) demo-out .pytest_cache

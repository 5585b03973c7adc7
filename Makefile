# Two commands do all the set-up on a fresh machine:
#   make run    creates .venv from requirements.txt (the base install and every extra) if needed,
#               then filters the shipped samples
#   make test   same venv, then the test suite
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
ARGS   ?=

.PHONY: run test venv clean

$(VENV)/.installed: requirements.txt $(wildcard requirements/*.txt)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) -m pipeline.run $(ARGS)

# The venv's bin goes first on PATH: Beam's portable-runner workers start `python` from PATH.
test: venv
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -q $(ARGS)

clean:
	rm -rf textfilter-out .pytest_cache

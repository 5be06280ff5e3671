# fishtrack — make demo | make test | make bench | make lint
# Every target creates .venv (if missing) and installs the package with its extras first.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fishtrack-installed
EXTRAS ?= all
DEMO_OUT ?= demo_out
# napari/Qt tests need a display: use a virtual one when xvfb-run exists
XVFB := $(shell command -v xvfb-run >/dev/null 2>&1 && echo "xvfb-run -a")

.PHONY: demo test bench lint install clean samples

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	# byte-compile the package as a regular pip install would: with PYTHONDONTWRITEBYTECODE
	# set, an editable install otherwise compiles its modules on every start (~0.2 s of CPU)
	$(PY) -m compileall -q fishtrack
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m fishtrack.demo --out $(DEMO_OUT)

test: $(STAMP)
	# the 20 slowest tests in the log (CI): where the suite's time goes
	$(XVFB) $(PY) -m pytest -q --durations=20

bench: $(STAMP)
	$(PY) bench/run_all.py --out docs/benchmarks.md

lint: $(STAMP)
	$(VENV)/bin/ruff check fishtrack tests bench

samples: $(STAMP)
	$(PY) sample_videos/make_samples.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .ruff_cache

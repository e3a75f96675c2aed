# The user's front door. `make help` lists every target.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test data

help: ## List every target with one line each
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) ## Create .venv and install the package editable with test extras

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

test: install ## Run the test suite (full-data tests run when DATASETS_MIRROR is set)
	$(PY) -m pytest -q

data: install ## Fetch, verify and extract spa-eng, IMDb and JSB Chorales into datasets/
	$(PY) -m datafiles spa-eng imdb jsb

# --- transformer/ ---
DIRECTION ?= en-es
PROFILE ?= demo
RUN ?= $(DIRECTION)-$(PROFILE)
CHECKPOINT ?= checkpoints/$(RUN)
BEAM ?= 1
FIGURES ?= figures
SENTENCE1 := Anthony Hopkins admired Michael Bay as a great director.
SENTENCE2 := He admired her as a great director.
ifdef SENTENCE
HEATMAP_SENTENCES := --sentence "$(SENTENCE)"
else
HEATMAP_SENTENCES := --sentence "$(SENTENCE1)" --sentence "$(SENTENCE2)"
endif
.PHONY: demo quality train translate evaluate heatmaps demos data-stats bench-transformer

demo: install ## The main job: train a small en->es translator (~15 min on 2 CPU cores; a finished run is reused, an interrupted one resumed), translate and plot the article's sentences
	$(PY) -m datafiles spa-eng
	$(PY) -m transformer train --direction $(DIRECTION) --profile $(PROFILE) --run $(RUN)
	$(PY) -m transformer translate --checkpoint $(CHECKPOINT) "$(SENTENCE1)" "$(SENTENCE2)"
	$(PY) -m transformer heatmaps --checkpoint $(CHECKPOINT) $(HEATMAP_SENTENCES) --out $(FIGURES)/heatmaps

quality: install ## Train base for DIRECTION (resumable; es-en about 80 min on 2 CPU cores) and score it on the test split with beam 4
	$(PY) -m transformer train --direction $(DIRECTION) --profile base --run $(DIRECTION)-base
	$(PY) -m transformer evaluate --checkpoint checkpoints/$(DIRECTION)-base --split test --beam 4

data-stats: install ## Pairs, unique sources and the source-disjoint 90/5/5 split of spa.txt
	$(PY) -m transformer data-stats

train: install ## Train (or resume) a translator: DIRECTION=en-es|es-en PROFILE=tiny|demo|base|big
	$(PY) -m transformer train --direction $(DIRECTION) --profile $(PROFILE) --run $(RUN)

translate: install ## Translate SENTENCE (default: the article's two) with CHECKPOINT (default checkpoints/DIRECTION-PROFILE)
ifdef SENTENCE
	$(PY) -m transformer translate --checkpoint $(CHECKPOINT) --beam $(BEAM) "$(SENTENCE)"
else
	$(PY) -m transformer translate --checkpoint $(CHECKPOINT) --beam $(BEAM) "$(SENTENCE1)" "$(SENTENCE2)"
endif

evaluate: install ## BLEU, chrF and perplexity of CHECKPOINT on the test split (BEAM=4 for beam search)
	$(PY) -m transformer evaluate --checkpoint $(CHECKPOINT) --split test --beam $(BEAM)

heatmaps: install ## Attention heat maps of CHECKPOINT for SENTENCE (default: the article's two sentences)
	$(PY) -m transformer heatmaps --checkpoint $(CHECKPOINT) $(HEATMAP_SENTENCES) --out $(FIGURES)/heatmaps

demos: install ## The article's worked examples: split-heads, mantra, cross-attention, masks, positional-encoding
	$(PY) -m transformer demo all --out $(FIGURES)/demos

PORT ?= 8000
.PHONY: serve transformer-plot-run
serve: install ## The attention explorer on http://127.0.0.1:PORT/ with the shipped models (or CHECKPOINT=DIR)
	$(PY) -m transformer serve $(if $(filter command line environment,$(origin CHECKPOINT)),--checkpoint $(CHECKPOINT)) --port $(PORT)

transformer-plot-run: install ## Learning rate, loss, accuracy and perplexity curves of CHECKPOINT into figures/runs/
	$(PY) -m transformer plot-run --checkpoint $(CHECKPOINT) --out $(FIGURES)/runs

# --- embeddings/ ---
IMDB_RUN := checkpoints/imdb-tutorial
METHOD ?= tsne
.PHONY: train-imdb projector embedding-map train-imdb-bilstm train-imdb-tfidf bench-embeddings

train-imdb: install ## Train the tutorial word-embedding classifier on IMDb and score the 25,000 test reviews
	$(PY) -m embeddings train --run-dir $(IMDB_RUN)
	$(PY) -m embeddings evaluate --checkpoint $(IMDB_RUN)

$(IMDB_RUN)/model.keras: | install
	$(PY) -m embeddings train --run-dir $(IMDB_RUN)

projector: $(IMDB_RUN)/model.keras ## Export the IMDb embedding for the Embedding Projector (TSV files + TensorBoard set-up)
	$(PY) -m embeddings export --checkpoint $(IMDB_RUN)

embedding-map: $(IMDB_RUN)/model.keras ## Map the IMDb vocabulary in 2-D with scikit-learn (METHOD=pca|tsne|isomap|mds|spectral|lle|all)
	$(PY) -m embeddings map --checkpoint $(IMDB_RUN) --method $(METHOD)

train-imdb-bilstm: install ## Train and score the BiLSTM classifier on the same subword tokens (about 25 min on 2 CPU cores)
	$(PY) -m embeddings train --model bilstm
	$(PY) -m embeddings evaluate --checkpoint checkpoints/imdb-bilstm

bench-embeddings: install ## Embeddings classifier training/prediction speed vs the TF tutorial's stock model (QUICK=1 for a smoke run)
	$(PY) -m embeddings bench $(if $(QUICK),--quick) --out bench-results/embeddings

train-imdb-tfidf: install ## Fit and score the scikit-learn TF-IDF + logistic-regression baseline
	$(PY) -m embeddings train --model tfidf
	$(PY) -m embeddings evaluate --checkpoint checkpoints/imdb-tfidf

bench-transformer: install ## Transformer speed ratios vs stock Keras (JSON + Markdown in bench-results/transformer; QUICK=1 for a smoke run)
	$(PY) -m transformer bench $(if $(QUICK),--quick) --out bench-results/transformer

# --- lstm/ ---
BUDGET ?= quick
.PHONY: lstm-gradcheck lstm-vanishing lstm-clipping lstm-variants lstm-bench bench

lstm-gradcheck: install ## Check hand-written LSTM BPTT against autodiff and finite differences (every variant)
	$(PY) -m lstm gradcheck

lstm-vanishing: install ## Gradient norm vs time lag for a SimpleRNN and the LSTM (CSV + PNG in out/lstm-vanishing)
	$(PY) -m lstm vanishing --out out/lstm-vanishing

lstm-clipping: install ## Exploding RNN trained with and without gradient clipping (CSV + PNG + verdict)
	$(PY) -m lstm clipping --out out/lstm-clipping

lstm-variants: install ## Greff et al.'s LSTM variant study on JSB Chorales (BUDGET=quick|full)
	$(PY) -m lstm variants --dataset jsb --budget $(BUDGET) --out out/lstm-variants

lstm-bench: install ## Forward+backward time of the custom LSTM against keras.layers.LSTM
	$(PY) -m lstm bench

bench: bench-transformer bench-embeddings lstm-bench ## All speed benchmarks: Transformer, embeddings classifier and LSTM (QUICK=1 for smoke runs)

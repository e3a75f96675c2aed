# The user's front door. `make help` lists every target.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test lint format data

##@ Setup and shortcuts (targets are <package>-<verb>; the main jobs keep short names)
help: ## List every target with one line each, grouped by package
	@awk 'BEGIN {FS = ":.*## "} /^##@ / {printf "\n%s\n", substr($$0, 5)} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-24s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) ## Create .venv and install the package editable with test extras

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

TEST_JOBS ?= 2
test: install ## Run the test suite in TEST_JOBS processes (default 2; 0 = one process; full-data tests run when DATASETS_MIRROR is set)
	$(PY) -m pytest -q $(if $(filter-out 0,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadfile)

lint: install ## ruff check (pyflakes, pycodestyle, import order, bugbear) and ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## Apply ruff's import order and formatting
	$(VENV)/bin/ruff check --select I --fix .
	$(VENV)/bin/ruff format .

data: install ## Fetch, verify and extract spa-eng, IMDb and JSB Chorales into datasets/
	$(PY) -m tutorials_common.datafiles spa-eng imdb jsb

##@ transformer/: the English-Spanish translator (python -m transformer)
CHECKPOINTS_DIR ?= checkpoints
DIRECTION ?= en-es
PROFILE ?= demo
RUN ?= $(DIRECTION)-$(PROFILE)
WORKERS ?= 2
TRAIN_ARGS ?=
CHECKPOINT ?= $(CHECKPOINTS_DIR)/$(RUN)
BEAM ?= 1
QUALITY_EPOCHS ?= 4
QUALITY_DROPOUT ?= 0
QUALITY_RUN ?= $(DIRECTION)-base-dropout$(QUALITY_DROPOUT)
FIGURES ?= figures
SENTENCE1 := Anthony Hopkins admired Michael Bay as a great director.
SENTENCE2 := He admired her as a great director.
SENTENCE1_ES := Anthony Hopkins admiraba a Michael Bay como un gran director.
SENTENCE2_ES := Él la admiraba como una gran directora.
ifdef SENTENCE
HEATMAP_SENTENCES := --sentence "$(SENTENCE)"
else
HEATMAP_SENTENCES := --sentence "$(SENTENCE1)" --sentence "$(SENTENCE2)"
endif
.PHONY: demo demo-en-es demo-es-en demo-train quality transformer-train transformer-train-multiworker transformer-translate transformer-evaluate transformer-heatmaps \
	transformer-demos transformer-data-stats transformer-bench

demo: install ## The main job: translate the article's sentences both ways with the shipped models and plot their attention (about a minute on 2 cores)
	@$(MAKE) --no-print-directory -j2 --output-sync=target demo-en-es demo-es-en  # one direction per core, each printed whole
	@echo "heat maps: $(FIGURES)/heatmaps/en-es/ and $(FIGURES)/heatmaps/es-en/"

demo-en-es demo-es-en: demo-%:
	$(PY) -m transformer translate --direction $* $(if $(filter en-es,$*),"$(SENTENCE1)" "$(SENTENCE2)","$(SENTENCE1_ES)" "$(SENTENCE2_ES)")
	$(PY) -m transformer heatmaps --direction $* --out $(FIGURES)/heatmaps/$*

demo-train: install ## Train the small `demo` en->es translator yourself (~15 min on 2 CPU cores; resumable), translate and plot
	$(PY) -m tutorials_common.datafiles spa-eng
	$(PY) -m transformer train --direction $(DIRECTION) --profile $(PROFILE) --run $(RUN)
	$(PY) -m transformer translate --checkpoint $(CHECKPOINT) "$(SENTENCE1)" "$(SENTENCE2)"
	$(PY) -m transformer heatmaps --checkpoint $(CHECKPOINT) $(HEATMAP_SENTENCES) --out $(FIGURES)/heatmaps

quality: install ## Train base for DIRECTION for QUALITY_EPOCHS epochs with dropout QUALITY_DROPOUT (4 and 0: test BLEU 46 in under 15 min on a 2-core AMD EPYC Zen 4; resumable) and score it on the test split with beam 4; QUALITY_EPOCHS=40 QUALITY_DROPOUT=0.1 is the shipped models' recipe
	$(PY) -m transformer train --direction $(DIRECTION) --profile base --run $(QUALITY_RUN) --epochs $(QUALITY_EPOCHS) --dropout $(QUALITY_DROPOUT) $(TRAIN_ARGS)
	$(PY) -m transformer evaluate --checkpoint $(CHECKPOINTS_DIR)/$(QUALITY_RUN) --split test --beam 4

RECIPE_DIR ?= $(CHECKPOINTS_DIR)/recipe
RECIPE_FLAGS ?= --d-model 256 --dff 1024 --attention-dropout 0.1 --activation-dropout 0.1 --subword-alpha 0.1
recipe: install ## Issue 36's candidate recipe (RECIPE_FLAGS) for both directions with Keras on JAX (a GPU; tools/train_on_jax.py), last 5 epochs averaged too, test BLEU beam 4 of both; resumable: finished stages are skipped
	set -e; for d in es-en en-es; do run=$(RECIPE_DIR)/$$d; \
	  test -f $$run/ids.npz || $(PY) tools/train_on_jax.py prepare --direction $$d --run-dir $$run $(RECIPE_FLAGS); \
	  test -f $$run/.trained || { KERAS_BACKEND=jax $(PY) tools/train_on_jax.py train --run-dir $$run --epochs 60 --patience 6 --average 5 && touch $$run/.trained; }; \
	  mkdir -p $$run-average && cp $$run/config.json $$run/tokenizer_* $$run-average/ && cp $$run/weights-average.npz $$run-average/weights.npz; \
	  for r in $$run $$run-average; do test -f $$r.test-beam4.txt || { $(PY) -m transformer evaluate --checkpoint $$r --split test --beam 4 --out $$r-eval > $$r.test-beam4.tmp && mv $$r.test-beam4.tmp $$r.test-beam4.txt; }; cat $$r.test-beam4.txt; done; \
	done

transformer-data-stats: install ## Pairs, unique sources and the source-disjoint 90/5/5 split of spa.txt
	$(PY) -m transformer data-stats

transformer-train: install ## Train (or resume) a translator: DIRECTION=en-es|es-en PROFILE=tiny|demo|base|big
	$(PY) -m transformer train --direction $(DIRECTION) --profile $(PROFILE) --run $(RUN)

transformer-train-multiworker: install ## The same with WORKERS=2 local worker processes (tf.distribute multi-worker; more flags in TRAIN_ARGS)
	$(PY) tools/multiworker.py --workers $(WORKERS) -- --direction $(DIRECTION) --profile $(PROFILE) --run $(RUN) $(TRAIN_ARGS)

transformer-translate: install ## Translate SENTENCE (default: the article's two) with CHECKPOINT (default checkpoints/DIRECTION-PROFILE)
ifdef SENTENCE
	$(PY) -m transformer translate --checkpoint $(CHECKPOINT) --beam $(BEAM) "$(SENTENCE)"
else
	$(PY) -m transformer translate --checkpoint $(CHECKPOINT) --beam $(BEAM) "$(SENTENCE1)" "$(SENTENCE2)"
endif

transformer-evaluate: install ## BLEU, chrF and perplexity of CHECKPOINT on the test split (BEAM=4 for beam search)
	$(PY) -m transformer evaluate --checkpoint $(CHECKPOINT) --split test --beam $(BEAM)

transformer-heatmaps: install ## Attention heat maps of CHECKPOINT for SENTENCE (default: the article's two sentences)
	$(PY) -m transformer heatmaps --checkpoint $(CHECKPOINT) $(HEATMAP_SENTENCES) --out $(FIGURES)/heatmaps

transformer-demos: install ## The article's worked examples: split-heads, mantra, cross-attention, masks, positional-encoding
	$(PY) -m transformer demo all --out $(FIGURES)/demos

PORT ?= 8000
.PHONY: serve transformer-plot-run
serve: install ## The attention explorer on http://127.0.0.1:PORT/ with the shipped models (or CHECKPOINT=DIR)
	$(PY) -m transformer serve $(if $(filter command line environment,$(origin CHECKPOINT)),--checkpoint $(CHECKPOINT)) --port $(PORT)

transformer-plot-run: install ## Learning rate, loss, accuracy and perplexity curves of CHECKPOINT into figures/runs/
	$(PY) -m transformer plot-run --checkpoint $(CHECKPOINT) --out $(FIGURES)/runs

transformer-bench: install ## Transformer speed ratios vs stock Keras (JSON + Markdown in out/bench/transformer; QUICK=1 for a smoke run)
	$(PY) -m transformer bench $(if $(QUICK),--quick) --out out/bench/transformer

##@ embeddings/: word embeddings on IMDb reviews (python -m embeddings)
IMDB_RUN := $(CHECKPOINTS_DIR)/imdb-tutorial
METHOD ?= tsne
.PHONY: embeddings-train embeddings-projector embeddings-map embeddings-train-fasttext embeddings-train-nbsvm embeddings-ensemble embeddings-train-tfidf \
	embeddings-bench

embeddings-train: install ## Train the tutorial word-embedding classifier on IMDb and score the 25,000 test reviews
	$(PY) -m embeddings train --run imdb-tutorial
	$(PY) -m embeddings evaluate --checkpoint $(IMDB_RUN)

$(IMDB_RUN)/model.keras: | install
	$(PY) -m embeddings train --run imdb-tutorial

embeddings-projector: $(IMDB_RUN)/model.keras ## Export the IMDb embedding for the Embedding Projector (TSV files + TensorBoard set-up)
	$(PY) -m embeddings export --checkpoint $(IMDB_RUN)

embeddings-map: $(IMDB_RUN)/model.keras ## Map the IMDb vocabulary in 2-D with scikit-learn (METHOD=pca|tsne|isomap|mds|spectral|lle|all)
	$(PY) -m embeddings map --checkpoint $(IMDB_RUN) --method $(METHOD)

embeddings-train-fasttext: install ## Train and score the fastText-style word+bigram model (about 15 min on 2 CPU cores)
	$(PY) -m embeddings train --model fasttext
	$(PY) -m embeddings evaluate --checkpoint $(CHECKPOINTS_DIR)/imdb-fasttext

embeddings-train-nbsvm: install ## Train NBSVM (Wang & Manning 2012; C chosen on validation) and score it
	$(PY) -m embeddings train --model nbsvm
	$(PY) -m embeddings evaluate --checkpoint $(CHECKPOINTS_DIR)/imdb-nbsvm

embeddings-ensemble: install ## Calibrated fastText + NBSVM ensemble on the IMDb test reviews (after the two above)
	$(PY) -m embeddings ensemble $(CHECKPOINTS_DIR)/imdb-fasttext $(CHECKPOINTS_DIR)/imdb-nbsvm

embeddings-bench: install ## Embeddings classifier training/prediction speed vs the TF tutorial's stock model (QUICK=1 for a smoke run; out/bench/embeddings)
	$(PY) -m embeddings bench $(if $(QUICK),--quick) --out out/bench/embeddings

embeddings-train-tfidf: install ## Fit and score the scikit-learn TF-IDF + logistic-regression baseline
	$(PY) -m embeddings train --model tfidf
	$(PY) -m embeddings evaluate --checkpoint $(CHECKPOINTS_DIR)/imdb-tfidf

##@ lstm/: the LSTM block, BPTT, gradients and variants (python -m lstm)
BUDGET ?= quick
JOBS ?= 1
REFINE ?=
STORAGE ?= sqlite:///out/lstm/jsb.db
.PHONY: lstm-gradcheck lstm-vanishing lstm-clipping lstm-variants lstm-variants-report lstm-bench bench

lstm-gradcheck: install ## Check hand-written LSTM BPTT against autodiff and finite differences (every variant)
	$(PY) -m lstm gradcheck

lstm-vanishing: install ## Gradient norm vs time lag for a SimpleRNN and the LSTM (CSV + PNG in out/lstm-vanishing)
	$(PY) -m lstm vanishing --out out/lstm-vanishing

lstm-clipping: install ## Exploding RNN trained with and without gradient clipping (CSV + PNG + verdict)
	$(PY) -m lstm clipping --out out/lstm-clipping

lstm-variants: install ## Greff et al.'s LSTM variant study on JSB Chorales (BUDGET=quick|full; full: Optuna studies in STORAGE=URL, JOBS=N worker processes, continuing the committed study; TUNE=N: N TPE trials per variant; REFINE=K: retrain each variant's K best trials up to 200 epochs)
	$(PY) -m lstm variants --dataset jsb --budget $(BUDGET) --jobs $(JOBS) $(if $(REFINE),--refine $(REFINE)) $(if $(TUNE),--tune $(TUNE)) \
		$(if $(filter full,$(BUDGET)),--storage $(STORAGE) $(if $(REFINE)$(TUNE),,--import docs/results/jsb-study.jsonl)) --out out/lstm-variants

lstm-variants-report: install ## Tables, box plot, learning-rate curve and fANOVA + binned importance of the study (docs/results/jsb-study.jsonl, or STORAGE=URL)
	$(PY) -m lstm variants-report $(if $(filter command line environment,$(origin STORAGE)),--storage $(STORAGE))

lstm-bench: install ## Forward+backward time of the custom LSTM against keras.layers.LSTM (out/bench/lstm)
	$(PY) -m lstm bench --out out/bench/lstm

.PHONY: lstm-circuit-models
lstm-circuit-models: install ## Retrain the 3-cell models of the LSTM circuit page (lstm/circuit_models/*.npz, seconds)
	$(PY) -m lstm circuit-models --out lstm/circuit_models

##@ notebooks/: the articles as runnable notebooks (extra `[notebooks]`: JupyterLab, nbconvert, nbmake)
NB_STAMP := $(VENV)/.notebooks-installed
NB_TIMEOUT ?= 300
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
.PHONY: notebooks notebooks-test lab

$(NB_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test,notebooks]"
	touch $@

notebooks: $(NB_STAMP) ## Execute every notebook and write it with its figures as HTML under out/notebooks/ (seconds per notebook in timings.txt)
	@mkdir -p out/notebooks
	@: > out/notebooks/timings.txt
	@for nb in $(NOTEBOOKS); do \
	  start=$$(date +%s); \
	  $(VENV)/bin/jupyter nbconvert --to html --execute --ExecutePreprocessor.timeout=$(NB_TIMEOUT) \
	    --output-dir out/notebooks $$nb || exit 1; \
	  echo "$$(basename $$nb .ipynb) $$(( $$(date +%s) - start )) s" | tee -a out/notebooks/timings.txt; \
	done
	@ls -l out/notebooks/*.html

notebooks-test: $(NB_STAMP) ## Run every cell of every notebook (nbmake; NB_TIMEOUT seconds per notebook); a failing cell fails
	$(PY) -m pytest -q -p no:cacheprovider --nbmake --nbmake-timeout=$(NB_TIMEOUT) notebooks/

lab: $(NB_STAMP) ## Open JupyterLab on notebooks/ in the project's environment
	$(VENV)/bin/jupyter lab notebooks/

##@ All packages
bench: transformer-bench embeddings-bench lstm-bench ## All speed benchmarks: Transformer, embeddings classifier and LSTM (QUICK=1 for smoke runs)

# Old target names, kept as aliases for one release (not listed by `make help`).
.PHONY: train translate evaluate heatmaps demos data-stats bench-transformer train-imdb projector embedding-map \
	train-imdb-tfidf bench-embeddings
train: transformer-train
translate: transformer-translate
evaluate: transformer-evaluate
heatmaps: transformer-heatmaps
demos: transformer-demos
data-stats: transformer-data-stats
bench-transformer: transformer-bench
train-imdb: embeddings-train
projector: embeddings-projector
embedding-map: embeddings-map
train-imdb-tfidf: embeddings-train-tfidf
bench-embeddings: embeddings-bench

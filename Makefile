# kmeans_lessons: two commands do everything.
#   make lab    set up .venv and open the course in JupyterLab
#   make test   set up .venv and run every test
SHELL := /bin/bash
PYTHON ?= python3
# VENV may point at an existing environment: its torch is kept.
VENV ?= .venv
BIN := $(VENV)/bin
# Installed only when the environment has no torch at all (this machine's local CPU build).
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.kmeans_lessons_installed

.PHONY: lab test setup export sync bench bench-save bench-auto bench-growth bench-estep bench-overhead bench-kpp bench-bounds bench-meanshift bench-balanced docs-html check-claims

$(STAMP): settings.ini setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -e ".[dev]"
	$(BIN)/python -m pip check
	@touch $@

setup: $(STAMP)

# Jupyter refuses to run as root unless told; course machines run as root.
lab: $(STAMP)
	$(BIN)/jupyter lab nbs/ $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash tools/run_tests.sh

# Regenerate the package and README from the notebooks, and strip notebook metadata.
export: $(STAMP)
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean && $(BIN)/python tools/make_readme.py

sync: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash tools/check_sync.sh

# Lloyd's whole fit at equal work (5 iterations, same init) against scikit-learn and faiss, N=1e5 grid (issue 18);
# a few minutes, under the benchmark lock.
bench: $(STAMP)
	flock -x /tmp/bench.lock $(BIN)/python benchmarks/bench_kmeans.py --fit

# The same, keeping the table in benchmarks/results/fit.json for lesson 05, which prints it: re-execute
# nbs/05_gpu.ipynb afterwards (its printed table and the prose that quotes it come from that file).
bench-save: $(STAMP)
	flock -x /tmp/bench.lock $(BIN)/python benchmarks/bench_kmeans.py --fit --save benchmarks/results/fit.json

# Per-iteration times at two shapes, k-means++, and growth in N (time and peak memory).
bench-growth: $(STAMP)
	$(BIN)/python benchmarks/bench_kmeans.py --growth

# One Lloyd iteration (E-step + sums): kernels.lloyd_pass against the torch path, scikit-learn and faiss (issue 18).
bench-estep: $(STAMP)
	$(BIN)/python benchmarks/bench_kmeans.py --estep

# algorithm='auto' against each algorithm's whole fit, structureless and blob data, 5 and 50 iterations (issue 18).
bench-auto: $(STAMP)
	$(BIN)/python benchmarks/bench_auto.py

# Per-call overhead against scikit-learn (digits with n_init=10, colour quantisation's predict, transform, the first
# fit in a fresh process), the peak memory of an in-memory fit, and default fits (issue 18); a few minutes.
bench-overhead: $(STAMP)
	$(BIN)/python benchmarks/bench_overhead.py

# k-means++ alone: the compiled steps against the torch steps and scikit-learn's kmeans_plusplus (issue 18).
bench-kpp: $(STAMP)
	flock -x /tmp/bench.lock $(BIN)/python benchmarks/bench_kpp.py

# Bound-based k-means (lesson 05b) against scikit-learn (lloyd, elkan) and faiss; several minutes.
bench-bounds: $(STAMP)
	$(BIN)/python benchmarks/bench_bounds.py

bench-meanshift: $(STAMP)
	$(BIN)/python benchmarks/bench_meanshift.py

# Do the lessons' comparative claims hold on a busy machine? Re-runs each notebook CLAIMS_RUNS times while
# CLAIMS_HOGS busy processes run, with torch on its default threads as in JupyterLab, and checks that every cell
# tagged `claim` held (tools/check_claims.py). CPU heavy.
CLAIMS_NBS ?= nbs/03_update.ipynb nbs/04_kmeans.ipynb nbs/05_gpu.ipynb nbs/07_meanshift.ipynb
CLAIMS_RUNS ?= 5
CLAIMS_HOGS ?= 2
check-claims: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python tools/check_claims.py $(CLAIMS_NBS) \
		--runs $(CLAIMS_RUNS) --hogs $(CLAIMS_HOGS)

# BalancedKMeans (lesson 12) against k-means-constrained, side by side; a few minutes.
bench-balanced: $(STAMP)
	$(BIN)/python benchmarks/bench_balanced.py

# The docs' content without Quarto: every notebook rendered to HTML with nbconvert.
docs-html: $(STAMP)
	$(BIN)/jupyter nbconvert --to html --output-dir _docs_html nbs/*.ipynb

# bayes_blina: the two commands are `make demo` and `make test` (see README.md).
# Python 3.12 or newer; found by scripts/find-python unless given: `make test PY=/path/to/python3.13`.
PY ?= $(shell sh scripts/find-python 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
LOCK := requirements/lock.txt
BENCH_LOCK := requirements/bench-lock.txt
OUT ?= out
BB := $(BIN)/bayes-blina

.PHONY: demo test test-fast install clean bench bench-quick lock python-check

## Stops at once, saying what is needed, when no Python 3.12+ was found.
python-check:
	@[ -n "$(PY)" ] || { sh scripts/find-python; exit 1; }
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' || \
	    { echo "PY=$(PY) is Python $$($(PY) -c 'import platform; print(platform.python_version())'); bayes_blina needs 3.12 or newer" >&2; exit 1; }

# The environment CI and `make test` use: exactly the versions in requirements/lock.txt.
$(STAMP): pyproject.toml $(LOCK) | python-check
	@if [ -x $(BIN)/python ] && ! $(BIN)/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)'; then \
	    echo "replacing $(VENV): it was made with Python $$($(BIN)/python -c 'import platform; print(platform.python_version())')"; rm -rf $(VENV); fi
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[test,approx,numpyro]"  # approx: Pathfinder and Laplace; numpyro: its back end
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

## The main job: response model on the published data, dose-toxicity and escalation, relapse-free survival by MRD response, trajectory and joint models on a virtual cohort, checks, report, planning.
demo: $(STAMP)
	@mkdir -p $(OUT)
	$(BB) datasets
	$(BB) fit response --data published --out fits/demo-response --force --no-progress
	$(BB) summary fits/demo-response --format md --out $(OUT)/response-summary.md
	$(BB) summary fits/demo-response --format latex --out $(OUT)/response-summary.tex
	$(BB) predict fits/demo-response --subjects examples/data/new-patients.csv --out $(OUT)/cr-predictions.csv
	$(BB) ppc fits/demo-response --out $(OUT)/response-ppc.md
	$(BB) table cr-subgroups --data vonstackelberg2016 --out $(OUT)/cr-subgroups.csv --figure $(OUT)/cr-subgroups-forest.png
	$(BB) table cr-subgroups --data vonstackelberg2016 --no-pooled --format md --out $(OUT)/cr-subgroups-exact.md
	$(BB) fit dose-toxicity --data vonstackelberg2016-escalation --out fits/demo-dose-toxicity --force --no-progress
	$(BB) escalate fits/demo-dose-toxicity --doses 5,10,15,20,30 --current-dose 15 --out $(OUT)/escalation.csv
	$(BB) simulate --preset pediatric-survival --n 200 --seed 1 --out $(OUT)/virtual-pediatric --force
	$(BB) fit rfs --data $(OUT)/virtual-pediatric --out fits/demo-rfs --force --no-progress
	$(BB) summary fits/demo-rfs --format md --out $(OUT)/rfs-summary.md
	$(BB) figure survival fits/demo-rfs --by mrd_response --out $(OUT)/rfs-by-mrd.png --table $(OUT)/rfs-by-mrd.csv
	$(BIN)/python examples/plan_study.py --out $(OUT)/plan
	$(BB) simulate --preset adult-exploratory --seed 1 --out $(OUT)/virtual-adult --force
	$(BB) fit cytokine-core --data $(OUT)/virtual-adult --out fits/demo-cytokine --force --no-progress
	$(BB) summary fits/demo-cytokine --format md --out $(OUT)/cytokine-summary.md
	$(BB) predict fits/demo-cytokine --subjects examples/data/dosing-scenarios/subjects.csv \
	    --dosing examples/data/dosing-scenarios/dosing.csv --times 0,2,4,6,12,24,36,48,72,96,168,170,174,180,192,216,240,336 \
	    --data $(OUT)/virtual-adult --figure $(OUT)/cytokine-trajectories.png --out $(OUT)/cytokine-predictions.csv
	$(BB) vpc fits/demo-cytokine --bins 30 --out $(OUT)/cytokine-vpc.md --figure $(OUT)/cytokine-vpc.png
	$(BB) loo-pit fits/demo-cytokine --out $(OUT)/cytokine-loo-pit.csv --figure $(OUT)/cytokine-loo-pit.png
	$(BB) figure peaks fits/demo-cytokine --out $(OUT)/cytokine-peaks.png --table $(OUT)/cytokine-peaks.csv
	$(BB) figure responder-bands fits/demo-cytokine --data $(OUT)/virtual-adult --out $(OUT)/cytokine-responders.png
	$(BB) plan regimen fits/demo-cytokine --regimen 15 --regimen 5-15 --regimen 10-30 --threshold IL6=1000 --out $(OUT)/plan/regimen-peaks.csv
	$(BB) fit tcell --data $(OUT)/virtual-adult --out fits/demo-tcell --force --no-progress
	$(BB) predict fits/demo-tcell --subjects examples/data/dosing-scenarios/subjects.csv \
	    --dosing examples/data/dosing-scenarios/dosing.csv --times 0,2,6,12,24,48,96,168,174,192,240,336,504,672 \
	    --data $(OUT)/virtual-adult --figure $(OUT)/tcell-trajectories.png --out $(OUT)/tcell-predictions.csv
	$(BB) fit bcell --data $(OUT)/virtual-adult --out fits/demo-bcell --force --no-progress
	$(BB) predict fits/demo-bcell --subjects examples/data/dosing-scenarios/subjects.csv \
	    --dosing examples/data/dosing-scenarios/dosing.csv --times 0,2,6,12,24,48,96,168,336,672 \
	    --data $(OUT)/virtual-adult --figure $(OUT)/bcell-trajectories.png --out $(OUT)/bcell-predictions.csv
	$(BB) fit joint --data $(OUT)/virtual-adult --out fits/demo-joint --force --no-progress
	$(BB) summary fits/demo-joint --format md --out $(OUT)/joint-summary.md
	$(BB) figure odds-ratios fits/demo-joint --prob 0.9 --out $(OUT)/joint-odds-ratios.png --table $(OUT)/joint-odds-ratios.csv
	$(BIN)/python examples/joint_model.py --fit fits/demo-joint --out $(OUT)/joint
	$(BB) report fits/demo-response fits/demo-cytokine fits/demo-tcell fits/demo-bcell fits/demo-joint --data $(OUT)/virtual-adult --out $(OUT)/report.html
	@echo "demo outputs in $(OUT)/ (open $(OUT)/report.html) and fits/demo-*/"

## Run the whole test suite (what CI runs).
test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest --durations=25

## The fast tests only (no MCMC).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

## The benchmark harness (not tests): every configuration and back end against Stan, scaling, OC;
## hours on 2 cores. Writes benchmarks/results/*.csv and benchmarks/RESULTS.md.
bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run_all.py

## Every benchmark script at small settings (minutes): checks that the harness runs.
bench-quick: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run_all.py --quick

## The benchmarks' extras: numpyro + jax, pystan 3 (httpstan compiles with g++), pymc-extras (Pathfinder, Laplace).
$(BENCH_STAMP): $(STAMP) $(BENCH_LOCK)
	$(BIN)/python -m pip install --quiet -c $(BENCH_LOCK) -e ".[test,numpyro,stan,approx]"
	touch $(BENCH_STAMP)

## Refresh the locks from pyproject.toml's lower bounds (newest versions that resolve), in a scratch
## environment; commit requirements/*.txt afterwards. CI and `make test` install what they say.
lock: python-check
	rm -rf .lock-venv
	$(PY) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e ".[test,approx,numpyro]"
	.lock-venv/bin/python -m pip check
	{ echo "# make lock: $$(.lock-venv/bin/python -c 'import platform; print("Python " + platform.python_version())'); pip freeze of .[test,approx,numpyro]"; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -iv '^bayes.blina'; } > $(LOCK)
	.lock-venv/bin/python -m pip install --quiet -e ".[test,approx,numpyro,stan]"
	{ echo "# make lock: $$(.lock-venv/bin/python -c 'import platform; print("Python " + platform.python_version())'); pip freeze of .[test,approx,numpyro,stan]"; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -iv '^bayes.blina'; } > $(BENCH_LOCK)
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) $(OUT) fits/demo-* .pytest_cache .lock-venv

# The two commands of the course (see README.md):
#   make test    set up .venv, run the unit tests and every chapter through nbval (quick mode)
#   make course  set up .venv, execute every chapter in full mode into build/, then build the
#                website build/site/ from those executed notebooks
#   make site    rebuild the website build/site/ alone from the notebooks already in build/
#   make lab     JupyterLab from .venv on chapters/, Jupytext pairing active
#   make test-browser  a quick-mode run into build-quick/, its website and JupyterLab checked
#                in headless Chromium (Debian's chromium; .ci/run installs it)
#   make student set up .venv, write the student versions of every chapter into student/
#   make nbgrader-source  set up .venv, write the nbgrader source (instructor) notebooks into
#                nbgrader-course/source/ (see docs/teaching.md)
# and for maintainers:
#   make test-latest  the same tests in .venv-latest, on the newest versions pyproject.toml
#                allows (no lock): finds the next breakage before readers do
#   make lock    regenerate requirements/lock.txt (and environment.yml's pins) after changing
#                pyproject.toml's dependencies
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
COURSE_ARGS ?=
# an nbgrader course folder: source/ is written here, nbgrader adds release/, gradebook.db, ...
NBGRADER_DIR ?= nbgrader-course
SITE_ARGS ?=
LAB_ARGS ?=
# the quick-mode build the browser tests check (kept apart from build/, the full-mode one)
QUICK_BUILD ?= build-quick

# the exact versions the course is tested with, every package; written by `make lock`
LOCK := requirements/lock.txt
# torch goes first, from the CPU wheel: left to resolve itself, an installer would fetch a
# CUDA build (GBs). Keep it equal to the lock's torch line (tests/test_environment.py checks).
TORCH := torch==2.13.0
# uv installs the rest, several times faster than pip; pinned, so the installer is fixed too
UV := uv==0.13.9
LATEST := .venv-latest
LOCK_VENV := .venv-lock

.PHONY: help test test-browser course site lab student nbgrader-source test-latest lock clean

help:
	@echo "make test     set up $(VENV) (first run only), run unit tests + every chapter via nbval, quick mode"
	@echo "make course   set up $(VENV), run every chapter in full mode: build/*.ipynb, results.json, then the website build/site/"
	@echo "make site     rebuild the website build/site/ from the executed notebooks in build/ (nothing re-run)"
	@echo "make lab      JupyterLab on chapters/ (open NN_*.py or NN_*.ipynb: the same notebook, kept in step)"
	@echo "make test-browser  quick-mode run into $(QUICK_BUILD)/, then its website and JupyterLab in headless Chromium"
	@echo "make student  set up $(VENV), write student versions (solutions -> stubs) into student/"
	@echo "make nbgrader-source  set up $(VENV), write nbgrader source notebooks into $(NBGRADER_DIR)/source/"
	@echo "make test-latest  the tests in a fresh $(LATEST): newest versions within pyproject.toml's ranges, no lock"
	@echo "make lock     regenerate $(LOCK) and environment.yml's pins (after changing pyproject.toml)"
	@echo "make clean    remove build/"
	@echo "options:      PYTHON=$(PYTHON)  PYTEST_ARGS='-k pairing'  COURSE_ARGS='--only 01 --quick'"

$(PY):
	@echo ">> creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)

# Exactly the lock. Torch first: the lock's torch==2.13.0 is then met by the installed CPU
# build (PEP 440 ignores its +cpu label), so uv fetches no torch. A changed lock or
# pyproject.toml reinstalls.
$(STAMP): pyproject.toml $(LOCK) | $(PY)
	@echo ">> installing $(TORCH) (CPU build) and $(UV)"
	$(PY) -m pip install -q $(TORCH) $(UV)
	@echo ">> installing the locked versions ($(LOCK)) and gae_course (editable)"
	$(VENV)/bin/uv pip install -q --python $(PY) -r $(LOCK) -e .
	@touch $@

test: $(STAMP)
	@echo ">> pytest: unit tests, pairing check, chapters through nbval (quick mode)"
	$(PY) -m pytest $(PYTEST_ARGS)

course: $(STAMP)
	@echo ">> executing every chapter in full mode into build/, then the website build/site/"
	@$(PY) tools/run_course.py $(COURSE_ARGS)

site: $(STAMP)
	@echo ">> building the website build/site/ from the executed notebooks in build/"
	@$(PY) tools/build_site.py $(SITE_ARGS)

# Jupytext's server extension pairs NN_*.py with NN_*.ipynb as jupytext.toml says; it looks for
# that file from a notebook's folder up to the server's root, so the root is the repository and
# JupyterLab opens on chapters/. tools/lab/overrides.json makes a double click on a .py open a notebook.
lab: $(STAMP)
	@echo ">> JupyterLab on chapters/ (Ctrl-C to stop)"
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/chapters \
		--LabApp.app_settings_dir=tools/lab $(LAB_ARGS)

# The quick models are those `make test` caches in .cache-test/, so a run after it retrains none.
test-browser: $(STAMP)
	@echo ">> quick-mode run of every chapter into $(QUICK_BUILD)/ and its website"
	GAE_COURSE_CACHE=$${GAE_COURSE_CACHE:-$(CURDIR)/.cache-test} $(PY) tools/run_course.py --quick --build-dir $(QUICK_BUILD)
	@echo ">> the website and JupyterLab in headless Chromium"
	GAE_COURSE_SITE_BUILD=$(QUICK_BUILD) $(PY) -m pytest browser_tests $(PYTEST_ARGS)

student: $(STAMP)
	@echo ">> writing student versions of every chapter into student/"
	$(PY) -m gae_course.assign chapters student

nbgrader-source: $(STAMP)
	@echo ">> writing nbgrader source notebooks (solutions kept, nbgrader metadata) into $(NBGRADER_DIR)/source/"
	$(PY) -m gae_course.assign chapters $(NBGRADER_DIR)/source --nbgrader

# A fresh venv each run, holding what a reader installing today without the lock would get,
# with its own model cache so the models are trained again under the new versions.
test-latest:
	@echo ">> creating $(LATEST): $(TORCH) first, then the newest versions within pyproject.toml's ranges"
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q $(TORCH) $(UV)
	$(LATEST)/bin/uv pip install -q --python $(LATEST)/bin/python -e ".[$$($(LATEST)/bin/python tools/write_lock.py --extras)]"
	@echo ">> versions that differ from $(LOCK):"
	$(LATEST)/bin/python -m pip freeze --all --exclude-editable | $(LATEST)/bin/python tools/write_lock.py --compare
	@echo ">> pytest in $(LATEST)"
	GAE_COURSE_CACHE=$(CURDIR)/$(LATEST)/cache-test $(LATEST)/bin/python -m pytest $(PYTEST_ARGS)

# A clean temporary venv: torch first, then the package with all its extras, newest within
# pyproject.toml's ranges; tools/write_lock.py writes the lock from its pip freeze and pins
# environment.yml to the same versions.
lock:
	@echo ">> creating $(LOCK_VENV): $(TORCH) first, then gae_course with all its extras"
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q $(TORCH) $(UV)
	$(LOCK_VENV)/bin/uv pip install -q --python $(LOCK_VENV)/bin/python -e ".[$$($(LOCK_VENV)/bin/python tools/write_lock.py --extras)]"
	$(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable | $(LOCK_VENV)/bin/python tools/write_lock.py
	rm -rf $(LOCK_VENV)
	@echo ">> review the change: git diff $(LOCK) environment.yml"

clean:
	@echo ">> removing build/ and $(QUICK_BUILD)/"
	rm -rf build $(QUICK_BUILD)

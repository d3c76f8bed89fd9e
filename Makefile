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

.PHONY: help test test-browser course site lab student nbgrader-source clean

help:
	@echo "make test     set up $(VENV) (first run only), run unit tests + every chapter via nbval, quick mode"
	@echo "make course   set up $(VENV), run every chapter in full mode: build/*.ipynb, results.json, then the website build/site/"
	@echo "make site     rebuild the website build/site/ from the executed notebooks in build/ (nothing re-run)"
	@echo "make lab      JupyterLab on chapters/ (open NN_*.py or NN_*.ipynb: the same notebook, kept in step)"
	@echo "make test-browser  quick-mode run into $(QUICK_BUILD)/, then its website and JupyterLab in headless Chromium"
	@echo "make student  set up $(VENV), write student versions (solutions -> stubs) into student/"
	@echo "make nbgrader-source  set up $(VENV), write nbgrader source notebooks into $(NBGRADER_DIR)/source/"
	@echo "make clean    remove build/"
	@echo "options:      PYTHON=$(PYTHON)  PYTEST_ARGS='-k pairing'  COURSE_ARGS='--only 01 --quick'"

$(PY):
	@echo ">> creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)

# torch first, from the CPU wheel: left to resolve itself, pip would fetch a CUDA build (GBs).
$(STAMP): pyproject.toml | $(PY)
	@echo ">> installing torch==2.13.0 (CPU build)"
	$(PY) -m pip install -q torch==2.13.0
	@echo ">> installing gae_course with its dev extras"
	$(PY) -m pip install -q -e '.[dev]'
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

clean:
	@echo ">> removing build/ and $(QUICK_BUILD)/"
	rm -rf build $(QUICK_BUILD)

# The two commands of the course (see README.md):
#   make test    set up .venv, run the unit tests and every chapter through nbval (quick mode)
#   make course  set up .venv, execute every chapter in full mode into build/
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
# the exact versions the course is tested with, every package; written by `make lock`
LOCK := requirements/lock.txt
# torch goes first, from the CPU wheel: left to resolve itself, an installer would fetch a
# CUDA build (GBs). Keep it equal to the lock's torch line (tests/test_environment.py checks).
TORCH := torch==2.13.0
# uv installs the rest, several times faster than pip; pinned, so the installer is fixed too
UV := uv==0.13.9
LATEST := .venv-latest
LOCK_VENV := .venv-lock

.PHONY: help test course student nbgrader-source test-latest lock clean

help:
	@echo "make test     set up $(VENV) (first run only), run unit tests + every chapter via nbval, quick mode"
	@echo "make course   set up $(VENV), run every chapter in full mode: build/*.ipynb, *.html, results.json"
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
	@echo ">> executing every chapter in full mode into build/"
	$(PY) tools/run_course.py $(COURSE_ARGS)

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
	@echo ">> removing build/"
	rm -rf build

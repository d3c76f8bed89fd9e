# The two commands of the course (see README.md):
#   make test    set up .venv, run the unit tests and every chapter through nbval (quick mode)
#   make course  set up .venv, execute every chapter in full mode into build/
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

.PHONY: help test course student nbgrader-source clean

help:
	@echo "make test     set up $(VENV) (first run only), run unit tests + every chapter via nbval, quick mode"
	@echo "make course   set up $(VENV), run every chapter in full mode: build/*.ipynb, *.html, results.json"
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
	@echo ">> executing every chapter in full mode into build/"
	$(PY) tools/run_course.py $(COURSE_ARGS)

student: $(STAMP)
	@echo ">> writing student versions of every chapter into student/"
	$(PY) -m gae_course.assign chapters student

nbgrader-source: $(STAMP)
	@echo ">> writing nbgrader source notebooks (solutions kept, nbgrader metadata) into $(NBGRADER_DIR)/source/"
	$(PY) -m gae_course.assign chapters $(NBGRADER_DIR)/source --nbgrader

clean:
	@echo ">> removing build/"
	rm -rf build

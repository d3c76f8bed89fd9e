"""Test-suite set-up, shared by the unit tests and the notebooks that nbval runs.

The environment is set here, at import, before nbval starts any kernel: each kernel inherits
it. Quick mode is forced so the chapters finish in minutes; the data come from
``../shared/data`` when that folder is beside the repository; trained models are cached under
``.cache-test/`` in the repository so a test run never reads or writes the user's
``~/.cache/gae_course`` (a fresh clone retrains, which quick mode keeps small).
"""

import os
import re
from pathlib import Path

import matplotlib

REPO = Path(__file__).resolve().parent

os.environ["GAE_COURSE_QUICK"] = "1"
# Kernels get ipykernel's inline backend (MPLBACKEND unset), as a reader in JupyterLab does:
# each figure is drawn when its cell ends, so a broken figure (bad LaTeX in a title) fails
# its cell, and figures are closed after each cell. With Agg they would be neither drawn nor
# closed. This process (unit tests) draws off-screen with Agg.
os.environ.pop("MPLBACKEND", None)
matplotlib.use("Agg")
os.environ.setdefault("GAE_COURSE_CACHE", str(REPO / ".cache-test"))
if "GAE_COURSE_DATA" not in os.environ and (REPO.parent / "shared" / "data").is_dir():
    os.environ["GAE_COURSE_DATA"] = str(REPO.parent / "shared" / "data")
# A chapter run by the tests must not write into build/results of a `make course` run.
os.environ.pop("GAE_COURSE_RESULTS_DIR", None)

_CHAPTER_NOTEBOOK = re.compile(r"[0-9]{2}_.+\.ipynb")


def pytest_ignore_collect(collection_path, config):
    """When nbval looks for notebooks, run only the chapters: ``chapters/NN_*.ipynb``.

    Scratch notebooks, checkpoints and notebooks under tests/ are skipped; a notebook named
    on the command line is always run.
    """
    if collection_path.suffix != ".ipynb":
        return None
    if collection_path.parent == REPO / "chapters" and _CHAPTER_NOTEBOOK.fullmatch(collection_path.name):
        return None
    named = {(config.invocation_params.dir / arg.split("::")[0]).resolve() for arg in config.args}
    return None if collection_path.resolve() in named else True

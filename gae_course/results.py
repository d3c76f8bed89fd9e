"""A chapter's headline figures, saved for ``build/results.json``.

A chapter's last cell calls :func:`record` with the numbers the README quotes::

    results.record("05_gaussian_auto_embeddings",
                   mnist={"train_accuracy": train_acc, "test_accuracy": test_acc})

The call always returns the figures (so the notebook shows them). When
``$GAE_COURSE_RESULTS_DIR`` is set (``tools/run_course.py`` sets it to ``build/results``) it
also writes them to ``<dir>/<chapter>.json``; the runner then adds the chapter's
``runtime_s`` and merges every file into ``build/results.json``.

Only plain JSON goes out: NumPy (or torch) scalars and arrays become numbers and lists, dict
keys become strings (``{5: ...}`` -> ``{"5": ...}``), and a NaN or infinity is refused, since a
headline figure that is not a number means the chapter went wrong.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from gae_course.config import mode
from gae_course.files import to_plain, write_json_atomic

RESULTS_DIR_ENV = "GAE_COURSE_RESULTS_DIR"
_RESERVED = ("mode", "runtime_s")  # written by record() itself and by the runner
_CHAPTER = re.compile(r"[0-9]{2}_[A-Za-z0-9_-]+")


def record(chapter: str, **figures: Any) -> dict:
    """Save a chapter's headline figures and return them as plain JSON types.

    Parameters
    ----------
    chapter : str
        The chapter's file stem, such as ``"01_em_gmm"``: the key in ``build/results.json``.
    **figures
        Numbers, strings, booleans, or nested dicts / lists of them; NumPy scalars and arrays
        are converted.

    Returns
    -------
    dict
        ``figures`` converted to plain JSON types, plus ``"mode"`` (``"quick"`` or ``"full"``).

    Raises
    ------
    ValueError
        If ``chapter`` is not a file stem, a figure is named ``mode`` or ``runtime_s``, or a
        value is NaN or infinite.
    TypeError
        If a value cannot be written as JSON.
    """
    if not isinstance(chapter, str) or not _CHAPTER.fullmatch(chapter):
        raise ValueError(
            f"chapter must be the chapter's file stem, such as '01_em_gmm'; got {chapter!r}"
        )
    taken = [name for name in _RESERVED if name in figures]
    if taken:
        raise ValueError(
            f"{', '.join(taken)} is filled in by record() and tools/run_course.py; "
            "give the figure another name"
        )
    entry = {name: to_plain(value, path=name) for name, value in figures.items()}
    entry["mode"] = mode()

    folder = os.environ.get(RESULTS_DIR_ENV)
    if folder:
        write_json_atomic(Path(folder) / f"{chapter}.json", entry)
    return entry

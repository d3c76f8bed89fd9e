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

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from gae_course.config import mode

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
    entry = {name: to_json(value, path=name) for name, value in figures.items()}
    entry["mode"] = mode()

    folder = os.environ.get(RESULTS_DIR_ENV)
    if folder:
        write_json_atomic(Path(folder) / f"{chapter}.json", entry)
    return entry


def to_json(value: Any, path: str = "value") -> Any:
    """``value`` as plain JSON types; ``path`` names it in error messages (``nmi.mnist.5``)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):  # also np.float64, a float subclass
        if not math.isfinite(value):
            raise ValueError(
                f"{path} is {value}: a headline figure must be a finite number "
                "(look at the cell that computed it)"
            )
        return float(value)
    if isinstance(value, dict):
        return {_key(k, path): to_json(v, f"{path}.{_key(k, path)}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "tolist"):  # NumPy scalars and arrays, torch tensors
        plain = value.tolist()
        if plain is value or type(plain) is type(value):
            raise TypeError(f"{path}: cannot convert {type(value).__name__} to JSON")
        return to_json(plain, path)
    raise TypeError(
        f"{path} has type {type(value).__name__}; record numbers, strings, booleans, "
        "or dicts and lists of them"
    )


def _key(key: Any, path: str) -> str:
    if isinstance(key, str):
        return key
    if hasattr(key, "item") and not isinstance(key, (int, float)):
        key = key.item()  # NumPy integer keys, such as a value of n_components
    if isinstance(key, bool) or not isinstance(key, (int, float)):
        raise TypeError(f"{path}: dict key {key!r} must be a string or a number")
    return str(key)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and ``os.replace``.

    A reader (or a run interrupted half-way) never sees a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

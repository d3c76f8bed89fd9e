"""Run settings shared by every chapter: quick mode, seeds, folders and BLAS threads.

Quick mode (``GAE_COURSE_QUICK=1``, set by the test suite) shrinks every chapter so that
the whole course executes in CI in minutes. A chapter's first code cell writes its
settings as plain variables through :func:`pick`, so a reader sees what quick mode changes::

    N_TRAIN = pick(full=60_000, quick=2_000)

Nothing here imports torch: the NumPy chapters must start fast.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TypeVar

import numpy as np

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def env_flag(name: str) -> bool:
    """The on/off switch held by the environment variable ``name``.

    Unset, empty, ``0``, ``false``, ``no`` and ``off`` mean False; ``1``, ``true``, ``yes``
    and ``on`` mean True (any case, surrounding spaces ignored).

    Raises
    ------
    ValueError
        For any other value (``GAE_COURSE_QUICK=2``, a typo such as ``ture``), rather than
        silently reading it as off.
    """
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"{name}={os.environ[name]!r} is not an on/off value; set it to 1 (or true, yes, on) "
        "to switch it on, or unset it (or 0, false, no, off) to switch it off."
    )


def is_quick() -> bool:
    """True when ``GAE_COURSE_QUICK`` asks for the shrunken CI run."""
    return env_flag("GAE_COURSE_QUICK")


def mode() -> str:
    """``"quick"`` or ``"full"``, as recorded in ``build/results.json``."""
    return "quick" if is_quick() else "full"


def pick(full: T, quick: T) -> T:
    """The full-mode setting, or the quick-mode one when quick mode is on."""
    return quick if is_quick() else full


def cache_root() -> Path:
    """Root of the user cache: ``$GAE_COURSE_CACHE`` or ``~/.cache/gae_course``."""
    env = os.environ.get("GAE_COURSE_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gae_course"


def seed_everything(seed: int = 0) -> np.random.Generator:
    """Seed Python, NumPy and (if it is already imported) torch; return a NumPy Generator.

    Call it once in a chapter's setup cell. Functions that need randomness still take an
    explicit ``rng`` or ``torch.Generator``; this only makes stray global draws repeatable.
    """
    import sys

    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:  # never import torch from here: NumPy chapters stay light
        torch = sys.modules["torch"]
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)


def limit_blas_threads(n_threads: int | None = None):
    """Hold the BLAS pools (NumPy's, SciPy's, torch's OpenMP) to ``n_threads``.

    NumPy and SciPy each bundle their own OpenBLAS, and torch brings OpenMP: on a 2-core
    laptop, two pools of two threads each fight for the cores and EM slows down several-fold.
    Defaults to the number of usable cores. Returns the threadpoolctl controller (usable as a
    context manager to undo the limit); torch's intra-op threads are set as well when torch is
    already imported.
    """
    import sys

    from threadpoolctl import threadpool_limits

    if n_threads is None:
        n_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n_threads)
    return threadpool_limits(limits=n_threads)

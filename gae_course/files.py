"""Files written safely, and values made plain: the two helpers every saving path shares.

* :func:`write_atomic` writes through a temporary file in the target's folder and renames it
  with :func:`os.replace`, which is atomic on POSIX and Windows: a reader (or a run interrupted
  half-way) sees the old file or the whole new one, never a half-written file that looks valid.
  Model checkpoints (:mod:`gae_course.cache`) and ``build/results`` JSON
  (:mod:`gae_course.results`) both go through it.
* :func:`to_plain` turns configs, NumPy and torch values into plain JSON types. Results keep
  arrays as lists; cache keys replace an array by the SHA-256 of its bytes (``arrays="sha256"``),
  since a key must name a data set, not hold it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, IO


def write_atomic(path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a temporary binary file beside ``path``, then rename it to ``path``.

    The data is flushed and fsync'ed before the rename; on any error (or Ctrl-C) the temporary
    file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path, data: Any) -> None:
    """Write ``data`` (plain JSON types, no NaN) to ``path`` atomically, indented, one final newline."""
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def array_fingerprint(array) -> dict:
    """Shape, dtype and SHA-256 of a C-contiguous copy of ``array``'s bytes."""
    import numpy as np

    array = np.ascontiguousarray(array)
    return {"ndarray_sha256": hashlib.sha256(array.tobytes()).hexdigest(),
            "shape": list(array.shape), "dtype": str(array.dtype)}


def to_plain(value: Any, path: str = "value", *, arrays: str = "list") -> Any:
    """``value`` as plain JSON types (dict, list, str, int, float, bool, None).

    Parameters
    ----------
    value : any
        Numbers, strings, booleans, None, dicts, lists, tuples, dataclass instances (as
        ``{"__type__": class name, **fields}``: two configs with equal fields but different
        classes stay different), paths, NumPy / torch scalars and arrays.
    path : str
        Names ``value`` in error messages (``nmi.mnist.5``).
    arrays : {"list", "sha256"}
        An array becomes a (nested) list, or its :func:`array_fingerprint`.

    Raises
    ------
    ValueError
        For a NaN or infinite number: a figure or a key part that is not a finite number means
        something upstream went wrong.
    TypeError
        For anything else (a function, an open file, ...).
    """
    if arrays not in ("list", "sha256"):
        raise ValueError(f"arrays must be 'list' or 'sha256'; got {arrays!r}")
    recurse = lambda v, p: to_plain(v, p, arrays=arrays)  # noqa: E731
    if value is None or isinstance(value, (bool, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: recurse(getattr(value, f.name), f"{path}.{f.name}")
                  for f in dataclasses.fields(value)}
        return {"__type__": type(value).__name__, **fields}
    if isinstance(value, dict):
        return {_key(k, path): recurse(v, f"{path}.{_key(k, path)}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [recurse(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if type(value).__module__ == "numpy" and getattr(value, "ndim", 0) > 0 and arrays == "sha256":
        return array_fingerprint(value)
    if type(value).__module__ == "torch" and hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
        if value.ndim > 0 and arrays == "sha256":
            return array_fingerprint(value)
    if hasattr(value, "tolist") and not isinstance(value, (int, float)):  # NumPy scalars, arrays
        plain = value.tolist()
        if type(plain) is type(value):
            raise TypeError(f"{path}: cannot convert {type(value).__name__} to JSON")
        return recurse(plain, path)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} is {value}: expected a finite number "
                             "(look at the cell or the config that computed it)")
        return float(value)
    raise TypeError(
        f"{path} has type {type(value).__name__}; use numbers, strings, booleans, None, "
        "dataclasses, NumPy arrays, or dicts and lists of them"
    )


def _key(key: Any, path: str) -> str:
    if isinstance(key, str):
        return key
    if hasattr(key, "item") and not isinstance(key, (int, float)):
        key = key.item()  # NumPy integer keys, such as a value of n_components
    if isinstance(key, bool) or not isinstance(key, (int, float)):
        raise TypeError(f"{path}: dict key {key!r} must be a string or a number")
    return str(key)


def canonical_json(value: Any) -> str:
    """Deterministic JSON text of ``value`` (arrays as fingerprints): sorted keys, no spaces."""
    return json.dumps(to_plain(value, arrays="sha256"), sort_keys=True, separators=(",", ":"),
                      allow_nan=False)

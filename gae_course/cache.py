"""The model cache: a trained network is stored under a key derived from all that determines it.

:func:`cached_fit` trains a model with :func:`gae_course.train.fit` once and loads it on every
later call with the same recipe. The caller never writes a key: :func:`model_key` derives it
from

* the model's class and its config dataclass (:class:`~gae_course.models.AutoencoderConfig`,
  :class:`~gae_course.vae.VAEConfig`, ...);
* the :class:`~gae_course.train.TrainConfig` and the initialisation seed;
* the training data *by content*: the SHA-256, shape and dtype of every training array, so that
  another subset, another order or another quick-mode draw is another model, and two chapters
  that train on the same images get the same file;
* the loss and the batch transform, by qualified name (and by fields, for a loss that is a
  dataclass such as :class:`gae_course.vae.VAELoss`, so its ``beta`` is in the key);
* the source of every ``gae_course`` module that the model class, the loss, the transform and
  the training loop reach through their imports (:func:`reached_modules`), so editing
  ``elbo.py`` retrains every VAE whose loss calls it.

A checkpoint ``<cache_root>/models/<name>-<key16>.pt`` holds ``{"state_dict", "history",
"key_parts", ...}`` in plain types only, so ``torch.load(weights_only=True)`` reads it (no
pickled code runs), and it is written atomically (:func:`gae_course.files.write_atomic`). A
checkpoint that cannot be read, holds another recipe or does not fit the model is reported in
one line and retrained; a model is never half-loaded.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import hashlib
import importlib
import json
import threading
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch
from torch import nn

from gae_course import config as course_config
from gae_course import files
from gae_course import train as train_lib

PACKAGE = "gae_course"
# The keying machinery itself shapes no weights (training happens in gae_course.train, which is
# always in the key): leaving it out keeps a docstring edit here from retraining every model.
NOT_IN_KEYS = frozenset({"gae_course.cache"})


# --------------------------------------------------------------------------------------------
# What the code of a model is
# --------------------------------------------------------------------------------------------


def _imported_package_modules(module_name: str) -> set[str]:
    """Names of the ``gae_course`` modules that ``module_name``'s source imports."""
    module = importlib.import_module(module_name)
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:  # `from gae_course import elbo` imports a module
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if _is_module(candidate) else node.module)
    return {name for name in found if name != PACKAGE and name not in NOT_IN_KEYS}


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def reached_modules(*roots: str) -> list[str]:
    """Every ``gae_course`` module reachable from ``roots`` by imports (roots included), sorted.

    Imports anywhere in a module's source count (also those inside functions), since a
    function's body may call into the module it imports lazily.
    """
    todo = [r for r in roots if r.split(".")[0] == PACKAGE]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += sorted(_imported_package_modules(name) - seen)
    return sorted(seen)


def source_fingerprint(module_names) -> dict:
    """``{module name: SHA-256 of its source file}`` for each module."""
    out = {}
    for name in module_names:
        path = Path(importlib.import_module(name).__file__)
        out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _callable_identity(fn) -> Any:
    """How a loss or a transform appears in a key: its qualified name, and fields if a dataclass."""
    if fn is None:
        return None
    if dataclasses.is_dataclass(fn) and not isinstance(fn, type):
        return files.to_plain(fn, arrays="sha256") | {"__module__": type(fn).__module__}
    if getattr(fn, "__closure__", None):
        raise TypeError(
            f"{fn.__qualname__} is a closure: the values it captured would be missing from the "
            "cache key. Make it a frozen dataclass with a __call__ (like gae_course.vae.VAELoss)."
        )
    qualname = getattr(fn, "__qualname__", None)
    if qualname is None or "<lambda>" in qualname or "<locals>" in qualname:
        raise TypeError(f"{fn!r} has no stable name for the cache key; define it at module level.")
    return f"{fn.__module__}.{qualname}"


def _module_of(fn) -> str | None:
    if fn is None:
        return None
    return type(fn).__module__ if dataclasses.is_dataclass(fn) else fn.__module__


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


class Recipe(NamedTuple):
    """Everything a trained model is made from (see :func:`cached_fit`)."""

    model_class: type
    model_config: Any
    loss_fn: Callable
    train_tensors: Any
    train_config: train_lib.TrainConfig
    transform: Callable | None = None
    seed: int = 0


def key_parts(recipe: Recipe) -> dict:
    """The recipe as plain JSON (arrays as fingerprints): what the key hashes."""
    tensors = recipe.train_tensors
    tensors = list(tensors) if isinstance(tensors, (tuple, list)) else [tensors]
    roots = [recipe.model_class.__module__, train_lib.__name__, _module_of(recipe.loss_fn),
             _module_of(recipe.transform)]
    return json.loads(files.canonical_json({
        "model": f"{recipe.model_class.__module__}.{recipe.model_class.__qualname__}",
        "config": recipe.model_config,
        "train": recipe.train_config,
        "data": [files.array_fingerprint(train_lib.as_tensor(t).numpy()) for t in tensors],
        "loss": _callable_identity(recipe.loss_fn),
        "transform": _callable_identity(recipe.transform),
        "init_seed": recipe.seed,
        "code": source_fingerprint(reached_modules(*[r for r in roots if r])),
    }))


def model_key(recipe: Recipe) -> str:
    """SHA-256 (hex) of :func:`key_parts`."""
    return hashlib.sha256(files.canonical_json(key_parts(recipe)).encode()).hexdigest()


def model_dir() -> Path:
    """``gae_course.config.cache_root() / "models"`` (``$GAE_COURSE_CACHE/models`` if set)."""
    return course_config.cache_root() / "models"


def checkpoint_path(name: str, key: str) -> Path:
    """``<model_dir>/<name>-<key16>.pt``."""
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"name must be a plain file-name stem such as 'ae-mnist'; got {name!r}.")
    return model_dir() / f"{name}-{key[:16]}.pt"


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


class FitResult(NamedTuple):
    """What :func:`cached_fit` returns."""

    model: nn.Module  # trained, in eval mode, on the requested device
    history: dict  # from gae_course.train.fit, as stored in the checkpoint
    loaded: bool  # True when the weights came from the cache
    path: Path  # the checkpoint file
    key: str  # the full key (hex); models trained on this model's output include it


class _Unusable(Exception):
    """A checkpoint exists but cannot be used; the message says why."""


def _read_checkpoint(path: Path, model: nn.Module, expected_parts: dict, device) -> dict:
    if path.stat().st_size == 0:
        raise _Unusable("empty file")
    try:
        payload = torch.load(path, weights_only=True, map_location=device)
    except Exception as error:  # a truncated zip, garbage bytes, a pickle with code in it, ...
        first_sentence = str(error).strip().split(". ")[0][:100]
        raise _Unusable(f"{type(error).__name__}: {first_sentence}") from None
    if not isinstance(payload, dict) or not {"state_dict", "history", "key_parts"} <= payload.keys():
        raise _Unusable("not a gae_course checkpoint")
    if not isinstance(payload["history"], dict):
        raise _Unusable("its history is not a dict")
    if payload["key_parts"] != expected_parts:
        raise _Unusable("it was trained from another recipe")
    state, own = payload["state_dict"], model.state_dict()
    if not isinstance(state, dict) or state.keys() != own.keys():
        missing = sorted(set(own) - set(state)) if isinstance(state, dict) else []
        raise _Unusable(f"its weights do not match the model (missing {missing[:3]})")
    for key, value in own.items():
        if not isinstance(state[key], torch.Tensor) or state[key].shape != value.shape:
            got = tuple(state[key].shape) if isinstance(state[key], torch.Tensor) else type(state[key]).__name__
            raise _Unusable(f"weight {key} has shape {got}, the model needs {tuple(value.shape)}")
    return payload


def _payload(name, model, history, parts, seconds) -> dict:
    return {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "history": history,
        "key_parts": parts,
        "name": name,
        "trained_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "train_seconds": seconds,
        "torch_version": str(torch.__version__),
    }


class NotCached(LookupError):
    """Raised by :func:`cached_fit` inside :func:`loading_only` when it would have to train."""


_loading_only = threading.local()


@contextlib.contextmanager
def loading_only():
    """Inside this block :func:`cached_fit` loads or raises :class:`NotCached`; it never trains.

    :mod:`gae_course.side_by_side` asks the cache this way which models are missing.
    """
    saved = getattr(_loading_only, "on", False)
    _loading_only.on = True
    try:
        yield
    finally:
        _loading_only.on = saved


def only_loading() -> bool:
    """True inside :func:`loading_only` (on this thread)."""
    return getattr(_loading_only, "on", False)


@contextlib.contextmanager
def one_torch_thread():
    """Train on one torch thread inside a ``with`` block, then restore the thread count.

    Why. The key of a checkpoint does not hold the thread count, so the weights must not
    depend on it. On some processors even an MLP's weights after training differ in their
    last bits between one thread and two (a product split over two threads adds in another
    order); on the 2-core course machines a second thread bought an MLP little anyway, and
    the chapters train their networks two at a time, one thread each
    (:mod:`gae_course.side_by_side`).
    """
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def cached_fit(
    name: str,
    model_class: type,
    model_config,
    loss_fn: Callable,
    train_tensors,
    train_config: train_lib.TrainConfig,
    *,
    transform: Callable | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    force: bool = False,
) -> FitResult:
    """Load the model this recipe makes from the cache, or train it and cache it.

    Parameters
    ----------
    name : str
        Stem of the checkpoint file, e.g. ``"ae-mnist"`` (for people; the key is derived).
    model_class : type
        ``model_class(model_config)`` builds a fresh model (after ``torch.manual_seed(seed)``,
        so its initial weights are repeatable).
    model_config : dataclass
        The model's frozen config.
    loss_fn, train_tensors, train_config, transform
        As in :func:`gae_course.train.fit`. ``loss_fn`` and ``transform`` must be module-level
        functions or dataclass instances (a closure's captured values could not be keyed).
    seed : int
        Seed of the initial weights.
    device : str or torch.device, optional
        Where the returned model lives; default :func:`gae_course.train.default_device`.
    progress : bool
        Show the training progress bar.
    force : bool
        Retrain (and overwrite the checkpoint) even when one matches.

    Returns
    -------
    FitResult
        ``(model, history, loaded, path, key)``.
    """
    device = train_lib.default_device() if device is None else torch.device(device)
    recipe = Recipe(model_class, model_config, loss_fn, train_tensors, train_config, transform, seed)
    parts = key_parts(recipe)
    key = hashlib.sha256(files.canonical_json(parts).encode()).hexdigest()
    path = checkpoint_path(name, key)

    def fresh() -> nn.Module:
        torch.manual_seed(seed)
        return model_class(model_config).to(device)

    model = fresh()
    if path.exists() and not force:
        try:
            payload = _read_checkpoint(path, model, parts, device)
        except _Unusable as why:
            print(f"cache: {path} is unusable ({why}); retraining")
            model = fresh()  # nothing was loaded into it, but start clean all the same
        else:
            model.load_state_dict(payload["state_dict"])
            model.eval()
            when = payload.get("trained_at", "at an unknown time")
            took = payload.get("train_seconds")
            took = f" in {took:.1f} s" if isinstance(took, (int, float)) else ""
            print(f"cache: loaded {name} from {path} (trained {when}{took})")
            return FitResult(model, payload["history"], True, path, key)

    if only_loading():
        raise NotCached(f"{name} is not in the model cache (would be {path})")
    start = time.perf_counter()
    with one_torch_thread():
        history = train_lib.fit(model, loss_fn, train_tensors, train_config, desc=name,
                                transform=transform, device=device, progress=progress)
    seconds = time.perf_counter() - start
    history = files.to_plain(history)
    model.eval()
    payload = _payload(name, model, history, parts, seconds)
    files.write_atomic(path, lambda f: torch.save(payload, f))
    print(f"cache: trained {name} in {seconds:.1f} s; saved to {path}")
    return FitResult(model, history, False, path, key)

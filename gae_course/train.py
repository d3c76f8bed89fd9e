"""One training loop for every network in the course, model caching, and batched evaluation.

Training
--------
:func:`fit` minimises the mean over a data set of a loss that the caller supplies,
``loss_fn(model, batch)``, with Adam (Kingma & Ba, 2015) on shuffled mini-batches. The loss
function returns either a scalar tensor or ``(tensor, {"name": float, ...})``: the dict holds
the terms a chapter wants plotted separately (a VAE's reconstruction term and its KL, say);
each is averaged per epoch into the history beside the loss. ``transform(batch, generator)``
changes each batch before the loss sees it (dynamic binarisation draws fresh Bernoulli pixels
there) and ``on_epoch_end(epoch, model)`` may return extra per-epoch figures (a validation
loss). Everything random is seeded from ``TrainConfig.seed``: the same call gives the same
history.

Caching
-------
:func:`cached_fit` trains a model once and loads it afterwards. The cache key is the SHA-256
of a canonical JSON text (sorted keys, no spaces) of everything that determines the trained
weights: the caller's ``key_parts`` (architecture config, data description, training config),
the initialisation seed, :data:`CODE_VERSION` and a hash of the source of ``models.py`` and
``train.py``, so editing either module invalidates old checkpoints instead of silently loading
them. A checkpoint ``<cache_root>/models/<name>-<key16>.pt`` holds ``{"state_dict",
"history", "key_parts", ...}`` in plain types only, so that ``torch.load(weights_only=True)``
reads it (no pickled code runs). It is written to a temporary file in the same folder and
renamed with :func:`os.replace`, which is atomic: an interrupted run never leaves a file that
looks finished. A checkpoint that cannot be read, holds other settings or does not fit the
model is reported in one line and retrained; the model is never half-loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
from torch import nn

from gae_course import config as course_config
from gae_course import models

# Bump when a change outside models.py / train.py changes what training produces
# (their own source is hashed into the key automatically).
CODE_VERSION = 1

_RESERVED_HISTORY_KEYS = ("loss", "seconds")


@dataclass(frozen=True)
class TrainConfig:
    """How a network is trained. Frozen and JSON-serialisable: part of the cache key."""

    epochs: int = 10  # passes over the training set
    batch_size: int = 128  # images per Adam step: small enough for many steps per epoch on a CPU
    lr: float = 1e-3  # Adam's step size; 1e-3 is Kingma & Ba's default and works for these nets
    seed: int = 0  # seeds the shuffling, the transform's generator and torch's global RNG
    weight_decay: float = 0.0  # L2 penalty inside Adam; 0 because the loss alone does not overfit
    schedule: str = "constant"  # "constant" lr, or "cosine": anneal it to 0 over the run

    def __post_init__(self):
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(
                f"need epochs >= 0, batch_size >= 1 and lr > 0; got {self.epochs}, "
                f"{self.batch_size}, {self.lr}."
            )
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine'; got {self.schedule!r}.")


def default_device() -> torch.device:
    """``cuda`` when a GPU is available, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _as_tensor(x) -> torch.Tensor:
    """A tensor sharing memory with ``x`` when it can; floats become float32."""
    if isinstance(x, torch.Tensor):
        return x
    x = np.asarray(x)
    x = np.ascontiguousarray(x, dtype=np.float32 if x.dtype.kind == "f" else None)
    if not x.flags.writeable:  # the data loader's cached arrays are read-only; torch wants to own writable memory
        x = x.copy()
    return torch.from_numpy(x)


def _split_loss(out) -> tuple[torch.Tensor, dict[str, float]]:
    if isinstance(out, tuple):
        loss, terms = out
        return loss, {name: float(value) for name, value in terms.items()}
    return out, {}


def fit(
    model: nn.Module,
    loss_fn: Callable,
    train_tensors,
    config: TrainConfig,
    *,
    desc: str = "train",
    transform: Callable | None = None,
    on_epoch_end: Callable | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train ``model`` in place with Adam on shuffled mini-batches; return the history.

    Parameters
    ----------
    model : nn.Module
        Its weights are updated in place; it is returned to eval mode at the end.
    loss_fn : callable
        ``loss_fn(model, batch)`` returns a scalar Tensor (the mean loss per example in the
        batch), or ``(Tensor, dict)`` where the dict maps names to per-example floats (or
        0-d tensors) to be logged beside the loss, e.g. ``{"recon": ..., "kl": ...}``.
    train_tensors : Tensor, ndarray, or tuple of them
        All with the same first dimension n. A single array gives batches that are one
        tensor; a tuple (images, labels) gives tuple batches. Kept on the CPU; each batch is
        moved to ``device``.
    config : TrainConfig
    desc : str
        Label of the progress bar.
    transform : callable, optional
        ``transform(batch, generator) -> batch``, applied to every batch (still on the CPU)
        before it moves to ``device``; the CPU ``torch.Generator``, seeded from
        ``config.seed``, makes it repeatable, e.g. dynamic binarisation
        ``lambda x, g: torch.bernoulli(x, generator=g)``.
    on_epoch_end : callable, optional
        ``on_epoch_end(epoch, model)`` after every epoch; a returned dict of floats is
        appended to the history under its keys.
    device : str or torch.device, optional
        Default :func:`default_device`.
    progress : bool
        Show a tqdm progress bar with the running mean loss of the epoch.

    Returns
    -------
    history : dict of str to list of float
        ``"loss"``: mean loss per epoch (length ``epochs``); ``"seconds"``: wall time per
        epoch; one list per term returned by ``loss_fn`` and per key returned by
        ``on_epoch_end``. Everything but ``"seconds"`` is the same when the call is repeated.
    """
    from tqdm.auto import tqdm  # here, not at import: importing the module stays light

    device = default_device() if device is None else torch.device(device)
    single = not isinstance(train_tensors, (tuple, list))
    tensors = tuple(map(_as_tensor, [train_tensors] if single else train_tensors))
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        raise ValueError(f"train_tensors must share their first dimension; got {[len(t) for t in tensors]}.")
    if n == 0:
        raise ValueError("train_tensors is empty: nothing to train on.")

    torch.manual_seed(config.seed)  # layers that draw noise (dropout, a VAE's epsilon) use it
    shuffle_gen = torch.Generator().manual_seed(config.seed)
    transform_gen = torch.Generator().manual_seed(config.seed + 1)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n_batches = math.ceil(n / config.batch_size)
    total_steps = max(1, config.epochs * n_batches)
    scheduler = None
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
        )

    history: dict[str, list[float]] = {"loss": [], "seconds": []}
    bar = tqdm(total=config.epochs * n_batches, desc=desc, disable=not progress, leave=True)
    try:
        for epoch in range(config.epochs):
            model.train()
            start = time.perf_counter()
            order = torch.randperm(n, generator=shuffle_gen)
            loss_sum, term_sums, seen = 0.0, {}, 0
            for b in range(n_batches):
                idx = order[b * config.batch_size : (b + 1) * config.batch_size]
                batch = tuple(t[idx] for t in tensors)
                batch = batch[0] if single else batch
                if transform is not None:  # on the CPU, with a CPU generator: same draws on any device
                    batch = transform(batch, transform_gen)
                batch = batch.to(device) if single else tuple(t.to(device) for t in batch)
                loss, terms = _split_loss(loss_fn(model, batch))
                value, size = float(loss.detach()), len(idx)
                if not math.isfinite(value):  # stop before the step spreads NaNs into the weights
                    raise FloatingPointError(
                        f"{desc}: the loss became {value} at epoch {epoch + 1}, batch {b + 1}; "
                        "try a smaller lr, or check the data for NaNs and the range of the targets."
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()

                loss_sum += value * size
                for name, term in terms.items():
                    term_sums[name] = term_sums.get(name, 0.0) + term * size
                seen += size
                bar.update(1)
                if b % 10 == 0 or b == n_batches - 1:
                    bar.set_postfix_str(f"epoch {epoch + 1}/{config.epochs} loss {loss_sum / seen:.4g}", refresh=False)

            history["loss"].append(loss_sum / seen)
            history["seconds"].append(time.perf_counter() - start)
            extra = {name: total / seen for name, total in term_sums.items()}
            if on_epoch_end is not None:
                model.eval()
                extra.update({k: float(v) for k, v in (on_epoch_end(epoch, model) or {}).items()})
            for name, value in extra.items():
                if name in _RESERVED_HISTORY_KEYS:
                    raise ValueError(f"a logged term may not be called {name!r}: the history uses that key.")
                history.setdefault(name, []).append(value)
    finally:
        bar.close()
        model.eval()
    return history


# --------------------------------------------------------------------------------------------
# Cache keys
# --------------------------------------------------------------------------------------------


def to_plain(obj: Any) -> Any:
    """``obj`` as plain JSON types: dataclasses, tuples, NumPy scalars and arrays converted.

    A dataclass becomes ``{"__type__": class name, **fields}`` (two configs with equal fields
    but different classes are different models); an ndarray becomes its shape, dtype and the
    SHA-256 of its bytes (a subset given as indices, say). Anything else raises ``TypeError``.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return {"__type__": type(obj).__name__, **fields}
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        if not math.isfinite(obj):
            raise ValueError(f"a cache key part is {obj}; only finite numbers make a stable key.")
        return float(obj)
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.ndarray):
        array = np.ascontiguousarray(obj)
        return {"ndarray_sha256": hashlib.sha256(array.tobytes()).hexdigest(),
                "shape": list(array.shape), "dtype": str(array.dtype)}
    raise TypeError(
        f"cannot put a {type(obj).__name__} into a cache key; use numbers, strings, lists, "
        "dicts, NumPy arrays or dataclasses."
    )


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text of ``obj``: sorted keys, no spaces, no NaN."""
    return json.dumps(to_plain(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def source_hash(*modules) -> str:
    """SHA-256 (hex) of the source files of ``modules``: changes whenever one is edited."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def code_fingerprint() -> dict:
    """The code part of every cache key: :data:`CODE_VERSION` and the hash of models/train."""
    from gae_course import models, train

    return {"version": CODE_VERSION, "source_sha256": source_hash(models, train)}


def cache_key(key_parts: dict, seed: int = 0) -> str:
    """SHA-256 (hex) naming the model that ``key_parts``, ``seed`` and the code determine."""
    full = {"key_parts": key_parts, "init_seed": seed, "code": code_fingerprint()}
    return hashlib.sha256(canonical_json(full).encode()).hexdigest()


def model_dir() -> Path:
    """``gae_course.config.cache_root() / "models"`` (``$GAE_COURSE_CACHE/models`` if set)."""
    return course_config.cache_root() / "models"


def cache_path(name: str, key_parts: dict, seed: int = 0) -> Path:
    """Checkpoint file for ``name`` under this key: ``<model_dir>/<name>-<key16>.pt``."""
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"name must be a plain file-name stem such as 'ae-mnist'; got {name!r}.")
    return model_dir() / f"{name}-{cache_key(key_parts, seed)[:16]}.pt"


# --------------------------------------------------------------------------------------------
# Cached training
# --------------------------------------------------------------------------------------------


class FitResult(NamedTuple):
    """What :func:`cached_fit` returns."""

    model: nn.Module  # trained, in eval mode, on the requested device
    history: dict  # from train_fn, as stored in the checkpoint
    loaded: bool  # True when the weights came from the cache
    path: Path  # the checkpoint file


class _Unusable(Exception):
    """A checkpoint exists but cannot be used; the message says why."""


def _read_checkpoint(path: Path, model: nn.Module, expected_parts, device) -> dict:
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
        raise _Unusable("it was trained with other settings")
    state, own = payload["state_dict"], model.state_dict()
    if not isinstance(state, dict) or state.keys() != own.keys():
        missing = sorted(set(own) - set(state)) if isinstance(state, dict) else []
        raise _Unusable(f"its weights do not match the model (missing {missing[:3]})")
    for key, value in own.items():
        if not isinstance(state[key], torch.Tensor) or state[key].shape != value.shape:
            got = tuple(state[key].shape) if isinstance(state[key], torch.Tensor) else type(state[key]).__name__
            raise _Unusable(f"weight {key} has shape {got}, the model needs {tuple(value.shape)}")
    return payload


def _write_checkpoint(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: readers see the old state or the whole new file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_fit(
    name: str,
    build_model: Callable[[], nn.Module],
    train_fn: Callable[[nn.Module], dict],
    key_parts: dict,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    force: bool = False,
) -> FitResult:
    """Load the model ``key_parts`` describes from the cache, or train and cache it.

    Parameters
    ----------
    name : str
        Stem of the checkpoint file, e.g. ``"ae-mnist"``.
    build_model : callable
        ``build_model()`` returns a fresh, untrained model (called after
        ``torch.manual_seed(seed)``, so its initial weights are repeatable).
    train_fn : callable
        ``train_fn(model)`` trains the model in place and returns its history (a dict of
        numbers / lists of numbers), typically ``lambda m: fit(m, loss_fn, data, train_config)``.
    key_parts : dict
        Everything that determines the trained weights besides the code: for instance
        ``{"model": AutoencoderConfig(...), "data": {"dataset": "mnist", "split": "train",
        "n": 60000, "subset_seed": 0}, "train": TrainConfig(...)}``. Dataclasses, NumPy values
        and tuples are converted with :func:`to_plain`.
    seed : int
        Seed for the initial weights; part of the key.
    device : str or torch.device, optional
        Where the returned model lives; default :func:`default_device`.
    force : bool
        Retrain (and overwrite the checkpoint) even when one matches.

    Returns
    -------
    FitResult
        ``(model, history, loaded, path)``.
    """
    device = default_device() if device is None else torch.device(device)
    plain_parts = json.loads(canonical_json(key_parts))  # what a checkpoint's copy must equal
    path = cache_path(name, key_parts, seed)

    def fresh() -> nn.Module:
        torch.manual_seed(seed)
        return build_model().to(device)

    model = fresh()
    if path.exists() and not force:
        try:
            payload = _read_checkpoint(path, model, plain_parts, device)
        except _Unusable as why:
            print(f"cache: {path} is unreadable ({why}); retraining")
            model = fresh()  # nothing was loaded into it, but start clean all the same
        else:
            model.load_state_dict(payload["state_dict"])
            model.eval()
            when = payload.get("trained_at", "at an unknown time")
            took = payload.get("train_seconds")
            took = f" in {took:.1f} s" if isinstance(took, (int, float)) else ""
            print(f"cache: loaded {name} from {path} (trained {when}{took})")
            return FitResult(model, payload["history"], True, path)

    start = time.perf_counter()
    history = train_fn(model)
    seconds = time.perf_counter() - start
    history = json.loads(canonical_json(history if history is not None else {}))
    model.eval()
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "history": history,
        "key_parts": plain_parts,
        "name": name,
        "trained_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "train_seconds": seconds,
        "torch_version": str(torch.__version__),
    }
    _write_checkpoint(path, payload)
    print(f"cache: trained {name} in {seconds:.1f} s; saved to {path}")
    return FitResult(model, history, False, path)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def encode_dataset(model: nn.Module, images, batch_size: int = 1024) -> np.ndarray:
    """Codes of many images, in batches, without gradients, in eval mode.

    Parameters
    ----------
    model : nn.Module
        Anything with ``encode(x) -> (B, latent_dim)``.
    images : ndarray or Tensor of shape (n, 28, 28) or (n, 1, 28, 28)
    batch_size : int

    Returns
    -------
    codes : ndarray of shape (n, latent_dim), float32
    """
    device, was_training = _model_device(model), model.training
    model.eval()
    try:
        images = _as_tensor(images)
        out = [model.encode(images[i : i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


@torch.no_grad()
def decode_latents(model: nn.Module, z, batch_size: int = 1024) -> np.ndarray:
    """Pixel probabilities decoded from codes, in batches, without gradients, in eval mode.

    Parameters
    ----------
    model : nn.Module
        Anything with ``decode(z) -> (B, C, H, W)`` probabilities.
    z : ndarray or Tensor of shape (n, latent_dim)
    batch_size : int

    Returns
    -------
    images : ndarray of shape (n, H, W) for one channel, else (n, C, H, W); float32 in [0, 1]
    """
    device, was_training = _model_device(model), model.training
    model.eval()
    try:
        z = _as_tensor(z).float()
        out = [model.decode(z[i : i + batch_size].to(device)).cpu() for i in range(0, len(z), batch_size)]
    finally:
        model.train(was_training)
    images = torch.cat(out).numpy()  # (n, C, H, W)
    return images[:, 0] if images.shape[1] == 1 else images


def cached_autoencoder(
    name: str,
    images,
    model_config,
    train_config: TrainConfig,
    data_description: dict,
    *,
    seed: int = 0,
    progress: bool = True,
) -> FitResult:
    """Train an autoencoder on ``images`` with the reconstruction loss, or load it from the cache.

    Parameters
    ----------
    name : str
        Checkpoint stem, e.g. ``"ae-mnist"``.
    images : ndarray of shape (n, 28, 28)
    model_config : gae_course.models.AutoencoderConfig
    train_config : TrainConfig
    data_description : dict
        What ``images`` are, for the cache key, e.g. ``{"dataset": "mnist", "split": "train",
        "n": 54000, "validation_seed": 0}``: two different image sets must never share one.
    seed : int
        Seed of the initial weights.

    Returns
    -------
    FitResult
    """
    return cached_fit(
        name,
        lambda: models.Autoencoder(model_config),
        lambda model: fit(model, models.autoencoder_loss, images, train_config, desc=name,
                          progress=progress),
        {"model": model_config, "train": train_config, "data": data_description},
        seed=seed,
    )

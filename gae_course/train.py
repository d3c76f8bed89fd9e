"""One training loop for every network in the course, and one batched evaluation loop.

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
history. :mod:`gae_course.cache` trains through :func:`fit` once and loads afterwards.

Evaluation
----------
:func:`evaluate` runs a function of a model over many inputs in batches, without gradients,
in eval mode (restored afterwards), on the model's device: every encode / decode / score loop
of the package goes through it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

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


def as_tensor(x) -> torch.Tensor:
    """A CPU tensor sharing memory with ``x`` when it can; NumPy floats become float32."""
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
    tensors = tuple(map(as_tensor, [train_tensors] if single else train_tensors))
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        raise ValueError(f"train_tensors must share their first dimension; got {[len(t) for t in tensors]}.")
    if n == 0:
        raise ValueError("train_tensors is empty: nothing to train on.")

    torch.manual_seed(config.seed)  # layers that draw noise (dropout, a VAE's epsilon) use it
    shuffle_gen = torch.Generator().manual_seed(config.seed)
    transform_gen = torch.Generator().manual_seed(config.seed + 1)
    model.to(device)
    # fused=True: one kernel updates every parameter (the same Adam arithmetic); on this CPU
    # it cut a 784-512-256-32 VAE's step from 18.8 to 15.2 ms (benchmarks/bench_training.py).
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                 fused=device.type in ("cpu", "cuda"))
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
# Evaluation
# --------------------------------------------------------------------------------------------


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def evaluate(fn: Callable, model: nn.Module, *inputs, batch_size: int = 1024,
             desc: str | None = None) -> torch.Tensor:
    """``fn(*batch)`` over ``inputs`` in batches, in eval mode, without gradients; concatenated.

    Parameters
    ----------
    fn : callable
        Takes one batch of each input (moved to the model's device) and returns a tensor whose
        first dimension is the batch, e.g. ``model.encode`` or ``lambda x, y: model(x, y)``.
    model : nn.Module
        Put in eval mode while ``fn`` runs; its previous mode is restored afterwards.
    *inputs : ndarray or Tensor, each of first dimension n
        NumPy floats become float32.
    batch_size : int
    desc : str, optional
        Show a progress bar with this label (for slow loops such as an IWAE estimate).

    Returns
    -------
    Tensor of shape (n, ...) on the CPU
        An empty tensor of shape (0,) when n is 0.
    """
    tensors = [as_tensor(x) for x in inputs]
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        raise ValueError(f"inputs must share their first dimension; got {[len(t) for t in tensors]}.")
    from tqdm.auto import tqdm

    device, was_training = model_device(model), model.training
    model.eval()
    try:
        starts = tqdm(range(0, n, batch_size), desc=desc, disable=desc is None)
        out = [fn(*(t[i : i + batch_size].to(device) for t in tensors)).cpu() for i in starts]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def encode_dataset(model: nn.Module, images, batch_size: int = 1024) -> np.ndarray:
    """Codes of many images: ``model.encode`` in batches; ndarray of shape (n, latent_dim), float32.

    ``images`` : ndarray or Tensor of shape (n, 28, 28) or (n, 1, 28, 28).
    """
    return evaluate(model.encode, model, images, batch_size=batch_size).numpy()


def decode_latents(model: nn.Module, z, batch_size: int = 1024) -> np.ndarray:
    """Pixel probabilities ``model.decode(z)`` in batches.

    ``z`` : ndarray or Tensor of shape (n, latent_dim). Returns an ndarray of shape (n, H, W)
    for one channel, else (n, C, H, W); float32 in [0, 1].
    """
    images = evaluate(model.decode, model, as_tensor(z).float(), batch_size=batch_size).numpy()
    return images[:, 0] if images.ndim == 4 and images.shape[1] == 1 else images

r"""An independent judge of generated images (a small CNN classifier) and what it measures.

Generative models are compared on samples they draw, which have no labels and no
likelihood under the other models. A classifier trained on *real* pixels, separately from
every generative model, gives two measurements (chapter 6):

* **class consistency**: draw images "of class c" and count how often the judge says c;
* a **Fréchet distance** between real and generated images in the judge's penultimate-layer
  features. Fit a Gaussian to each set of feature vectors and take

  .. math::

      d^2 = \lVert \mu_r - \mu_g \rVert^2
            + \operatorname{tr}\bigl(\Sigma_r + \Sigma_g - 2 (\Sigma_r \Sigma_g)^{1/2}\bigr),

  the squared 2-Wasserstein distance between the two Gaussians (Dowson & Landau, 1982). With
  Inception-v3 features this is the FID (Heusel et al., 2017); here the features come from
  this MNIST-sized judge, so the numbers are comparable with each other, not with published
  FIDs.

The trace of the matrix square root is computed without forming it: the eigenvalues of
:math:`\Sigma_r \Sigma_g` equal those of the symmetric matrix
:math:`\Sigma_r^{1/2} \Sigma_g \Sigma_r^{1/2}`, which are real and non-negative, so
:math:`\operatorname{tr} (\Sigma_r \Sigma_g)^{1/2} = \sum_i \sqrt{\lambda_i}` from one
``eigh``, in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gae_course import train as train_lib


@dataclass(frozen=True)
class JudgeConfig:
    """Sizes of the judge. Frozen: part of the model-cache key."""

    channels: tuple[int, ...] = (16, 32)  # two 3x3 conv layers, each followed by 2x2 max-pooling
    n_features: int = 128  # width of the penultimate layer: the Fréchet distance's feature space
    n_classes: int = 10

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if len(self.channels) != 2 or min(self.channels) < 1:
            raise ValueError(f"channels must be two positive widths; got {self.channels}.")
        if self.n_features < 1 or self.n_classes < 2:
            raise ValueError(f"need n_features >= 1 and n_classes >= 2; got "
                             f"{self.n_features}, {self.n_classes}.")


class Judge(nn.Module):
    """CNN on 28x28 grey images: conv-pool, conv-pool, a hidden layer (the features), logits."""

    def __init__(self, config: JudgeConfig | None = None):
        super().__init__()
        self.config = JudgeConfig() if config is None else config
        c1, c2 = self.config.channels
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 28 -> 14
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 14 -> 7
            nn.Flatten(), nn.Linear(c2 * 7 * 7, self.config.n_features), nn.ReLU(),
        )
        self.head = nn.Linear(self.config.n_features, self.config.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (B, n_features) of images (B, 28, 28) or (B, 1, 28, 28)."""
        if x.ndim not in (3, 4) or tuple(x.shape[-2:]) != (28, 28):
            raise ValueError(f"the judge takes images of shape (B, 28, 28) or (B, 1, 28, 28); "
                             f"got {tuple(x.shape)}.")
        return self.body(x.reshape(x.shape[0], 1, 28, 28))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, n_classes)."""
        return self.head(self.features(x))


def classifier_loss(model: nn.Module, batch):
    """``loss_fn`` for :func:`gae_course.train.fit`: cross-entropy of (inputs, labels), and accuracy."""
    x, y = batch
    logits = model(x)
    accuracy = (logits.argmax(1) == y).float().mean()
    return F.cross_entropy(logits, y), {"accuracy": accuracy.detach()}


def cached_judge(name: str, images, labels, train_config: train_lib.TrainConfig,
                 config: JudgeConfig | None = None, progress: bool = True):
    """Train the judge on real (grey-level) images and labels, or load it from the model cache.

    The key is derived by :func:`gae_course.cache.cached_fit` (config, training, the bytes of
    ``images`` and ``labels``, the source of this module and what it imports).
    """
    from gae_course import cache

    config = JudgeConfig() if config is None else config
    return cache.cached_fit(name, Judge, config, classifier_loss,
                            (images, np.asarray(labels, dtype=np.int64)), train_config,
                            progress=progress)


def predict_proba(model: Judge, images, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities (n, n_classes) of images (n, 28, 28)."""
    proba = train_lib.evaluate(lambda x: torch.softmax(model(x), dim=1), model, images, batch_size=batch_size)
    return proba.double().numpy()


def features(model: Judge, images, batch_size: int = 1000) -> np.ndarray:
    """Penultimate-layer features (n, n_features), float64."""
    return train_lib.evaluate(model.features, model, images, batch_size=batch_size).double().numpy()


def class_consistency(model: Judge, images, requested) -> dict:
    """How often the judge names the class each image was drawn for.

    Parameters
    ----------
    images : (n, 28, 28)
    requested : (n,) int, the class each image was generated for

    Returns
    -------
    dict with ``"overall"`` (fraction of all images), ``"per_class"`` (list, NaN for a class
    with no images) and ``"mean_confidence"`` (mean of the judge's top probability).
    """
    requested = np.asarray(requested)
    if requested.shape != (len(images),):
        raise ValueError(f"requested must hold one class per image: shape ({len(images)},); "
                         f"got {requested.shape}.")
    proba = predict_proba(model, images)
    hit = proba.argmax(1) == requested
    per_class = [float(hit[requested == c].mean()) if (requested == c).any() else float("nan")
                 for c in range(proba.shape[1])]
    return {"overall": float(hit.mean()), "per_class": per_class,
            "mean_confidence": float(proba.max(1).mean())}


def gaussian_statistics(feature_vectors) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of feature vectors (n, d), n >= 2, in float64."""
    f = np.asarray(feature_vectors, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"feature vectors must have shape (n, d) with n >= 2; got {f.shape}.")
    if not np.isfinite(f).all():
        raise ValueError("feature vectors contain NaN or inf; check the images given to the judge.")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu_a, cov_a, mu_b, cov_b) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu_a, cov_a) and N(mu_b, cov_b).

    ``||mu_a - mu_b||^2 + tr(cov_a) + tr(cov_b) - 2 tr((cov_a cov_b)^{1/2})``; symmetric, zero
    for equal Gaussians, >= 0 up to rounding. Shapes: mu (d,), cov (d, d).
    """
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    d = mu_a.shape[0]
    if mu_b.shape != (d,) or cov_a.shape != (d, d) or cov_b.shape != (d, d):
        raise ValueError(f"need mu (d,) and cov (d, d) for both; got {mu_a.shape}, {cov_a.shape}, "
                         f"{mu_b.shape}, {cov_b.shape}.")
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    diff = mu_a - mu_b
    return float(max(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt, 0.0))


def frechet_distance_between(model: Judge, images_a, images_b) -> float:
    """Fréchet distance between two image sets in the judge's feature space (the FID recipe)."""
    return frechet_distance(*gaussian_statistics(features(model, images_a)),
                            *gaussian_statistics(features(model, images_b)))


@dataclass(frozen=True)
class CodeClassifierConfig:
    """Sizes of the MLP on latent codes. Frozen: part of the model-cache key."""

    latent_dim: int  # size of the codes it reads
    hidden: int = 128  # one hidden layer: enough for 8- to 64-number codes, cheap beside a CNN
    n_classes: int = 10


class CodeClassifier(nn.Module):
    """A small MLP on latent codes: (B, latent_dim) -> class logits (B, n_classes).

    Chapter 6 sets it against the likelihood classifier of per-class Gaussian mixtures on the
    same codes, and against the judge on pixels; train it with :func:`classifier_loss`.
    """

    def __init__(self, config: CodeClassifierConfig):
        super().__init__()
        self.config = config
        self.net = nn.Sequential(nn.Linear(config.latent_dim, config.hidden), nn.ReLU(),
                                 nn.Linear(config.hidden, config.n_classes))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

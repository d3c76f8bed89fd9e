r"""Variational autoencoders on binarised images: Gaussian or Bernoulli latents, conditional or not.

A VAE (Kingma & Welling, 2014) is a latent-variable model :math:`p_\theta(x, z) =
p(z)\,p_\theta(x \mid z)` trained together with an encoder :math:`q_\phi(z \mid x)` by
maximising the evidence lower bound (see :mod:`gae_course.elbo`)

.. math::

    \text{ELBO}(x) = \underbrace{\mathbb E_{q_\phi(z \mid x)}[\log p_\theta(x \mid z)]}_{-\text{reconstruction}}
                     - \operatorname{KL}\bigl(q_\phi(z \mid x) \,\|\, p(z)\bigr) \le \log p_\theta(x).

Here the pixels are binary, :math:`p_\theta(x \mid z)` is one Bernoulli per pixel whose logit
the decoder gives, and the networks are multi-layer perceptrons (as in the published
figures this course compares with). Two kinds of latent, chosen by :class:`VAEConfig`:

* ``"gaussian"``: :math:`q = \mathcal N(\mu, \operatorname{diag} e^{\text{logvar}})`, prior
  :math:`\mathcal N(0, I)`. The expectation is estimated with one reparameterised sample,
  the KL is in closed form. ``beta`` weighs the KL (beta-VAE, Higgins et al., 2017).
* ``"bernoulli"``: :math:`q = \prod_j \operatorname{Bernoulli}(\sigma(\ell_j))`, prior
  :math:`\operatorname{Bernoulli}(1/2)^L`. A binary code cannot be reparameterised, so the
  encoder's gradient of the expectation is the score-function estimate
  :math:`(\log p_\theta(x \mid z) - b(x))\,\nabla_\phi \log q_\phi(z \mid x)` with a baseline
  :math:`b(x) = c + b_\psi(x)`: a moving average :math:`c` of the reconstruction term plus a
  small network trained to predict what is left (NVIL, Mnih & Gregor, 2014, sec. 3.3). The KL
  between factorised Bernoullis is in closed form and differentiated exactly.

``VAEConfig.estimator`` can force the score function on a Gaussian latent (its samples are
then detached and the encoder learns through :math:`\nabla_\phi \log q_\phi(z \mid x)` only,
with the same NVIL baseline), and ``VAEConfig.use_baseline=False`` drops the baseline
(:math:`b = 0`), so that the estimator and the latent type can be changed one at a time.

A conditional VAE (Sohn et al., 2015) feeds the one-hot label to both networks:
:math:`q_\phi(z \mid x, y)`, :math:`p_\theta(x \mid z, y)`; decoding prior samples with a
chosen :math:`y` draws that class.

:meth:`VAE.objective` keeps the figures to read (reconstruction, KL) apart from the tensors
to differentiate (a surrogate, and the learned baseline's own loss), as Pyro's
``TraceGraph_ELBO`` does; :meth:`VAE.loss` adds the last two for ``backward`` and logs the
first two, so the training histories of every kind of VAE can be compared.

Shapes: ``B`` images, ``L = latent_dim``, ``K`` samples per image, ``D = 784`` pixels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gae_course import elbo as elbo_lib
from gae_course import estimators, models
from gae_course import train as train_lib

LATENTS = ("gaussian", "bernoulli")
ESTIMATORS = ("reparameterisation", "score_function")
LOG_HALF = math.log(0.5)


@dataclass(frozen=True)
class VAEConfig:
    """Sizes of a VAE. Frozen, so it is hashable and can key the model cache."""

    latent_dim: int = 32  # L: size of z
    hidden: tuple[int, ...] = (512, 256)  # encoder's hidden widths; the decoder reverses them
    latent: str = "gaussian"  # "gaussian" (reparameterised) or "bernoulli" (score function)
    n_classes: int = 0  # > 0: a conditional VAE, the one-hot label goes into both networks
    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W); D = C * H * W pixels
    baseline_hidden: int = 100  # bernoulli only: width of the learned baseline b_psi(x)
    baseline_decay: float = 0.9  # score function only: weight of the old value in the moving average
    # the encoder's gradient of E_q[log p(x | z)]: None is the latent's own estimator
    # (Gaussian: "reparameterisation"; Bernoulli: "score_function", the only one it has)
    estimator: str | None = None
    use_baseline: bool = True  # score function only: subtract b(x) = c + b_psi(x) (False: b = 0)

    def __post_init__(self):
        if self.latent not in LATENTS:
            raise ValueError(f"latent must be one of {LATENTS}; got {self.latent!r}.")
        if self.latent_dim < 1 or self.n_classes < 0:
            raise ValueError(f"need latent_dim >= 1 and n_classes >= 0; got {self.latent_dim}, "
                             f"{self.n_classes}.")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must lie in [0, 1); got {self.baseline_decay}.")
        if self.estimator is not None and self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be None or one of {ESTIMATORS}; got {self.estimator!r}.")
        if self.latent == "bernoulli" and self.estimator == "reparameterisation":
            raise ValueError("a Bernoulli latent cannot be reparameterised (a binary sample is not a "
                             "smooth function of its logits): use estimator='score_function' or None.")
        if not self.use_baseline and not self.score_function:
            raise ValueError("use_baseline=False only applies to the score-function estimator; "
                             "the reparameterised gradient has no baseline.")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "image_shape", tuple(int(v) for v in self.image_shape))

    @property
    def conditional(self) -> bool:
        return self.n_classes > 0

    @property
    def score_function(self) -> bool:
        """Whether the encoder learns by the score-function estimator (else: reparameterisation)."""
        return self.latent == "bernoulli" or self.estimator == "score_function"

    @property
    def n_pixels(self) -> int:
        """D, the length of a flattened image."""
        return math.prod(self.image_shape)

    def network(self) -> models.AutoencoderConfig:
        """The MLP both networks are built from (:class:`gae_course.models.Encoder`, ``Decoder``)."""
        return models.AutoencoderConfig(kind="mlp", latent_dim=self.latent_dim, hidden=self.hidden,
                                        image_shape=self.image_shape, n_conditions=self.n_classes)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict; ``VAEConfig(**d)`` inverts it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def kl_bernoulli_half(logits: torch.Tensor) -> torch.Tensor:
    r"""KL(Bernoulli(sigmoid(logits)) || Bernoulli(1/2)), summed over the last axis.

    :math:`\sum_j q_j \log q_j + (1 - q_j) \log(1 - q_j) + \log 2`, with the logs taken from
    the logits (``logsigmoid``) so that a saturated ``q`` gives no ``0 * log 0``.

    Parameters
    ----------
    logits : Tensor of shape (..., L)

    Returns
    -------
    Tensor of shape (...)
    """
    q = torch.sigmoid(logits)
    per_unit = q * F.logsigmoid(logits) + (1 - q) * F.logsigmoid(-logits) - LOG_HALF
    return per_unit.sum(-1)


class Objective(NamedTuple):
    """One Monte Carlo evaluation of the (beta-)ELBO of a batch, kept as named quantities.

    As in Pyro's ``TraceGraph_ELBO``, the quantities to read and the quantities to
    differentiate are different tensors, added only where ``backward`` is called
    (:meth:`VAE.loss`).
    """

    recon: torch.Tensor  # (B,) -log p(x | z) with z ~ q, detached: nats per image
    kl: torch.Tensor  # (B,) KL(q(z | x) || p(z)) in closed form, detached
    surrogate: torch.Tensor  # () its gradient estimates the gradient of mean(recon + beta * kl)
    baseline_loss: torch.Tensor  # () the learned baseline's own regression loss (0: Gaussian z)


class VAE(nn.Module):
    """A VAE with MLP encoder and decoder (:mod:`gae_course.models`) on binary images.

    Parameters
    ----------
    config : VAEConfig, optional
        Default ``VAEConfig()`` (Gaussian latent, L = 32, hidden 512-256, unconditional).
    """

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = VAEConfig() if config is None else config
        c = self.config
        n_out = 2 * c.latent_dim if c.latent == "gaussian" else c.latent_dim
        self.encoder = models.Encoder(c.network(), out_dim=n_out)
        self.decoder = models.Decoder(c.network())
        if c.score_function and c.use_baseline:
            self.baseline = estimators.LearnedBaseline(c.n_pixels, c.baseline_hidden).float()
            # the moving-average part c of the baseline; a buffer, so it is saved with the weights
            self.register_buffer("baseline_mean", torch.zeros(()))

    # -- inputs ------------------------------------------------------------------------------

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 28, 28), (B, 1, 28, 28) or (B, 784) to (B, 784); anything else refused."""
        D = self.config.n_pixels
        if x.ndim < 2 or math.prod(x.shape[1:]) != D:
            raise ValueError(f"expected a batch of images with {D} pixels each; got shape {tuple(x.shape)}.")
        return x.reshape(x.shape[0], D)

    def _one_hot(self, y, batch: int) -> torch.Tensor | None:
        c = self.config
        if not c.conditional:
            if y is not None:
                raise ValueError("this VAE is not conditional (n_classes=0); do not pass labels.")
            return None
        if y is None:
            raise ValueError(f"this VAE is conditional on {c.n_classes} classes; pass the labels y.")
        y = torch.as_tensor(y, device=train_lib.model_device(self))
        if y.shape != (batch,):
            raise ValueError(f"labels must have shape ({batch},); got {tuple(y.shape)}.")
        if y.dtype.is_floating_point or int(y.min()) < 0 or int(y.max()) >= c.n_classes:
            raise ValueError(f"labels must be integers in [0, {c.n_classes}); got {y[:5].tolist()}...")
        return F.one_hot(y.long(), c.n_classes).to(next(self.decoder.parameters()).dtype)

    # -- the two networks --------------------------------------------------------------------

    def posterior(self, x: torch.Tensor, y=None):
        """Parameters of q(z | x[, y]): ``(mu, logvar)`` each (B, L), or Bernoulli logits (B, L)."""
        x = self._flat(x)
        h = self.encoder(x, self._one_hot(y, x.shape[0]))  # (B, 2L) or (B, L)
        if self.config.latent == "gaussian":
            mu, logvar = h.chunk(2, dim=-1)
            return mu, logvar
        return h

    def encode(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """The mean of q(z | x): ``mu`` or ``sigmoid(logits)``, shape (B, L)."""
        q = self.posterior(x, y)
        return q[0] if self.config.latent == "gaussian" else torch.sigmoid(q)

    def decoder_logits(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """Pixel logits for codes ``z`` of shape (..., B, L): returns (..., B, D).

        Leading sample dimensions (K) are allowed; the labels (B,) are broadcast over them.
        """
        label = self._one_hot(y, z.shape[-2])
        if label is not None:
            label = label.expand(*z.shape[:-1], -1).reshape(-1, label.shape[-1])  # (K * B, C)
        logits = self.decoder(z.reshape(-1, z.shape[-1]), label)  # (K * B, C, H, W)
        return logits.reshape(*z.shape[:-1], self.config.n_pixels)

    def decode(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """Pixel probabilities (B, C, H, W) for codes (B, L): the mean of p(x | z[, y])."""
        probs = torch.sigmoid(self.decoder_logits(z, y))  # (B, D)
        return probs.reshape(z.shape[0], *self.config.image_shape)

    def most_probable_code(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """The mode of q(z | x): ``mu``, or the binary code ``1[logits > 0]``, shape (B, L).

        For a Bernoulli latent this is a code the decoder was trained on; the mean
        ``sigmoid(logits)`` (:meth:`encode`) lies between the corners of the cube it never saw.
        """
        q = self.posterior(x, y)
        return q[0] if self.config.latent == "gaussian" else (q > 0).to(q.dtype)

    def forward(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """Reconstruction logits (B, D) decoded from the most probable code (:meth:`most_probable_code`)."""
        return self.decoder_logits(self.most_probable_code(x, y), y)

    # -- densities ---------------------------------------------------------------------------

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor, y=None) -> torch.Tensor:
        """log p(x | z[, y]) for codes z of shape (K, B, L) and images x (B, ...): shape (K, B)."""
        x = self._flat(x)
        return elbo_lib.bernoulli_log_likelihood(x, self.decoder_logits(z, y), event_dim=1)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z), shape (...,) for z of shape (..., L)."""
        if self.config.latent == "gaussian":
            return elbo_lib.log_normal_diag(z, torch.zeros_like(z), torch.zeros_like(z))
        return torch.full(z.shape[:-1], z.shape[-1] * LOG_HALF, dtype=z.dtype, device=z.device)

    def kl(self, q) -> torch.Tensor:
        """KL(q(z | x) || p(z)) in closed form, shape (B,), for q from :meth:`posterior`."""
        if self.config.latent == "gaussian":
            return elbo_lib.kl_standard_normal(*q)
        return kl_bernoulli_half(q)

    def sample_posterior(self, q, n_samples: int = 1, generator=None) -> torch.Tensor:
        """Draws z ~ q(z | x), shape (K, B, L). Gaussian draws are reparameterised, unless the
        model learns by the score function: then, as binary draws, they carry no gradient (the
        score function differentiates log q instead)."""
        if self.config.latent == "gaussian":
            z = elbo_lib.sample_diag_gaussian(*q, n_samples, generator)
            return z.detach() if self.config.score_function else z
        probs = torch.sigmoid(q).detach().expand(n_samples, *q.shape)
        return torch.bernoulli(probs, generator=generator)

    def log_posterior(self, q, z: torch.Tensor) -> torch.Tensor:
        """log q(z | x) for z of shape (K, B, L): shape (K, B)."""
        if self.config.latent == "gaussian":
            return elbo_lib.log_normal_diag(z, *q)
        return estimators.bernoulli_log_prob(z, q)

    def log_weights(self, x: torch.Tensor, n_samples: int, y=None, generator=None) -> torch.Tensor:
        """Importance log-weights log p(x, z_k) - log q(z_k | x), z_k ~ q; shape (K, B)."""
        q = self.posterior(x, y)
        z = self.sample_posterior(q, n_samples, generator)
        return self.log_likelihood(x, z, y) + self.log_prior(z) - self.log_posterior(q, z)

    @torch.no_grad()
    def sample(self, n: int, y=None, generator=None) -> torch.Tensor:
        """Decode n draws from the prior: pixel probabilities (n, C, H, W), without gradients.

        ``y`` (n,) picks the class of each draw for a conditional VAE.
        """
        shape = (n, self.config.latent_dim)
        if self.config.latent == "gaussian":
            z = torch.randn(shape, generator=generator)
        else:
            z = torch.bernoulli(torch.full(shape, 0.5), generator=generator)
        return self.decode(z.to(train_lib.model_device(self)), y)

    # -- the training objective --------------------------------------------------------------

    def objective(self, x: torch.Tensor, y=None, beta: float = 1.0) -> Objective:
        """One-sample (beta-)ELBO of a batch: its two terms, a surrogate, the baseline's loss.

        Reparameterisation (Gaussian z, the default): ``surrogate = mean(recon + beta * kl)``
        with a reparameterised z, whose gradient is the pathwise estimate. Score function
        (Bernoulli z, or ``estimator="score_function"``): z carries no gradient, so the
        encoder's part of the gradient of E_q[log p(x | z)] is the score-function estimate
        (log p(x | z) - b(x)) grad log q(z | x) (:func:`gae_course.estimators.score_function`)
        with b(x) = c + b_psi(x): a moving average c plus a learned residual (NVIL, Mnih &
        Gregor, 2014, sec. 3.3), or b = 0 with ``use_baseline=False``; the KL is differentiated
        exactly. b_psi learns from ``baseline_loss`` alone, the squared error of its prediction
        of log p(x | z) - c.
        """
        q = self.posterior(x, y)
        z = self.sample_posterior(q)  # (1, B, L)
        log_lik = self.log_likelihood(x, z, y)  # (1, B)
        kl = self.kl(q)  # (B,)
        no_loss = torch.zeros((), dtype=kl.dtype, device=kl.device)
        if not self.config.score_function:
            surrogate = (-log_lik[0] + beta * kl).mean()
            baseline_loss = no_loss
        else:
            if self.config.use_baseline:
                b = self.baseline_mean + self.baseline(self._flat(x))  # (B,), independent of z
                baseline_loss = estimators.LearnedBaseline.loss(b, log_lik)
            else:
                b, baseline_loss = 0.0, no_loss
            estimate = estimators.score_function(log_lik, self.log_posterior(q, z), baseline=b)
            surrogate = -estimate.surrogate / len(kl) + beta * kl.mean()
            if self.training and self.config.use_baseline:  # update c after it was used on this batch
                decay = self.config.baseline_decay
                self.baseline_mean.mul_(decay).add_((1 - decay) * log_lik.detach().mean())
        return Objective(-log_lik[0].detach(), kl.detach(), surrogate, baseline_loss)

    def loss(self, x: torch.Tensor, y=None, beta: float = 1.0):
        """What :func:`gae_course.train.fit` minimises, and the terms it logs.

        Returns
        -------
        loss : Tensor of shape ()
            ``surrogate + baseline_loss`` of :meth:`objective`: call ``backward`` on it. For a
            Gaussian latent its value is the batch's mean beta-weighted negative ELBO; for a
            Bernoulli latent it is a surrogate whose value is not a figure to read.
        terms : dict
            ``"recon"``, ``"kl"``, ``"neg_elbo"`` (their sum, beta = 1) and ``"objective"``
            (recon + beta * kl): means per image in nats, the figures to plot for any latent.
        """
        out = self.objective(x, y, beta)
        recon, kl = float(out.recon.mean()), float(out.kl.mean())
        terms = {"recon": recon, "kl": kl, "neg_elbo": recon + kl, "objective": recon + beta * kl}
        return out.surrogate + out.baseline_loss, terms

    # -- measurement --------------------------------------------------------------------------

    def encoder_score_gradient(self, x, generator, use_baseline: bool = True, y=None) -> torch.Tensor:
        """One score-function estimate of the encoder's gradient of E_q[log p(x | z)], (P,).

        For a model that learns by the score function (Bernoulli latent, or
        ``estimator="score_function"``): (log p(x | z) - b(x)) grad_phi log q(z | x), averaged
        over the batch, with b = c + b_psi(x) or b = 0; flattened over the encoder's
        parameters. Both versions have the same expectation; their variances over repeated
        calls are what the baseline is for. (The KL's gradient is exact and the same in both,
        so it is left out.)
        """
        if not self.config.score_function:
            raise ValueError("the score-function gradient is for a model trained by it (a Bernoulli "
                             "latent, or estimator='score_function'); this one is reparameterised.")
        if use_baseline and not self.config.use_baseline:
            raise ValueError("this model was trained without a baseline (use_baseline=False): "
                             "it has no b(x); pass use_baseline=False.")
        x = self._flat(x)
        logits = self.posterior(x, y)
        z = self.sample_posterior(logits, 1, generator)  # (1, B, L)
        with torch.no_grad():
            log_lik = self.log_likelihood(x, z, y)  # (1, B): no gradient, only the score part
            b = self.baseline_mean + self.baseline(x) if use_baseline else 0.0
        estimate = estimators.score_function(log_lik, self.log_posterior(logits, z), baseline=b)
        return estimators.flat_grad(estimate.surrogate / len(x), list(self.encoder.parameters()))


def binarize(batch, generator=None):
    """Dynamic binarisation: each pixel becomes 1 with its grey level as the probability.

    ``batch`` is an image tensor or a tuple whose first entry is one (labels pass through).
    Used as ``transform`` in :func:`gae_course.train.fit`, so each epoch sees fresh draws.
    """
    if isinstance(batch, (tuple, list)):
        return (binarize(batch[0], generator), *batch[1:])
    # P(U < p) = p for U uniform on [0, 1): the same Bernoulli draws as torch.bernoulli, in a
    # third of its time (0.5 against 1.5 ms for a batch of 128 images; 1.5 ms was a fifth of
    # a small VAE's whole training step).
    return (torch.rand(batch.shape, generator=generator) < batch).to(batch.dtype)


@dataclass(frozen=True)
class VAELoss:
    """``loss_fn(model, batch)`` for :func:`gae_course.train.fit`: :meth:`VAE.loss` with ``beta``.

    A frozen dataclass rather than a closure, so that ``beta`` is part of the model-cache key.
    Batches are images, or (images, labels); the labels go to a conditional VAE and are
    ignored by an unconditional one.
    """

    beta: float = 1.0  # weight of the KL term (1: the ELBO; beta-VAE otherwise)

    def __call__(self, model: "VAE", batch):
        if isinstance(batch, (tuple, list)):
            x, y = batch[0], batch[1]
            return model.loss(x, y if model.config.conditional else None, beta=self.beta)
        return model.loss(batch, beta=self.beta)


def vae_loss(beta: float = 1.0) -> VAELoss:
    """:class:`VAELoss` with ``beta``."""
    return VAELoss(float(beta))


def cached_vae(
    name: str,
    config: VAEConfig,
    train_config: train_lib.TrainConfig,
    images,
    *,
    labels=None,
    beta: float = 1.0,
    seed: int = 0,
    progress: bool = True,
):
    """Train a VAE on dynamically binarised ``images`` (or load it from the model cache).

    The cache key is derived from everything here (:func:`gae_course.cache.cached_fit`): the
    config, the training config, the bytes of ``images`` (and ``labels``), ``beta``, the
    binarisation and the source of every module the loss reaches.

    Parameters
    ----------
    name : str
        Checkpoint stem, e.g. ``"vae-mnist"``.
    config : VAEConfig
    train_config : gae_course.train.TrainConfig
    images : ndarray of shape (n, 28, 28), grey levels in [0, 1]
    labels : ndarray of shape (n,), optional
        Needed (and only used) by a conditional VAE.
    beta : float
        Weight of the KL term.

    Returns
    -------
    gae_course.cache.FitResult
        ``(model, history, loaded, path, key)``; the history has ``loss`` (the beta-weighted
        negative ELBO), ``recon``, ``kl`` and ``neg_elbo`` per epoch.
    """
    from gae_course import cache

    if config.conditional and labels is None:
        raise ValueError("a conditional VAE needs the labels of its training images.")
    data = (images, np.asarray(labels, dtype=np.int64)) if config.conditional else images
    return cache.cached_fit(name, VAE, config, vae_loss(beta), data, train_config,
                            transform=binarize, seed=seed, progress=progress)


def iwae_log_likelihood(model: VAE, images, n_samples: int, *, labels=None, batch_size: int = 10,
                        generator=None, progress: bool = True) -> np.ndarray:
    """Importance-weighted estimates of log p(x) for binary ``images``: L_K per image, nats.

    Burda et al. (2016), eq. 8: the K-sample bound is a lower bound on log p(x) that rises with
    K; with K of 1000 or more it is the usual estimate of a VAE's test log-likelihood.

    Parameters
    ----------
    model : VAE
    images : ndarray or Tensor of shape (n, 28, 28) or (n, 784), binary
    n_samples : int
        K, samples per image.
    labels : array of shape (n,), optional
        For a conditional VAE (gives log p(x | y)).
    batch_size : int
        Images per pass; K * batch_size decoder rows are held at once.
    generator : torch.Generator, optional

    Returns
    -------
    ndarray of shape (n,), float64
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1; got {n_samples}.")

    def bound(x, y=None):
        return elbo_lib.iwae_bound(model.log_weights(x, n_samples, y, generator).double())  # (b,)

    inputs = (images,) if labels is None else (images, np.asarray(labels))
    desc = f"IWAE K={n_samples}" if progress else None
    return train_lib.evaluate(bound, model, *inputs, batch_size=batch_size, desc=desc).numpy()


def elbo_terms(model: VAE, images, *, labels=None, batch_size: int = 1000, generator=None) -> dict:
    """Mean one-sample reconstruction term, KL and negative ELBO (nats per image) on ``images``."""

    def terms(x, y=None):
        q = model.posterior(x, y)
        z = model.sample_posterior(q, 1, generator)
        return torch.stack([-model.log_likelihood(x, z, y)[0], model.kl(q)], dim=1)  # (b, 2)

    inputs = (images,) if labels is None else (images, np.asarray(labels))
    recon, kl = train_lib.evaluate(terms, model, *inputs, batch_size=batch_size).double().mean(0).tolist()
    return {"recon": recon, "kl": kl, "neg_elbo": recon + kl}


def active_units(codes, threshold: float = 0.01) -> int:
    """Latent units whose posterior mean varies across the data: Var_x E_q[z_j | x] > threshold.

    Burda et al. (2016), sec. 5.2: a unit whose mean never moves carries no information about
    x (its q equals the prior); 0.01 is their threshold.

    Parameters
    ----------
    codes : ndarray of shape (n, L)
        Posterior means of n images.
    """
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or len(codes) < 2:
        raise ValueError(f"codes must have shape (n, L) with n >= 2; got {codes.shape}.")
    return int((codes.var(axis=0) > threshold).sum())

r"""The evidence lower bound (ELBO) and its importance-weighted tightening, in torch.

For a latent-variable model :math:`p(x, z) = p(z)\,p(x \mid z)` and any density :math:`q(z)`,

.. math::

    \log p(x) = \underbrace{\mathbb E_{q}\bigl[\log p(x, z) - \log q(z)\bigr]}_{\text{ELBO}(q)}
              + \operatorname{KL}\bigl(q(z) \,\|\, p(z \mid x)\bigr),

so the ELBO is a lower bound on :math:`\log p(x)`, tight when :math:`q` is the posterior
(Bishop, *PRML*, 2006, eq. 9.70). With a diagonal Gaussian
:math:`q(z \mid x) = \mathcal N(\mu, \operatorname{diag}\,e^{\text{logvar}})` and the prior
:math:`p(z) = \mathcal N(0, I)`, the ELBO splits into an expected log-likelihood, estimated with
reparameterised samples :math:`z = \mu + e^{\text{logvar}/2} \odot \varepsilon`, minus a KL in
closed form (Kingma & Welling, *Auto-Encoding Variational Bayes*, 2014, eq. 10 and
Appendix B):

.. math::

    \operatorname{KL}(q \,\|\, \mathcal N(0, I))
      = -\tfrac12 \sum_j \bigl(1 + \text{logvar}_j - \mu_j^2 - e^{\text{logvar}_j}\bigr).

The closed form removes the KL's own sampling noise, not always the estimate's: at the exact
posterior the fully sampled estimate (the mean of :func:`log_importance_weights`) has zero
variance and this one does not (Roeder, Wu & Duvenaud, *Sticking the Landing*, 2017).

The importance-weighted bound (Burda, Grosse & Salakhutdinov, *Importance Weighted
Autoencoders*, 2016, eq. 8) averages the weights before the log,

.. math::

    \mathcal L_K = \mathbb E\Bigl[\log \frac1K \sum_{k=1}^K w_k\Bigr],
    \qquad w_k = \frac{p(x, z_k)}{q(z_k \mid x)},\; z_k \sim q,

which rises with :math:`K` (their Theorem 1) towards :math:`\log p(x)`. The average is taken in
log space with :func:`log_mean_exp` (the max trick): log-weights of images are near
:math:`-100` and their exponentials underflow in float32.

Shapes: ``B`` a batch, ``L`` latent dimensions, ``K`` samples per data point. Everything is
batched and differentiable; use float64 to compare with closed forms.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "log_normal_diag", "gaussian_kl", "kl_standard_normal", "bernoulli_log_likelihood",
    "gaussian_log_likelihood", "log_mean_exp", "sample_diag_gaussian", "elbo",
    "log_importance_weights", "iwae_bound", "iwae", "linear_gaussian_elbo",
]

LOG_2PI = math.log(2.0 * math.pi)

LogLikelihoodFn = Callable[[torch.Tensor], torch.Tensor]


def _sum_event(t: torch.Tensor, event_dim: int) -> torch.Tensor:
    return t.sum(dim=tuple(range(-event_dim, 0))) if event_dim > 0 else t


def log_normal_diag(x, mu, logvar, event_dim: int = 1) -> torch.Tensor:
    """log N(x | mu, diag(exp(logvar))), summed over the last ``event_dim`` axes.

    Parameters
    ----------
    x, mu, logvar : Tensor, mutually broadcastable, such as (K, B, L), (B, L), (B, L)
        ``logvar`` may be a float (one variance for every coordinate).
    event_dim : int
        Trailing axes that make up one event (1 for vectors, 3 for (C, H, W) images).

    Returns
    -------
    Tensor of the broadcast shape without its last ``event_dim`` axes, such as (K, B).
    """
    logvar = torch.as_tensor(logvar, dtype=mu.dtype, device=mu.device)
    per_coordinate = -0.5 * (LOG_2PI + logvar + (x - mu) ** 2 * torch.exp(-logvar))
    return _sum_event(per_coordinate, event_dim)


def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    r"""KL(N(mu_q, diag e^logvar_q) || N(mu_p, diag e^logvar_p)), summed over the last axis.

    Per coordinate, :math:`\tfrac12\bigl(\log\sigma_p^2 - \log\sigma_q^2
    + (\sigma_q^2 + (\mu_q - \mu_p)^2)/\sigma_p^2 - 1\bigr)`.

    Parameters
    ----------
    mu_q, logvar_q, mu_p, logvar_p : Tensor, broadcastable to (..., L)

    Returns
    -------
    kl : Tensor of shape (...,), non-negative (zero only when q = p).
    """
    var_ratio = torch.exp(logvar_q - logvar_p)  # sigma_q^2 / sigma_p^2, no overflow for big logvars
    mahalanobis = (mu_q - mu_p) ** 2 * torch.exp(-logvar_p)
    return 0.5 * torch.sum(var_ratio + mahalanobis - 1.0 - (logvar_q - logvar_p), dim=-1)


def kl_standard_normal(mu, logvar) -> torch.Tensor:
    """KL(N(mu, diag e^logvar) || N(0, I)); ``mu``, ``logvar`` (..., L) -> (...,).

    Kingma & Welling (2014), Appendix B: -1/2 sum(1 + logvar - mu^2 - e^logvar).
    """
    return -0.5 * torch.sum(1.0 + logvar - mu**2 - torch.exp(logvar), dim=-1)


def bernoulli_log_likelihood(x, logits, event_dim: int | None = None) -> torch.Tensor:
    """log p(x | logits) for pixels x in [0, 1], one Bernoulli per pixel, from the logits.

    Computed as ``-binary_cross_entropy_with_logits``, which never forms ``sigmoid(logits)``:
    a saturated pixel gives a large finite loss, not ``log(0)``. Grey levels in (0, 1) are
    allowed (the "continuous Bernoulli" without its normaliser, as in most VAE code).

    Parameters
    ----------
    x : Tensor of shape (B, *event), such as (B, 784) or (B, 1, 28, 28)
    logits : Tensor of shape (..., B, *event), such as (K, B, 1, 28, 28)
    event_dim : int, optional
        Trailing axes summed over; defaults to ``x.dim() - 1`` (every axis of ``x`` but the first).

    Returns
    -------
    Tensor of shape (..., B)
    """
    event_dim = x.dim() - 1 if event_dim is None else event_dim
    x = x.expand_as(logits)
    per_pixel = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return _sum_event(per_pixel, event_dim)


def gaussian_log_likelihood(x, mean, logvar=0.0, event_dim: int | None = None) -> torch.Tensor:
    """log N(x | mean, diag e^logvar) of images; shapes as in :func:`bernoulli_log_likelihood`.

    ``logvar`` is a tensor broadcastable to ``mean`` or one float (a fixed pixel variance).
    """
    event_dim = x.dim() - 1 if event_dim is None else event_dim
    return log_normal_diag(x, mean, logvar, event_dim=event_dim)


def log_mean_exp(a, dim: int = 0) -> torch.Tensor:
    """log(mean(exp(a), dim)) without underflow: logsumexp(a, dim) - log(size along dim)."""
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


def sample_diag_gaussian(mu, logvar, n_samples: int = 1, generator=None) -> torch.Tensor:
    """Reparameterised draws z = mu + exp(logvar / 2) * eps, eps ~ N(0, I).

    Gradients flow to ``mu`` and ``logvar`` through z (the reparameterisation trick).

    Parameters
    ----------
    mu, logvar : Tensor of shape (B, L)
    n_samples : int
        K, the draws per row.
    generator : torch.Generator, optional

    Returns
    -------
    z : Tensor of shape (K, B, L)
    """
    eps = torch.randn((n_samples, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps  # (K, B, L)


def elbo(log_likelihood: LogLikelihoodFn, mu, logvar, n_samples: int = 1,
         generator=None) -> torch.Tensor:
    """The K-sample ELBO estimate, E_q[log p(x | z)] - KL(q || N(0, I)), per data point.

    The expectation is the mean over ``n_samples`` reparameterised draws (K = 1 is the
    single-sample estimate of a VAE's training loop); the KL is in closed form. That removes
    the KL's own sampling noise, but it is not lower-variance in every case: the fully sampled
    estimate, the mean of :func:`log_importance_weights`, has *zero* variance when q is the
    exact posterior (every log-weight equals log p(x)), while this one does not (Roeder, Wu &
    Duvenaud, *Sticking the Landing*, 2017). Chapter 2 measures both.

    Parameters
    ----------
    log_likelihood : callable
        ``z`` of shape (K, B, L) -> log p(x_b | z_kb) of shape (K, B); the data are bound
        inside it, such as ``lambda z: bernoulli_log_likelihood(x, decoder(z))``.
    mu, logvar : Tensor of shape (B, L)
        The parameters of q(z | x_b).
    n_samples : int
    generator : torch.Generator, optional

    Returns
    -------
    Tensor of shape (B,): an unbiased estimate of ELBO(x_b).
    """
    z = sample_diag_gaussian(mu, logvar, n_samples, generator)  # (K, B, L)
    return log_likelihood(z).mean(dim=0) - kl_standard_normal(mu, logvar)


def log_importance_weights(log_likelihood: LogLikelihoodFn, mu, logvar, n_samples: int,
                           generator=None) -> torch.Tensor:
    """log w_k = log p(x | z_k) + log N(z_k | 0, I) - log q(z_k | x), z_k ~ q; shape (K, B).

    Arguments as in :func:`elbo`. Their mean over K is another unbiased ELBO estimate (with the
    KL estimated by sampling); their :func:`log_mean_exp` is the IWAE bound.
    """
    z = sample_diag_gaussian(mu, logvar, n_samples, generator)  # (K, B, L)
    log_prior = log_normal_diag(z, torch.zeros_like(z), torch.zeros_like(z))  # (K, B)
    log_q = log_normal_diag(z, mu, logvar)  # (K, B)
    return log_likelihood(z) + log_prior - log_q


def linear_gaussian_elbo(x, W, b, sigma, mu, logvar) -> torch.Tensor:
    r"""The ELBO in closed form for the linear-Gaussian model and a diagonal Gaussian q.

    Model: :math:`p(z) = \mathcal N(0, I_L)`, :math:`p(x \mid z) = \mathcal N(Wz + b, \sigma^2 I_D)`
    (probabilistic PCA; Tipping & Bishop, 1999). With :math:`q = \mathcal N(m, \operatorname{diag} s)`,
    :math:`\mathbb E_q\lVert x - Wz - b\rVert^2 = \lVert x - Wm - b\rVert^2 + \sum_j s_j \lVert W_{:,j}\rVert^2`
    for any W, so

    .. math::

        \text{ELBO} = -\tfrac D2 \log(2\pi\sigma^2)
          - \frac{\lVert x - Wm - b\rVert^2 + \sum_j s_j \lVert W_{:,j}\rVert^2}{2\sigma^2}
          - \operatorname{KL}(q \,\|\, \mathcal N(0, I)).

    Parameters
    ----------
    x : Tensor of shape (B, D)
    W : Tensor of shape (D, L)
    b : Tensor of shape (D,)
    sigma : float
        The observation noise standard deviation.
    mu, logvar : Tensor of shape (B, L)
        m and log s, the parameters of q(z | x_b).

    Returns
    -------
    Tensor of shape (B,)
    """
    D = x.shape[-1]
    residual = ((x - mu @ W.T - b) ** 2).sum(-1)  # (B,)
    spread = (torch.exp(logvar) * (W**2).sum(0)).sum(-1)  # (B,): sum_j s_j |W_:,j|^2
    expected_log_lik = -0.5 * D * math.log(2 * math.pi * sigma**2) - (residual + spread) / (2 * sigma**2)
    return expected_log_lik - kl_standard_normal(mu, logvar)


def iwae_bound(log_weights) -> torch.Tensor:
    """The importance-weighted bound from log-weights: log (1/K) sum_k w_k.

    Parameters
    ----------
    log_weights : Tensor of shape (K, B)

    Returns
    -------
    Tensor of shape (B,)
    """
    return log_mean_exp(log_weights, dim=0)


def iwae(log_likelihood: LogLikelihoodFn, mu, logvar, n_samples: int,
         generator=None) -> torch.Tensor:
    """The K-sample importance-weighted bound L_K per data point, shape (B,).

    Arguments as in :func:`elbo`. ``n_samples=1`` gives the ELBO (with a sampled KL); the bound
    rises with K towards log p(x) (Burda et al., 2016, Theorem 1).
    """
    return iwae_bound(log_importance_weights(log_likelihood, mu, logvar, n_samples, generator))

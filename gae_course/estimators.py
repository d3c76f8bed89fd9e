"""Gradients of expectations: the reparameterisation and score-function estimators.

We want g = ∇_θ E_{q_θ(z)}[f(z)] when the expectation has no closed form. Two unbiased
Monte Carlo estimates from K samples z_k ~ q_θ:

* **Reparameterisation** (pathwise; Kingma & Welling 2014, sec. 2.4): write
  z = μ + σ ⊙ ε with ε ~ N(0, I) drawn independently of θ, so
  ∇ E[f(z)] = E_ε[∇_θ f(μ + σ ⊙ ε)]. Needs a differentiable f and a continuous z.
* **Score function** (REINFORCE; Williams 1992, eq. 9; Mnih & Gregor 2014, sec. 2.2):
  ∇ E[f(z)] = E[(f(z) - b) ∇_θ log q_θ(z)] for any baseline b that does not depend on the
  sample z it multiplies.
  Works for any f and any q with a differentiable log-density, discrete z included.

Each estimator returns an :class:`Estimate`: the value (mean of f over the K samples,
detached) and a scalar **surrogate** whose gradient, by autograd, *is* the estimate. To
minimise E[f], call ``estimate.surrogate.backward()`` and step; to maximise, negate it.
Shapes: noise and samples are (K, B, D) (K Monte Carlo samples, a batch of B independent
problems, D latent dimensions); ``f`` maps (K, B, D) -> (K, B). The surrogate sums over the
batch, so each problem's parameters get their own K-sample estimate.

Baselines (control variates for the score function; Mnih & Gregor 2014, sec. 3.3), each
independent of the sample it is subtracted from, so the estimate stays unbiased:

* :class:`ConstantBaseline`: one fixed number;
* :class:`MovingAverageBaseline`: ``b <- decay * b + (1 - decay) * mean(f)``, updated *after*
  it is used on a batch (``decay = 0.9`` keeps 90 % of the old value);
* :class:`LearnedBaseline`: an input-dependent b(x) (NVIL), trained by its own squared-error
  loss :meth:`LearnedBaseline.loss`, kept apart from the estimator's surrogate;
* :func:`leave_one_out_baseline`: for sample k, the mean of f over the other K - 1 samples
  (Kool, van Hoof & Welling 2019; Mnih & Rezende 2016, VIMCO).

:func:`measure` repeats an estimator many times and reports its mean, variance and the
z-scores of the mean against a reference gradient.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import nn

__all__ = [
    "Estimate", "gaussian_noise", "uniform_noise", "gaussian_log_prob", "bernoulli_log_prob",
    "reparam_gaussian", "score_function", "score_function_gaussian",
    "score_function_bernoulli", "concrete_bernoulli", "straight_through_bernoulli",
    "ConstantBaseline",
    "MovingAverageBaseline", "LearnedBaseline", "leave_one_out_baseline", "flat_grad",
    "EstimatorStats", "measure",
]

_LOG_2PI = math.log(2.0 * math.pi)


class Estimate(NamedTuple):
    """What an estimator returns: unpack as ``value, surrogate = estimate``.

    Attributes
    ----------
    value : Tensor of shape (B,)
        The Monte Carlo mean of f over the K samples, detached.
    surrogate : Tensor of shape ()
        A scalar whose gradient with respect to the parameters is the gradient estimate
        (summed over the batch). Its own value means nothing.
    """

    value: torch.Tensor
    surrogate: torch.Tensor


# --------------------------------------------------------------------------------------------
# Noise and log-densities
# --------------------------------------------------------------------------------------------


def gaussian_noise(n_samples, shape, generator, dtype=torch.float64):
    """ε ~ N(0, I) of shape (n_samples, *shape), from an explicit ``torch.Generator``."""
    return torch.randn((n_samples, *shape), generator=generator, dtype=dtype)


def uniform_noise(n_samples, shape, generator, dtype=torch.float64):
    """u ~ U(0, 1) of shape (n_samples, *shape), clamped away from 0 and 1 (logs stay finite)."""
    u = torch.rand((n_samples, *shape), generator=generator, dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    return u.clamp(tiny, 1.0 - torch.finfo(dtype).eps)


def gaussian_log_prob(z, mu, log_sigma):
    """log N(z | μ, diag(σ²)) summed over the last axis.

    Parameters
    ----------
    z : Tensor of shape (K, B, D)
    mu, log_sigma : Tensor of shape (B, D) (or broadcastable to z)

    Returns
    -------
    Tensor of shape (K, B)
    """
    standardised = (z - mu) * torch.exp(-log_sigma)
    return (-0.5 * standardised**2 - log_sigma - 0.5 * _LOG_2PI).sum(-1)


def bernoulli_log_prob(z, logits):
    """log Bernoulli(z | sigmoid(logits)) summed over the last axis, in a stable form.

    log p(z) = z * logits - softplus(logits): no log of a probability that rounds to 0.

    Parameters
    ----------
    z : Tensor of shape (K, B, D), entries 0 or 1
    logits : Tensor of shape (B, D)

    Returns
    -------
    Tensor of shape (K, B)
    """
    return (z * logits - nn.functional.softplus(logits)).sum(-1)


# --------------------------------------------------------------------------------------------
# The two estimators
# --------------------------------------------------------------------------------------------


def reparam_gaussian(f: Callable, mu, log_sigma, eps) -> Estimate:
    """Reparameterisation estimate of ∇ E_{N(μ, σ²)}[f(z)] from fixed noise.

    Parameters
    ----------
    f : callable
        (K, B, D) -> (K, B), differentiable in z.
    mu, log_sigma : Tensor of shape (B, D)
        The parameters (σ = exp(log_sigma)), usually with ``requires_grad=True``.
    eps : Tensor of shape (K, B, D)
        Standard normal noise (see :func:`gaussian_noise`).

    Returns
    -------
    Estimate
        ``value`` (B,) = mean_k f(z_k), detached; ``surrogate`` = sum_b mean_k f(z_kb), whose
        gradient is the pathwise estimate (1/K) sum_k ∇_θ f(μ + σ ⊙ ε_k).
    """
    z = mu + torch.exp(log_sigma) * eps  # (K, B, D): the path from θ to z
    fz = f(z)  # (K, B)
    mean_f = fz.mean(0)  # (B,)
    return Estimate(mean_f.detach(), mean_f.sum())


def score_function(f_values, log_prob, baseline=0.0) -> Estimate:
    """Score-function (REINFORCE) surrogate from values of f and log-densities of the samples.

    Parameters
    ----------
    f_values : Tensor of shape (K, B)
        f at samples z_k that were drawn *without* a gradient path (detached). If f itself
        depends on θ (as an ELBO does), its own gradient is kept: the surrogate's gradient is
        then mean_k [∇f(z_k) + (f(z_k) - b) ∇ log q(z_k)].
    log_prob : Tensor of shape (K, B)
        log q_θ(z_k), differentiable in θ.
    baseline : float or Tensor broadcastable to (K, B)
        b, which must not depend on z_k (it is detached here, so its own parameters get no
        gradient from this surrogate: train a learned baseline by its own loss).

    Returns
    -------
    Estimate
        ``value`` (B,) = mean_k f(z_k), detached; ``surrogate`` whose gradient is the
        estimate (1/K) sum_k (f(z_k) - b) ∇_θ log q_θ(z_k), summed over the batch.
    """
    baseline = torch.as_tensor(baseline, dtype=f_values.dtype).detach()
    advantage = (f_values.detach() - baseline).expand_as(log_prob)  # (K, B)
    surrogate = (f_values + advantage * log_prob).mean(0)  # (B,)
    return Estimate(f_values.mean(0).detach(), surrogate.sum())


def score_function_gaussian(f: Callable, mu, log_sigma, eps, baseline=0.0) -> Estimate:
    """The score-function estimator forced on a Gaussian: same samples as reparameterisation.

    z = μ + σ ⊙ ε is built from the same noise as :func:`reparam_gaussian` but *detached*, so
    the gradient flows only through log N(z | μ, σ²). Shapes as for :func:`reparam_gaussian`.
    """
    z = (mu + torch.exp(log_sigma) * eps).detach()  # (K, B, D), no path to θ
    return score_function(f(z), gaussian_log_prob(z, mu, log_sigma), baseline)


def score_function_bernoulli(f: Callable, logits, u, baseline=0.0) -> Estimate:
    """Score-function estimate of ∇ E_{Bernoulli(sigmoid(logits))}[f(z)].

    Parameters
    ----------
    f : callable
        (K, B, D) -> (K, B); evaluated at binary z, it need not be differentiable.
    logits : Tensor of shape (B, D)
    u : Tensor of shape (K, B, D)
        Uniform noise (see :func:`uniform_noise`); z = 1 where u < sigmoid(logits).
    baseline : float or Tensor broadcastable to (K, B)
    """
    z = (u < torch.sigmoid(logits)).to(logits.dtype).detach()  # (K, B, D) in {0, 1}
    return score_function(f(z), bernoulli_log_prob(z, logits), baseline)


def concrete_bernoulli(f: Callable, logits, u, temperature) -> Estimate:
    """Binary Concrete / Gumbel-softmax relaxation: a *biased* reparameterised estimate.

    z = sigmoid((logits + log(1 - u) - log u) / temperature) lies in (0, 1); as the
    temperature goes to 0 it tends to the Bernoulli sample 1[u < sigmoid(logits)]
    (Maddison, Mnih & Teh 2017, sec. 3.3; Jang, Gu & Poole 2017). f is evaluated at the
    relaxed z, so the gradient estimates ∇ E[f(z_relaxed)], not ∇ E[f(z)]: biased for
    temperature > 0, with a variance that grows as the temperature falls.

    Parameters
    ----------
    f : callable
        (K, B, D) -> (K, B), differentiable, defined on [0, 1]^D.
    logits : Tensor of shape (B, D)
    u : Tensor of shape (K, B, D), uniform noise in (0, 1)
    temperature : float > 0
    """
    logistic = torch.log1p(-u) - torch.log(u)  # (K, B, D), Logistic(0, 1): > -logits iff u < p
    z = torch.sigmoid((logits + logistic) / temperature)
    fz = f(z)  # (K, B)
    return Estimate(fz.mean(0).detach(), fz.mean(0).sum())


def straight_through_bernoulli(f: Callable, logits, u) -> Estimate:
    """Straight-through estimate: the hard sample forward, the gradient of p backward (biased).

    z = hard + p - p.detach() with hard = 1[u < p], p = sigmoid(logits): its value is the hard
    sample, its gradient that of p (Bengio, Léonard & Courville 2013). The surrogate's gradient
    is mean_k ∇_z f(z_k) ⊙ p(1 - p), which is not ∇ E[f(z)] in general.

    Parameters
    ----------
    f : callable
        (K, B, D) -> (K, B), differentiable in z.
    logits : Tensor of shape (B, D)
    u : Tensor of shape (K, B, D), uniform noise
    """
    p = torch.sigmoid(logits)
    hard = (u < p).to(logits.dtype)  # (K, B, D), no gradient
    z = hard + p - p.detach()  # value: hard; gradient: as if z were p
    fz = f(z)  # (K, B)
    return Estimate(fz.mean(0).detach(), fz.mean(0).sum())


# --------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------


class ConstantBaseline:
    """b = a fixed number (for instance E[f] from a pilot run). ``update`` does nothing."""

    def __init__(self, value=0.0):
        self.value = float(value)

    def __call__(self):
        return torch.tensor(self.value, dtype=torch.float64)

    def update(self, f_values):
        """Nothing to learn; here so that every baseline can be used the same way."""


class MovingAverageBaseline:
    """An exponential moving average of f: ``b <- decay * b + (1 - decay) * mean(f)``.

    ``decay`` is the weight on the *old* value (0.9: the average forgets with a time constant
    of about 10 batches). Pyro's ``baseline_beta`` has this meaning; some notebooks use 0.9 as
    the weight of the new value, the opposite. Use the value, then :meth:`update` it with the
    batch it was used on, so b never depends on the samples it is subtracted from.

    Parameters
    ----------
    decay : float in [0, 1)
    initial : float
        b before the first update (0.0: the first batches are nearly unbaselined).
    """

    def __init__(self, decay=0.9, initial=0.0):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay is the weight on the old average and must be in [0, 1); "
                             f"got {decay}")
        self.decay = float(decay)
        self.value = float(initial)

    def __call__(self):
        return torch.tensor(self.value, dtype=torch.float64)

    def update(self, f_values):
        """b <- decay * b + (1 - decay) * mean(f_values); ``f_values`` of any shape."""
        mean_f = float(f_values.detach().mean())
        self.value = self.decay * self.value + (1.0 - self.decay) * mean_f


class LearnedBaseline(nn.Module):
    """An input-dependent baseline b(x) (NVIL): a small MLP trained by its own loss.

    Parameters
    ----------
    n_inputs : int
        Size of x.
    n_hidden : int
        Width of the single hidden layer (0: a linear baseline).

    Call it on x of shape (B, n_inputs) to get b(x) of shape (B,), broadcastable against
    f of shape (K, B). Train it with :meth:`loss` (its own optimiser): the estimator's
    surrogate detaches b, so the two objectives never mix.
    """

    def __init__(self, n_inputs, n_hidden=16):
        super().__init__()
        if n_hidden:
            self.net = nn.Sequential(nn.Linear(n_inputs, n_hidden), nn.Tanh(),
                                     nn.Linear(n_hidden, 1))
        else:
            self.net = nn.Linear(n_inputs, 1)
        self.double()

    def forward(self, x):
        """b(x): Tensor of shape (B,) for x of shape (B, n_inputs)."""
        return self.net(x).squeeze(-1)

    @staticmethod
    def loss(b, f_values):
        """Squared error mean_{k,b} (f(z_kb) - b(x_b))²; f is detached: only b learns.

        Parameters
        ----------
        b : Tensor of shape (B,)
        f_values : Tensor of shape (K, B)
        """
        return ((f_values.detach() - b) ** 2).mean()


def leave_one_out_baseline(f_values):
    """For sample k, the mean of f over the other K - 1 samples of the same problem.

    Parameters
    ----------
    f_values : Tensor of shape (K, B), K >= 2

    Returns
    -------
    Tensor of shape (K, B), detached: b_kb = (sum_j f_jb - f_kb) / (K - 1).
    """
    n_samples = f_values.shape[0]
    if n_samples < 2:
        raise ValueError("the leave-one-out baseline needs at least K = 2 samples per problem")
    f_values = f_values.detach()
    return (f_values.sum(0, keepdim=True) - f_values) / (n_samples - 1)


# --------------------------------------------------------------------------------------------
# Measuring an estimator
# --------------------------------------------------------------------------------------------


def flat_grad(surrogate, params):
    """The gradient of a scalar ``surrogate`` w.r.t. ``params``, flattened into one (P,) vector."""
    grads = torch.autograd.grad(surrogate, params, allow_unused=True)
    return torch.cat([torch.zeros_like(p).reshape(-1) if g is None else g.reshape(-1)
                      for g, p in zip(grads, params)])


class EstimatorStats(NamedTuple):
    """Mean and spread of an estimator over repeats.

    Attributes
    ----------
    mean, variance : Tensor of shape (P,)
        Per coordinate, over the repeats (unbiased variance).
    std_error : Tensor of shape (P,)
        sqrt(variance / n_repeats): the standard error of ``mean``.
    total_variance : float
        sum of ``variance`` (the trace of the covariance): one number to compare estimators.
    max_abs_z : float
        max_p |mean_p - reference_p| / std_error_p (NaN without a reference): below about 4
        for an unbiased estimator.
    n_repeats : int
    """

    mean: torch.Tensor
    variance: torch.Tensor
    std_error: torch.Tensor
    total_variance: float
    max_abs_z: float
    n_repeats: int


def measure(estimate_grad: Callable, n_repeats: int, generator, reference=None) -> EstimatorStats:
    """Run ``estimate_grad(generator) -> Tensor (P,)`` ``n_repeats`` times; summarise.

    Parameters
    ----------
    estimate_grad : callable
        One independent gradient estimate per call, drawing its noise from ``generator``.
    n_repeats : int >= 2
    generator : torch.Generator
    reference : Tensor of shape (P,), optional
        The true gradient (closed form), for the z-scores.
    """
    if n_repeats < 2:
        raise ValueError("measure needs n_repeats >= 2 to estimate a variance")
    draws = torch.stack([estimate_grad(generator).detach().reshape(-1)
                         for _ in range(n_repeats)])  # (R, P)
    mean = draws.mean(0)
    variance = draws.var(0, unbiased=True)
    std_error = (variance / n_repeats).sqrt()
    if reference is None:
        max_abs_z = float("nan")
    else:
        diff = (mean - torch.as_tensor(reference, dtype=mean.dtype).reshape(-1)).abs()
        # a coordinate with zero spread must then match exactly (z = 0 or inf)
        z = torch.where(std_error > 0, diff / std_error.clamp_min(1e-300),
                        torch.where(diff > 1e-12, torch.inf, 0.0))
        max_abs_z = float(z.max())
    return EstimatorStats(mean, variance, std_error, float(variance.sum()), max_abs_z, n_repeats)

"""Checks for chapter 2: the Gaussian KL, the ELBO, the IWAE bound, the linear-Gaussian ELBO.

The reader writes these in torch; the cases stay NumPy float64 and reach the reader's
function as float64 tensors (:func:`gae_course.checks._core._run_torch`). torch is imported
only when a check runs. The verified answers come from :mod:`gae_course.elbo`.

Equations: Kingma & Welling, *Auto-Encoding Variational Bayes* (2014), Appendix B (the
Gaussian KL); Burda, Grosse & Salakhutdinov, *Importance Weighted Autoencoders* (2016), eq. 8;
Tipping & Bishop, *Probabilistic Principal Component Analysis* (1999), for the linear-Gaussian
model.
"""

from __future__ import annotations

import math

import numpy as np

from gae_course.checks._core import (
    _Case,
    _compare,
    _from_tensor,
    _lse,
    _non_finite,
    _register,
    _run_torch,
)


def _t(*arrays):
    import torch

    return [torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in arrays]


def _gaussian_kl_cases():
    rng = np.random.default_rng(301)
    cases = [
        _Case("q against a standard normal, 3 rows in 2-D",
              dict(mu_q=rng.normal(size=(3, 2)), logvar_q=rng.normal(size=(3, 2)),
                   mu_p=np.zeros((3, 2)), logvar_p=np.zeros((3, 2)))),
        _Case("two diagonal Gaussians, 4 rows in 3-D",
              dict(mu_q=rng.normal(size=(4, 3)), logvar_q=rng.normal(size=(4, 3)),
                   mu_p=rng.normal(size=(4, 3)), logvar_p=rng.normal(size=(4, 3)))),
    ]
    mu, logvar = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    cases.append(_Case("q = p in the first row (KL = 0), a shifted mean in the second",
                       dict(mu_q=mu, logvar_q=logvar, mu_p=mu + [[0, 0, 0], [1.0, -2.0, 0.5]],
                            logvar_p=logvar)))
    cases.append(_Case("huge variances (exp(logvar) overflows to inf)",
                       dict(mu_q=np.array([[0.0, 1.0]]), logvar_q=np.array([[750.0, 720.0]]),
                            mu_p=np.array([[0.5, 0.0]]), logvar_p=np.array([[749.0, 721.5]]))))
    return cases


def _kl_answer(mu_q, logvar_q, mu_p, logvar_p):
    """The closed form in NumPy, (B, L) per coordinate (not summed): for the hints."""
    return 0.5 * (np.exp(logvar_q - logvar_p) + (mu_q - mu_p) ** 2 * np.exp(-logvar_p)
                  - 1.0 - logvar_q + logvar_p)


def gaussian_kl(fn):
    """Check ``fn(mu_q, logvar_q, mu_p, logvar_p) -> kl`` in torch, kl of shape (B,).

    Parameters
    ----------
    fn : callable
        Inputs: four float64 tensors of shape (B, L), the means and log-variances of two
        diagonal Gaussians q and p. Returns KL(q || p) for each row, summed over the L
        coordinates: a tensor of shape (B,).

    Returns
    -------
    True
        When every case passes (one has variances whose exp overflows).

    Raises
    ------
    CheckFailed
        With a HINT for: KL(p || q) instead of KL(q || p), the factor 1/2 missing, no sum over
        the latent axis (shape (B, L)), a sum over the batch too, logvar used as a variance or a
        standard deviation, the -1 missing, the sign flipped, the variance ratio formed from
        exp(logvar_q) / exp(logvar_p) (inf / inf).
    """

    def verify(case, got):
        mu_q, lv_q, mu_p, lv_p = case.inputs.values()
        from gae_course import elbo

        expected = elbo.gaussian_kl(*_t(mu_q, lv_q, mu_p, lv_p)).numpy()
        per_coordinate = _kl_answer(mu_q, lv_q, mu_p, lv_p)
        got = _from_tensor("kl", got)
        hints = [
            (per_coordinate,
             "sum over the latent coordinates (the last axis): the KL of a diagonal Gaussian is "
             "the sum of the L one-dimensional KLs, one number per row."),
            (lambda g: np.ndim(g) == 0,
             "one KL per row (shape (B,)): sum over the last axis only (`dim=-1`), not the batch."),
            (_kl_answer(mu_p, lv_p, mu_q, lv_q).sum(-1),
             "this is KL(p || q): the KL is not symmetric. The ELBO needs KL(q || p): the "
             "expectation is under q, so q's variance sits in the numerator of the ratio."),
            (2 * expected, "the factor 1/2 in front of the sum is missing."),
            (expected + 0.5 * mu_q.shape[-1],
             "the -1 per coordinate is missing (it makes KL(q || q) = 0)."),
            (-expected, "the sign is flipped: a KL is never negative."),
            (0.5 * (lv_q / lv_p + (mu_q - mu_p) ** 2 / lv_p - 1 - np.log(np.abs(lv_q / lv_p))).sum(-1),
             "logvar is the log of the variance: the variance is exp(logvar), not logvar."),
            (_kl_answer(mu_q, 2 * lv_q, mu_p, 2 * lv_p).sum(-1),
             "exp(logvar) is the variance, not the standard deviation: do not square it "
             "(the standard deviation is exp(logvar / 2))."),
            (_non_finite(expected),
             "form the variance ratio in log space, torch.exp(logvar_q - logvar_p): with "
             "logvar = 750, torch.exp(logvar) overflows to inf and inf / inf = nan."),
        ]
        _compare("kl", got, expected, hints=hints)

    return _run_torch("gaussian_kl", fn, _gaussian_kl_cases(), verify)


def _elbo_estimate_cases():
    rng = np.random.default_rng(311)
    return [
        _Case("K = 4 samples, 3 rows, 2-D latent",
              dict(log_lik=rng.normal(size=(4, 3)) - 5.0, mu=rng.normal(size=(3, 2)),
                   logvar=rng.normal(size=(3, 2)))),
        _Case("a single sample (K = 1), 5 rows, 3-D latent",
              dict(log_lik=rng.normal(size=(1, 5)) - 2.0, mu=rng.normal(size=(5, 3)),
                   logvar=rng.normal(size=(5, 3)))),
        _Case("q is the prior (KL = 0), K = 6, 2 rows",
              dict(log_lik=rng.normal(size=(6, 2)), mu=np.zeros((2, 4)), logvar=np.zeros((2, 4)))),
        _Case("image-sized log-likelihoods (near -100), K = 10, 2 rows",
              dict(log_lik=rng.normal(size=(10, 2)) * 3 - 100.0, mu=rng.normal(size=(2, 2)),
                   logvar=rng.normal(size=(2, 2)) - 2.0)),
    ]


def elbo_estimate(fn):
    """Check ``fn(log_lik, mu, logvar) -> elbo`` in torch, elbo of shape (B,).

    Parameters
    ----------
    fn : callable
        Inputs: ``log_lik`` of shape (K, B), log p(x_b | z_kb) for K draws z_kb from q(z | x_b);
        ``mu`` and ``logvar`` of shape (B, L), the parameters of q. Returns the K-sample ELBO
        estimate mean_k log p(x_b | z_kb) - KL(q(z | x_b) || N(0, I)), shape (B,).

    Returns
    -------
    True

    Raises
    ------
    CheckFailed
        With a HINT for: a sum over the K samples instead of a mean, the KL added instead of
        subtracted, the KL left out, the KL not summed over the latent axis, a mean over the
        batch, the factor 1/2 of the KL missing.
    """

    def verify(case, got):
        log_lik, mu, logvar = case.inputs.values()
        K = log_lik.shape[0]
        kl = -0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar), axis=-1)  # (B,)
        from gae_course import elbo

        expected_t = _t(log_lik)[0].mean(0) - elbo.kl_standard_normal(*_t(mu, logvar))
        expected = expected_t.numpy()
        got = _from_tensor("elbo", got)
        hints = [
            (lambda g: np.ndim(g) == 0,
             "one ELBO per data point (shape (B,)): average over the samples (dim=0) only, "
             "not over the batch."),
            (lambda g: np.shape(g) == log_lik.shape and K > 1,
             "average the log-likelihoods over the K samples (`log_lik.mean(dim=0)`)."),
            (log_lik.mean(0)[:, None] + 0.5 * (1 + logvar - mu**2 - np.exp(logvar)),
             "sum the KL over the latent coordinates (`dim=-1`) before subtracting it."),
            (log_lik.sum(0) - kl,
             "average over the K samples (`.mean(dim=0)`), not sum: the ELBO is an expectation."),
            (log_lik.mean(0) + kl, "subtract the KL: ELBO = E_q[log p(x | z)] - KL(q || p(z))."),
            (log_lik.mean(0),
             "the KL(q || N(0, I)) term is missing: subtract "
             "-1/2 sum(1 + logvar - mu^2 - exp(logvar))."),
            (log_lik.mean(0) - 2 * kl, "the KL has a factor 1/2 in front of its sum."),
        ]
        _compare("elbo", got, expected, hints=hints)

    return _run_torch("elbo_estimate", fn, _elbo_estimate_cases(), verify)


def _iwae_bound_cases():
    rng = np.random.default_rng(321)
    return [
        _Case("K = 5 samples, 3 rows", dict(log_weights=rng.normal(size=(5, 3)))),
        _Case("a single sample (K = 1): the bound is the log-weight itself",
              dict(log_weights=rng.normal(size=(1, 4)))),
        _Case("K = 8, 2 rows, one dominant weight", dict(
            log_weights=np.vstack([rng.normal(size=(7, 2)) - 6.0, [[0.0, 1.0]]]))),
        _Case("log-weights of images, near -1000 (exp underflows to 0.0)",
              dict(log_weights=rng.normal(size=(6, 3)) * 4 - 1000.0)),
    ]


def iwae_bound(fn):
    """Check ``fn(log_weights) -> bound`` in torch: log (1/K) sum_k exp(log_weights[k]), (B,).

    Parameters
    ----------
    fn : callable
        Input: ``log_weights`` of shape (K, B). Returns the importance-weighted bound, the
        log-mean-exp over the K samples, shape (B,).

    Returns
    -------
    True
        When every case passes (one has log-weights near -1000).

    Raises
    ------
    CheckFailed
        With a HINT for: the mean of the log-weights (that is the ELBO), log-sum-exp without
        the -log K, the wrong axis, max instead of log-mean-exp, naive log(mean(exp(...)))
        that underflows.
    """

    def verify(case, got):
        (log_w,) = case.inputs.values()
        K, B = log_w.shape
        expected = _lse(log_w, axis=0) - math.log(K)
        got = _from_tensor("bound", got)
        hints = [
            (lambda g: np.shape(g) == (K,) and K != B,
             "one bound per data point (shape (B,)): reduce over the samples, axis 0 (`dim=0`)."),
            (lambda g: np.ndim(g) == 0,
             "one bound per data point (shape (B,)): reduce over the samples (`dim=0`) only."),
            (log_w.mean(0),
             "this is the mean of the log-weights, the K-sample ELBO: IWAE takes the log of "
             "the mean of the weights, log-mean-exp."),
            (expected + math.log(K),
             "log-sum-exp is the log of the sum: subtract log K to make it the log of the mean."),
            (log_w.max(0), "use log-mean-exp, not the max: every sample counts."),
            (_non_finite(expected),
             "use log-mean-exp with the max trick, torch.logsumexp(log_weights, dim=0) - "
             "math.log(K): torch.exp(-1000.0) underflows to 0.0 and log(0.0) = -inf."),
        ]
        _compare("bound", got, expected, hints=hints)

    return _run_torch("iwae_bound", fn, _iwae_bound_cases(), verify)


def _linear_gaussian_cases():
    rng = np.random.default_rng(331)
    D, L, sigma = 4, 2, 0.5
    W_orth = np.linalg.qr(rng.normal(size=(D, L)))[0] * [2.0, 1.0]  # orthogonal columns
    b = rng.normal(size=D)
    x = rng.normal(size=(3, D)) * 2.0
    S = np.linalg.inv(np.eye(L) + W_orth.T @ W_orth / sigma**2)  # diagonal for this W
    post_mu = (x - b) @ W_orth @ S / sigma**2
    post_logvar = np.tile(np.log(np.diag(S)), (3, 1))
    W_full = rng.normal(size=(D, L))
    return [
        _Case("q is the exact posterior (orthogonal W): the ELBO is log p(x)",
              dict(x=x, W=W_orth, b=b, sigma=sigma, mu=post_mu, logvar=post_logvar)),
        _Case("a W with correlated columns, any q, 3 points",
              dict(x=x, W=W_full, b=b, sigma=sigma, mu=rng.normal(size=(3, L)),
                   logvar=rng.normal(size=(3, L)) - 1.0)),
        _Case("q is the prior N(0, I) (KL = 0), sigma = 1.5",
              dict(x=x[:2], W=W_full, b=b, sigma=1.5, mu=np.zeros((2, L)),
                   logvar=np.zeros((2, L)))),
        _Case("a 1-D latent in 3-D, wide q (variances near 7), sigma = 0.2",
              dict(x=rng.normal(size=(2, 3)), W=rng.normal(size=(3, 1)), b=np.zeros(3),
                   sigma=0.2, mu=rng.normal(size=(2, 1)), logvar=np.full((2, 1), 2.0))),
    ]


def linear_gaussian_elbo(fn):
    """Check ``fn(x, W, b, sigma, mu, logvar) -> elbo`` in torch, elbo of shape (B,).

    Parameters
    ----------
    fn : callable
        Inputs: ``x`` (B, D), ``W`` (D, L), ``b`` (D,) float64 tensors, ``sigma`` a float,
        ``mu`` and ``logvar`` (B, L), the parameters of q = N(mu, diag exp(logvar)). Returns
        the ELBO of q under p(z) = N(0, I), p(x | z) = N(W z + b, sigma^2 I), in closed form.

    Raises
    ------
    CheckFailed
        With a HINT for: the spread term sum_j s_j |W_:,j|^2 left out, the standard deviation
        used in it instead of the variance, the normalising constant left out or with
        sigma instead of sigma^2, a division by sigma (not sigma^2), the KL added.
    """

    def verify(case, got):
        x, W, b, sigma, mu, logvar = case.inputs.values()
        from gae_course import elbo

        expected = elbo.linear_gaussian_elbo(*_t(x, W, b), sigma, *_t(mu, logvar)).numpy()
        D = x.shape[-1]
        residual = ((x - mu @ W.T - b) ** 2).sum(-1)
        spread = (np.exp(logvar) * (W**2).sum(0)).sum(-1)
        constant = -0.5 * D * math.log(2 * math.pi * sigma**2)
        kl = -0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar), axis=-1)
        got = _from_tensor("elbo", got)
        hints = [
            (constant - residual / (2 * sigma**2) - kl,
             "the spread of q is missing: E_q |x - W z - b|^2 = |x - W m - b|^2 + "
             "sum_j s_j |W_:,j|^2, because z - m has covariance diag(s) under q."),
            (constant - (residual + (np.exp(0.5 * logvar) * (W**2).sum(0)).sum(-1))
             / (2 * sigma**2) - kl,
             "the spread term needs the variances s_j = exp(logvar_j), not the standard "
             "deviations exp(logvar_j / 2)."),
            (-(residual + spread) / (2 * sigma**2) - kl,
             "the normalising constant -D/2 log(2 pi sigma^2) of the Gaussian likelihood is "
             "missing (it matters: the ELBO is compared with log p(x))."),
            (-0.5 * D * math.log(2 * math.pi * sigma) - (residual + spread) / (2 * sigma**2) - kl,
             "the constant is -D/2 log(2 pi sigma^2): sigma is the standard deviation, square it."),
            (constant - (residual + spread) / (2 * sigma) - kl,
             "divide the squared error by 2 sigma^2 (the variance), not by 2 sigma."),
            (constant - (residual + spread) / (2 * sigma**2) + kl,
             "subtract the KL: ELBO = E_q[log p(x | z)] - KL(q || N(0, I))."),
        ]
        _compare("elbo", got, expected, hints=hints)

    return _run_torch("linear_gaussian_elbo", fn, _linear_gaussian_cases(), verify)


_register(
    gaussian_kl=_gaussian_kl_cases,
    elbo_estimate=_elbo_estimate_cases,
    iwae_bound=_iwae_bound_cases,
    linear_gaussian_elbo=_linear_gaussian_cases,
)

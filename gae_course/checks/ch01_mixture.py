"""Checks for chapter 1: the EM algorithm for a Gaussian mixture, in plain NumPy.

Each check compares the reader's function with the verified one in :mod:`gae_course.mixture`
on tiny cases, some of them numerically hard (points far from every mean, where a naive
``np.log(np.sum(np.exp(...)))`` underflows; a 300-dimensional Gaussian whose determinant
underflows to 0.0). k-means++ is random: its check tests the properties and the distribution
every correct seeding has.

Equations: Bishop, *Pattern Recognition and Machine Learning* (2006), eqs. 2.43 (the
Gaussian density) and 9.23-9.28 (EM for Gaussian mixtures); Arthur and Vassilvitskii (2007),
"k-means++: the advantages of careful seeding", for the seeding.
"""

from __future__ import annotations

import math

import numpy as np

from gae_course import mixture
from gae_course.checks._core import (
    _FALLBACK,
    _MAX_TRICK,
    CheckFailed,
    _call,
    _Case,
    _compare,
    _lse,
    _non_finite,
    _register,
    _run,
    _spd,
    _unpack,
)

# --------------------------------------------------------------------------------------------
# The cases: tiny, deterministic, one of them numerically hard
# --------------------------------------------------------------------------------------------


def _softmax_rows(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# det(0.01 I) = 0.01**300 = 1e-600 is below the smallest float64 (about 1e-308): 0.0.
_HIGH_DIMENSION = 300


def _log_gaussian_cases():
    cases = []
    rng = np.random.default_rng(101)
    cases.append(
        _Case(
            "standard normal in 2-D",
            dict(X=rng.normal(size=(5, 2)), mean=np.zeros(2), covariance=np.eye(2)),
        )
    )
    rng = np.random.default_rng(102)
    covariance = _spd(rng, 3, scale=1.5)
    mean = rng.normal(size=3)
    X = mean + rng.normal(size=(10, 3)) @ np.linalg.cholesky(covariance).T
    cases.append(_Case("correlated 3-D Gaussian", dict(X=X, mean=mean, covariance=covariance)))
    cases.append(
        _Case(
            "1-D Gaussian with variance 4",
            dict(
                X=np.array([[-2.0], [0.0], [1.0], [5.0]]),
                mean=np.array([1.0]),
                covariance=np.array([[4.0]]),
            ),
        )
    )
    cases.append(
        _Case(
            "points far from the mean (their density underflows to 0.0)",
            dict(
                X=np.array([[60.0, -40.0], [-80.0, 30.0], [45.0, 90.0], [1.5, -1.0]]),
                mean=np.array([1.0, -2.0]),
                covariance=np.array([[2.0, 0.5], [0.5, 1.0]]),
            ),
        )
    )
    rng = np.random.default_rng(104)
    d = _HIGH_DIMENSION
    cases.append(
        _Case(
            f"d = {d}, covariance 0.01 I (np.linalg.det underflows to 0.0)",
            dict(X=0.1 * rng.normal(size=(4, d)), mean=np.zeros(d), covariance=0.01 * np.eye(d)),
        )
    )
    return cases


def _mixture_cases():
    """Inputs (X, weights, means, covariances) of e_step."""
    cases = []
    rng = np.random.default_rng(201)
    means = np.array([[-2.0, 0.0], [2.0, 1.0]])
    covariances = np.array([[[0.5, 0.1], [0.1, 0.3]], [[0.4, -0.1], [-0.1, 0.6]]])
    X = np.vstack([means[0] + 0.6 * rng.normal(size=(4, 2)),
                   means[1] + 0.6 * rng.normal(size=(4, 2)),
                   [[0.0, 0.5], [0.3, 0.2]]])  # two points in between: soft responsibilities
    cases.append(
        _Case(
            "two clusters in 2-D",
            dict(X=X, weights=np.array([0.3, 0.7]), means=means, covariances=covariances),
        )
    )
    rng = np.random.default_rng(202)
    means = 1.5 * rng.normal(size=(3, 3))
    covariances = np.stack([_spd(rng, 3) for _ in range(3)])
    cases.append(
        _Case(
            "three overlapping components in 3-D",
            dict(
                X=2.0 * rng.normal(size=(20, 3)),
                weights=np.array([0.5, 0.2, 0.3]),
                means=means,
                covariances=covariances,
            ),
        )
    )
    rng = np.random.default_rng(203)
    cases.append(
        _Case(
            "a single component (K = 1)",
            dict(
                X=rng.normal(size=(6, 2)),
                weights=np.array([1.0]),
                means=np.array([[0.5, -0.5]]),
                covariances=np.array([[[1.0, 0.4], [0.4, 2.0]]]),
            ),
        )
    )
    cases.append(
        _Case(
            "points far from every mean (exp underflows to 0.0)",
            dict(
                # The first point is as far from component 0 as from component 1 (same
                # covariance), so its responsibilities are 5/8 and 3/8, not 0 and 1.
                X=np.array(
                    [[1.5, -100.0], [60.0, 80.0], [-70.0, 50.0], [200.0, -150.0], [0.5, 0.5]]
                ),
                weights=np.array([0.5, 0.3, 0.2]),
                means=np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]]),
                covariances=np.array(
                    [0.5 * np.eye(2), 0.5 * np.eye(2), [[0.3, 0.05], [0.05, 0.2]]]
                ),
            ),
        )
    )
    return cases


def _m_step_cases():
    cases = []
    rng = np.random.default_rng(301)
    X = np.vstack([[-2.0, 0.0] + 0.7 * rng.normal(size=(6, 2)),
                   [2.0, 1.0] + 0.7 * rng.normal(size=(6, 2))])
    resp = _softmax_rows(np.column_stack([-X[:, 0], X[:, 0]]))  # soft, by the sign of x
    cases.append(
        _Case("two components in 2-D, soft responsibilities", dict(X=X, resp=resp, reg_covar=1e-6))
    )
    rng = np.random.default_rng(302)
    X = rng.normal(size=(30, 3)) * [1.0, 2.0, 0.5]
    resp = _softmax_rows(2.0 * rng.normal(size=(30, 3)))
    cases.append(
        _Case("three components in 3-D with reg_covar = 0.1", dict(X=X, resp=resp, reg_covar=0.1))
    )
    rng = np.random.default_rng(303)
    X = rng.normal(size=(9, 2))
    labels = np.array([2, 0, 0, 0, 0, 1, 1, 1, 1])
    cases.append(
        _Case(
            "component 2 owns a single point (singular without reg_covar)",
            dict(X=X, resp=np.eye(3)[labels], reg_covar=1e-3),
        )
    )
    rng = np.random.default_rng(304)
    cases.append(
        _Case(
            "one component (K = 1): the plain mean and covariance",
            dict(X=rng.normal(size=(8, 2)) @ [[1.0, 0.5], [0.0, 1.0]], resp=np.ones((8, 1)),
                 reg_covar=1e-6),
        )
    )
    return cases


class _SeededGenerator(np.random.Generator):
    """``np.random.default_rng(seed)``, shown by its seed in messages (not by an address)."""

    def __init__(self, seed):
        super().__init__(np.random.PCG64(seed))
        self.seed = seed

    def __repr__(self):
        return f"np.random.default_rng({self.seed})"


# k-means++ is random: its cases state properties every correct seeding has (one seed per
# group of identical points, the same seeds from the same rng) and the distribution of the
# second seed, measured over many rngs. _KPP_RUNS draws give each frequency a standard error
# of at most sqrt(0.25 * 0.75 / _KPP_RUNS) ~ 0.007 (first seed) and ~ 0.016 (second seed given
# the first, ~_KPP_RUNS / 4 draws per row): the tolerances are five of them.
_KPP_RUNS = 4_000
_KPP_GROUP_RUNS = 30
_KPP_LINE = np.array([[0.0], [1.0], [2.0], [10.0]])
_KPP_GROUP_CENTERS = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])


def _kmeans_plusplus_cases():
    rng = np.random.default_rng(401)
    return [
        _Case(
            "five distinct points and n_components = 5: every point becomes a seed",
            dict(X=rng.normal(size=(5, 2)), n_components=5, rng=_SeededGenerator(0)),
        ),
        _Case(
            f"four groups of 10 identical points, n_components = 4: one seed per group "
            f"(for each of {_KPP_GROUP_RUNS} rngs)",
            dict(X=np.repeat(_KPP_GROUP_CENTERS, 10, axis=0), n_components=4,
                 rng=_SeededGenerator(0)),
        ),
        _Case(
            f"points at 0, 1, 2 and 10 on a line, n_components = 2: how often each pair of "
            f"seeds comes out, over {_KPP_RUNS} rngs",
            dict(X=_KPP_LINE.copy(), n_components=2, rng=_SeededGenerator(0)),
        ),
    ]


_register(
    log_gaussian=_log_gaussian_cases,
    e_step=_mixture_cases,
    m_step=_m_step_cases,
    kmeans_plusplus=_kmeans_plusplus_cases,
)


# --------------------------------------------------------------------------------------------
# Verified answers and the answers of known mistakes
# --------------------------------------------------------------------------------------------

_NO_WEIGHTS = (
    "the mixing weights are missing: "
    "log p(x_i) = logsumexp_k [log π_k + log N(x_i | μ_k, Σ_k)]."
)


def _component_log_densities(X, means, covariances):
    """log N(x_i | mu_k, Sigma_k), shape (n_samples, n_components), by the verified kernel."""
    precisions_cholesky = mixture.compute_precision_cholesky(covariances)
    return mixture.log_gaussian_density(X, means, precisions_cholesky)



# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------


def log_gaussian(fn):
    """Check ``fn(X, mean, covariance)``: log N(x_i | mean, covariance) for each row of X.

    Parameters
    ----------
    fn : callable
        ``fn(X, mean, covariance) -> ndarray of shape (n_samples,)`` with
        ``X`` of shape (n_samples, n_features), ``mean`` (n_features,) and
        ``covariance`` (n_features, n_features).

    Returns
    -------
    None
        When every case passes; one line is printed.

    Raises
    ------
    CheckFailed
        Naming the case, the quantity, the expected shape and the first wrong entry, with a
        HINT for the known mistakes: missing -d/2 log(2 pi), missing or mis-signed
        -1/2 log det(covariance), missing 1/2 on the quadratic term, the covariance instead of
        its inverse, the density instead of its log, log of an underflowed density, a (n, 1)
        column.
    """

    def verify(case, got):
        X, mean, covariance = case.inputs["X"], case.inputs["mean"], case.inputs["covariance"]
        d = X.shape[1]
        expected = _component_log_densities(X, mean[None], covariance[None])[:, 0]
        half_log_2pi = 0.5 * d * math.log(2 * math.pi)
        half_log_det = 0.5 * np.linalg.slogdet(covariance)[1]
        quadratic = -2.0 * (expected + half_log_2pi + half_log_det)  # (x-mu)^T Sigma^-1 (x-mu)
        diff = X - mean
        with_covariance = np.einsum("ni,ij,nj->n", diff, covariance, diff)
        hints = [
            (lambda g: d >= _HIGH_DIMENSION and not np.all(np.isfinite(g)),
             f"in d = {d} dimensions det(covariance) = 0.01^{d} underflows to 0.0 "
             "(np.linalg.det returns exactly 0), so log det is -inf. Use the Cholesky factor, "
             "log det = 2 * np.sum(np.log(np.diag(L))), or np.linalg.slogdet(covariance)[1]."),
            (expected + half_log_2pi,
             "the constant -d/2 log(2π) is missing (d = X.shape[1], the number of features)."),
            (expected - half_log_2pi,
             "the constant is -d/2 log(2π): check the factor 1/2 (it is not -d log(2π))."),
            (expected + half_log_det,
             "the log-det term -1/2 log det(covariance) is missing "
             "(np.linalg.slogdet(covariance)[1] gives log det)."),
            (expected + 2 * half_log_det,
             "the log-det term has the wrong sign: it is -1/2 log det(covariance)."),
            (expected - half_log_det,
             "the log-det term is -1/2 log det(covariance): the factor 1/2 is missing."),
            (expected + half_log_2pi + half_log_det,
             "the normalising constant is missing: add -d/2 log(2π) - 1/2 log det(covariance)."),
            (expected - 0.5 * quadratic,
             "the quadratic term is -1/2 (x-μ)ᵀ Σ⁻¹ (x-μ): the factor 1/2 is missing."),
            (expected + quadratic,
             "the quadratic term has the wrong sign: it is -1/2 (x-μ)ᵀ Σ⁻¹ (x-μ)."),
            (expected + 0.5 * quadratic - 0.5 * with_covariance,
             "the quadratic term uses the inverse covariance: (x-μ)ᵀ Σ⁻¹ (x-μ), e.g. "
             "np.linalg.solve(covariance, diff.T), not the covariance itself."),
            (np.exp(expected),
             "these are densities: return the log density, computed in log space (no np.exp)."),
            (_non_finite(expected),
             "compute the log density directly in log space: the density of a point far from "
             "the mean underflows to 0.0, and np.log(0.0) = -inf. Never take np.log of a "
             "density (from np.exp or scipy.stats)."),
            (lambda g: g.shape == expected.shape
             and np.ptp(g - expected) < 1e-6 * (1 + np.abs(expected).max()),
             "got - expected is the same for every point: the quadratic term is right, so the "
             "normalising constant -d/2 log(2π) - 1/2 log det(covariance) is off.", _FALLBACK),
        ]
        _compare("log_density", got, expected, hints=hints)

    return _run("log_gaussian", fn, _log_gaussian_cases(), verify)


def e_step(fn):
    """Check ``fn(X, weights, means, covariances) -> (log_resp, log_prob_norm)``.

    Parameters
    ----------
    fn : callable
        Returns ``log_resp`` of shape (n_samples, n_components), the log responsibilities
        log γ_ik, and ``log_prob_norm`` of shape (n_samples,), log p(x_i). Inputs: ``X``
        (n_samples, n_features), ``weights`` (n_components,), ``means``
        (n_components, n_features), ``covariances`` (n_components, n_features, n_features).

    Returns
    -------
    None
        When every case passes (one of them has points far from every mean); one line is printed.

    Raises
    ------
    CheckFailed
        With a HINT for the known mistakes: no log-sum-exp normalisation (rows of
        exp(log_resp) do not sum to 1), normalising over the wrong axis, missing log(weights),
        responsibilities instead of their logs, naive log(sum(exp(...))) that underflows,
        max instead of log-sum-exp, the outputs swapped, a (n, 1) column.
    """

    def verify(case, out):
        X, weights, means, covariances = case.inputs.values()
        n, K = len(X), len(weights)
        log_resp, log_prob_norm = _unpack("e_step", out, ("log_resp", "log_prob_norm"))
        precisions_cholesky = mixture.compute_precision_cholesky(covariances)
        expected_log_resp, expected_norm = mixture.e_step(X, weights, means, precisions_cholesky)
        log_density = _component_log_densities(X, means, covariances)
        weighted = log_density + np.log(weights)
        swapped = (
            lambda g: np.shape(log_resp) == (n,) and np.shape(log_prob_norm) == (n, K),
            "the two outputs are swapped: return (log_resp, log_prob_norm) in that order.",
        )
        _compare(
            "log_resp",
            log_resp,
            expected_log_resp,
            hints=[
                swapped,
                (_non_finite(expected_log_resp), _MAX_TRICK),
                (weighted - _lse(weighted, axis=0)[None, :],
                 "normalised over the samples: subtract logsumexp over the components "
                 "(axis=1), one value per sample."),
                (lambda g: not np.allclose(np.exp(g[np.isfinite(g).all(axis=1)]).sum(axis=1), 1.0),
                 "rows of exp(log_resp) do not sum to 1: normalise with log-sum-exp: subtract "
                 "logsumexp over components, log_resp = weighted_log_prob - "
                 "logsumexp(weighted_log_prob, axis=1)[:, None].", _FALLBACK),
                (log_density - _lse(log_density, axis=1)[:, None],
                 "the mixing weights are missing: add np.log(weights) to each component's "
                 "log-density before normalising."),
                (np.exp(expected_log_resp),
                 "these are responsibilities: return their logs, log_resp (no np.exp at the end)."),
            ],
        )
        _compare(
            "log_prob_norm",
            log_prob_norm,
            expected_norm,
            hints=[
                (_non_finite(expected_norm), _MAX_TRICK),
                (lambda g: g.ndim == 0,
                 "log_prob_norm has one value per sample, log p(x_i); the average over samples "
                 "is the log-likelihood (the next exercise)."),
                (lambda g: g.shape == (K,) and K != n,
                 "one value per sample: take logsumexp over the components (axis=1), not over "
                 "the samples."),
                (_lse(log_density, axis=1), _NO_WEIGHTS),
                (weighted.max(axis=1),
                 "log p(x_i) sums over the components: use logsumexp over axis=1, not max."),
                (weighted.sum(axis=1),
                 "log p(x_i) is the log of a sum: use logsumexp over axis=1, not a sum of logs."),
                (np.exp(expected_norm), "return log p(x_i), in log space (no np.exp)."),
            ],
        )

    return _run("e_step", fn, _mixture_cases(), verify)


def m_step(fn):
    """Check ``fn(X, resp, reg_covar) -> (weights, means, covariances)``.

    Parameters
    ----------
    fn : callable
        Inputs: ``X`` (n_samples, n_features), ``resp`` (n_samples, n_components) whose rows
        sum to 1, and the float ``reg_covar``. Returns ``weights`` (n_components,), ``means``
        (n_components, n_features) and ``covariances``
        (n_components, n_features, n_features), with ``reg_covar`` added to each diagonal.

    Returns
    -------
    None
        When every case passes (one has a component owning a single point); one line is printed.

    Raises
    ------
    CheckFailed
        With a HINT for the known mistakes: weights not divided by n (or uniform), unweighted
        means, means divided by n or not at all, hard (argmax) assignments, covariances
        divided by n or N_k - 1 instead of N_k (or off by any per-component factor),
        reg_covar missing or added off the diagonal, data not centred, outer products not
        weighted by the responsibilities.
    """

    def verify(case, out):
        X, resp, reg_covar = case.inputs.values()
        n, d = X.shape
        K = resp.shape[1]
        weights, means, covariances = _unpack("m_step", out, ("weights", "means", "covariances"))
        expected_w, expected_means, expected_cov = mixture.m_step(X, resp, reg_covar)
        nk = resp.sum(axis=0)
        eye = np.eye(d)

        _compare(
            "weights",
            weights,
            expected_w,
            hints=[
                (lambda g: g.shape == (n,) and n != K,
                 "sum the responsibilities over the samples (axis=0): N_k = resp.sum(axis=0) "
                 "has one value per component."),
                (nk, "weights are the soft counts divided by n: weights = N_k / n."),
                (np.full(K, 1.0 / K),
                 "weights are N_k / n (N_k = resp.sum(axis=0), the soft counts), not uniform."),
                (lambda g: not np.isclose(g.sum(), 1.0),
                 "the weights must sum to 1: weights = N_k / n.", _FALLBACK),
            ],
        )

        hard = resp.argmax(axis=1)
        hints = [
            (np.tile(X.mean(axis=0), (K, 1)),
             "the means are not weighted by the responsibilities: "
             "means[k] = sum_i resp[i, k] x_i / N_k, i.e. resp.T @ X / N_k[:, None]."),
            (resp.T @ X,
             "divide the weighted sums by N_k (the soft counts): "
             "means = resp.T @ X / N_k[:, None]."),
            (resp.T @ X / n,
             "divide by N_k (the soft counts), not n: means = resp.T @ X / N_k[:, None]."),
            (lambda g: K == d and np.allclose(g, (resp.T @ X) / nk[None, :]),
             "each row k is divided by its own N_k: use N_k[:, None], not N_k (which divides "
             "the columns)."),
        ]
        if all(np.any(hard == k) for k in range(K)):
            hints.append(
                (np.stack([X[hard == k].mean(axis=0) for k in range(K)]),
                 "use the soft responsibilities as weights, not a hard assignment (argmax).")
            )
        _compare("means", means, expected_means, hints=hints)

        diff = X[None, :, :] - expected_means[:, None, :]  # (K, n, d)
        scatter = np.einsum("nk,kni,knj->kij", resp, diff, diff)  # sum_i r_ik diff diff^T
        ml = scatter / nk[:, None, None]  # maximum-likelihood covariances, no reg_covar
        hints = [
            (scatter / n + reg_covar * eye,
             "divide by N_k (the soft counts), not n: covariances[k] = scatter_k / N_k + "
             "reg_covar I."),
            (scatter / n,
             "divide by N_k (the soft counts), not n, and add reg_covar to the diagonal."),
            (ml, "add reg_covar to the diagonal: covariances[k] += reg_covar * np.eye(d). It "
                 "keeps a component that owns a single point from getting a singular covariance."),
            (ml + reg_covar,
             "add reg_covar to the diagonal only (reg_covar * np.eye(d)), not to every entry."),
            (scatter / (nk - 1)[:, None, None] + reg_covar * eye,
             "the maximum-likelihood covariance divides by N_k, not N_k - 1."),
            (np.einsum("nk,ni,nj->kij", resp, X, X) / nk[:, None, None] + reg_covar * eye,
             "centre the data with the new means first: diff = X - means[k]."),
            (np.einsum("kni,knj->kij", diff, diff) / nk[:, None, None] + reg_covar * eye,
             "weight each outer product by its responsibility resp[i, k]: "
             "(resp[:, k, None] * diff).T @ diff / N_k."),
            (lambda g: _off_by_factor(g - reg_covar * eye, ml),
             "the covariances are off by a factor per component: check the normalisation, "
             "divide the weighted scatter by N_k (the soft counts).", _FALLBACK),
            (lambda g: not np.allclose(g, g.transpose(0, 2, 1)),
             "covariance matrices are symmetric: compute (resp[:, k, None] * diff).T @ diff.",
             _FALLBACK),
        ]
        _compare("covariances", covariances, expected_cov, hints=hints)

    return _run("m_step", fn, _m_step_cases(), verify)


def _off_by_factor(got, expected):
    """True when got[k] == c_k * expected[k] for scalars c_k, not all 1."""
    flat_g = got.reshape(len(got), -1)
    flat_e = expected.reshape(len(expected), -1)
    factors = np.sum(flat_g * flat_e, axis=1) / np.sum(flat_e * flat_e, axis=1)
    return np.allclose(flat_g, factors[:, None] * flat_e, rtol=1e-6, atol=1e-9) and not np.allclose(
        factors, 1.0
    )



def _second_seed_table(X, weight):
    """P(second seed = j | first seed = i) when point j is drawn with probability ∝ weight(D_ij)."""
    distances = np.abs(X - X.T)  # (n, n): 1-D points
    table = weight(distances)
    np.fill_diagonal(table, 0.0)
    return table / table.sum(axis=1, keepdims=True)


def _farthest_table(X):
    distances = np.abs(X - X.T)
    return np.eye(len(X))[np.argmax(distances, axis=1)]


def _seed_indices(check_name, out, X, K):
    """The returned (centers, indices), checked for types, shapes and consistency."""
    centers, indices = _unpack(check_name, out, ("centers", "indices"))
    n = len(X)
    if not isinstance(indices, np.ndarray) or indices.dtype.kind not in "iu":
        raise CheckFailed(
            f"indices should be a NumPy array of integers (row numbers of X), got "
            f"{_describe_indices(indices)}.\nHINT: collect them in "
            "np.empty(n_components, dtype=np.int64)."
        )
    if indices.shape != (K,):
        raise CheckFailed(f"indices has the wrong shape: expected ({K},), got {indices.shape}.")
    if indices.min() < 0 or indices.max() >= n:
        raise CheckFailed(f"indices are row numbers of X, between 0 and {n - 1}; got {indices}.")
    if len(set(indices.tolist())) < K:
        raise CheckFailed(
            f"indices {indices} repeat a row: the seeds must be {K} different data points.\n"
            "HINT: a point already chosen is at distance 0 from its nearest seed, so its "
            "probability D(x)^2 / sum D^2 is 0: use the distance to the NEAREST seed chosen so "
            "far (np.minimum over the seeds), not to the first seed only."
        )
    _compare("centers", centers, X[indices],
             hints=[(X[np.sort(indices)], "centers[c] must be X[indices[c]], in the same order.")])
    return indices


def _describe_indices(obj):
    if isinstance(obj, np.ndarray):
        return f"an array of dtype {obj.dtype}"
    return f"a {type(obj).__name__}"


def kmeans_plusplus(fn):
    """Check ``fn(X, n_components, rng) -> (centers, indices)``: k-means++ seeding.

    The seeding is random, so the cases test what every correct k-means++ does: the seeds are
    distinct rows of X; with groups of identical points, each group gets exactly one seed
    (a chosen point is at distance 0, so it cannot be drawn again); the same rng gives the
    same seeds; and, over many rngs, the first seed is uniform and the second is drawn with
    probability proportional to its squared distance to the first.

    Parameters
    ----------
    fn : callable
        Inputs: ``X`` (n_samples, n_features), the int ``n_components`` and a
        ``numpy.random.Generator`` ``rng`` (the only source of randomness). Returns
        ``centers`` (n_components, n_features), equal to ``X[indices]``, and ``indices``
        (n_components,), integer row numbers.

    Returns
    -------
    None
        When every case passes; one line is printed.

    Raises
    ------
    CheckFailed
        With a HINT for the known mistakes: a repeated seed (distance to the first seed only,
        not to the nearest), the global np.random instead of rng, weights proportional to the
        distance instead of its square, uniform draws, the farthest point instead of a draw,
        a first seed that is not uniform.
    """
    check_name = "kmeans_plusplus"

    def rerun(case, seed):
        inputs = dict(case.inputs, rng=_SeededGenerator(seed))
        out, _ = _call(check_name, fn, _Case(case.name, inputs))
        return _seed_indices(check_name, out, case.inputs["X"], case.inputs["n_components"])

    def verify(case, out):
        X, K = case.inputs["X"], case.inputs["n_components"]
        indices = _seed_indices(check_name, out, X, K)
        if K == len(X):
            return  # distinct rows of X, all of them: nothing else to check
        if len(X) > len(_KPP_LINE):  # the groups of identical points
            groups = np.repeat(np.arange(len(_KPP_GROUP_CENTERS)), 10)
            runs = [indices] + [rerun(case, seed) for seed in range(1, _KPP_GROUP_RUNS + 1)]
            for seed, run in enumerate(runs):
                if len(set(groups[run].tolist())) < K:
                    raise CheckFailed(
                        f"with rng = np.random.default_rng({seed}) the seeds {run} put two seeds "
                        f"in one group of identical points (groups {groups[run]}).\nHINT: weight "
                        "each point by D(x)^2, its squared distance to the NEAREST seed chosen "
                        "so far (np.minimum over the seeds): a point of a group that already "
                        "has a seed is then at distance 0 and is never drawn."
                    )
            if not np.array_equal(rerun(case, 0), indices):
                raise CheckFailed(
                    "the same rng, np.random.default_rng(0), gave different seeds on two calls."
                    "\nHINT: draw only from the `rng` argument (rng.integers, rng.choice), "
                    "never from np.random, so that a seeded run can be repeated."
                )
            if all(np.array_equal(run, indices) for run in runs):
                raise CheckFailed(
                    f"all {len(runs)} rngs gave the same seeds {indices}: k-means++ is random.\n"
                    "HINT: draw the first seed uniformly, rng.integers(n_samples), and each next "
                    "one at random with probabilities D(x)^2 / sum(D^2)."
                )
            return
        # points on a line: the frequencies of (first seed, second seed) over many rngs
        n = len(X)
        runs = np.array([indices] + [rerun(case, 1_000 + r) for r in range(_KPP_RUNS - 1)])
        first = np.bincount(runs[:, 0], minlength=n) / len(runs)
        _compare(
            "first-seed frequencies", first, np.full(n, 1.0 / n), rtol=0.0,
            atol=5 * math.sqrt((1 / n) * (1 - 1 / n) / _KPP_RUNS),
            hints=[(lambda g: np.max(g) == 1.0,
                    "the first seed is always the same point: draw it uniformly, "
                    "rng.integers(n_samples).")],
        )
        pairs = np.zeros((n, n))
        np.add.at(pairs, (runs[:, 0], runs[:, 1]), 1.0)
        second = pairs / pairs.sum(axis=1, keepdims=True)  # P(second | first), rows sum to 1
        _compare(
            "second-seed frequencies (row: first seed, column: second seed)", second,
            _second_seed_table(X, np.square), rtol=0.0,
            atol=5 * math.sqrt(0.25 / (_KPP_RUNS / n)),
            hints=[
                (_second_seed_table(X, lambda d: d),
                 "the next seed is drawn with probability proportional to the distance D(x): "
                 "square it, D(x)^2 / sum(D^2)."),
                (_second_seed_table(X, lambda d: np.ones_like(d)),
                 "the next seed is drawn uniformly: weight each point by D(x)^2, its squared "
                 "distance to the nearest seed, p = D2 / D2.sum()."),
                (_farthest_table(X),
                 "the next seed is always the farthest point: k-means++ draws it at random, "
                 "rng.choice(n_samples, p=D2 / D2.sum()), so that outliers do not take every "
                 "seed."),
            ],
        )

    return _run(check_name, fn, _kmeans_plusplus_cases(), verify)

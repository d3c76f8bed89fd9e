"""Checks for chapter 6: the Fréchet distance between two Gaussians.

Equation: d^2 = ||mu_a - mu_b||^2 + tr(cov_a + cov_b - 2 (cov_a cov_b)^(1/2)) (Dowson &
Landau 1982; the FID of Heusel et al. 2017 applies it to network features).
"""

from __future__ import annotations

import math

import numpy as np

from gae_course.checks._core import (
    _Case,
    CheckFailed,
    _compare,
    _register,
    _run,
    _spd,
)


def _frechet_cases():
    rng = np.random.default_rng(601)
    cases = [
        _Case("two Gaussians in 3-D", dict(mu_a=rng.normal(size=3), cov_a=_spd(rng, 3),
                                           mu_b=rng.normal(size=3), cov_b=_spd(rng, 3, 2.0))),
        _Case("the same covariance, shifted means (2-D)",
              dict(mu_a=np.zeros(2), cov_a=np.array([[2.0, 0.5], [0.5, 1.0]]),
                   mu_b=np.array([3.0, -1.0]), cov_b=np.array([[2.0, 0.5], [0.5, 1.0]]))),
    ]
    v = rng.normal(size=(4, 1))
    cases.append(_Case("a singular (rank-1) covariance against a full one, 4-D",
                       dict(mu_a=rng.normal(size=4), cov_a=v @ v.T,
                            mu_b=rng.normal(size=4), cov_b=_spd(rng, 4))))
    return cases


def _sqrtm_psd(matrix):
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(fn):
    """Check ``fn(mu_a, cov_a, mu_b, cov_b) -> float``, the squared Fréchet distance.

    Parameters
    ----------
    fn : callable
        Inputs: means (d,) and covariances (d, d) of two Gaussians, float64 NumPy arrays.
        Returns ``||mu_a - mu_b||^2 + tr(cov_a + cov_b - 2 (cov_a cov_b)^{1/2})`` as one number.

    Raises
    ------
    CheckFailed
        With a HINT for: the mean term missing, the factor 2 missing, an elementwise square root
        instead of a matrix square root, the product of the two square roots instead of the
        root of the product, the distance instead of its square, a complex result.
    """
    from gae_course import judge

    def verify(case, got):
        mu_a, cov_a, mu_b, cov_b = case.inputs.values()
        expected = judge.frechet_distance(mu_a, cov_a, mu_b, cov_b)
        if np.iscomplexobj(got):
            raise CheckFailed(
                "the result is complex.\nHINT: a matrix square root from scipy.linalg.sqrtm can "
                "carry tiny imaginary parts: keep the real part (`.real`), or take the root from "
                "the eigenvalues of a symmetric matrix (np.linalg.eigh).")
        mean_term = float(np.sum((mu_a - mu_b) ** 2))
        cross = expected - mean_term - np.trace(cov_a) - np.trace(cov_b)  # -2 tr sqrt(...)
        with np.errstate(all="ignore"):
            elementwise = np.trace(np.sqrt(cov_a @ cov_b))
            product_of_roots = np.trace(_sqrtm_psd(cov_a) @ _sqrtm_psd(cov_b))
        hints = [
            (expected - mean_term, "add the mean term ||mu_a - mu_b||^2."),
            (expected - cross / 2, "the cross term is -2 tr((cov_a cov_b)^(1/2)): the factor 2 "
                                   "is missing."),
            (mean_term + np.trace(cov_a + cov_b) - 2 * elementwise,
             "np.sqrt is elementwise: (cov_a cov_b)^(1/2) is a matrix square root (the sum of the "
             "square roots of the eigenvalues of cov_a cov_b gives its trace)."),
            (mean_term + np.trace(cov_a + cov_b) - 2 * product_of_roots,
             "(cov_a cov_b)^(1/2) is not cov_a^(1/2) cov_b^(1/2) unless the two matrices "
             "commute: take the root of the product."),
            (math.sqrt(max(expected, 0.0)),
             "return the squared distance d^2 (the FID convention), not d."),
        ]
        _compare("frechet_distance", got, expected, rtol=1e-6, atol=1e-8, hints=hints)

    return _run("frechet_distance", fn, _frechet_cases(), verify)


_register(frechet_distance=_frechet_cases)

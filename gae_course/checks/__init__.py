"""Check functions for the exercises: run a student's function on small fixed cases.

Each check calls the reader's function on a few tiny, deterministic cases (n <= 40,
d <= 3 but for one 300-dimensional Gaussian, K <= 4), compares every returned array with the verified version in the package (such as
:mod:`gae_course.mixture`), and either prints one line such as
``e_step: all 4 cases pass ✓`` (and returns ``None``) or raises :class:`CheckFailed` with a
message that says precisely what is off::

    e_step is wrong on case 4 of 4: points far from every mean (exp underflows to 0.0)
      inputs: X (5, 2), weights (3,), means (3, 2), covariances (3, 2, 2)
    log_resp has wrong values: expected shape (5, 3); 12 of 15 entries differ (...).
    First difference at log_resp[0, 0]: got inf, expected -0.470004.
    12 value(s) are NaN or infinite where a finite number is expected.
    HINT: use the max trick in log-sum-exp: ...
    Your function also warned: RuntimeWarning: divide by zero encountered in log
    To debug: inputs = checks.case_inputs('e_step', 4); e_step(*inputs.values())

The machinery (the comparison, the runner, the case registry) is in :mod:`._core`; each
chapter's cases and checks are in a module of their own. The exercises and their checks:

=======  =========================================================  ===========================
Chapter  Exercise                                                   Check
=======  =========================================================  ===========================
1        ``log_gaussian(X, mean, covariance) -> (n,)``              :func:`log_gaussian`
1        ``e_step(X, weights, means, covariances)``                 :func:`e_step`
1        ``m_step(X, resp, reg_covar)``                             :func:`m_step`
1        ``kmeans_plusplus(X, n_components, rng)``                  :func:`kmeans_plusplus`
2        ``gaussian_kl(mu_q, logvar_q, mu_p, logvar_p) -> (B,)``    :func:`gaussian_kl`
2        ``elbo_estimate(log_lik, mu, logvar) -> (B,)``             :func:`elbo_estimate`
2        ``iwae_bound(log_weights) -> (B,)``                        :func:`iwae_bound`
2        ``linear_gaussian_elbo(x, W, b, sigma, mu, logvar)``       :func:`linear_gaussian_elbo`
3        ``reparam_gaussian(f, mu, log_sigma, eps)``                :func:`reparam_gaussian`
3        ``score_function_gaussian(f, mu, log_sigma, eps)``         :func:`score_function_gaussian`
3        ``leave_one_out_baseline(f_values) -> (K, B)``             :func:`leave_one_out_baseline`
4        ``vae_negative_elbo(x, mu, logvar, eps, decoder)``         :func:`vae_negative_elbo`
4        ``vae_iwae_bound(x, mu, logvar, eps, decoder) -> (B,)``    :func:`vae_iwae_bound`
4        ``score_function_surrogate(log_lik, log_q, baseline)``     :func:`score_function_surrogate`
5        ``class_posterior(class_log_lik, log_prior) -> (n, C)``    :func:`class_posterior`
5        ``monte_carlo_kl(log_p_a, log_p_b) -> (kl, stderr)``       :func:`monte_carlo_kl`
6        ``frechet_distance(mu_a, cov_a, mu_b, cov_b) -> float``    :func:`frechet_distance`
=======  =========================================================  ===========================

Chapters 1, 5 and 6 are NumPy; the checks of chapters 2, 3 and 4 import torch only when they
run, so ``from gae_course import checks`` does not load it.
"""

from gae_course.checks._core import CheckFailed, _compare, case_inputs
from gae_course.checks.ch01_mixture import e_step, kmeans_plusplus, log_gaussian, m_step
from gae_course.checks.ch02_elbo import (
    elbo_estimate,
    gaussian_kl,
    iwae_bound,
    linear_gaussian_elbo,
)
from gae_course.checks.ch03_estimators import (
    leave_one_out_baseline,
    reparam_gaussian,
    score_function_gaussian,
)
from gae_course.checks.ch04_vae import (
    score_function_surrogate,
    vae_iwae_bound,
    vae_negative_elbo,
)
from gae_course.checks.ch05_gae import class_posterior, monte_carlo_kl
from gae_course.checks.ch06_comparison import frechet_distance

__all__ = [
    "CheckFailed", "log_gaussian", "e_step", "m_step", "kmeans_plusplus", "class_posterior",
    "case_inputs", "gaussian_kl", "elbo_estimate", "iwae_bound", "reparam_gaussian",
    "score_function_gaussian", "leave_one_out_baseline", "vae_negative_elbo", "vae_iwae_bound",
    "score_function_surrogate", "frechet_distance", "linear_gaussian_elbo", "monte_carlo_kl",
]
# _compare is not public, but tests/test_checks.py exercises it as checks._compare.

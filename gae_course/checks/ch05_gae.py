"""Checks for chapter 5: Bayes' rule over class likelihoods, and a Monte Carlo KL.

Equations: p(c | z) = pi_c p(z | c) / sum_c' pi_c' p(z | c'), computed with log-sum-exp;
KL(p_a || p_b) ~ (1/n) sum_i [log p_a(z_i) - log p_b(z_i)] over draws z_i ~ p_a, with standard
error s / sqrt(n), s the sample standard deviation (ddof=1) of the differences.
"""

from __future__ import annotations

import numpy as np

from gae_course import mixture
from gae_course.checks._core import (
    _MAX_TRICK,
    _Case,
    _compare,
    _non_finite,
    _register,
    _run,
    _unpack,
)


def _class_posterior_cases():
    rng = np.random.default_rng(5)
    balanced = np.log(np.full(3, 1 / 3))
    skewed = np.log(np.array([0.7, 0.2, 0.1]))
    return [
        _Case("3 codes, 3 classes, equal priors",
              dict(class_log_lik=rng.normal(size=(3, 3)), log_prior=balanced)),
        _Case("5 codes, unequal priors",
              dict(class_log_lik=rng.normal(size=(5, 3)) * 3, log_prior=skewed)),
        _Case("one code, ten classes",
              dict(class_log_lik=rng.normal(size=(1, 10)) * 2, log_prior=np.log(np.full(10, 0.1)))),
        _Case("log-likelihoods near -1000, as for 32-D codes (exp underflows to 0.0)",
              dict(class_log_lik=rng.normal(size=(4, 3)) * 5 - 1000.0, log_prior=skewed)),
    ]


def class_posterior(fn):
    """Check ``fn(class_log_lik, log_prior) -> log_posterior`` of shape (n, C).

    Parameters
    ----------
    fn : callable
        Given log p(z_i | c) of shape (n, C) and log pi_c of shape (C,), returns
        log p(c | z_i) = log pi_c + log p(z_i | c) - logsumexp_c'(log pi_c' + log p(z_i | c')).

    Returns
    -------
    True

    Raises
    ------
    CheckFailed
        With a HINT for: no normalisation, normalising over the wrong axis, the prior left out,
        probabilities instead of log-probabilities, naive log(sum(exp)) that underflows.
    """

    def verify(case, got):
        log_lik, log_prior = case.inputs.values()
        joint = log_lik + log_prior
        expected = joint - mixture.logsumexp(joint, axis=1)[:, None]
        hints = [
            (joint, "normalise: subtract logsumexp over the classes (axis=1) so that "
                    "exp(log_posterior) sums to one in every row."),
            (log_lik - mixture.logsumexp(log_lik, axis=1)[:, None],
             "Bayes' rule multiplies by the prior: add log_prior before normalising."),
            (joint - mixture.logsumexp(joint, axis=0)[None, :],
             "normalise over the classes (axis=1), not over the codes (axis=0)."),
            (np.exp(expected), "return log-probabilities, not probabilities."),
            (_non_finite(expected), _MAX_TRICK),
        ]
        _compare("log_posterior", got, expected, hints=hints)

    return _run("class_posterior", fn, _class_posterior_cases(), verify)


def _monte_carlo_kl_cases():
    rng = np.random.default_rng(55)
    z = rng.normal(size=200)  # draws from p_a = N(0, 1); p_b = N(1, 1): KL = 1/2 exactly
    log_normal = lambda x, mean: -0.5 * (x - mean) ** 2 - 0.5 * np.log(2 * np.pi)  # noqa: E731
    same = rng.normal(size=6) - 3.0
    return [
        _Case("5 draws", dict(log_p_a=rng.normal(size=5) - 2.0, log_p_b=rng.normal(size=5) - 4.0)),
        _Case("3 draws (the sample standard deviation divides by n - 1 = 2)",
              dict(log_p_a=np.array([-1.0, -2.5, -0.5]), log_p_b=np.array([-3.0, -2.0, -6.0]))),
        _Case("200 draws from N(0, 1) scored under N(0, 1) and N(1, 1) (true KL 0.5)",
              dict(log_p_a=log_normal(z, 0.0), log_p_b=log_normal(z, 1.0))),
        _Case("p_b = p_a: KL 0 with standard error 0", dict(log_p_a=same, log_p_b=same.copy())),
    ]


def monte_carlo_kl(fn):
    """Check ``fn(log_p_a, log_p_b) -> (kl, stderr)``.

    Parameters
    ----------
    fn : callable
        Given log p_a(z_i) and log p_b(z_i), each of shape (n,), at n draws z_i ~ p_a, returns
        the Monte Carlo estimate of KL(p_a || p_b), the mean of the differences, and its
        standard error, their sample standard deviation (ddof=1) over sqrt(n); two floats.

    Returns
    -------
    None

    Raises
    ------
    CheckFailed
        With a HINT for: the difference the wrong way round, the population standard
        deviation (ddof=0), the standard deviation without / sqrt(n), dividing by n instead of
        sqrt(n), the two values returned in the wrong order.
    """

    def verify(case, out):
        kl, stderr = _unpack("monte_carlo_kl", out, ("kl", "stderr"))
        diff = case.inputs["log_p_a"] - case.inputs["log_p_b"]
        n = len(diff)
        mean, sd = diff.mean(), diff.std(ddof=1)
        swapped = (np.array(kl, dtype=float), "kl and stderr are swapped: return kl, stderr (in that order).")
        _compare("kl", kl, mean, hints=[
            (-mean, "KL(p_a || p_b) averages log p_a - log p_b over draws from p_a: the "
                    "difference is the wrong way round."),
            (sd / np.sqrt(n), swapped[1]),
        ])
        _compare("stderr", stderr, sd / np.sqrt(n), hints=[
            (diff.std(ddof=0) / np.sqrt(n), "use the sample standard deviation, `np.std(diff, "
                                             "ddof=1)`: with ddof=0 the error is too small for small n."),
            (sd, "that is the spread of one draw: the standard error of the mean divides it by sqrt(n)."),
            (sd / n, "divide the standard deviation by sqrt(n), not by n."),
            (mean, swapped[1]),
        ])

    return _run("monte_carlo_kl", fn, _monte_carlo_kl_cases(), verify)


_register(class_posterior=_class_posterior_cases, monte_carlo_kl=_monte_carlo_kl_cases)

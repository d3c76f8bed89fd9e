"""Checks for chapter 5: Bayes' rule over class likelihoods, in log space.

Equation: p(c | z) = pi_c p(z | c) / sum_c' pi_c' p(z | c'), computed with log-sum-exp.
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


_register(class_posterior=_class_posterior_cases)

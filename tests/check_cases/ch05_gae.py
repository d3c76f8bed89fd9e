"""Chapter 5 exercise (Bayes' rule over the class mixtures): solution and typical mistakes.
"""

import numpy as np

from check_cases.ch01_mixture import logsumexp


def class_posterior(class_log_lik, log_prior):
    """log p(c | z) by Bayes' rule, normalised with log-sum-exp over the classes."""
    joint = class_log_lik + log_prior  # (n, C): log pi_c + log p(z | c)
    return joint - logsumexp(joint, axis=1)[:, None]



SOLUTIONS = {"class_posterior": class_posterior}  # and monte_carlo_kl, below




def cp_not_normalised(class_log_lik, log_prior):
    return class_log_lik + log_prior


def cp_no_prior(class_log_lik, log_prior):
    return class_log_lik - logsumexp(class_log_lik, axis=1)[:, None]


def cp_naive(class_log_lik, log_prior):
    joint = np.exp(class_log_lik + log_prior)
    return np.log(joint / joint.sum(axis=1, keepdims=True))


def cp_probabilities(class_log_lik, log_prior):
    joint = class_log_lik + log_prior
    return np.exp(joint - logsumexp(joint, axis=1)[:, None])


MISTAKES = [
    ("class_posterior", cp_not_normalised, r"normalise: subtract logsumexp over the classes"),
    ("class_posterior", cp_no_prior, r"add log_prior before normalising"),
    ("class_posterior", cp_naive, r"case 4 of 4(.|\n)*max trick"),
    ("class_posterior", cp_probabilities, r"return log-probabilities, not probabilities"),
]


# The Monte Carlo KL exercise. Its check (gae_course.checks.ch05_gae.monte_carlo_kl) is not yet
# exported from gae_course.checks, so these entries are not in SOLUTIONS / MISTAKES (the table
# test requires every entry to be public); tests/test_gae.py runs them until they move there.


def monte_carlo_kl(log_p_a, log_p_b):
    """KL(p_a || p_b) from draws of p_a: the mean log-ratio and its standard error."""
    diff = log_p_a - log_p_b  # (n,)
    return float(np.mean(diff)), float(np.std(diff, ddof=1) / np.sqrt(len(diff)))


def kl_wrong_way(log_p_a, log_p_b):
    diff = log_p_b - log_p_a
    return float(np.mean(diff)), float(np.std(diff, ddof=1) / np.sqrt(len(diff)))


def kl_population_std(log_p_a, log_p_b):
    diff = log_p_a - log_p_b
    return float(np.mean(diff)), float(np.std(diff) / np.sqrt(len(diff)))


def kl_std_not_stderr(log_p_a, log_p_b):
    diff = log_p_a - log_p_b
    return float(np.mean(diff)), float(np.std(diff, ddof=1))


def kl_divide_by_n(log_p_a, log_p_b):
    diff = log_p_a - log_p_b
    return float(np.mean(diff)), float(np.std(diff, ddof=1) / len(diff))


def kl_swapped(log_p_a, log_p_b):
    kl, stderr = monte_carlo_kl(log_p_a, log_p_b)
    return stderr, kl


def kl_mean_only(log_p_a, log_p_b):
    return float(np.mean(log_p_a - log_p_b))


SOLUTIONS["monte_carlo_kl"] = monte_carlo_kl
MISTAKES += [
    ("monte_carlo_kl", kl_wrong_way, r"the difference is the wrong way round"),
    ("monte_carlo_kl", kl_population_std, r"sample standard deviation(.|\n)*ddof=1"),
    ("monte_carlo_kl", kl_std_not_stderr, r"divides it by sqrt\(n\)"),
    ("monte_carlo_kl", kl_divide_by_n, r"by sqrt\(n\), not by n"),
    ("monte_carlo_kl", kl_swapped, r"kl and stderr are swapped"),
    ("monte_carlo_kl", kl_mean_only, r"should return 2 values, \(kl, stderr\)"),
]

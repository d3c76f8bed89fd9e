"""Chapter 5 exercise (Bayes' rule over the class mixtures): solution and typical mistakes.
"""

import numpy as np

from check_cases.ch01_mixture import logsumexp


def class_posterior(class_log_lik, log_prior):
    """log p(c | z) by Bayes' rule, normalised with log-sum-exp over the classes."""
    joint = class_log_lik + log_prior  # (n, C): log pi_c + log p(z | c)
    return joint - logsumexp(joint, axis=1)[:, None]



SOLUTIONS = {"class_posterior": class_posterior}




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

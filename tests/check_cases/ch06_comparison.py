"""Chapter 6 exercise (the Fréchet distance between two Gaussians; NumPy).
"""

import numpy as np


def _psd_root(m):
    values, vectors = np.linalg.eigh(m)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu_a, cov_a, mu_b, cov_b):
    root_a = _psd_root(cov_a)
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0.0, None)).sum()
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def fd_no_mean(mu_a, cov_a, mu_b, cov_b):
    return frechet_distance(mu_a, cov_a, mu_a, cov_b)


def fd_no_two(mu_a, cov_a, mu_b, cov_b):
    full = frechet_distance(mu_a, cov_a, mu_b, cov_b)
    mean_term = np.sum((mu_a - mu_b) ** 2)
    cross = full - mean_term - np.trace(cov_a) - np.trace(cov_b)
    return float(full - cross / 2)


def fd_elementwise(mu_a, cov_a, mu_b, cov_b):
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b) - 2 * np.trace(np.sqrt(cov_a @ cov_b)))


def fd_product_of_roots(mu_a, cov_a, mu_b, cov_b):
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b)
                 - 2 * np.trace(_psd_root(cov_a) @ _psd_root(cov_b)))


def fd_not_squared(mu_a, cov_a, mu_b, cov_b):
    return float(np.sqrt(frechet_distance(mu_a, cov_a, mu_b, cov_b)))


def fd_complex(mu_a, cov_a, mu_b, cov_b):
    return complex(frechet_distance(mu_a, cov_a, mu_b, cov_b))


MISTAKES = [
    ("frechet_distance", fd_no_mean, r"add the mean term"),
    ("frechet_distance", fd_no_two, r"the factor 2\s+is missing"),
    ("frechet_distance", fd_elementwise, r"np\.sqrt is elementwise"),
    ("frechet_distance", fd_product_of_roots, r"unless the two matrices\s+commute"),
    ("frechet_distance", fd_not_squared, r"return the squared distance"),
    ("frechet_distance", fd_complex, r"the result is complex"),
]


SOLUTIONS = {"frechet_distance": frechet_distance}

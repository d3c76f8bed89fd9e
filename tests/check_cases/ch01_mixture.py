"""Chapter 1 exercises (EM for Gaussian mixtures): solutions as a reader writes them, and
the typical mistakes, each with a regex its message must match.

The solutions are plain NumPy, independent of ``gae_course.mixture`` (which computes the
checks' expected answers), so a pass also confirms the package against a second
implementation.
"""

import numpy as np


def log_gaussian(X, mean, covariance):
    """log N(x_i | mean, covariance) for every row of X; shape (n_samples,)."""
    n_features = X.shape[1]
    # covariance = L L^T, so log det(covariance) = 2 sum(log diag L) and the Mahalanobis
    # distance (x - mean)^T covariance^-1 (x - mean) is |L^-1 (x - mean)|^2: no inverse needed.
    L = np.linalg.cholesky(covariance)
    diff = X - mean  # (n, d)
    z = np.linalg.solve(L, diff.T)  # (d, n)
    mahalanobis = np.sum(z**2, axis=0)  # (n,)
    log_det = 2.0 * np.sum(np.log(np.diag(L)))
    return -0.5 * (n_features * np.log(2.0 * np.pi) + log_det + mahalanobis)


def logsumexp(a, axis):
    """log(sum(exp(a), axis)) with the max trick: nothing underflows to log(0)."""
    a_max = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(a_max, axis=axis) + np.log(np.sum(np.exp(a - a_max), axis=axis))


def e_step(X, weights, means, covariances):
    """Log responsibilities (n_samples, n_components) and log p(x_i) (n_samples,)."""
    # log pi_k + log N(x_i | mu_k, Sigma_k), one column per component: (n, K)
    weighted_log_prob = np.column_stack(
        [np.log(w) + log_gaussian(X, m, c) for w, m, c in zip(weights, means, covariances)]
    )
    log_prob_norm = logsumexp(weighted_log_prob, axis=1)  # (n,)
    log_resp = weighted_log_prob - log_prob_norm[:, None]  # (n, K); exp rows sum to 1
    return log_resp, log_prob_norm


def m_step(X, resp, reg_covar):
    """Weights (K,), means (K, d) and covariances (K, d, d) from responsibilities (n, K)."""
    n_samples, n_features = X.shape
    nk = resp.sum(axis=0)  # soft counts N_k, (K,)
    weights = nk / n_samples
    means = resp.T @ X / nk[:, None]  # (K, d)
    covariances = np.empty((len(nk), n_features, n_features))
    for k in range(len(nk)):
        diff = X - means[k]  # (n, d)
        covariances[k] = (resp[:, k, None] * diff).T @ diff / nk[k]
        covariances[k] += reg_covar * np.eye(n_features)  # keeps Sigma_k invertible
    return weights, means, covariances


def kmeans_plusplus(X, n_components, rng):
    """k-means++ seeds: rows of X, the first uniform, each next one drawn with prob. ∝ D(x)^2."""
    n_samples = X.shape[0]
    indices = np.empty(n_components, dtype=np.int64)
    indices[0] = rng.integers(n_samples)
    d2 = np.sum((X - X[indices[0]]) ** 2, axis=1)  # squared distance to the nearest seed: (n,)
    for c in range(1, n_components):
        indices[c] = rng.choice(n_samples, p=d2 / d2.sum())
        d2 = np.minimum(d2, np.sum((X - X[indices[c]]) ** 2, axis=1))
    return X[indices], indices


SOLUTIONS = {
    "log_gaussian": log_gaussian,
    "e_step": e_step,
    "m_step": m_step,
    "kmeans_plusplus": kmeans_plusplus,
}


# log_gaussian ------------------------------------------------------------------------------


def lg_no_log_det(X, mean, covariance):
    diff = X - mean
    mahalanobis = np.sum(diff @ np.linalg.inv(covariance) * diff, axis=1)
    return -0.5 * (X.shape[1] * np.log(2 * np.pi) + mahalanobis)


def lg_no_2pi(X, mean, covariance):
    diff = X - mean
    mahalanobis = np.sum(diff @ np.linalg.inv(covariance) * diff, axis=1)
    return -0.5 * (np.linalg.slogdet(covariance)[1] + mahalanobis)


def lg_column(X, mean, covariance):
    return log_gaussian(X, mean, covariance)[:, None]  # (n, 1) instead of (n,)


def lg_log_of_density(X, mean, covariance):
    d = X.shape[1]
    diff = X - mean
    mahalanobis = np.sum(diff @ np.linalg.inv(covariance) * diff, axis=1)
    density = np.exp(-0.5 * mahalanobis) / np.sqrt((2 * np.pi) ** d * np.linalg.det(covariance))
    return np.log(density)  # log(0.0) = -inf far from the mean


def lg_det(X, mean, covariance):
    diff = X - mean
    mahalanobis = np.sum(diff @ np.linalg.inv(covariance) * diff, axis=1)
    log_det = np.log(np.linalg.det(covariance))  # det underflows to 0.0 in high dimension
    return -0.5 * (X.shape[1] * np.log(2 * np.pi) + log_det + mahalanobis)


def lg_covariance_not_inverse(X, mean, covariance):
    diff = X - mean
    mahalanobis = np.sum(diff @ covariance * diff, axis=1)
    return -0.5 * (X.shape[1] * np.log(2 * np.pi) + np.linalg.slogdet(covariance)[1] + mahalanobis)


# e_step ------------------------------------------------------------------------------------


def _weighted_log_prob(X, weights, means, covariances):
    return np.column_stack(
        [np.log(w) + log_gaussian(X, m, c) for w, m, c in zip(weights, means, covariances)]
    )


def es_not_normalised(X, weights, means, covariances):
    weighted = _weighted_log_prob(X, weights, means, covariances)
    return weighted, logsumexp(weighted, axis=1)  # log_resp left unnormalised


def es_naive_logsumexp(X, weights, means, covariances):
    weighted = _weighted_log_prob(X, weights, means, covariances)
    log_prob_norm = np.log(np.sum(np.exp(weighted), axis=1))  # exp underflows to 0
    return weighted - log_prob_norm[:, None], log_prob_norm


def es_no_weights(X, weights, means, covariances):
    log_density = np.column_stack([log_gaussian(X, m, c) for m, c in zip(means, covariances)])
    log_prob_norm = logsumexp(log_density, axis=1)
    return log_density - log_prob_norm[:, None], log_prob_norm


def es_keepdims(X, weights, means, covariances):
    log_resp, log_prob_norm = e_step(X, weights, means, covariances)
    return log_resp, log_prob_norm[:, None]  # (n, 1)


def es_only_log_resp(X, weights, means, covariances):
    return e_step(X, weights, means, covariances)[0]


# m_step ------------------------------------------------------------------------------------


def ms_divide_by_n(X, resp, reg_covar):
    weights, means, _ = m_step(X, resp, reg_covar)
    n, d = X.shape
    covariances = np.stack(
        [(resp[:, k, None] * (X - means[k])).T @ (X - means[k]) / n for k in range(len(means))]
    )
    return weights, means, covariances + reg_covar * np.eye(d)


def ms_no_reg_covar(X, resp, reg_covar):
    return m_step(X, resp, 0.0)


def ms_unweighted_means(X, resp, reg_covar):
    weights, _, covariances = m_step(X, resp, reg_covar)
    means = np.tile(X.mean(axis=0), (resp.shape[1], 1))
    return weights, means, covariances


def ms_weights_are_counts(X, resp, reg_covar):
    _, means, covariances = m_step(X, resp, reg_covar)
    return resp.sum(axis=0), means, covariances


# kmeans_plusplus ---------------------------------------------------------------------------


def _kpp(X, n_components, rng, weight, nearest=True, first=None):
    """k-means++ with a chosen weighting of the distances (the mistakes below)."""
    n_samples = X.shape[0]
    indices = [int(rng.integers(n_samples)) if first is None else first]
    dist = np.sqrt(np.sum((X - X[indices[0]]) ** 2, axis=1))
    for _ in range(1, n_components):
        w = weight(dist)
        indices.append(int(rng.choice(n_samples, p=w / w.sum())))
        if nearest:
            dist = np.minimum(dist, np.sqrt(np.sum((X - X[indices[-1]]) ** 2, axis=1)))
    indices = np.array(indices)
    return X[indices], indices


def kp_distance_not_squared(X, n_components, rng):
    return _kpp(X, n_components, rng, lambda d: d)


def kp_uniform(X, n_components, rng):
    # every point not yet chosen equally likely
    return _kpp(X, n_components, rng, lambda d: (d > 0).astype(float))


def kp_first_seed_only(X, n_components, rng):
    return _kpp(X, n_components, rng, np.square, nearest=False)


def kp_first_is_row_0(X, n_components, rng):
    return _kpp(X, n_components, rng, np.square, first=0)


def kp_global_random(X, n_components, rng):
    return kmeans_plusplus(X, n_components, np.random.default_rng())  # not the rng given


def kp_farthest(X, n_components, rng):
    n_samples = X.shape[0]
    indices = [int(rng.integers(n_samples))]
    d2 = np.sum((X - X[indices[0]]) ** 2, axis=1)
    for _ in range(1, n_components):
        indices.append(int(np.argmax(d2)))
        d2 = np.minimum(d2, np.sum((X - X[indices[-1]]) ** 2, axis=1))
    indices = np.array(indices)
    return X[indices], indices


def kp_list_of_indices(X, n_components, rng):
    centers, indices = kmeans_plusplus(X, n_components, rng)
    return centers, list(indices)


MISTAKES = [
    # (check, wrong function, regex the message must match)
    ("log_gaussian", lg_no_log_det, r"log-det term -1/2 log det\(covariance\) is missing"),
    ("log_gaussian", lg_no_2pi, r"-d/2 log\(2π\) is missing"),
    ("log_gaussian", lg_column, r"expected shape \(5,\), got shape \(5, 1\)(.|\n)*drop the axis"),
    ("log_gaussian", lg_log_of_density, r"underflows to 0\.0(.|\n)*log space"),
    ("log_gaussian", lg_covariance_not_inverse, r"inverse covariance"),
    ("log_gaussian", lg_det, r"case 5 of 5(.|\n)*det\(covariance\) = 0\.01\^300 underflows"),
    ("e_step", es_not_normalised, r"normalise with log-sum-exp: subtract logsumexp over comp"),
    ("e_step", es_naive_logsumexp, r"case 4 of 4(.|\n)*max trick in log-sum-exp"),
    ("e_step", es_no_weights, r"np\.log\(weights\)"),
    ("e_step", es_keepdims, r"log_prob_norm has the wrong shape(.|\n)*drop the axis of length 1"),
    ("e_step", es_only_log_resp, r"should return 2 values, \(log_resp, log_prob_norm\)"),
    ("m_step", ms_divide_by_n, r"covariances(.|\n)*divide by N_k \(the soft counts\), not n"),
    ("m_step", ms_no_reg_covar, r"add reg_covar to the diagonal"),
    ("m_step", ms_unweighted_means, r"means are not weighted by the responsibilities"),
    ("m_step", ms_weights_are_counts, r"weights = N_k / n"),
    ("kmeans_plusplus", kp_distance_not_squared, r"proportional to the distance D\(x\): square"),
    ("kmeans_plusplus", kp_uniform, r"the next seed is drawn uniformly"),
    ("kmeans_plusplus", kp_first_seed_only, r"repeat a row(.|\n)*NEAREST seed"),
    ("kmeans_plusplus", kp_first_is_row_0, r"first seed is always the same point"),
    ("kmeans_plusplus", kp_global_random, r"same rng(.|\n)*never from np\.random"),
    ("kmeans_plusplus", kp_farthest, r"always the farthest point"),
    ("kmeans_plusplus", kp_list_of_indices, r"indices should be a NumPy array of integers"),
]


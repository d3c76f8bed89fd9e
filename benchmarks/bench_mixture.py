"""Benchmark: the package's EM against scikit-learn's, from the same initialisation.

Run with ``.venv/bin/python benchmarks/bench_mixture.py`` (about two minutes on 2 cores).

For each case both estimators start from identical weights, means and precisions (from one
k-means run), use the same ``tol`` and ``reg_covar``, and are timed over ``--repeats`` fits
(the best time is reported, to keep the other processes on a laptop out of the figure). Each case
runs twice: with the default BLAS threads and with BLAS held to one thread (threadpoolctl
limits NumPy's and SciPy's OpenBLAS pools alike). The table gives seconds per fit, EM
iterations, the final mean log-likelihood per sample of both, and the speed ratio.

The data are drawn from a random 32-dimensional mixture with correlated components, so EM
needs a realistic number of iterations.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from threadpoolctl import threadpool_info, threadpool_limits

from gae_course import mixture

CASES = [  # (n_samples, n_features, n_components)
    (60_000, 32, 10),
    (6_000, 32, 6),
]


def make_data(n_samples, n_features, n_components, rng):
    """Samples from a random mixture with full, correlated covariances. Shape (n, d)."""
    centres = rng.normal(scale=0.25, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n_samples)
    mixing = rng.normal(size=(n_components, n_features, n_features)) / np.sqrt(n_features)
    noise = rng.normal(size=(n_samples, n_features))
    return centres[labels] + np.einsum("nd,nde->ne", noise, mixing[labels])


def shared_init(X, n_components, rng, reg_covar):
    """Weights, means and precisions from one k-means run, for both estimators."""
    _, labels = mixture.kmeans(X, n_components, rng)
    resp = np.eye(n_components)[labels]
    weights, means, covariances = mixture.m_step(X, resp, reg_covar, "full")
    return dict(weights_init=weights, means_init=means, precisions_init=np.linalg.inv(covariances))


def time_fit(make_estimator, X, repeats):
    """Best wall time over ``repeats`` fits, and the last fitted estimator."""
    best = np.inf
    for _ in range(repeats):
        estimator = make_estimator()
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a capped max_iter is fine for timing
            estimator.fit(X)
        best = min(best, time.perf_counter() - start)
    return best, estimator


def run_case(n_samples, n_features, n_components, repeats, seed=0):
    rng = np.random.default_rng(seed)
    X = make_data(n_samples, n_features, n_components, rng)
    settings = dict(n_components=n_components, covariance_type="full", tol=1e-3,
                    reg_covar=1e-6, max_iter=300)
    init = shared_init(X, n_components, rng, settings["reg_covar"])
    ours_s, ours = time_fit(lambda: mixture.GaussianMixture(**settings, **init), X, repeats)
    sk_s, sk = time_fit(lambda: SklearnGaussianMixture(**settings, **init), X, repeats)
    return {
        "case": f"{n_samples}x{n_features}, K={n_components}",
        "ours_s": ours_s, "sklearn_s": sk_s, "speedup": sk_s / ours_s,
        "ours_iter": ours.n_iter_, "sklearn_iter": sk.n_iter_,
        "ours_loglik": ours.score(X), "sklearn_loglik": sk.score(X),
        "loglik_diff_per_sample": abs(ours.score(X) - sk.score(X)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    pools = sorted({(p["internal_api"], p["num_threads"]) for p in threadpool_info()})
    print(f"BLAS/OpenMP pools (api, default threads): {pools}")
    rows = []
    for threads in (None, 1):
        label = "default threads" if threads is None else "1 BLAS thread"
        with threadpool_limits(limits=threads):
            for case in CASES:
                row = run_case(*case, repeats=args.repeats)
                row["threads"] = label
                rows.append(row)

    header = (f"{'case':<18} {'BLAS':<16} {'ours s':>8} {'sklearn s':>10} {'speed-up':>9} "
              f"{'iters':>9} {'loglik ours':>13} {'loglik sklearn':>15} {'|diff|':>8}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['case']:<18} {r['threads']:<16} {r['ours_s']:>8.3f} {r['sklearn_s']:>10.3f} "
              f"{r['speedup']:>8.2f}x {r['ours_iter']:>4}/{r['sklearn_iter']:<4} "
              f"{r['ours_loglik']:>13.6f} {r['sklearn_loglik']:>15.6f} "
              f"{r['loglik_diff_per_sample']:>8.1e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()

"""Benchmark: the package's EM against its matrix products and against scikit-learn's EM.

Run with ``.venv/bin/python benchmarks/bench_mixture.py`` (a few minutes on 2 cores; ``--cases
full`` for the headline case only). ``--baseline OLD.py`` also times another copy of
``mixture.py`` in the same run, e.g. ``git show main:gae_course/mixture.py > /tmp/old.py``,
which gives before/after ratios that survive a busy machine.

For each case every estimator starts from identical weights, means and precisions (from one
k-means run) and uses the same ``tol``, ``reg_covar`` and ``max_iter``. The estimators and
the bound are timed in turns, ``--repeats`` rounds, and each keeps its best round, to keep
other processes out of the figures. Every case runs with BLAS held to each thread count in
``--threads`` (threadpoolctl limits NumPy's and SciPy's OpenBLAS pools alike; the package
uses as many threads as BLAS may).

Columns: milliseconds per EM iteration (fit time / iterations) of the package, of the
baseline copy if any, and of scikit-learn; the *bound*, the time the matrix products of one
iteration take alone with the same threads (see :func:`product_bound`: each product as one
call, as row blocks in a loop, and as row blocks on the package's thread pool, the fastest
kept); the ratio of an iteration to that bound; for full covariances, the time of the
products the package's kernels do (fewer than the bound's: they skip the zeros of the
triangular factors and the blocks below the diagonal of each symmetric moment, see
:func:`own_products`) and the ratio to it, which is what the elementwise work costs; the
speed-up over scikit-learn; iterations; and the difference of the final mean log-likelihood
per sample from scikit-learn's.

The 32-dimensional data are drawn from a random mixture with correlated components, so EM
needs a realistic number of iterations; the 784-dimensional "pixel" data mimic chapter 1's
diagonal fits of 20 000 images (values in [0, 1], a fixed number of iterations).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
import warnings

import numpy as np
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from threadpoolctl import threadpool_info, threadpool_limits

from gae_course import _blocks, mixture

# name -> (n_samples, n_features, n_components, covariance_type, data, tol, reg_covar, max_iter)
CASES = {
    "full": (60_000, 32, 10, "full", "correlated", 1e-3, 1e-6, 300),
    "full-small": (6_000, 32, 6, "full", "correlated", 1e-3, 1e-6, 300),
    "diag": (60_000, 32, 10, "diag", "correlated", 1e-3, 1e-6, 300),
    "spherical": (60_000, 32, 10, "spherical", "correlated", 1e-3, 1e-6, 300),
    "pixels-5": (20_000, 784, 5, "diag", "pixels", 0.0, 1e-2, 10),
    "pixels-10": (20_000, 784, 10, "diag", "pixels", 0.0, 1e-2, 10),
    "pixels-15": (20_000, 784, 15, "diag", "pixels", 0.0, 1e-2, 10),
}


def make_data(n_samples, n_features, n_components, rng):
    """Samples from a random mixture with full, correlated covariances. Shape (n, d)."""
    centres = rng.normal(scale=0.25, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n_samples)
    mixing = rng.normal(size=(n_components, n_features, n_features)) / np.sqrt(n_features)
    noise = rng.normal(size=(n_samples, n_features))
    return centres[labels] + np.einsum("nd,nde->ne", noise, mixing[labels])


def make_pixels(n_samples, n_features, n_components, rng):
    """Image-like data in [0, 1]: K prototype 'images' plus pixel noise. Shape (n, d)."""
    prototypes = rng.uniform(size=(n_components, n_features)) ** 3  # mostly dark pixels
    labels = rng.integers(n_components, size=n_samples)
    noisy = prototypes[labels] + 0.2 * rng.normal(size=(n_samples, n_features))
    return np.clip(noisy, 0.0, 1.0)


def shared_init(X, n_components, covariance_type, rng, reg_covar):
    """Weights, means and precisions from one k-means run, for every estimator."""
    _, labels = mixture.kmeans(X, n_components, rng)
    resp = np.eye(n_components)[labels]
    weights, means, covariances = mixture.m_step(X, resp, reg_covar, covariance_type)
    precisions = np.linalg.inv(covariances) if covariance_type == "full" else 1.0 / covariances
    return dict(weights_init=weights, means_init=means, precisions_init=precisions)


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


def best_time(function, repeats):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


# Rows per block tried for the bound's blocked products; the fastest is kept.
BOUND_BLOCK_ROWS = (256, 744, 2048)


def block_sizes(n):
    """Every number of rows a block has when ``n`` rows are cut by each BOUND_BLOCK_ROWS."""
    return {size for block_rows in BOUND_BLOCK_ROWS for size in (block_rows, n % block_rows)
            if size}


def row_block_times(n, work, repeats):
    """Best seconds of ``work(rows)`` over every row block: serially and on the pool.

    ``work(rows)`` does one block's product into a reused buffer. The pool is the package's
    own (gae_course._blocks: as many threads as BLAS may use, BLAS on one thread in each),
    so on two threads the bound gets the same two-core help that the package's kernels get.
    """
    best = np.inf
    for block_rows in BOUND_BLOCK_ROWS:
        starts = range(0, n, block_rows)
        serial = lambda: [work(slice(s, min(s + block_rows, n))) for s in starts]  # noqa: E731
        pooled = lambda: _blocks.for_each_block(n, block_rows, work)  # noqa: E731
        best = min(best, best_time(serial, repeats), best_time(pooled, repeats))
    return best


def mapped_product(left, right):
    """A timer for left (a, q) @ right (q, n), whole or cut into blocks of its n columns.

    The E-step's shape: every block of rows of the data gives its own block of output.
    Returns ``seconds(repeats)``; the operands are made here, once.
    """
    n = right.shape[1]
    right_t = np.ascontiguousarray(right.T)  # (n, q): a block of rows is contiguous

    def work(rows):
        out = _blocks.scratch("bound_out", (left.shape[0], rows.stop - rows.start))
        np.matmul(left, right_t[rows].T, out=out)

    return lambda repeats: min(best_time(lambda: left @ right, repeats),
                               row_block_times(n, work, repeats))


def summed_products(whole_pairs, block_operands):
    """A timer for a sum over the n data rows (the M-step's shape): whole, or in row blocks.

    ``whole_pairs``: the (left (a, n), right (n, b)) pairs as one call each.
    ``block_operands(n_rows)`` gives the pairs of one block: contiguous buffers of
    ``n_rows`` rows, made once here and reused, as the package's kernels build each block's
    factors in reused buffers. Returns ``seconds(repeats)``.
    """
    n = whole_pairs[0][1].shape[0]
    operands = {size: block_operands(size) for size in block_sizes(n)}

    def work(rows):
        for left, right in operands[rows.stop - rows.start]:
            left @ right

    return lambda repeats: min(
        best_time(lambda: [left @ right for left, right in whole_pairs], repeats),
        row_block_times(n, work, repeats))


def product_bound(X, n_components, covariance_type):
    """A timer for the matrix products of one EM iteration alone (same threads).

    Returns ``seconds(repeats)``; the operands are made once, here. Random factors of the
    right shapes stand in for the fitted ones (the time of a product does not depend on its
    values). Each product is timed as one call, as row blocks in a loop and as row blocks
    on the package's thread pool, and the fastest is kept, so that the bound is as tight as
    this machine allows with the given threads.
    Full covariances: the E-step's [-mu U; U_1 ... U_K]^T [1, x]^T, shape (K*d, d+1) x
    (d+1, n), and the M-step's weighted second moments of every component, the faster of
    one product (K*(d+1), n) x (n, d) (the dense form of the package's) and K symmetric
    products (d, n) x (n, d) (one per component, as scikit-learn does).
    """
    rng = np.random.default_rng(0)
    n, d = X.shape
    K = n_components

    if covariance_type == "full":
        x_and_one_t = np.vstack([X.T, np.ones((1, n))])  # (d+1, n)
        e_step = mapped_product(rng.normal(size=(K * d, d + 1)), x_and_one_t)
        stacked = summed_products(  # (K*(d+1), n) @ (n, d)
            [(rng.normal(size=(K * (d + 1), n)), X)],
            lambda m: [(rng.normal(size=(K * (d + 1), m)), rng.normal(size=(m, d)))])
        scaled = [np.ascontiguousarray(X.T) * rng.uniform(size=n) for _ in range(K)]

        def symmetric_blocks(m):
            w = rng.normal(size=(m, d))
            return [(w.T, w)] * K  # w.T @ w: NumPy calls the symmetric product (syrk)

        per_component = summed_products([(w, w.T) for w in scaled], symmetric_blocks)
        return lambda repeats: e_step(repeats) + min(stacked(repeats), per_component(repeats))
    resp_t = rng.dirichlet(np.ones(K), size=n).T.copy()  # (K, n)
    squares = X**2
    columns_t = rng.normal(size=(K, d))
    e_steps = [mapped_product(columns_t, X.T)]
    sums = [(resp_t, X)]
    if covariance_type == "diag":  # the squares go through the same products again
        e_steps.append(mapped_product(columns_t, squares.T))
        sums.append((resp_t, squares))
    m_step = summed_products(
        sums, lambda m: [(rng.normal(size=(K, m)), rng.normal(size=(m, d)))] * len(sums))
    return lambda repeats: sum(e_step(repeats) for e_step in e_steps) + m_step(repeats)


def own_products(X, n_components):
    """A timer for the products the package's full-covariance kernels do, as they do them.

    The bound above is the dense products of one iteration (the yardstick). The kernels do
    less: the E-step skips the zeros of the triangular U_k and the M-step the blocks below
    the diagonal of each symmetric second moment, product by product over column groups
    (``mixture._column_groups``), in row blocks on the package's pool. The ratio of an
    iteration to this time is what the elementwise work around the products costs.
    Returns ``seconds(repeats)``; the operands (random, of the kernels' shapes) are made here.
    """
    rng = np.random.default_rng(1)
    n, d = X.shape
    K = n_components
    groups = mixture._column_groups(d)
    e_factors = [rng.normal(size=(K * (stop - start), stop + 1)) for start, stop in groups]
    one_and_x = np.hstack([np.ones((n, 1)), X])  # (n, d+1)

    def e_work(rows):
        y = _blocks.scratch("own_y", (K * d, rows.stop - rows.start))
        for (start, stop), factor in zip(groups, e_factors):
            np.matmul(factor, one_and_x[rows, :stop + 1].T, out=y[K * start:K * stop])

    width = groups[0][1]
    # as the kernel: one group's left factor at a time, [resp; resp * y of the group]
    m_operands = {m: (rng.normal(size=(K * (1 + width), m)), rng.normal(size=(m, d)))
                  for m in block_sizes(n)}

    def m_work(rows):
        left, y = m_operands[rows.stop - rows.start]
        for start, _ in groups:
            left[0 if start == 0 else K:] @ y[:, start:]

    return lambda repeats: row_block_times(n, e_work, repeats) + row_block_times(n, m_work,
                                                                                 repeats)


def load_baseline(path):
    """Import another copy of mixture.py (e.g. main's) as a module, to time it alongside."""
    spec = importlib.util.spec_from_file_location("baseline_mixture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_case(name, repeats, baseline=None, seed=0):
    """One row of the table. The estimators and the bound are timed in turns, ``repeats``
    rounds of one fit each (and one bound), and each keeps its best round: on a shared
    machine a slow minute then slows every column alike instead of one of them."""
    n_samples, n_features, n_components, covariance_type, data, tol, reg_covar, max_iter = (
        CASES[name])
    rng = np.random.default_rng(seed)
    make = make_data if data == "correlated" else make_pixels
    X = make(n_samples, n_features, n_components, rng)
    settings = dict(n_components=n_components, covariance_type=covariance_type, tol=tol,
                    reg_covar=reg_covar, max_iter=max_iter)
    init = shared_init(X, n_components, covariance_type, rng, reg_covar)
    estimators = {"ours": mixture.GaussianMixture, "sklearn": SklearnGaussianMixture}
    if baseline is not None:
        estimators["baseline"] = baseline.GaussianMixture
    best = dict.fromkeys([*estimators, "bound", "own"], np.inf)
    fitted = {}
    bound = product_bound(X, n_components, covariance_type)
    # diag and spherical kernels do exactly the bound's products
    own = own_products(X, n_components) if covariance_type == "full" else None
    for _ in range(repeats):
        for key, estimator in estimators.items():
            seconds, fitted[key] = time_fit(lambda: estimator(**settings, **init), X, 1)
            best[key] = min(best[key], seconds / fitted[key].n_iter_)
        best["bound"] = min(best["bound"], bound(1))
        if own is not None:
            best["own"] = min(best["own"], own(1))
    ours, sk = fitted["ours"], fitted["sklearn"]
    row = {
        "case": f"{name}: {n_samples}x{n_features}, K={n_components}",
        "ours_ms_per_iter": 1e3 * best["ours"], "sklearn_ms_per_iter": 1e3 * best["sklearn"],
        "bound_ms": 1e3 * best["bound"], "ratio_to_bound": best["ours"] / best["bound"],
        "own_products_ms": 1e3 * best["own"] if own is not None else None,
        "ratio_to_own_products": best["ours"] / best["own"] if own is not None else None,
        "speedup": best["sklearn"] / best["ours"],
        "ours_iter": ours.n_iter_, "sklearn_iter": sk.n_iter_,
        "ours_loglik": ours.score(X), "sklearn_loglik": sk.score(X),
        "loglik_diff_per_sample": abs(ours.score(X) - sk.score(X)),
    }
    if baseline is not None:
        row["baseline_ms_per_iter"] = 1e3 * best["baseline"]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--baseline", help="another mixture.py to time alongside (before/after)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    baseline = load_baseline(args.baseline) if args.baseline else None

    pools = sorted({(p["internal_api"], p["num_threads"]) for p in threadpool_info()})
    print(f"BLAS/OpenMP pools (api, default threads): {pools}")
    base_header = f" {'baseline':>9}" if baseline else ""
    header = (f"{'case':<32} {'thr':>3} {'ours ms/it':>10}{base_header} {'sklearn':>8} "
              f"{'bound ms':>8} {'/bound':>6} {'own ms':>6} {'/own':>5} {'vs sk':>6} {'iters':>9} "
              f"{'|dLL|/sample':>12}")
    print(header)
    print("-" * len(header), flush=True)
    rows = []
    for threads in args.threads:
        with threadpool_limits(limits=threads):
            for name in args.cases:
                r = run_case(name, args.repeats, baseline)
                r["threads"] = threads
                rows.append(r)
                base = f" {r['baseline_ms_per_iter']:>9.1f}" if baseline else ""
                own = (f"{r['own_products_ms']:>6.1f} {r['ratio_to_own_products']:>4.2f}x"
                       if r["own_products_ms"] is not None else f"{'-':>6} {'-':>5}")
                print(f"{r['case']:<32} {threads:>3} {r['ours_ms_per_iter']:>10.1f}{base} "
                      f"{r['sklearn_ms_per_iter']:>8.1f} {r['bound_ms']:>8.1f} "
                      f"{r['ratio_to_bound']:>5.2f}x {own} {r['speedup']:>5.2f}x "
                      f"{r['ours_iter']:>4}/{r['sklearn_iter']:<4} "
                      f"{r['loglik_diff_per_sample']:>12.1e}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()

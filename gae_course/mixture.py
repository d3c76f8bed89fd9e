r"""Gaussian mixture models fitted by expectation-maximisation, in NumPy float64.

The model (Bishop, *Pattern Recognition and Machine Learning*, 2006, section 9.2):

.. math::

    p(x) = \sum_{k=1}^K \pi_k \, \mathcal N(x \mid \mu_k, \Sigma_k).

EM alternates two steps (PRML eqs. 9.23-9.27), both implemented here as pure functions:

* :func:`e_step` - responsibilities
  :math:`\gamma_{ik} = \pi_k \mathcal N(x_i|\mu_k,\Sigma_k) / \sum_j \pi_j \mathcal N(x_i|\mu_j,\Sigma_j)`,
  computed in log space with log-sum-exp so that far-away points do not underflow;
* :func:`m_step` - :math:`N_k = \sum_i \gamma_{ik}`, :math:`\pi_k = N_k / n`,
  :math:`\mu_k = \frac{1}{N_k}\sum_i \gamma_{ik} x_i`,
  :math:`\Sigma_k = \frac{1}{N_k}\sum_i \gamma_{ik}(x_i-\mu_k)(x_i-\mu_k)^\top + \text{reg\_covar}\, I`.

With ``reg_covar = 0`` each EM iteration never lowers the log-likelihood (PRML section 9.4).
The ``+ reg_covar I`` keeps every eigenvalue above ``reg_covar`` but is a heuristic, not the
maximiser over ``{Sigma >= reg_covar I}`` (that one clips eigenvalues at ``max(lambda,
reg_covar)``; this shifts them all), so with ``reg_covar > 0`` EM climbs no fixed objective
exactly.

Densities go through the Cholesky factor of the *precision* (scikit-learn's convention): with
:math:`U_k U_k^\top = \Sigma_k^{-1}`,
:math:`\log \mathcal N(x|\mu_k,\Sigma_k) = -\tfrac{d}{2}\log 2\pi + \log\det U_k - \tfrac12 \|(x-\mu_k)U_k\|^2`,
which needs one triangular factor per component and no matrix inverse at evaluation time.

:class:`GaussianMixture` wraps the kernels with scikit-learn's interface (``fit``,
``score_samples``, ``predict_proba``, ``sample``, ``bic``, ...). scikit-learn is the tests' oracle,
never a dependency.

Speed: the kernels work on row blocks whose temporaries stay in cache, on as many threads as
BLAS may use (all of that lives in :mod:`gae_course._blocks`). For full covariances the E-step
works on all components at once, and so does the M-step: the weighted moments of every
component about one centre near the data's mean come out of the same products (see
:func:`_full_covariances` for what that costs in rounding, and how it is kept under 1e-12).
Each step does a few products per row block, one per column group (:func:`_column_groups`),
which skip the zeros of the triangular factors and the blocks below the diagonal of the
symmetric moments: 36 % fewer operations at d = 32. ``benchmarks/bench_mixture.py`` times an
EM iteration against its matrix products.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from gae_course import _blocks

COVARIANCE_TYPES = ("full", "diag", "spherical")
# log-sum-exp treats terms below exp(-700) of the largest as exp(-700): see _expectation.
_EXP_FLOOR = -700.0
# ... and the E-step sets responsibilities below exp(-699) to 0: a margin over the floor,
# since np.exp need not round exp(-700) to the same last bit as math.exp.
_ZERO_BELOW = math.exp(_EXP_FLOOR + 1.0)
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")

class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the log-likelihood gain fell below ``tol``."""


class NotFittedError(ValueError, AttributeError):
    """A method that needs fitted parameters was called before :meth:`GaussianMixture.fit`."""


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def check_X(X, n_features=None, name="X"):
    """Return X as a C-contiguous float64 array of shape (n_samples, n_features), or raise.

    Nothing is reshaped: a 1-D array is refused with a hint, because guessing whether it is
    one sample or one feature silently gives wrong answers.
    """
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers; got dtype {X.dtype}.")
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D of shape (n_samples, n_features); got shape {X.shape}. "
            "Use X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single "
            "sample; images of shape (n, 28, 28) become X.reshape(len(X), -1)."
        )
    X = np.ascontiguousarray(X, dtype=np.float64)
    if not np.isfinite(X).all():
        row = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ValueError(
            f"{name} contains NaN or infinity (first in row {row}); drop or impute those rows "
            "before fitting a Gaussian mixture."
        )
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} features but the mixture was fitted on {n_features}; "
            "pass data with the same columns as at fit time."
        )
    return X


def _check_covariance_type(covariance_type):
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}; got {covariance_type!r}."
        )


# --------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------


def logsumexp(a, axis=-1):
    """log(sum(exp(a))) along ``axis`` without overflow or underflow (the max trick).

    Rows that are all ``-inf`` give ``-inf`` (not NaN).
    """
    a_max = np.max(a, axis=axis, keepdims=True)
    a_max = np.where(np.isfinite(a_max), a_max, 0.0)
    with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer there
        out = np.log(np.sum(np.exp(a - a_max), axis=axis, keepdims=True)) + a_max
    return np.squeeze(out, axis=axis)


def compute_precision_cholesky(covariances, covariance_type="full"):
    """Cholesky factors of the precision matrices, from covariances.

    Parameters
    ----------
    covariances : ndarray
        Shape (K, d, d) for 'full', (K, d) for 'diag', (K,) for 'spherical'.
    covariance_type : {'full', 'diag', 'spherical'}

    Returns
    -------
    precisions_cholesky : ndarray, same shape as ``covariances``
        For 'full', upper-triangular ``U_k`` with ``U_k @ U_k.T == inv(covariances[k])``;
        otherwise ``1 / sqrt(covariances)``.
    """
    _check_covariance_type(covariance_type)
    covariances = np.asarray(covariances, dtype=np.float64)
    message = (
        "Fitting the mixture model failed because some components have ill-defined "
        "(singular or non-positive) covariance matrices{where}. Try decreasing the number of "
        "components, increasing reg_covar, or scaling the input data."
    )
    if covariance_type == "full":
        try:
            cov_chol = np.linalg.cholesky(covariances)  # (K, d, d), lower
        except np.linalg.LinAlgError:
            bad = [k for k, c in enumerate(covariances) if not _is_positive_definite(c)]
            raise ValueError(message.format(where=f" (components {bad})")) from None
        # inv(L).T is upper triangular; clear the rounding noise below its diagonal.
        return np.triu(np.linalg.inv(cov_chol).transpose(0, 2, 1))
    if np.any(covariances <= 0.0):
        bad = np.flatnonzero(np.any(covariances.reshape(len(covariances), -1) <= 0.0, axis=1))
        raise ValueError(message.format(where=f" (components {bad.tolist()})"))
    return 1.0 / np.sqrt(covariances)


def _is_positive_definite(matrix):
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        return False
    return True


def _log_det_cholesky(precisions_cholesky, covariance_type, n_features):
    """log det of each precision Cholesky factor, shape (K,); it equals -0.5 log det Sigma_k."""
    if covariance_type == "full":
        diagonals = np.diagonal(precisions_cholesky, axis1=1, axis2=2)
        return np.sum(np.log(diagonals), axis=1)
    if covariance_type == "diag":
        return np.sum(np.log(precisions_cholesky), axis=1)
    return n_features * np.log(precisions_cholesky)


def _log_density_of_block(means, precisions_cholesky, covariance_type, log_weights=None):
    """A function ``log_density(block, out)`` writing log N(x | mu_k, Sigma_k) into ``out``.

    ``block`` is a block of rows, shape (rows, d); ``out`` has shape (K, rows) and may be a
    view into a larger (K, n) array. With ``log_weights`` (K,), it writes
    log pi_k + log N(x | mu_k, Sigma_k) instead. Everything that does not depend on the rows
    is computed here, once per call of a kernel, so that what runs on each row block (see
    :mod:`gae_course._blocks`) is a few matrix products and a few elementwise operations
    on data in cache.
    """
    n_components, n_features = means.shape
    log_det = _log_det_cholesky(precisions_cholesky, covariance_type, n_features)
    offset = -0.5 * n_features * math.log(2.0 * math.pi) + log_det  # (K,)
    if log_weights is not None:
        offset = offset + log_weights
    offset = offset[:, np.newaxis]  # (K, 1)

    if covariance_type == "full":
        # 0.5 ||(x - mu_k) U_k||^2 for all k at once: [-mu_k U_k; U_k]^T [1, x]^T / sqrt 2 is
        # a matrix product of shape (K*d, rows); its first input column subtracts mu_k U_k
        # and the 1/sqrt(2) gives the 1/2, so no separate pass over the (K, d, rows) array
        # does either. The result comes out component-major, so the sums of squares land
        # directly in the (K, rows) layout of the log-sum-exp.
        # An upper-triangular U_k (what compute_precision_cholesky gives) has zeros below its
        # diagonal: output column j needs only x_0 ... x_j. The output columns are cut into
        # a few groups (_column_groups), and group [start, stop) multiplies only the first
        # stop + 1 inputs [1, x_0 ... x_stop-1]: 36 % fewer operations at d = 32.
        # The lower-triangular factor that precisions_init gives (U U^T = Sigma^-1 as well)
        # is multiplied out whole, as one group.
        triangular = np.array_equal(precisions_cholesky, np.triu(precisions_cholesky))
        groups = _column_groups(n_features) if triangular else [(0, n_features)]
        shift = -np.einsum("kd,kde->ke", means, precisions_cholesky)  # (K, d): -mu_k U_k
        factors = []  # (start, stop, factor (K*(stop-start), stop+1)), rows ordered (k, j)
        for start, stop in groups:
            u_columns = precisions_cholesky[:, :stop, start:stop].transpose(0, 2, 1)
            factor = np.concatenate([shift[:, start:stop, np.newaxis], u_columns],
                                    axis=2)  # (K, stop - start, stop + 1)
            factors.append((start, stop, np.ascontiguousarray(
                factor.reshape(-1, stop + 1) * math.sqrt(0.5))))

        def log_density(block, out):
            n_rows = len(block)
            one_and_x = _blocks.scratch("one_and_x", (n_rows, n_features + 1))
            one_and_x[:, 0] = 1.0
            one_and_x[:, 1:] = block
            y = _blocks.scratch("y", (n_components * n_features, n_rows))  # rows (g, k, j)
            for start, stop, factor in factors:
                np.matmul(factor, one_and_x[:, :stop + 1].T,
                          out=y[n_components * start:n_components * stop])
            y = y.reshape(len(factors), n_components, -1, n_rows)  # (groups, K, width, rows)
            np.einsum("gkjr,gkjr->kr", y, y, out=out)  # squares and sums in one pass
            np.subtract(offset, out, out=out)

    elif covariance_type == "diag":
        # Expand ||(x - mu) / sigma||^2 into matrix products (no (K, rows, d) temporary).
        precisions = precisions_cholesky**2  # (K, d)
        offset = offset - 0.5 * np.sum(means**2 * precisions, axis=1)[:, np.newaxis]  # (K, 1)
        linear = means * precisions  # (K, d)
        half_precisions = -0.5 * precisions  # (K, d)

        def log_density(block, out):
            squares = np.multiply(block, block, out=_blocks.scratch("squares", block.shape))
            np.matmul(linear, block.T, out=out)
            out += half_precisions @ squares.T
            out += offset

    else:  # spherical
        precisions = (precisions_cholesky**2)[:, np.newaxis]  # (K, 1)
        offset = offset - 0.5 * np.sum(means**2, axis=1)[:, np.newaxis] * precisions  # (K, 1)
        linear = means * precisions  # (K, d)

        def log_density(block, out):
            squared_norms = np.einsum("rd,rd->r", block, block)  # (rows,)
            np.matmul(linear, block.T, out=out)
            out -= 0.5 * precisions * squared_norms
            out += offset

    return log_density


# Column groups of the triangular and symmetric products (see _column_groups): at most this
# many, of at least this many columns each. Two to four groups were the fastest at d = 16, 32
# and 64; more, smaller products lose to BLAS's per-call overhead.
MAX_COLUMN_GROUPS = 4
MIN_GROUP_COLUMNS = 4


def _column_groups(n_features):
    """Cut ``range(n_features)`` into a few contiguous groups of equal width: [(start, stop)].

    Where a product's result has structure (the triangular U_k of the E-step, the symmetric
    second moments of the M-step), a group of output columns [start, stop) needs only part
    of the input, and the products done group by group skip most of the zeros, or most of
    the mirror-image half, that one whole product would compute. Equal widths let the E-step
    sum its squares over all groups in one pass. The most groups, up to MAX_COLUMN_GROUPS, that
    divide ``n_features`` into widths of at least MIN_GROUP_COLUMNS; else one group.
    """
    n_groups = next(g for g in range(MAX_COLUMN_GROUPS, 0, -1)
                    if g == 1 or (n_features % g == 0 and n_features // g >= MIN_GROUP_COLUMNS))
    width = n_features // n_groups
    return [(g * width, (g + 1) * width) for g in range(n_groups)]


def _rows_per_block(n_components, n_features, covariance_type):
    # The largest temporary of a block: its (rows, K*d) product (full) or (rows, d) squares.
    if covariance_type == "full":
        return _blocks.rows_per_block(8 * (n_components + 1) * n_features)
    return _blocks.rows_per_block(8 * (n_components + n_features))


def log_gaussian_density(X, means, precisions_cholesky, covariance_type="full"):
    """log N(x_i | mu_k, Sigma_k) for every sample and component.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    means : ndarray of shape (n_components, n_features)
    precisions_cholesky : ndarray
        From :func:`compute_precision_cholesky`: (K, d, d), (K, d) or (K,).
    covariance_type : {'full', 'diag', 'spherical'}

    Returns
    -------
    log_prob : ndarray of shape (n_samples, n_components)
    """
    _check_covariance_type(covariance_type)
    log_density = _log_density_of_block(means, precisions_cholesky, covariance_type)
    log_prob_t = np.empty((means.shape[0], X.shape[0]))  # (K, n)

    def one_block(rows):
        log_density(X[rows], out=log_prob_t[:, rows])

    _blocks.for_each_block(len(X), _rows_per_block(*means.shape, covariance_type), one_block)
    return log_prob_t.T


def e_step(X, weights, means, precisions_cholesky, covariance_type="full"):
    """Expectation step: log-responsibilities and the per-sample log-likelihood.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    precisions_cholesky : ndarray
        (K, d, d), (K, d) or (K,) according to ``covariance_type``.
    covariance_type : {'full', 'diag', 'spherical'}

    Returns
    -------
    log_resp : ndarray of shape (n_samples, n_components)
        log gamma_ik; ``exp(log_resp)`` has rows summing to one.
    log_prob_norm : ndarray of shape (n_samples,)
        log p(x_i) = logsumexp_k [log pi_k + log N(x_i | mu_k, Sigma_k)].
    """
    log_resp_t, log_prob_norm = _expectation(X, weights, means, precisions_cholesky,
                                             covariance_type, exponentiate=False)
    return log_resp_t.T, log_prob_norm


def _expectation(X, weights, means, precisions_cholesky, covariance_type, exponentiate):
    """The E-step, with responsibilities as (K, n) logs, or exponentiated if ``exponentiate``.

    :meth:`GaussianMixture.fit` wants gamma itself: exponentiating inside each block reuses
    the exponentials of the log-sum-exp (np.exp is the costliest elementwise operation
    here), and sets to 0 every gamma below exp(-699) = 3e-304 of the largest one in its row:
    they change nothing, and as subnormal numbers (below 1e-308) they would slow the matrix
    products of the M-step many times over.
    """
    _check_covariance_type(covariance_type)
    with np.errstate(divide="ignore"):  # a weight of exactly 0 is a legal -inf
        log_weights = np.log(weights)
    log_joint = _log_density_of_block(means, precisions_cholesky, covariance_type, log_weights)
    # Everything is held as (K, n): the log-sum-exp over the K components then reduces along
    # contiguous rows of a block instead of along rows of length K (several times faster).
    out_t = np.empty((len(weights), len(X)))  # (K, n)
    log_prob_norm = np.empty(len(X))

    def one_block(rows):
        out = out_t[:, rows]  # (K, rows), a view: every step below writes into it
        log_joint(X[rows], out=out)  # log pi_k + log N(x_i | mu_k, Sigma_k)
        row_max = out.max(axis=0)  # (rows,), the max trick of logsumexp
        row_max[~np.isfinite(row_max)] = 0.0
        gap = np.subtract(out, row_max, out=out)  # (K, rows), <= 0
        # exp of anything below -700 is taken as exp(-700) = 1e-304, which changes a sum of
        # terms >= 1 by nothing, and spares np.exp its underflow path (about 4x slower).
        # For the responsibilities the exponentials overwrite `out` (gap is not needed
        # after them); for the log-responsibilities they go to a scratch buffer, keeping gap.
        shifted = out if exponentiate else _blocks.scratch("shifted", out.shape)
        np.maximum(gap, _EXP_FLOOR, out=shifted)
        np.exp(shifted, out=shifted)
        total = shifted.sum(axis=0)  # (rows,), >= exp(-700) > 0: its log is finite
        log_total = np.log(total)
        log_prob_norm[rows] = log_total + row_max
        if exponentiate:
            np.copyto(shifted, 0.0, where=shifted < _ZERO_BELOW)  # the floored terms
            np.divide(shifted, total, out=shifted)
        else:
            np.subtract(gap, log_total, out=gap)

    # One pass over the rows: each block's densities are normalised while still in cache.
    _blocks.for_each_block(len(X), _rows_per_block(*means.shape, covariance_type), one_block)
    return out_t, log_prob_norm


def _weighted_sums(X, resp):
    """resp.T @ X, shape (K, d), summed over row blocks like every other product here.

    Not one call on all rows: a product on both cores leaves OpenBLAS's second thread
    spinning for a while after it returns (waiting for more work), and that thread then
    takes a core from the block threads of the kernels that follow.
    """
    # Few, large blocks (the operands are views, nothing is copied): as fast as one call on
    # one thread. The blocks do not depend on the thread count, so neither do the bits.
    step = max(1024, -(-len(X) // _blocks.MAX_CHUNKS))

    def add_block(rows, total):
        total += resp[rows].T @ X[rows]

    return _blocks.sum_over_blocks(len(X), step, add_block, (resp.shape[1], X.shape[1]))


def _weighted_scatter(X, resp, means):
    """sum_i resp_ik (x_i - mu_k)(x_i - mu_k)^T for every component k, shape (K, d, d).

    The exact way, centred on each component's own mean: :func:`_full_covariances` falls
    back on it for the components whose moments about its centre would lose too many
    digits. It costs two elementwise passes over the data per component (the one-pass
    moments cost one multiply per element and component).
    """
    n_samples, n_features = X.shape
    n_components = resp.shape[1]
    # Work on X^T (d, rows): weighting a sample by sqrt(gamma_ik) then scales a contiguous
    # run of memory, and w @ w.T below is a product of a matrix with its own transpose, which
    # NumPy computes as one symmetric rank-k update (half the work of a general product).
    # The transpose and the square roots are taken block by block, in cache and on every
    # block thread, rather than once over all n rows on one thread.
    step = _blocks.rows_per_block(8 * n_features, minimum=1024)  # a (d, step) buffer

    def add_block(rows, total):
        n_rows = rows.stop - rows.start
        x_t = _blocks.scratch("x_transposed", (n_features, n_rows))  # (d, rows)
        np.copyto(x_t, X[rows].T)
        sqrt_resp_t = _blocks.scratch("sqrt_resp", (n_components, n_rows))  # (K, rows)
        np.sqrt(resp[rows].T, out=sqrt_resp_t)
        w = _blocks.scratch("weighted", x_t.shape)
        for k in range(n_components):
            # Subtracting mu_k first, rather than using E[x x^T] - mu mu^T, keeps even a
            # component collapsed onto a single point exact.
            np.subtract(x_t, means[k][:, np.newaxis], out=w)
            w *= sqrt_resp_t[k]
            total[k] += w @ w.T

    return _blocks.sum_over_blocks(n_samples, step, add_block,
                                   (n_components, n_features, n_features))


# _full_covariances's moments about c are off by about 1e-14 x amplification, relative to a
# covariance's scale (8e-14 at amplification 87 in tests/test_mixture.py). Past this
# amplification a component is computed again about its own mean, the exact way.
MAX_AMPLIFICATION = 100.0


def _moments_about(X, resp, center):
    """Weighted sums and second moments of y = x - center for every component, in one pass.

    Returns
    -------
    sums : ndarray of shape (K, d)
        sum_i resp_ik y_i
    second_moments : ndarray of shape (K, d, d)
        sum_i resp_ik y_i y_i^T. The blocks below the diagonal are exact mirror images of
        those above it; the diagonal blocks are symmetric only to rounding
        (:func:`_full_covariances` symmetrises them).

    Both come out of a few matrix products per block: [resp_ik ; resp_ik y_ia] (rows of the
    left factor, the only elementwise work: one multiply per element) times y. Since the
    second moments are symmetric, the coordinates a are cut into groups (_column_groups) and
    the rows of group [start, stop) are multiplied only by the columns b >= start of y; the
    first product also carries the K rows resp_ik, which give the sums. At d = 32 that is
    36 % fewer operations than one product for every (a, b). The left factor is built
    component-major from y^T, so that every NumPy loop runs along the block's rows.
    """
    n_samples, n_features = X.shape
    n_components = resp.shape[1]
    k_times_d = n_components * n_features
    groups = _column_groups(n_features)
    width = groups[0][1]  # every group has this width
    # Group g's product: rows [resp (K rows, first group only); resp_ik y_ia for a in the
    # group (K*width rows)] times y[:, start:]. Its sum lives in parts[g] of one flat total.
    parts, size = [], 0
    for start, stop in groups:
        shape = (n_components * (width + (start == 0)), n_features - start)
        parts.append((start, stop, slice(size, size + shape[0] * shape[1]), shape))
        size += shape[0] * shape[1]
    # Blocks sized as if the left factors of all groups were held at once: blocks sized to
    # what is held (one group) were 5 % faster on two threads but 5 % slower on one.
    step = _blocks.rows_per_block(8 * (k_times_d + n_components + n_features), minimum=256)

    def add_block(rows, total):
        n_rows = rows.stop - rows.start
        # y, then its transpose: reading X's rows in order and transposing in cache is
        # twice as fast as subtracting straight into the transposed layout.
        y = np.subtract(X[rows], center, out=_blocks.scratch("centred", (n_rows, n_features)))
        y_t = _blocks.scratch("centred_t", (n_features, n_rows))  # (d, rows)
        np.copyto(y_t, y.T)
        resp_t = resp[rows].T  # (K, rows)
        # One group's left factor at a time, in one buffer: it stays in cache between the
        # multiply that writes it and the product that reads it (faster than building all
        # groups first, by 2-4 % on one and two threads).
        left = _blocks.scratch("weighted_t", (n_components * (1 + width), n_rows))
        left[:n_components] = resp_t
        for start, stop, where, shape in parts:
            np.multiply(resp_t[:, np.newaxis, :], y_t[start:stop],
                        out=left[n_components:].reshape(n_components, width, n_rows))
            total[where].reshape(shape)[...] += (
                left[0 if start == 0 else n_components:] @ y[:, start:])

    total = _blocks.sum_over_blocks(n_samples, step, add_block, (size,))
    second_moments = np.empty((n_components, n_features, n_features))
    for start, stop, where, shape in parts:
        part = total[where].reshape(shape)
        if start == 0:
            sums, part = part[:n_components], part[n_components:]
        second_moments[:, start:stop, start:] = part.reshape(n_components, stop - start, -1)
        # the block left of the diagonal block: the mirror image of one computed above it
        second_moments[:, start:stop, :start] = (
            second_moments[:, :start, start:stop].transpose(0, 2, 1))
    return sums, second_moments


def _full_covariances(X, resp, counts, nk):
    r"""Means (K, d) and covariances (K, d, d), before ``reg_covar``, for 'full'.

    ``counts`` (K,) holds sum_i gamma_ik, ``nk`` the N_k that :func:`m_step` divides by.

    The textbook M-step (PRML eqs. 9.24-9.25) in one pass over the data for all components:
    with a centre c (below) and y = x - c,

    .. math::

        \mu_k = \frac{1}{N_k}\sum_i \gamma_{ik} x_i, \qquad
        \Sigma_k = \frac{1}{N_k}\sum_i \gamma_{ik} y_i y_i^\top - m_k m_k^\top,
        \quad m_k = \frac{1}{N_k}\sum_i \gamma_{ik} y_i = \mu_k - c.

    The subtraction cancels the digits that its two terms share: the rounding error grows
    with the *amplification* A = (second moment about c) / (variance), the largest over the
    d coordinates, to about 1e-14 A relative to the covariance's scale. A is close to 1 for
    a component inside the bulk of the data and grows with the squared distance of its mean
    from c in units of its spread. A component with A > MAX_AMPLIFICATION (or a variance
    that comes out non-positive while its second moment does not) is computed again
    exactly, centred on its own mean (:func:`_weighted_scatter`): a far, tight component
    loses nothing.
    """
    # c: any point inside the bulk of the data will do. The mean of every 16th row costs a
    # sixteenth of the mean's pass over X, which would run on one core.
    center = X[::16].mean(axis=0)  # (d,)
    sums, second_moments = _moments_about(X, resp, center)
    means = (center * counts[:, np.newaxis] + sums) / nk[:, np.newaxis]  # sum gamma x / nk
    offsets = sums / nk[:, np.newaxis]  # m_k, (K, d)
    second_moments = 0.5 * (second_moments + second_moments.transpose(0, 2, 1))  # symmetric
    second_moments /= nk[:, np.newaxis, np.newaxis]
    covariances = second_moments - offsets[:, :, np.newaxis] * offsets[:, np.newaxis, :]
    variances = np.diagonal(covariances, axis1=1, axis2=2)  # (K, d)
    about_c = np.diagonal(second_moments, axis1=1, axis2=2)  # (K, d)
    # A > MAX_AMPLIFICATION, written so that 0 / 0 (a coordinate that never varies, an
    # empty component: exact here too) passes and a NaN or a negative variance does not.
    too_amplified = ~(about_c <= MAX_AMPLIFICATION * variances)  # (K, d)
    redo = np.flatnonzero(too_amplified.any(axis=1))
    if redo.size:
        exact = _weighted_scatter(X, resp[:, redo], means[redo])
        covariances[redo] = exact / nk[redo, np.newaxis, np.newaxis]
    return means, covariances


def m_step(X, resp, reg_covar=1e-6, covariance_type="full"):
    """Maximisation step: mixture weights, means and covariances from responsibilities.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    resp : ndarray of shape (n_samples, n_components)
        Responsibilities gamma_ik (rows sum to one).
    reg_covar : float
        Added to every variance so that a component collapsing onto a point, or a pixel that
        never varies, keeps a positive-definite covariance. With ``reg_covar = 0`` this is
        the exact M-step (the maximiser of the expected complete-data log-likelihood). With
        ``reg_covar > 0``, ``S + reg_covar I`` is a heuristic, not a constrained maximiser:
        the maximiser over ``{Sigma >= reg_covar I}`` would clip the eigenvalues of S at
        ``max(lambda, reg_covar)``, whereas adding ``reg_covar I`` shifts every eigenvalue,
        the large ones too.
    covariance_type : {'full', 'diag', 'spherical'}

    Returns
    -------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray
        (K, d, d) for 'full', (K, d) for 'diag', (K,) for 'spherical'.
    """
    _check_covariance_type(covariance_type)
    n_samples, n_features = X.shape
    n_components = resp.shape[1]
    counts = resp.sum(axis=0)  # (K,)
    # + 10 eps: an empty component has N_k > 0, so no division by zero below.
    nk = counts + 10 * np.finfo(resp.dtype).eps  # (K,)
    weights = nk / nk.sum()
    if covariance_type == "full":
        means, covariances = _full_covariances(X, resp, counts, nk)
        covariances[:, np.arange(n_features), np.arange(n_features)] += reg_covar
        return weights, means, covariances
    means = _weighted_sums(X, resp) / nk[:, np.newaxis]  # (K, d)

    # diag / spherical: E[(x - c)^2] - (mu - c)^2 (as scikit-learn), about the data mean c
    # so that the subtraction loses little; an (n, K, d) temporary would cost far more.
    center = X.mean(axis=0)  # (d,)
    shift = means - center  # (K, d)

    def add_block(rows, total):
        centred = np.subtract(X[rows], center, out=_blocks.scratch("centred", X[rows].shape))
        total += resp[rows].T @ np.multiply(centred, centred, out=centred)

    step = _blocks.rows_per_block(16 * n_features)
    second_moments = _blocks.sum_over_blocks(n_samples, step, add_block, (n_components, n_features))
    variances = second_moments / nk[:, np.newaxis] - shift**2
    variances = np.maximum(variances, 0.0) + reg_covar  # (K, d)
    if covariance_type == "diag":
        return weights, means, variances
    return weights, means, variances.mean(axis=1)


def log_likelihood(X, weights, means, covariances, covariance_type="full"):
    """Mean log-likelihood per sample, (1/n) sum_i log sum_k pi_k N(x_i | mu_k, Sigma_k).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray
        (K, d, d), (K, d) or (K,) according to ``covariance_type``.

    Returns
    -------
    float
    """
    X = check_X(X)
    precisions_cholesky = compute_precision_cholesky(covariances, covariance_type)
    _, log_prob_norm = e_step(X, weights, means, precisions_cholesky, covariance_type)
    return float(np.mean(log_prob_norm))


# --------------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------------


def _squared_distances(X, centers):
    """||x_i - c_j||^2, shape (n_samples, n_centers), clipped at 0 against rounding."""
    d2 = np.sum(X**2, axis=1)[:, None] - 2.0 * (X @ centers.T) + np.sum(centers**2, axis=1)
    return np.maximum(d2, 0.0)


def kmeans_plusplus(X, n_components, rng):
    """Greedy k-means++ seeding (Arthur & Vassilvitskii, 2007).

    The first centre is a uniformly drawn point; each next one is drawn with probability
    proportional to the squared distance to the nearest centre chosen so far. As in
    scikit-learn, ``2 + log(K)`` candidates are drawn at each step and the one that lowers the
    total squared distance most is kept.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_components : int
    rng : numpy.random.Generator

    Returns
    -------
    centers : ndarray of shape (n_components, n_features)
    indices : ndarray of shape (n_components,)
        Rows of X chosen as centres.
    """
    n_samples = X.shape[0]
    if n_components > n_samples:
        raise ValueError(
            f"k-means++ cannot choose {n_components} centres from {n_samples} points; "
            "use fewer components or more data."
        )
    n_trials = 2 + int(np.log(n_components))
    indices = np.empty(n_components, dtype=np.int64)
    indices[0] = rng.integers(n_samples)
    closest = _squared_distances(X, X[indices[:1]])[:, 0]  # (n,)
    for c in range(1, n_components):
        total = closest.sum()
        if total <= 0.0:  # every point coincides with a centre: any unused point will do
            unused = np.setdiff1d(np.arange(n_samples), indices[:c])
            indices[c] = rng.choice(unused)
        else:
            candidates = np.searchsorted(np.cumsum(closest), rng.uniform(size=n_trials) * total)
            candidates = np.minimum(candidates, n_samples - 1)
            d2 = np.minimum(closest, _squared_distances(X, X[candidates]).T)  # (trials, n)
            best = int(np.argmin(d2.sum(axis=1)))
            indices[c] = candidates[best]
        closest = np.minimum(closest, _squared_distances(X, X[indices[c : c + 1]])[:, 0])
    return X[indices].copy(), indices


def kmeans(X, n_clusters, rng, max_iter=100, tol=1e-4):
    """Lloyd's k-means from a k-means++ start: the default initialisation of EM.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_clusters : int
    rng : numpy.random.Generator
    max_iter : int
    tol : float
        Stop when the centres move less than ``tol`` times the mean feature variance.

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features)
    labels : ndarray of shape (n_samples,)
    """
    centers, _ = kmeans_plusplus(X, n_clusters, rng)
    threshold = tol * np.mean(np.var(X, axis=0))
    for _ in range(max_iter):
        labels = np.argmin(_squared_distances(X, centers), axis=1)
        counts = np.bincount(labels, minlength=n_clusters)
        one_hot = np.zeros((len(X), n_clusters))
        one_hot[np.arange(len(X)), labels] = 1.0
        sums = one_hot.T @ X  # (K, d): one matrix product instead of a scatter-add per row
        new_centers = centers.copy()
        filled = counts > 0
        new_centers[filled] = sums[filled] / counts[filled, None]
        # An empty cluster restarts at the point farthest from its centre.
        for j in np.flatnonzero(~filled):
            far = np.argmax(_squared_distances(X, new_centers).min(axis=1))
            new_centers[j] = X[far]
        shift = np.sum((new_centers - centers) ** 2)
        centers = new_centers
        if shift <= threshold:
            break
    labels = np.argmin(_squared_distances(X, centers), axis=1)
    return centers, labels


# --------------------------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------------------------


def _check_initial_values(gmm, n_features):
    """Shapes and ranges of ``gmm``'s weights_init, means_init and precisions_init."""
    K = gmm.n_components
    if gmm.weights_init is not None:
        w = np.asarray(gmm.weights_init, dtype=np.float64)
        if w.shape != (K,) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
            raise ValueError(
                f"weights_init must be {K} non-negative numbers summing to 1; got shape "
                f"{w.shape} summing to {w.sum():.6g}."
            )
    if gmm.means_init is not None:
        m = np.asarray(gmm.means_init)
        if m.shape != (K, n_features):
            raise ValueError(
                f"means_init must have shape (n_components, n_features) = {(K, n_features)}; "
                f"got {m.shape}."
            )
    if gmm.precisions_init is not None:
        expected = {
            "full": (K, n_features, n_features),
            "diag": (K, n_features),
            "spherical": (K,),
        }[gmm.covariance_type]
        p = np.asarray(gmm.precisions_init)
        if p.shape != expected:
            raise ValueError(
                f"precisions_init for covariance_type={gmm.covariance_type!r} must have "
                f"shape {expected}; got {p.shape}."
            )


def _cholesky_of_precisions(precisions, covariance_type):
    """Cholesky factors L (L L^T = P) of user-given precisions P, checked; shapes as P's."""
    precisions = np.array(precisions, dtype=np.float64)
    if covariance_type == "full":
        try:
            return np.linalg.cholesky(precisions)
        except np.linalg.LinAlgError:
            raise ValueError("precisions_init must hold symmetric positive-definite matrices.") from None
    if np.any(precisions <= 0):
        raise ValueError("precisions_init must be positive.")
    return np.sqrt(precisions)


def _run_em(X, weights, means, prec_chol, covariance_type, reg_covar, tol, max_iter):
    """EM from one initialisation until the mean log-likelihood gains less than ``tol``.

    Returns (lower_bound, weights, means, covariances, precisions_cholesky, converged,
    history): the mean log-likelihood per sample at the last E-step and at every one.
    """
    history, converged, covariances = [], False, None
    lower_bound = -np.inf
    for _ in range(max_iter):
        previous = lower_bound
        # e_step, then exp(log_resp), in one pass (responsibilities below ~1e-308 are
        # set to 0: as subnormal numbers they would slow the M-step's products).
        resp_t, log_prob_norm = _expectation(X, weights, means, prec_chol,
                                             covariance_type, exponentiate=True)
        resp = resp_t.T  # (n, K)
        weights, means, covariances = m_step(X, resp, reg_covar, covariance_type)
        prec_chol = compute_precision_cholesky(covariances, covariance_type)
        lower_bound = float(np.mean(log_prob_norm))
        history.append(lower_bound)
        if abs(lower_bound - previous) < tol:
            converged = True
            break
    return lower_bound, weights, means, covariances, prec_chol, converged, history


class GaussianMixture:
    """A Gaussian mixture fitted by EM, with scikit-learn's interface.

    Parameters
    ----------
    n_components : int
    covariance_type : {'full', 'diag', 'spherical'}
    tol : float
        EM stops when the mean log-likelihood per sample rises by less than ``tol``.
    reg_covar : float
        Added to the diagonal of every covariance (see :func:`m_step`): every eigenvalue then
        stays above ``reg_covar``, but the M-step is no longer exact, so with
        ``reg_covar > 0`` EM climbs no fixed objective exactly.
    max_iter : int
    n_init : int
        Number of initialisations; the one with the highest final log-likelihood is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}
        How the first responsibilities are made: hard labels from k-means, from the nearest
        k-means++ seed, random soft responsibilities, or the nearest of K random data points.
    weights_init, means_init, precisions_init : ndarray, optional
        User-given starting values (precisions, not covariances, as in scikit-learn). They
        override the matching parameters from ``init_params``.
    random_state : int, numpy.random.Generator or None

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_, precisions_cholesky_ : ndarray
        (K, d, d), (K, d) or (K,) according to ``covariance_type``.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood per sample at the last E-step of the best initialisation.
    log_likelihood_history_ : list of float
        That mean log-likelihood at every EM iteration of the best initialisation, for plots.
        With ``reg_covar = 0`` EM guarantees it never decreases (up to rounding). With
        ``reg_covar > 0`` it does not: ``S + reg_covar I`` does not maximise the likelihood
        over any fixed set (the maximiser over ``{Sigma >= reg_covar I}`` clips eigenvalues at
        ``max(lambda, reg_covar)`` instead of shifting them all), so small decreases can
        occur, typically far below ``tol``.
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state

    def __repr__(self):
        return (
            f"GaussianMixture(n_components={self.n_components}, "
            f"covariance_type={self.covariance_type!r}, reg_covar={self.reg_covar})"
        )

    # -- checks ---------------------------------------------------------------------------

    def _check_parameters(self, X):
        n_samples, n_features = X.shape
        K = self.n_components
        if not (isinstance(K, (int, np.integer)) and K >= 1):
            raise ValueError(f"n_components must be a positive integer; got {K!r}.")
        if K > n_samples:
            raise ValueError(
                f"n_components={K} is more than n_samples={n_samples}: each component needs "
                "at least one point. Use fewer components or more data."
            )
        _check_covariance_type(self.covariance_type)
        if self.init_params not in INIT_PARAMS:
            raise ValueError(f"init_params must be one of {INIT_PARAMS}; got {self.init_params!r}.")
        for name, low in (("tol", 0.0), ("reg_covar", 0.0)):
            if not getattr(self, name) >= low:
                raise ValueError(f"{name} must be >= {low}; got {getattr(self, name)!r}.")
        for name in ("max_iter", "n_init"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)!r}.")
        _check_initial_values(self, n_features)

    def _check_is_fitted(self):
        if not hasattr(self, "means_"):
            raise NotFittedError(
                "This GaussianMixture is not fitted yet: call fit(X) before using it."
            )

    # -- fitting --------------------------------------------------------------------------

    def _initial_resp(self, X, rng):
        n_samples, K = X.shape[0], self.n_components
        if self.init_params == "random":
            resp = rng.uniform(size=(n_samples, K))
            return resp / resp.sum(axis=1, keepdims=True)
        if self.init_params == "kmeans":
            _, labels = kmeans(X, K, rng)
        else:
            if self.init_params == "k-means++":
                centers, _ = kmeans_plusplus(X, K, rng)
            else:  # random_from_data
                centers = X[rng.choice(n_samples, size=K, replace=False)]
            labels = np.argmin(_squared_distances(X, centers), axis=1)
        resp = np.zeros((n_samples, K))
        resp[np.arange(n_samples), labels] = 1.0
        return resp

    def _initialize(self, X, rng):
        # Skip the initial responsibilities entirely when the user gave every parameter.
        if self.weights_init is None or self.means_init is None or self.precisions_init is None:
            resp = self._initial_resp(X, rng)
            weights, means, covariances = m_step(X, resp, self.reg_covar, self.covariance_type)
        if self.weights_init is not None:
            weights = np.array(self.weights_init, dtype=np.float64)
        if self.means_init is not None:
            means = np.array(self.means_init, dtype=np.float64)
        if self.precisions_init is None:
            precisions_cholesky = compute_precision_cholesky(covariances, self.covariance_type)
        else:
            precisions_cholesky = _cholesky_of_precisions(self.precisions_init, self.covariance_type)
        return weights, means, precisions_cholesky

    def fit(self, X, y=None):
        """Run EM ``n_init`` times and keep the parameters with the highest log-likelihood.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self
        """
        X = check_X(X)
        self._check_parameters(X)
        rng = np.random.default_rng(self.random_state)
        runs = (_run_em(X, *self._initialize(X, rng), self.covariance_type, self.reg_covar,
                        self.tol, self.max_iter) for _ in range(self.n_init))
        best = max(runs, key=lambda run: run[0])  # the highest log-likelihood; the first on ties
        lower_bound, weights, means, covariances, prec_chol, converged, history = best
        if not converged:
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations (last gain "
                f"{history[-1] - history[-2] if len(history) > 1 else float('nan'):.3g} > "
                f"tol={self.tol}); raise max_iter or tol, or check the initialisation.",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.weights_, self.means_ = weights, means
        self.covariances_, self.precisions_cholesky_ = covariances, prec_chol
        self.converged_, self.n_iter_ = converged, len(history)
        self.lower_bound_, self.log_likelihood_history_ = lower_bound, history
        self.n_features_in_ = X.shape[1]
        self._rng = rng
        return self

    # -- using the fitted model -------------------------------------------------------------

    def _e_step(self, X):
        self._check_is_fitted()
        X = check_X(X, n_features=self.n_features_in_)
        return e_step(X, self.weights_, self.means_, self.precisions_cholesky_, self.covariance_type)

    def score_samples(self, X):
        """log p(x) for each row; returns ndarray of shape (n_samples,)."""
        return self._e_step(X)[1]

    def score(self, X, y=None):
        """Mean log-likelihood per sample (float)."""
        return float(np.mean(self.score_samples(X)))

    def predict_proba(self, X):
        """Responsibilities p(component | x); ndarray of shape (n_samples, n_components)."""
        return np.exp(self._e_step(X)[0])

    def predict(self, X):
        """Most responsible component per row; ndarray of shape (n_samples,)."""
        return np.argmax(self._e_step(X)[0], axis=1)

    def fit_predict(self, X, y=None):
        """Fit, then :meth:`predict` on the same data."""
        return self.fit(X).predict(X)

    def sample(self, n_samples=1, rng=None):
        """Draw from the fitted mixture.

        Parameters
        ----------
        n_samples : int
        rng : numpy.random.Generator, optional
            Defaults to the generator seeded by ``random_state`` at fit time.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            Component of each draw (draws come grouped by component, as in scikit-learn).
        """
        self._check_is_fitted()
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1; got {n_samples}.")
        rng = self._rng if rng is None else rng
        counts = rng.multinomial(n_samples, self.weights_)
        d = self.n_features_in_
        draws = []
        for k, count in enumerate(counts):
            z = rng.standard_normal((count, d))
            if self.covariance_type == "full":
                draws.append(self.means_[k] + z @ np.linalg.cholesky(self.covariances_[k]).T)
            else:
                draws.append(self.means_[k] + z * np.sqrt(self.covariances_[k]))
        y = np.repeat(np.arange(self.n_components), counts)
        return np.vstack(draws), y

    def _n_parameters(self):
        K, d = self.n_components, self.n_features_in_
        cov_params = {"full": K * d * (d + 1) // 2, "diag": K * d, "spherical": K}
        return cov_params[self.covariance_type] + K * d + K - 1

    def bic(self, X):
        """Bayesian information criterion: -2 log L + p log n (lower is better)."""
        X = check_X(X, n_features=getattr(self, "n_features_in_", None))
        return -2.0 * self.score(X) * len(X) + self._n_parameters() * np.log(len(X))

    def aic(self, X):
        """Akaike information criterion: -2 log L + 2 p (lower is better)."""
        X = check_X(X, n_features=getattr(self, "n_features_in_", None))
        return -2.0 * self.score(X) * len(X) + 2 * self._n_parameters()

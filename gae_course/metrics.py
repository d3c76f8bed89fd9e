r"""The expected calibration error: the one score the chapters report that scikit-learn lacks.

Every other score comes from scikit-learn, a runtime dependency:

* NMI: ``sklearn.metrics.normalized_mutual_info_score`` (``average_method="arithmetic"``,
  its default: the mutual information over the mean of the two entropies);
* accuracy and confusion matrices: ``sklearn.metrics.accuracy_score`` and
  ``sklearn.metrics.confusion_matrix`` (rows are the truth, columns the prediction);
* AUROC: ``sklearn.metrics.roc_auc_score`` (ties count one half);
* the points of a reliability diagram: ``sklearn.calibration.calibration_curve``, which
  returns ``(observed_frequency, mean_predicted)`` per non-empty bin, but not how many
  samples each bin holds, and so not the error below.

:func:`expected_calibration_error` (Guo et al., 2017, "On calibration of modern neural
networks", section 2) puts each prediction's top probability, its *confidence*, in one of
``n_bins`` equal-width bins and averages the gap between accuracy and mean confidence per bin,
weighted by the bin's share of the samples:

.. math::

    \operatorname{ECE} = \sum_b \frac{n_b}{n}\,\bigl|\operatorname{acc}(b) - \operatorname{conf}(b)\bigr|
                       = \frac1n \sum_b \Bigl|\sum_{i \in b} (\mathbb 1[\hat y_i = y_i] - p_i)\Bigr|.

The bins are those of ``calibration_curve(strategy="uniform")``: (0, 1/B], (1/B, 2/B], ...,
with 0 in the first, so the error and the plotted points describe the same bins.
"""

from __future__ import annotations

import numpy as np

__all__ = ["expected_calibration_error"]


def expected_calibration_error(y_true, proba, n_bins: int = 10) -> float:
    """Expected calibration error of multiclass probabilities, on the top label.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer class labels in ``0 .. n_classes - 1``.
    proba : array-like of shape (n_samples, n_classes)
        Predicted class probabilities; each row sums to 1.
    n_bins : int
        Number of equal-width bins of confidence on [0, 1].

    Returns
    -------
    float
        In [0, 1]; 0 for a perfectly calibrated model.

    Raises
    ------
    ValueError
        For a ``proba`` that is not 2-D, holds NaN or rows that are not probabilities, labels
        that are not integers in range, lengths that differ, or a bad ``n_bins``.
    """
    if not (isinstance(n_bins, (int, np.integer)) and n_bins >= 1):
        raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}.")
    labels, proba = np.asarray(y_true), np.asarray(proba)
    if proba.ndim != 2 or proba.dtype.kind not in "biuf":
        raise ValueError(
            f"proba must be numbers of shape (n_samples, n_classes); got shape {proba.shape}, "
            f"dtype {proba.dtype}. For a binary probability p pass np.c_[1 - p, p]."
        )
    if labels.shape != (len(proba),) or len(proba) == 0:
        raise ValueError(
            f"y_true must have shape ({len(proba)},), one label per row of proba, and at least "
            f"one sample; got shape {labels.shape}."
        )
    n_classes = proba.shape[1]
    if labels.dtype.kind not in "biu" or labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(
            f"y_true must hold integer labels in 0..{n_classes - 1} (one per column of proba); "
            f"got dtype {labels.dtype}, values from {labels.min()} to {labels.max()}."
        )
    proba = proba.astype(np.float64)
    if not np.isfinite(proba).all():
        row = int(np.flatnonzero(~np.isfinite(proba).all(axis=1))[0])
        raise ValueError(f"proba contains NaN or infinity (first in row {row}).")
    if proba.min() < 0.0 or not np.allclose(proba.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError(
            "proba must hold non-negative rows that sum to 1 (class probabilities); "
            "normalise them first, e.g. with a softmax of log-likelihoods."
        )
    confidence = np.clip(proba.max(axis=1), 0.0, 1.0)
    correct = proba.argmax(axis=1) == labels
    # searchsorted on the inner edges, side="left": a confidence on an edge joins the lower bin.
    bins = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], confidence)
    gap_sums = np.bincount(bins, weights=correct - confidence, minlength=n_bins)
    return float(np.abs(gap_sums).sum() / len(labels))

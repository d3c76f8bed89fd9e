r"""Scores the chapters report: clustering agreement, classification, ranking, calibration.

NumPy only (scikit-learn is the tests' oracle, never a dependency). Every function checks its
inputs first: a length mismatch, a NaN or a label out of range is a ``ValueError`` that says
what to fix, never a silently broadcast answer.

* :func:`normalized_mutual_info` - how much a clustering tells about the classes
  (Strehl & Ghosh, 2002; Vinh, Epps & Bailey, 2010, section 3):

  .. math::

      \operatorname{NMI}(Y, C) = \frac{I(Y; C)}{\tfrac12\,[H(Y) + H(C)]},\qquad
      I(Y; C) = \sum_{y, c} p(y, c) \log \frac{p(y, c)}{p(y)\,p(c)},

  with the arithmetic mean of the two entropies as normaliser (scikit-learn's default). It
  is 1 for the same partition under any renaming of the labels, and near 0 for unrelated
  ones.
* :func:`confusion_matrix` and :func:`accuracy`.
* :func:`roc_auc` - the area under the ROC curve, computed as the Mann-Whitney statistic
  (Hanley & McNeil, 1982): the probability that a random positive scores above a random
  negative, ties counting one half,

  .. math::

      \operatorname{AUC} = \frac{R_+ - n_+(n_+ + 1)/2}{n_+\, n_-},

  where :math:`R_+` is the sum of the positives' ranks among all scores, tied scores sharing
  their average rank.
* :func:`calibration_curve` and :func:`expected_calibration_error` - reliability diagrams
  (Guo et al., 2017, "On calibration of modern neural networks", section 2): predictions are
  put in ``n_bins`` equal-width bins of confidence; in a calibrated model the observed
  frequency in each bin equals the mean predicted probability, and

  .. math::

      \operatorname{ECE} = \sum_b \frac{n_b}{n}\,\bigl|\operatorname{acc}(b) - \operatorname{conf}(b)\bigr|.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "normalized_mutual_info",
    "confusion_matrix",
    "accuracy",
    "roc_auc",
    "calibration_curve",
    "expected_calibration_error",
]


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _vector(values, name):
    """``values`` as a 1-D array (a (n, 1) column is accepted), or a ValueError."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D of shape (n_samples,); got shape {array.shape}.")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers; got dtype {array.dtype}.")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        first = int(np.flatnonzero(~np.isfinite(array))[0])
        raise ValueError(
            f"{name} contains NaN or infinity (first at index {first}); remove or fix those "
            "entries first."
        )
    return array


def _labels(values, name):
    """Integer class labels as int64; floats are accepted only if they are whole numbers."""
    array = _vector(values, name)
    if array.dtype.kind == "f":
        if not np.all(array == np.round(array)):
            raise ValueError(
                f"{name} must hold integer labels; got non-integer values such as "
                f"{array[array != np.round(array)][0]!r}."
            )
    return array.astype(np.int64)


def _same_length(a, b, name_a, name_b):
    if len(a) != len(b):
        raise ValueError(
            f"{name_a} and {name_b} must have the same length; got {len(a)} and {len(b)}."
        )
    if len(a) == 0:
        raise ValueError(f"{name_a} and {name_b} are empty; pass at least one sample.")


def _binary(values, name):
    """0/1 (or boolean) labels as a boolean array."""
    array = _labels(values, name)
    if not np.isin(array, (0, 1)).all():
        raise ValueError(
            f"{name} must be binary (0/1 or False/True); got values {np.unique(array)[:5].tolist()}"
            ". For a one-vs-rest score pass (y == positive_class)."
        )
    return array.astype(bool)


def _probabilities(values, name):
    array = _vector(values, name).astype(np.float64)
    if array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(
            f"{name} must be probabilities in [0, 1]; got values from {array.min():.6g} to "
            f"{array.max():.6g}."
        )
    return array


# --------------------------------------------------------------------------------------------
# Clustering against classes
# --------------------------------------------------------------------------------------------


def _entropy(counts):
    """Entropy (nats) of the distribution given by positive counts."""
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log(p)))


def normalized_mutual_info(labels_true, labels_pred):
    """Normalised mutual information between two labellings, arithmetic-mean normalisation.

    Parameters
    ----------
    labels_true : array-like of shape (n_samples,)
        Integer class labels (any integers; only equality matters).
    labels_pred : array-like of shape (n_samples,)
        Integer cluster labels, e.g. the most responsible mixture component.

    Returns
    -------
    float
        In [0, 1]: ``I(Y; C) / ((H(Y) + H(C)) / 2)``. It does not change when either
        labelling is renamed. As in scikit-learn, two labellings that both put every sample in
        one group score 1, and one that does while the other does not scores 0.
    """
    true = _labels(labels_true, "labels_true")
    pred = _labels(labels_pred, "labels_pred")
    _same_length(true, pred, "labels_true", "labels_pred")
    classes, true_index = np.unique(true, return_inverse=True)
    clusters, pred_index = np.unique(pred, return_inverse=True)
    if len(classes) == len(clusters) == 1:
        return 1.0  # nothing is split: a perfect (if trivial) match
    # Contingency table n_yc, (n_classes, n_clusters).
    joint = np.zeros((len(classes), len(clusters)))
    np.add.at(joint, (true_index, pred_index), 1.0)
    n = joint.sum()
    rows, cols = joint.sum(axis=1), joint.sum(axis=0)
    nz = joint > 0
    # p(y, c) log(p(y, c) / (p(y) p(c))) = (n_yc / n) log(n n_yc / (n_y n_c))
    outer = np.outer(rows, cols)[nz]
    mi = float(np.sum(joint[nz] / n * (np.log(joint[nz]) + np.log(n) - np.log(outer))))
    mi = max(mi, 0.0)  # rounding can make an exactly independent table slightly negative
    if mi == 0.0:
        return 0.0
    return mi / (0.5 * (_entropy(rows) + _entropy(cols)))


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------


def confusion_matrix(y_true, y_pred, n_classes):
    """Counts of (true class, predicted class) pairs.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Integer labels in ``0 .. n_classes - 1``.
    n_classes : int

    Returns
    -------
    ndarray of shape (n_classes, n_classes), dtype int64
        Entry ``[i, j]`` counts samples of true class ``i`` predicted as ``j``: rows are the
        truth, columns the prediction (scikit-learn's convention); the diagonal is correct.
    """
    if not (isinstance(n_classes, (int, np.integer)) and n_classes >= 1):
        raise ValueError(f"n_classes must be a positive integer; got {n_classes!r}.")
    true = _labels(y_true, "y_true")
    pred = _labels(y_pred, "y_pred")
    _same_length(true, pred, "y_true", "y_pred")
    for name, labels in (("y_true", true), ("y_pred", pred)):
        if labels.min() < 0 or labels.max() >= n_classes:
            raise ValueError(
                f"{name} must hold labels in 0..{n_classes - 1}; got values from "
                f"{labels.min()} to {labels.max()}. Is n_classes right?"
            )
    counts = np.bincount(true * n_classes + pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes).astype(np.int64)


def accuracy(y_true, y_pred):
    """Fraction of samples whose predicted label equals the true one (float in [0, 1])."""
    true = _labels(y_true, "y_true")
    pred = _labels(y_pred, "y_pred")
    _same_length(true, pred, "y_true", "y_pred")
    return float(np.mean(true == pred))


# --------------------------------------------------------------------------------------------
# Ranking
# --------------------------------------------------------------------------------------------


def _average_ranks(values):
    """Ranks 1..n of ``values``, tied values sharing the average of their ranks (float64)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start of each run of equal values in sorted order.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]  # one past the end of each run
    # Positions start..end-1 hold ranks start+1..end: their mean is (start + 1 + end) / 2.
    run_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def roc_auc(y_true, scores):
    """Area under the ROC curve, as the Mann-Whitney U statistic with average ranks for ties.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary labels: 1 (or True) for the positive class, 0 for the negative one.
    scores : array-like of shape (n_samples,)
        Higher means "more likely positive" (a probability, a log-likelihood, a distance with
        its sign flipped...). Only their order matters.

    Returns
    -------
    float
        P(score of a random positive > score of a random negative) + 0.5 P(tie):
        1 for a perfect separation, 0 when it is perfectly reversed, 0.5 for chance.
    """
    positive = _binary(y_true, "y_true")
    values = _vector(scores, "scores").astype(np.float64)
    _same_length(positive, values, "y_true", "scores")
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"roc_auc needs both classes in y_true; got {n_pos} positive and {n_neg} negative "
            "samples. The area under the ROC curve is undefined with only one class."
        )
    rank_sum = _average_ranks(values)[positive].sum()
    u = rank_sum - n_pos * (n_pos + 1) / 2.0  # pairs (positive, negative) ranked correctly
    return float(u / (n_pos * n_neg))


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


def _bin_ids(prob, n_bins):
    """Equal-width bin of each probability: (0, 1/n], (1/n, 2/n], ..., with 0 in the first."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], prob)  # as scikit-learn's strategy="uniform"


def calibration_curve(y_true, prob, n_bins=10):
    """Reliability diagram of a binary probability: predicted against observed, per bin.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary outcomes (0/1 or False/True).
    prob : array-like of shape (n_samples,)
        Predicted probability that the outcome is 1, in [0, 1].
    n_bins : int
        Number of equal-width bins on [0, 1].

    Returns
    -------
    mean_predicted : ndarray of shape (n_nonempty,)
        Mean of ``prob`` in each non-empty bin (x axis of the diagram).
    observed_frequency : ndarray of shape (n_nonempty,)
        Fraction of outcomes equal to 1 in the same bin (y axis); equal to ``mean_predicted``
        for a calibrated model.
    counts : ndarray of shape (n_nonempty,), dtype int64
        Samples in each non-empty bin (how much each point can be trusted).

    Notes
    -----
    Empty bins are left out, as in scikit-learn's ``calibration_curve(strategy="uniform")``,
    which returns ``(observed_frequency, mean_predicted)`` in the other order.
    """
    if not (isinstance(n_bins, (int, np.integer)) and n_bins >= 1):
        raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}.")
    outcome = _binary(y_true, "y_true")
    p = _probabilities(prob, "prob")
    _same_length(outcome, p, "y_true", "prob")
    ids = _bin_ids(p, n_bins)
    counts = np.bincount(ids, minlength=n_bins)
    sums = np.bincount(ids, weights=p, minlength=n_bins)
    hits = np.bincount(ids, weights=outcome.astype(np.float64), minlength=n_bins)
    keep = counts > 0
    return sums[keep] / counts[keep], hits[keep] / counts[keep], counts[keep].astype(np.int64)


def expected_calibration_error(y_true, proba, n_bins=10):
    """Expected calibration error of multiclass probabilities, on the top label.

    Each sample's confidence is its largest probability and its outcome is whether that class
    is the true one; confidences go in ``n_bins`` equal-width bins (as in
    :func:`calibration_curve`), and the gaps between accuracy and mean confidence are averaged
    with weights ``n_b / n``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer class labels in ``0 .. n_classes - 1``.
    proba : array-like of shape (n_samples, n_classes)
        Predicted class probabilities; each row sums to 1.
    n_bins : int

    Returns
    -------
    float
        In [0, 1]; 0 for a perfectly calibrated model.
    """
    true = _labels(y_true, "y_true")
    proba = np.asarray(proba)
    if proba.ndim != 2:
        raise ValueError(
            f"proba must be 2-D of shape (n_samples, n_classes); got shape {proba.shape}. "
            "For a binary probability use calibration_curve."
        )
    if proba.dtype.kind not in "biuf":
        raise ValueError(f"proba must hold numbers; got dtype {proba.dtype}.")
    proba = proba.astype(np.float64)
    if not np.isfinite(proba).all():
        row = int(np.flatnonzero(~np.isfinite(proba).all(axis=1))[0])
        raise ValueError(f"proba contains NaN or infinity (first in row {row}).")
    _same_length(true, proba, "y_true", "proba")
    n_classes = proba.shape[1]
    if true.min() < 0 or true.max() >= n_classes:
        raise ValueError(
            f"y_true must hold labels in 0..{n_classes - 1} (one per column of proba); got "
            f"values from {true.min()} to {true.max()}."
        )
    if proba.min() < 0.0 or not np.allclose(proba.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError(
            "proba must hold non-negative rows that sum to 1 (class probabilities); "
            "normalise them first, e.g. with a softmax of log-likelihoods."
        )
    confidence = np.clip(proba.max(axis=1), 0.0, 1.0)
    correct = proba.argmax(axis=1) == true
    mean_conf, frequency, counts = calibration_curve(correct, confidence, n_bins=n_bins)
    return float(np.sum(counts * np.abs(frequency - mean_conf)) / len(true))

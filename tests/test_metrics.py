"""gae_course.metrics.expected_calibration_error by hand, against scikit-learn's bins, by its laws.

The other scores the chapters report come from scikit-learn itself and are not retested here.
"""

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from gae_course import metrics


def test_expected_calibration_error_by_hand():
    # two bins used: confidence 0.9 (correct 1 of 2) and 0.6 (correct 2 of 2)
    proba = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 0, 0, 1])
    expected = (2 / 4) * abs(0.5 - 0.9) + (2 / 4) * abs(1.0 - 0.6)
    assert metrics.expected_calibration_error(y, proba) == pytest.approx(expected)


def test_a_confidence_on_a_bin_edge_joins_the_lower_bin():
    # 0.5 (right) falls in (0.4, 0.5], 0.55 (wrong) in (0.5, 0.6]: two bins, not one
    proba = np.array([[0.5, 0.3, 0.2], [0.1, 0.35, 0.55]])
    y = np.array([0, 0])
    separate = (abs(1 - 0.5) + abs(0 - 0.55)) / 2
    assert metrics.expected_calibration_error(y, proba, n_bins=10) == pytest.approx(separate)
    merged = abs(0.5 - (0.5 + 0.55) / 2)  # a single bin: accuracy 1/2, mean confidence 0.525
    assert metrics.expected_calibration_error(y, proba, n_bins=1) == pytest.approx(merged)


def test_one_bin_is_the_gap_between_accuracy_and_mean_confidence():
    rng = np.random.default_rng(2)
    proba = rng.dirichlet(np.ones(5), size=300)
    y = rng.integers(0, 5, size=300)
    accuracy = np.mean(proba.argmax(axis=1) == y)
    expected = abs(accuracy - proba.max(axis=1).mean())
    assert metrics.expected_calibration_error(y, proba, n_bins=1) == pytest.approx(expected)


@pytest.mark.parametrize("n_bins", [3, 10])
def test_bins_are_those_of_sklearns_calibration_curve(n_bins):
    # Weighting sklearn's per-bin gaps by per-bin counts (taken from the same uniform edges)
    # gives the same error: the error describes the points chapter 5 plots.
    rng = np.random.default_rng(3)
    proba = rng.dirichlet(np.ones(3) * 0.5, size=2000)
    proba[:6] = [[0.6, 0.2, 0.2], [0.4, 0.3, 0.3], [1.0, 0.0, 0.0]] * 2  # on edges for n_bins=10
    y = rng.integers(0, 3, size=2000)
    confidence, correct = proba.max(axis=1), proba.argmax(axis=1) == y
    observed, mean_confidence = calibration_curve(correct, confidence, n_bins=n_bins)
    # samples per bin [0, 1/B], (1/B, 2/B], ..., counted by comparisons with the edges
    edges = np.linspace(0, 1, n_bins + 1)
    above_lower = [confidence >= 0] + [confidence > lo for lo in edges[1:-1]]
    counts = np.array([np.sum(a & (confidence <= hi)) for a, hi in zip(above_lower, edges[1:])])
    counts = counts[counts > 0]
    assert len(counts) == len(observed)
    expected = np.sum(counts * np.abs(observed - mean_confidence)) / len(y)
    assert metrics.expected_calibration_error(y, proba, n_bins=n_bins) == pytest.approx(expected)


def test_expected_calibration_error_of_a_calibrated_model_is_small():
    rng = np.random.default_rng(4)
    n, C = 200_000, 4
    proba = rng.dirichlet(np.ones(C) * 0.7, size=n)
    # draw each label from its own predicted distribution: calibrated by construction
    cumulative = proba.cumsum(axis=1)
    y = np.minimum((rng.random(n)[:, None] > cumulative).sum(axis=1), C - 1)
    assert metrics.expected_calibration_error(y, proba) < 0.01
    # always certain of the argmax while being right only part of the time: badly calibrated
    overconfident = np.eye(C)[proba.argmax(axis=1)]
    assert metrics.expected_calibration_error(y, overconfident) > 0.2


@pytest.mark.parametrize(
    "y, proba, kwargs, match",
    [
        ([0, 1], [0.3, 0.7], {}, "shape \\(n_samples, n_classes\\)"),
        ([0, 1], [[0.3, 0.3], [0.5, 0.5]], {}, "sum to 1"),
        ([0, 1], [[-0.5, 1.5], [0.5, 0.5]], {}, "non-negative"),
        ([0, 2], [[0.3, 0.7], [0.5, 0.5]], {}, "0..1"),
        ([0.0, 1.0], [[0.3, 0.7], [0.5, 0.5]], {}, "integer labels"),
        ([0, 1], [[np.nan, 1.0], [0.5, 0.5]], {}, "NaN or infinity \\(first in row 0\\)"),
        ([0, 1, 1], [[0.3, 0.7], [0.5, 0.5]], {}, "shape \\(2,\\)"),
        ([], np.zeros((0, 2)), {}, "at least one sample"),
        ([0, 1], [[0.3, 0.7], [0.5, 0.5]], {"n_bins": 0}, "n_bins"),
    ],
)
def test_bad_input_raises_clear_value_error(y, proba, kwargs, match):
    with pytest.raises(ValueError, match=match):
        metrics.expected_calibration_error(np.asarray(y), proba, **kwargs)

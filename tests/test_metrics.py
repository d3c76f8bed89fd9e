"""gae_course.metrics against scikit-learn.metrics (the oracle), and by the laws the scores obey."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve as sk_calibration_curve
from sklearn.metrics import accuracy_score as sk_accuracy
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import normalized_mutual_info_score as sk_nmi
from sklearn.metrics import roc_auc_score as sk_roc_auc

from gae_course import metrics

SEEDS = range(8)


# --------------------------------------------------------------------------------------------
# Against scikit-learn
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_nmi_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    true = rng.integers(0, rng.integers(1, 11), size=n)
    # half the predictions follow the truth (renamed), the rest are random: a partial match
    pred = np.where(rng.random(n) < 0.5, (true * 7 + 3) % 13, rng.integers(0, 13, size=n))
    assert metrics.normalized_mutual_info(true, pred) == pytest.approx(
        sk_nmi(true, pred), rel=1e-10, abs=1e-12
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-3, 4), st.integers(0, 5)), min_size=1, max_size=60)
)
def test_nmi_matches_sklearn_on_any_labels(pairs):
    # Includes single-cluster labellings, negative labels, and every sample in its own group.
    true, pred = map(np.array, zip(*pairs))
    assert metrics.normalized_mutual_info(true, pred) == pytest.approx(
        sk_nmi(true, pred), rel=1e-10, abs=1e-12
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_matrix_and_accuracy_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 11))
    true = rng.integers(0, n_classes, size=300)
    pred = np.where(rng.random(300) < 0.6, true, rng.integers(0, n_classes, size=300))
    ours = metrics.confusion_matrix(true, pred, n_classes)
    np.testing.assert_array_equal(ours, sk_confusion_matrix(true, pred, labels=range(n_classes)))
    assert ours.shape == (n_classes, n_classes) and ours.dtype == np.int64
    assert metrics.accuracy(true, pred) == pytest.approx(sk_accuracy(true, pred))
    assert np.trace(ours) / ours.sum() == pytest.approx(metrics.accuracy(true, pred))


def test_confusion_matrix_keeps_classes_never_seen():
    cm = metrics.confusion_matrix([0, 0, 2], [0, 2, 2], n_classes=4)
    np.testing.assert_array_equal(
        cm, [[1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_distinct", [3, 20, None])  # few distinct scores: many ties
def test_roc_auc_matches_sklearn_including_ties(seed, n_distinct):
    rng = np.random.default_rng(seed)
    n = 500
    y = rng.random(n) < 0.3
    y[:2] = [True, False]  # both classes present
    signal = y + rng.normal(size=n)
    scores = np.round(signal * 2) if n_distinct == 3 else signal
    if n_distinct == 20:
        scores = rng.integers(0, 20, size=n) + 3 * y
    assert metrics.roc_auc(y, scores) == pytest.approx(sk_roc_auc(y, scores), rel=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_bins", [1, 5, 10, 13])
def test_calibration_curve_matches_sklearn_uniform(seed, n_bins):
    rng = np.random.default_rng(seed)
    prob = rng.random(400)
    prob[:12] = np.linspace(0.0, 1.0, 12)  # values on bin edges, and both ends
    prob[12:20] = 0.3  # ties exactly on a bin edge for n_bins = 10
    y = rng.random(400) < prob
    mean_pred, freq, counts = metrics.calibration_curve(y, prob, n_bins=n_bins)
    sk_freq, sk_mean = sk_calibration_curve(y, prob, n_bins=n_bins, strategy="uniform")
    np.testing.assert_allclose(mean_pred, sk_mean, rtol=1e-12)
    np.testing.assert_allclose(freq, sk_freq, rtol=1e-12)
    assert counts.sum() == len(prob) and np.all(counts > 0) and counts.dtype == np.int64


# --------------------------------------------------------------------------------------------
# Laws
# --------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=2, max_size=80), st.permutations(range(7)))
def test_nmi_of_a_relabelling_is_one(labels, permutation):
    true = np.array(labels)
    renamed = np.array(permutation)[true] + 100  # a new name for every label
    assert metrics.normalized_mutual_info(true, renamed) == pytest.approx(1.0)


def test_nmi_is_symmetric_and_in_unit_interval():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 200), rng.integers(0, 3, 200)
    value = metrics.normalized_mutual_info(a, b)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(metrics.normalized_mutual_info(b, a))


def test_nmi_of_independent_labels_is_near_zero():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 10, 100_000), rng.integers(0, 10, 100_000)
    assert metrics.normalized_mutual_info(a, b) < 1e-3


def test_nmi_exactly_independent_table_is_zero():
    # every (class, cluster) pair equally often: I(Y; C) = 0 exactly
    true = np.repeat([0, 1, 2], 4)
    pred = np.tile([0, 1, 2, 3], 3)
    assert metrics.normalized_mutual_info(true, pred) == 0.0


def test_roc_auc_perfect_reversed_and_constant():
    y = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    assert metrics.roc_auc(y, scores) == 1.0
    assert metrics.roc_auc(y, -scores) == 0.0
    assert metrics.roc_auc(y, np.zeros(5)) == 0.5  # all tied: chance
    # only the order matters
    assert metrics.roc_auc(y, np.exp(scores)) == metrics.roc_auc(y, scores)


def test_roc_auc_is_pairwise_probability():
    rng = np.random.default_rng(3)
    y = rng.random(60) < 0.4
    scores = rng.integers(0, 6, 60).astype(float)  # many ties
    pos, neg = scores[y], scores[~y]
    by_pairs = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    assert metrics.roc_auc(y, scores) == pytest.approx(by_pairs, rel=1e-12)


def test_expected_calibration_error_by_hand():
    # two bins used: confidence 0.9 (correct 1 of 2) and 0.6 (correct 2 of 2)
    proba = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 0, 0, 1])
    expected = (2 / 4) * abs(0.5 - 0.9) + (2 / 4) * abs(1.0 - 0.6)
    assert metrics.expected_calibration_error(y, proba) == pytest.approx(expected)


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


def test_calibration_curve_of_a_calibrated_probability_is_diagonal():
    rng = np.random.default_rng(5)
    prob = rng.random(200_000)
    y = rng.random(200_000) < prob
    mean_pred, freq, counts = metrics.calibration_curve(y, prob, n_bins=10)
    np.testing.assert_allclose(freq, mean_pred, atol=0.01)
    assert len(counts) == 10


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: metrics.normalized_mutual_info([0, 1, 1], [0, 1]), "same length"),
        (lambda: metrics.normalized_mutual_info([0, np.nan], [0, 1]), "NaN"),
        (lambda: metrics.normalized_mutual_info([0, 1.5], [0, 1]), "integer labels"),
        (lambda: metrics.normalized_mutual_info(np.zeros((3, 2)), np.zeros(3)), "1-D"),
        (lambda: metrics.normalized_mutual_info([], []), "empty"),
        (lambda: metrics.confusion_matrix([0, 1], [0, 3], n_classes=3), "0..2"),
        (lambda: metrics.confusion_matrix([0, 1], [0, 1], n_classes=0), "n_classes"),
        (lambda: metrics.accuracy([0, 1, 2], [0, 1]), "same length"),
        (lambda: metrics.roc_auc([1, 1, 1], [0.1, 0.2, 0.3]), "both classes"),
        (lambda: metrics.roc_auc([0, 1, 2], [0.1, 0.2, 0.3]), "binary"),
        (lambda: metrics.roc_auc([0, 1], [0.1, np.nan]), "NaN"),
        (lambda: metrics.roc_auc([0, 1, 1], [0.1, 0.2]), "same length"),
        (lambda: metrics.calibration_curve([0, 1], [0.1, 1.2]), r"\[0, 1\]"),
        (lambda: metrics.calibration_curve([0, 1], [0.1, np.inf]), "NaN or infinity"),
        (lambda: metrics.calibration_curve([0, 1], [0.1, 0.2], n_bins=0), "n_bins"),
        (lambda: metrics.expected_calibration_error([0, 1], [0.3, 0.7]), "2-D"),
        (lambda: metrics.expected_calibration_error([0, 1], [[0.3, 0.3], [0.5, 0.5]]), "sum to 1"),
        (lambda: metrics.expected_calibration_error([0, 2], [[0.3, 0.7], [0.5, 0.5]]), "0..1"),
        (lambda: metrics.expected_calibration_error([0, 1], [[np.nan, 1.0], [0.5, 0.5]]), "NaN"),
        (lambda: metrics.expected_calibration_error([0, 1, 1], [[0.3, 0.7], [0.5, 0.5]]), "same length"),
    ],
)
def test_bad_input_raises_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_column_vectors_are_accepted():
    y = np.array([[0], [1], [1], [0]])
    s = np.array([[0.1], [0.8], [0.7], [0.3]])
    assert metrics.roc_auc(y, s) == 1.0
    assert metrics.accuracy(y, y) == 1.0

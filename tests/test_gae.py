"""gae_course.gae on labelled Gaussian blobs pushed through a fixed linear map.

Three 3-D blobs (classes 0, 1 and 2, the last far from the others) are mapped to 5-D by a
fixed random matrix with a little isotropic noise, so the true class-conditional densities are
known Gaussians and the standardisation has real work to do (dimensions of unequal scale).
"""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from gae_course import gae
from gae_course.gae import ClassConditionalGMM, GaussianAutoEmbeddings
from gae_course.mixture import NotFittedError

CENTRES_3D = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [40.0, 30.0, -20.0]])


def blobs(n_per=300, seed=0):
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(123).normal(size=(3, 5)) * np.array([1.0, 5.0, 0.2, 2.0, 10.0])
    labels = np.repeat(np.arange(3), n_per)
    z3 = CENTRES_3D[labels] + rng.normal(size=(len(labels), 3))
    codes = z3 @ mixing + 0.1 * rng.normal(size=(len(labels), 5)) + 7.0
    return codes, labels


@pytest.fixture(scope="module")
def fitted():
    codes, labels = blobs()
    return ClassConditionalGMM(n_components=2, random_state=0).fit(codes, labels), codes, labels


@pytest.fixture(scope="module")
def fitted_k1():
    codes, labels = blobs()
    return ClassConditionalGMM(n_components=1, reg_covar=1e-3).fit(codes, labels), codes, labels


def test_predict_recovers_the_labels(fitted):
    model, _, _ = fitted
    test_codes, test_labels = blobs(seed=1)
    assert np.mean(model.predict(test_codes) == test_labels) > 0.98
    np.testing.assert_array_equal(model.classes_, [0, 1, 2])
    np.testing.assert_allclose(model.class_prior_, [1 / 3] * 3)


def test_predict_proba_rows_sum_to_one_and_agree_with_predict(fitted):
    model, codes, _ = fitted
    proba = model.predict_proba(codes)
    assert proba.shape == (len(codes), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], model.predict(codes))


def test_bayes_rule_with_unequal_priors():
    codes, labels = blobs()
    keep = (labels != 1) | (np.arange(len(labels)) % 3 == 0)  # class 1 three times rarer
    model = ClassConditionalGMM(n_components=1).fit(codes[keep], labels[keep])
    log_lik = model.class_log_likelihoods(codes[:5])
    joint = np.exp(log_lik) * model.class_prior_
    np.testing.assert_allclose(model.predict_proba(codes[:5]), joint / joint.sum(axis=1, keepdims=True), rtol=1e-8)
    np.testing.assert_allclose(model.score_samples(codes[:5]), np.log(joint.sum(axis=1)), rtol=1e-10)
    uniform = ClassConditionalGMM(n_components=1, fit_prior=False).fit(codes[keep], labels[keep])
    np.testing.assert_allclose(uniform.class_prior_, [1 / 3] * 3)


def original_covariance(model, c):
    """Component 0's full covariance of class c in the original code space (diag(s) S diag(s))."""
    scale = model.standardizer_.scale_
    return model.gmms_[int(np.flatnonzero(model.classes_ == c)[0])].covariances_[0] * np.outer(scale, scale)


def test_class_log_likelihoods_are_densities_of_the_original_codes(fitted_k1):
    # With one component per class, p(z | c) is the Gaussian with the fitted mean and covariance
    # mapped back to the original space; scipy evaluates it there, with no standardisation.
    model, codes, _ = fitted_k1
    log_lik = model.class_log_likelihoods(codes[::50])
    for c in model.classes_:
        mean = model.component_means(c)[0]
        cov = original_covariance(model, c)
        expected = multivariate_normal(mean, cov).logpdf(codes[::50])
        np.testing.assert_allclose(log_lik[:, c], expected, rtol=1e-9, atol=1e-9)


def test_standardisation_does_not_change_decisions_much():
    codes, labels = blobs()
    raw = ClassConditionalGMM(n_components=1, standardize=False, reg_covar=1e-6).fit(codes, labels)
    np.testing.assert_allclose(raw.standardizer_.scale_, 1.0)
    assert raw.standardizer_.log_jacobian_ == 0.0
    assert np.mean(raw.predict(codes) == labels) > 0.98


def test_kl_of_a_class_with_itself_is_zero_and_with_a_far_class_large(fitted):
    model, _, _ = fitted
    rng = np.random.default_rng(0)
    matrix, stderr = gae.kl_matrix(model, n_samples=2000, rng=rng)
    assert matrix.shape == stderr.shape == (3, 3)
    np.testing.assert_array_equal(np.diag(matrix), 0.0)
    assert np.all(matrix[~np.eye(3, dtype=bool)] > 0)
    assert matrix[0, 2] > 10 * matrix[0, 1] > 0 and stderr[0, 2] > 0


def test_kl_matches_the_closed_form_for_one_component(fitted_k1):
    model, _, _ = fitted_k1
    m0, m1 = (model.component_means(c)[0] for c in (0, 1))
    S0, S1 = (original_covariance(model, c) for c in (0, 1))
    d = len(m0)
    S1_inv = np.linalg.inv(S1)
    closed = 0.5 * (
        np.trace(S1_inv @ S0) + (m1 - m0) @ S1_inv @ (m1 - m0) - d
        + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1]
    )
    kl, se = gae.kl_matrix(model, n_samples=20_000, rng=np.random.default_rng(1))
    estimate, stderr = kl[0, 1], se[0, 1]
    assert abs(estimate - closed) < 4 * stderr, (estimate, closed, stderr)
    assert stderr < 0.05 * closed


def test_sampled_codes_belong_to_the_requested_class(fitted):
    model, codes, _ = fitted
    rng = np.random.default_rng(0)
    for c in model.classes_:
        z = model.sample_codes(c, 200, rng)
        assert z.shape == (200, 5)
        assert np.mean(model.predict(z) == c) > 0.97
    assert model.component_means(2).shape == (2, 5)
    np.testing.assert_allclose(model.component_weights(0).sum(), 1.0)
    with pytest.raises(ValueError, match="unknown class"):
        model.sample_codes(7, 3, rng)


def test_threshold_rejects_the_chosen_fraction_and_far_points():
    codes, labels = blobs()
    model = ClassConditionalGMM(n_components=2).fit(codes, labels)
    with pytest.raises(NotFittedError):
        model.predict_or_reject(codes)
    model.fit_threshold(codes, quantile=0.05)
    answers = model.predict_or_reject(codes)
    assert abs(np.mean(answers == -1) - 0.05) < 0.005
    np.testing.assert_array_equal(answers[answers != -1], model.predict(codes)[answers != -1])
    far = codes[:10] + 1000.0
    np.testing.assert_array_equal(model.predict_or_reject(far), -1)
    held_out, _ = blobs(seed=2)
    assert np.mean(model.predict_or_reject(held_out) == -1) < 0.15


def test_box_and_interpolation_live_in_the_original_space(fitted):
    model, codes, _ = fitted
    rng = np.random.default_rng(0)
    box = gae.uniform_box_codes(codes, 100, rng)
    assert box.shape == (100, 5)
    assert np.all(box >= codes.min(axis=0)) and np.all(box <= codes.max(axis=0))
    line = model.interpolate_codes(0, 2, 7, rng)
    assert line.shape == (7, 5)
    np.testing.assert_allclose(line[3], (line[0] + line[-1]) / 2)
    assert model.predict(line[:1])[0] == 0 and model.predict(line[-1:])[0] == 2


def test_input_checks():
    codes, labels = blobs(n_per=20)
    with pytest.raises(NotFittedError):
        ClassConditionalGMM().predict(codes)
    with pytest.raises(ValueError, match="labels"):
        ClassConditionalGMM().fit(codes, labels[:-1])
    with pytest.raises(ValueError, match="fewer than n_components"):
        ClassConditionalGMM(n_components=30).fit(codes, labels)


# --------------------------------------------------------------------------------------------
# The torch wrapper, with a tiny untrained autoencoder
# --------------------------------------------------------------------------------------------


def test_wrapper_shapes():
    torch = pytest.importorskip("torch")
    from gae_course.models import Autoencoder, AutoencoderConfig

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        ae = Autoencoder(AutoencoderConfig(kind="mlp", latent_dim=3, hidden=(16,)))
        rng = np.random.default_rng(0)
        labels = np.repeat(np.arange(3), 30)
        images = np.clip(rng.random((90, 28, 28)) * 0.3 + labels[:, None, None] / 3.0, 0, 1).astype(np.float32)
        model = GaussianAutoEmbeddings(ae, ClassConditionalGMM(n_components=2), reject_quantile=0.1).fit(images, labels)
        assert model.codes_.shape == (90, 3)
        assert model.predict(images[:7]).shape == (7,)
        assert model.max_class_log_likelihood(images[:4]).shape == (4,)
        samples = model.sample(1, 5, rng)
        assert samples.shape == (5, 28, 28) and samples.min() >= 0 and samples.max() <= 1
        assert model.interpolate(0, 2, 6, rng).shape == (6, 28, 28)
        assert model.styles(2).shape == (2, 28, 28)
    finally:
        torch.set_num_threads(before)


def test_numpy_part_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, gae_course.gae; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_standardizer_round_trip_and_log_jacobian():
    from gae_course.standardize import Standardizer

    rng = np.random.default_rng(0)
    codes = rng.normal(3.0, [0.5, 2.0, 1.0], size=(500, 3))
    codes[:, 2] = 7.0  # a dimension that never varies keeps scale 1
    st = Standardizer().fit(codes)
    u = st.transform(codes)
    np.testing.assert_allclose(u[:, :2].mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(u[:, :2].std(0), 1.0)
    np.testing.assert_allclose(st.inverse_transform(u), codes)
    assert st.scale_[2] == 1.0
    assert st.log_jacobian_ == pytest.approx(-np.log(codes[:, 0].std() * codes[:, 1].std()))
    with pytest.raises(ValueError, match="features"):
        st.transform(codes[:, :2])


def test_monte_carlo_kl_solution_agrees_with_kl_matrix(fitted):
    """The exercise's estimator on the draws kl_matrix makes gives kl_matrix's numbers."""
    from check_cases.ch05_gae import monte_carlo_kl

    model, _, _ = fitted
    kl, stderr = gae.kl_matrix(model, 500, np.random.default_rng(3))
    u, _ = model.gmms_[0].sample(500, rng=np.random.default_rng(3))
    log_lik = model._log_likelihoods_u(u)  # (500, C)
    assert monte_carlo_kl(log_lik[:, 0], log_lik[:, 1]) == pytest.approx((kl[0, 1], stderr[0, 1]))


def test_classes_fitted_side_by_side_give_the_same_bits_as_one_after_the_other():
    from gae_course import _blocks

    codes, labels = blobs(n_per=400, seed=3)
    with _blocks.settings(workers=1, block_rows=64):
        serial = ClassConditionalGMM(3, random_state=5).fit(codes, labels)
    with _blocks.settings(workers=2, block_rows=64):
        parallel = ClassConditionalGMM(3, random_state=5).fit(codes, labels)
    for a, b in zip(serial.gmms_, parallel.gmms_):
        np.testing.assert_array_equal(a.means_, b.means_)
        np.testing.assert_array_equal(a.covariances_, b.covariances_)
        assert a.n_iter_ == b.n_iter_
    np.testing.assert_array_equal(serial.class_log_likelihoods(codes), parallel.class_log_likelihoods(codes))

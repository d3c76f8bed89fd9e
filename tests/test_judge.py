"""gae_course.judge: the Fréchet distance against scipy, and the judge on the trivial cases."""

import numpy as np
import pytest
import scipy.linalg
import torch

from gae_course import data, judge
from gae_course.train import TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_thread")


def random_spd(rng, d, scale=1.0):
    a = rng.normal(size=(d, d)) * scale
    return a @ a.T + 0.1 * np.eye(d)


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    for d in (1, 3, 20):
        mu_a, mu_b = rng.normal(size=d), rng.normal(size=d)
        cov_a, cov_b = random_spd(rng, d), random_spd(rng, d, 2.0)
        root = scipy.linalg.sqrtm(cov_a @ cov_b).real
        expected = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * root)
        got = judge.frechet_distance(mu_a, cov_a, mu_b, cov_b)
        assert got == pytest.approx(expected, rel=1e-8, abs=1e-8)
        assert got == pytest.approx(judge.frechet_distance(mu_b, cov_b, mu_a, cov_a), rel=1e-8)


def test_frechet_distance_closed_forms():
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2
    assert judge.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    rng = np.random.default_rng(1)
    mu, cov = rng.normal(size=5), random_spd(rng, 5)
    assert judge.frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-9)
    # a shift alone adds its squared length; a singular (rank-1) covariance is fine
    assert judge.frechet_distance(mu, cov, mu + 2.0, cov) == pytest.approx(4.0 * 5, rel=1e-7)
    v = rng.normal(size=(5, 1))
    assert np.isfinite(judge.frechet_distance(mu, v @ v.T, mu, cov))


def test_frechet_distance_refuses_bad_shapes_and_nans():
    with pytest.raises(ValueError, match=r"need mu \(d,\) and cov \(d, d\)"):
        judge.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="NaN or inf"):
        judge.gaussian_statistics(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"shape \(n, d\) with n >= 2"):
        judge.gaussian_statistics(np.zeros((1, 4)))


def test_judge_shapes_and_bad_input():
    model = judge.Judge()
    x = torch.rand(5, 28, 28)
    assert model(x).shape == (5, 10)
    assert model.features(x.reshape(5, 1, 28, 28)).shape == (5, 128)
    with pytest.raises(ValueError, match=r"shape \(B, 28, 28\)"):
        model(torch.rand(5, 784))
    with pytest.raises(ValueError, match="one class per image"):
        judge.class_consistency(model, x.numpy(), np.zeros(4, dtype=int))
    codes = judge.CodeClassifier(judge.CodeClassifierConfig(latent_dim=6))
    assert codes(torch.zeros(3, 6)).shape == (3, 10)


@pytest.fixture(scope="module")
def trained_judge():
    """A judge trained for 2 epochs on 6000 real MNIST images (about 10 s on one thread)."""
    images, labels = data.load_dataset("mnist", "train")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = judge.Judge()
    history = fit(model, judge.classifier_loss, (images[:6000], labels[:6000].astype(np.int64)),
                  TrainConfig(epochs=2, batch_size=64), device="cpu", progress=False)
    torch.set_num_threads(before)
    return model, history


def test_judge_recognises_real_images_and_not_noise(trained_judge):
    model, history = trained_judge
    assert history["accuracy"][-1] > 0.9
    test_images, test_labels = data.load_dataset("mnist", "test")
    real = judge.class_consistency(model, test_images[:2000], test_labels[:2000])
    assert real["overall"] > 0.85 and min(real["per_class"]) > 0.6  # a judge of 2 short epochs
    noise = np.random.default_rng(0).random((2000, 28, 28)).astype(np.float32)
    fake = judge.class_consistency(model, noise, test_labels[:2000])
    assert fake["overall"] < 0.3  # it cannot follow the requested class on noise


def test_frechet_distance_of_real_splits_is_near_zero_and_noise_is_far(trained_judge):
    model, _ = trained_judge
    test_images, _ = data.load_dataset("mnist", "test")
    split_a, split_b = test_images[:5000], test_images[5000:]
    real = judge.frechet_distance_between(model, split_a, split_b)
    noise = np.random.default_rng(0).random((5000, 28, 28)).astype(np.float32)
    blurred = (split_a + np.roll(split_a, 1, axis=2) + np.roll(split_a, -1, axis=2)) / 3
    far = judge.frechet_distance_between(model, split_a, noise)
    middle = judge.frechet_distance_between(model, split_b, blurred)
    assert real < 0.05 * far
    assert real < middle < far  # a degraded copy lies between

"""Tests for gae_course.estimators.

Three kinds of test (house style, after pyro's tests/infer/test_gradient.py):

* exact single-sample tests: fixed noise, the estimate derived by hand;
* Monte Carlo unbiasedness: the mean of R independent estimates matches a gradient known in
  closed form within 4.5 standard errors in every coordinate (R stated beside each test; with
  at most 12 coordinates per test, a false alarm has probability below 1e-4);
* baselines: the mean stays within 4.5 standard errors of the truth and the total variance
  drops below a stated fraction of the unbaselined one.
"""

import math

import pytest
import torch

from gae_course import estimators as est

Z_MAX = 4.5  # standard errors allowed between an estimator's mean and the true gradient


def _params(*values):
    return [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------
# Exact single-sample tests
# --------------------------------------------------------------------------------------------


def test_reparam_single_sample_matches_hand_derivation():
    mu, log_sigma = _params([[0.5, -1.0]], [[0.0, math.log(2.0)]])
    eps = torch.tensor([[[1.0, -0.5]]], dtype=torch.float64)  # (K=1, B=1, D=2)
    value, surrogate = est.reparam_gaussian(lambda z: (z**2).sum(-1), mu, log_sigma, eps)
    # z = mu + sigma * eps = (0.5 + 1, -1 + 2 * -0.5) = (1.5, -2.0); f = 2.25 + 4 = 6.25
    assert value.shape == (1,) and not value.requires_grad
    torch.testing.assert_close(value, torch.tensor([6.25], dtype=torch.float64))
    surrogate.backward()
    # df/dmu = 2 z; df/dlog_sigma = 2 z * sigma * eps
    torch.testing.assert_close(mu.grad, torch.tensor([[3.0, -4.0]], dtype=torch.float64))
    torch.testing.assert_close(log_sigma.grad, torch.tensor([[3.0 * 1.0 * 1.0, -4.0 * 2.0 * -0.5]],
                                                            dtype=torch.float64))


def test_reparam_averages_over_samples_and_sums_over_the_batch():
    mu, log_sigma = _params([[0.0], [1.0]], [[0.0], [0.0]])
    eps = torch.tensor([[[1.0], [2.0]], [[3.0], [-2.0]]], dtype=torch.float64)  # (K=2, B=2, D=1)
    value, surrogate = est.reparam_gaussian(lambda z: z.sum(-1) * 2.0, mu, log_sigma, eps)
    torch.testing.assert_close(value, torch.tensor([4.0, 2.0], dtype=torch.float64))
    surrogate.backward()
    torch.testing.assert_close(mu.grad, torch.full((2, 1), 2.0, dtype=torch.float64))
    # d/dlog_sigma of 2 (mu + sigma eps) = 2 sigma eps, averaged over K: (2 + 6)/2, (4 - 4)/2
    torch.testing.assert_close(log_sigma.grad, torch.tensor([[4.0], [0.0]], dtype=torch.float64))


def test_score_function_gaussian_single_sample_matches_hand_derivation():
    mu, log_sigma = _params([[0.5, -1.0]], [[0.0, math.log(2.0)]])
    eps = torch.tensor([[[1.0, -0.5]]], dtype=torch.float64)
    f = lambda z: (z**2).sum(-1)  # noqa: E731
    value, surrogate = est.score_function_gaussian(f, mu, log_sigma, eps, baseline=0.25)
    torch.testing.assert_close(value, torch.tensor([6.25], dtype=torch.float64))
    surrogate.backward()
    # d log N / d mu = (z - mu) / sigma^2 = eps / sigma; d / d log_sigma = eps^2 - 1
    sigma = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    e = eps[0]
    torch.testing.assert_close(mu.grad, 6.0 * e / sigma)
    torch.testing.assert_close(log_sigma.grad, 6.0 * (e**2 - 1.0))


def test_score_function_bernoulli_single_sample_matches_hand_derivation():
    (logits,) = _params([[0.0, math.log(3.0)]])  # p = (0.5, 0.75)
    u = torch.tensor([[[0.7, 0.2]]], dtype=torch.float64)  # z = (0, 1)
    f = lambda z: (3.0 * z[..., 0] + 5.0 * z[..., 1])  # noqa: E731, f(0, 1) = 5
    value, surrogate = est.score_function_bernoulli(f, logits, u, baseline=1.0)
    torch.testing.assert_close(value, torch.tensor([5.0], dtype=torch.float64))
    surrogate.backward()
    # d log Bernoulli(z | sigmoid(l)) / d l = z - p; times (f - b) = 4
    torch.testing.assert_close(logits.grad, 4.0 * torch.tensor([[0.0 - 0.5, 1.0 - 0.75]],
                                                               dtype=torch.float64))


def test_score_function_keeps_the_pathwise_term_of_a_parameter_dependent_f():
    (theta,) = _params([0.3])
    z = torch.tensor([[1.0], [2.0]], dtype=torch.float64)  # (K=2, B=1)
    log_prob = -0.5 * (z - theta) ** 2  # d/dtheta = z - theta
    f_values = theta * z  # df/dtheta = z
    value, surrogate = est.score_function(f_values, log_prob)
    surrogate.backward()
    expected = ((z + (theta * z) * (z - theta)).mean()).detach()
    torch.testing.assert_close(theta.grad, expected.reshape(1))
    torch.testing.assert_close(value, torch.tensor([0.45], dtype=torch.float64))


def test_leave_one_out_and_moving_average_by_hand():
    f = torch.tensor([[1.0, 0.0], [2.0, 0.0], [6.0, 3.0]], dtype=torch.float64)  # (K=3, B=2)
    expected = torch.tensor([[4.0, 1.5], [3.5, 1.5], [1.5, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(est.leave_one_out_baseline(f), expected)
    with pytest.raises(ValueError, match="at least K = 2"):
        est.leave_one_out_baseline(f[:1])

    b = est.MovingAverageBaseline(decay=0.9)
    assert float(b()) == 0.0
    b.update(torch.tensor([10.0, 10.0]))  # 0.9 * 0 + 0.1 * 10
    assert float(b()) == pytest.approx(1.0)
    b.update(torch.tensor([0.0, 20.0]))  # 0.9 * 1 + 0.1 * 10
    assert float(b()) == pytest.approx(1.9)
    with pytest.raises(ValueError, match=r"weight on the old average"):
        est.MovingAverageBaseline(decay=1.0)


def test_learned_baseline_loss_trains_only_the_baseline():
    torch.manual_seed(0)
    baseline = est.LearnedBaseline(n_inputs=1, n_hidden=0)
    x = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    (theta,) = _params([1.0, 1.0])
    f_values = theta.expand(3, 2) * 2.0  # depends on theta: the loss must not reach it
    loss = baseline.loss(baseline(x), f_values)
    loss.backward()
    assert theta.grad is None
    assert all(p.grad is not None for p in baseline.parameters())
    assert baseline(x).shape == (2,)


def test_concrete_tends_to_the_bernoulli_sample_at_low_temperature():
    logits = torch.tensor([[0.3, -1.0, 2.0]], dtype=torch.float64)
    u = est.uniform_noise(5, (1, 3), _gen(1))
    hard = (u < torch.sigmoid(logits)).double()
    f = lambda z: (z * torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)).sum(-1)  # noqa: E731
    value, _ = est.concrete_bernoulli(f, logits, u, temperature=1e-3)
    torch.testing.assert_close(value, f(hard).mean(0), atol=1e-6, rtol=0)


# --------------------------------------------------------------------------------------------
# Monte Carlo unbiasedness against closed-form gradients
# --------------------------------------------------------------------------------------------

MU = [[0.3, -0.8, 1.2]]
LOG_SIGMA = [[0.0, -0.5, 0.4]]


def _gaussian_reference(kind):
    """Closed-form gradient of E[f] w.r.t. (mu, log_sigma), f summed over D."""
    mu, sigma = torch.tensor(MU, dtype=torch.float64), torch.exp(torch.tensor(LOG_SIGMA,
                                                                              dtype=torch.float64))
    if kind == "quadratic":  # E (z - 1)^2 = (mu - 1)^2 + sigma^2
        return torch.cat([2 * (mu - 1), 2 * sigma**2]).reshape(-1)
    # E exp(z) = exp(mu + sigma^2 / 2)
    mean = torch.exp(mu + sigma**2 / 2)
    return torch.cat([mean, sigma**2 * mean]).reshape(-1)


_F = {"quadratic": lambda z: ((z - 1) ** 2).sum(-1), "exp": lambda z: torch.exp(z).sum(-1)}


@pytest.mark.parametrize("kind", ["quadratic", "exp"])
@pytest.mark.parametrize("estimator", [est.reparam_gaussian, est.score_function_gaussian])
def test_gaussian_estimators_are_unbiased(estimator, kind):
    # R = 4000 single-sample estimates, 6 coordinates, each within 4.5 standard errors
    mu, log_sigma = _params(MU, LOG_SIGMA)

    def grad(generator):
        eps = est.gaussian_noise(1, mu.shape, generator)
        _, surrogate = estimator(_F[kind], mu, log_sigma, eps)
        return est.flat_grad(surrogate, [mu, log_sigma])

    stats = est.measure(grad, 4000, _gen(2), reference=_gaussian_reference(kind))
    assert stats.max_abs_z < Z_MAX, (stats.mean, _gaussian_reference(kind))


def test_score_function_has_more_variance_than_reparam_on_a_gaussian():
    mu, log_sigma = _params(MU, LOG_SIGMA)
    variance = {}
    for estimator in (est.reparam_gaussian, est.score_function_gaussian):
        def grad(generator, estimator=estimator):
            eps = est.gaussian_noise(1, mu.shape, generator)
            return est.flat_grad(estimator(_F["quadratic"], mu, log_sigma, eps).surrogate,
                                 [mu, log_sigma])

        variance[estimator.__name__] = est.measure(grad, 1000, _gen(3)).total_variance
    assert variance["score_function_gaussian"] > 5 * variance["reparam_gaussian"]


TARGET = torch.tensor([0.2, 0.9, 0.5, 0.0], dtype=torch.float64)
LOGITS = [[0.4, -1.2, 2.0, 0.0]]


def _bernoulli_f(z):
    return ((z - TARGET) ** 2).sum(-1)


def _bernoulli_reference():
    """E sum (z - t)^2 = sum p (1 - t)^2 + (1 - p) t^2, differentiated by autograd."""
    (logits,) = _params(LOGITS)
    p = torch.sigmoid(logits)
    (p * (1 - TARGET) ** 2 + (1 - p) * TARGET**2).sum().backward()
    return logits.grad.reshape(-1)


@pytest.mark.parametrize("baseline", [0.0, 1.0])
def test_bernoulli_score_function_is_unbiased(baseline):
    # R = 4000 single-sample estimates, 4 coordinates, each within 4.5 standard errors
    (logits,) = _params(LOGITS)

    def grad(generator):
        u = est.uniform_noise(1, logits.shape, generator)
        _, surrogate = est.score_function_bernoulli(_bernoulli_f, logits, u, baseline)
        return est.flat_grad(surrogate, [logits])

    stats = est.measure(grad, 4000, _gen(4), reference=_bernoulli_reference())
    assert stats.max_abs_z < Z_MAX


def test_concrete_relaxation_is_biased_at_high_temperature():
    (logits,) = _params(LOGITS)

    def grad(generator):
        u = est.uniform_noise(1, logits.shape, generator)
        return est.flat_grad(est.concrete_bernoulli(_bernoulli_f, logits, u, 2.0).surrogate,
                             [logits])

    stats = est.measure(grad, 2000, _gen(5), reference=_bernoulli_reference())
    assert stats.max_abs_z > 10  # the relaxation estimates the gradient of another objective


def test_straight_through_is_the_hard_sample_forward_and_p_backward():
    (logits,) = _params([[0.3, -1.0, 2.0]])
    u = torch.tensor([[[0.2, 0.9, 0.5]]], dtype=torch.float64)  # hard sample (1, 0, 1)
    weights = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    value, surrogate = est.straight_through_bernoulli(lambda z: (z**2 * weights).sum(-1), logits, u)
    torch.testing.assert_close(value, torch.tensor([5.0], dtype=torch.float64))
    surrogate.backward()
    p = torch.sigmoid(logits.detach())
    # d f / d z at the hard sample is 2 z w, and dz / dlogit is p (1 - p)
    expected = 2 * torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64) * weights * p * (1 - p)
    torch.testing.assert_close(logits.grad, expected)


def test_straight_through_is_biased():
    (logits,) = _params(LOGITS)

    def grad(generator):
        u = est.uniform_noise(1, logits.shape, generator)
        return est.flat_grad(est.straight_through_bernoulli(_bernoulli_f, logits, u).surrogate,
                             [logits])

    stats = est.measure(grad, 2000, _gen(5), reference=_bernoulli_reference())
    assert stats.max_abs_z > 10  # the gradient of another function


# --------------------------------------------------------------------------------------------
# Baselines: same mean, less variance
# --------------------------------------------------------------------------------------------

B, D, K = 8, 4, 4  # problems (inputs x), latent dimensions, samples per problem
X = torch.linspace(-1.0, 1.0, B, dtype=torch.float64)[:, None]  # (B, 1)
OFFSET = 20.0 + 10.0 * X[:, 0]  # (B,): a large, input-dependent part of f


def _offset_f(z):
    return _bernoulli_f(z) + OFFSET  # (K, B)


def _batched_logits():
    return _params([[0.4, -1.2, 2.0, 0.0]] * B)[0]


def _batched_reference():
    logits = _batched_logits()
    p = torch.sigmoid(logits)
    (p * (1 - TARGET) ** 2 + (1 - p) * TARGET**2).sum().backward()
    return logits.grad.reshape(-1)


def _stats_with(make_baseline, n_repeats=1500, seed=6):
    """Run the K-sample score-function estimator with a baseline; the baseline may learn."""
    logits = _batched_logits()

    def grad(generator):
        u = est.uniform_noise(K, logits.shape, generator)
        z = (u < torch.sigmoid(logits)).double()
        f_values = _offset_f(z)  # (K, B)
        b = make_baseline(f_values)
        _, surrogate = est.score_function(f_values, est.bernoulli_log_prob(z, logits), b)
        return est.flat_grad(surrogate, [logits])

    return est.measure(grad, n_repeats, _gen(seed), reference=_batched_reference())


def _trained_learned_baseline():
    torch.manual_seed(0)
    baseline = est.LearnedBaseline(n_inputs=1, n_hidden=8)
    optimiser = torch.optim.Adam(baseline.parameters(), lr=0.05)
    generator = _gen(7)
    p = torch.sigmoid(_batched_logits().detach())
    for _ in range(400):
        z = (est.uniform_noise(K, p.shape, generator) < p).double()
        optimiser.zero_grad()
        baseline.loss(baseline(X), _offset_f(z)).backward()
        optimiser.step()
    return baseline


def _moving_average():
    average = est.MovingAverageBaseline(decay=0.9)

    def use_then_update(f_values):
        b = average()
        average.update(f_values)
        return b

    return use_then_update


def test_baselines_keep_the_mean_and_lower_the_variance():
    learned = _trained_learned_baseline()
    with torch.no_grad():
        learned_b = learned(X)
    moving = _moving_average()
    for _ in range(50):  # warm up the moving average before measuring
        moving(_offset_f(torch.zeros(K, B, D, dtype=torch.float64)) + 1.0)
    baselines = {
        "none": lambda f: 0.0,
        "constant": lambda f: est.ConstantBaseline(21.0)(),  # about mean f over all x
        "moving_average": moving,
        "learned": lambda f: learned_b,
        "leave_one_out": est.leave_one_out_baseline,
    }
    stats = {name: _stats_with(make) for name, make in baselines.items()}
    for name, s in stats.items():
        assert s.max_abs_z < Z_MAX, name  # unbiased: 32 coordinates, R = 1500
    none = stats["none"].total_variance
    for name in ["constant", "moving_average"]:
        assert stats[name].total_variance < 0.2 * none, name
    # the offset depends on x: only the input-dependent baselines remove all of it
    for name in ["learned", "leave_one_out"]:
        assert stats[name].total_variance < 0.1 * stats["constant"].total_variance, name


def test_a_baseline_that_depends_on_the_sample_is_biased():
    # the sample's own f as its baseline cancels the gradient: what leave-one-out avoids
    stats = _stats_with(lambda f: f, n_repeats=200)
    assert stats.total_variance == 0.0 and stats.max_abs_z == math.inf


# --------------------------------------------------------------------------------------------
# measure and flat_grad
# --------------------------------------------------------------------------------------------


def test_measure_recovers_a_known_mean_and_variance():
    stats = est.measure(lambda g: 2.0 + 3.0 * torch.randn(2, generator=g, dtype=torch.float64),
                        5000, _gen(8), reference=torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(stats.variance, torch.full((2,), 9.0, dtype=torch.float64),
                               rtol=0.1, atol=0)
    assert stats.total_variance == pytest.approx(float(stats.variance.sum()))
    assert stats.max_abs_z < Z_MAX and stats.n_repeats == 5000
    torch.testing.assert_close(stats.std_error, (stats.variance / 5000).sqrt())
    assert math.isnan(est.measure(lambda g: torch.zeros(1), 2, _gen(0)).max_abs_z)
    with pytest.raises(ValueError, match="n_repeats >= 2"):
        est.measure(lambda g: torch.zeros(1), 1, _gen(0))


def test_flat_grad_fills_unused_parameters_with_zeros():
    a, b = _params([1.0, 2.0], [[3.0]])
    torch.testing.assert_close(est.flat_grad((a**2).sum(), [a, b]),
                               torch.tensor([2.0, 4.0, 0.0], dtype=torch.float64))


def test_noise_is_reproducible_from_the_generator():
    torch.testing.assert_close(est.gaussian_noise(3, (2, 5), _gen(9)),
                               est.gaussian_noise(3, (2, 5), _gen(9)))
    u = est.uniform_noise(1000, (3,), _gen(10))
    assert u.shape == (1000, 3) and bool(((u > 0) & (u < 1)).all())

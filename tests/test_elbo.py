"""Tests for gae_course.elbo against torch.distributions, Monte Carlo, and a closed-form model.

Oracles: ``torch.distributions`` (``Normal``, ``Bernoulli``, ``kl_divergence``) for the
densities and the KL; Monte Carlo means with a stated sample count and a tolerance of a few
standard errors for the estimators; a linear-Gaussian model, where log p(x) and the posterior
are known exactly, for the bounds. Everything in float64 with seeded generators.
"""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Independent, MultivariateNormal, Normal, kl_divergence

from gae_course import elbo

DT = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0):
    return torch.randn(shape, generator=gen(seed), dtype=DT)


# --------------------------------------------------------------------------------------------
# A linear-Gaussian model: p(z) = N(0, I_L), p(x | z) = N(W z + b, sigma^2 I_D)
# --------------------------------------------------------------------------------------------

D, L, SIGMA = 5, 2, 0.7


def model(seed=1):
    W = randn(D, L, seed=seed)
    b = randn(D, seed=seed + 1)
    return W, b


def log_marginal(x, W, b):
    """log p(x) = log N(x | b, W W^T + sigma^2 I); x (B, D) -> (B,)."""
    cov = W @ W.T + SIGMA**2 * torch.eye(D, dtype=DT)
    return MultivariateNormal(b, covariance_matrix=cov).log_prob(x)


def posterior(x, W, b):
    """Exact p(z | x) = N(m, S): m (B, L), S (L, L)."""
    S = torch.linalg.inv(torch.eye(L, dtype=DT) + W.T @ W / SIGMA**2)
    m = (x - b) @ W @ S / SIGMA**2  # S symmetric: (S W^T (x - b))^T = (x - b)^T W S
    return m, S


def log_lik_fn(x, W, b):
    def log_likelihood(z):  # (K, B, L) -> (K, B)
        return elbo.log_normal_diag(x, z @ W.T + b, 2 * math.log(SIGMA))
    return log_likelihood


# --------------------------------------------------------------------------------------------
# Densities and KL against torch.distributions
# --------------------------------------------------------------------------------------------


def test_log_normal_diag_matches_torch_and_broadcasts():
    x, mu, logvar = randn(7, 3, 4, seed=1), randn(3, 4, seed=2), randn(3, 4, seed=3)
    expected = Normal(mu, torch.exp(0.5 * logvar)).log_prob(x).sum(-1)
    got = elbo.log_normal_diag(x, mu, logvar)
    assert got.shape == (7, 3) and got.dtype == DT
    torch.testing.assert_close(got, expected)
    # one float variance for every coordinate
    torch.testing.assert_close(
        elbo.log_normal_diag(x, mu, 0.3), Normal(mu, math.exp(0.15)).log_prob(x).sum(-1)
    )


def test_gaussian_kl_matches_kl_divergence():
    mu_q, lv_q, mu_p, lv_p = (randn(6, 3, seed=s) for s in range(4))
    q = Independent(Normal(mu_q, torch.exp(0.5 * lv_q)), 1)
    p = Independent(Normal(mu_p, torch.exp(0.5 * lv_p)), 1)
    got = elbo.gaussian_kl(mu_q, lv_q, mu_p, lv_p)
    assert got.shape == (6,)
    torch.testing.assert_close(got, kl_divergence(q, p))
    assert torch.all(got > 0)
    torch.testing.assert_close(elbo.gaussian_kl(mu_q, lv_q, mu_q, lv_q), torch.zeros(6, dtype=DT))


def test_kl_standard_normal_matches_kl_divergence_and_gaussian_kl():
    mu, logvar = randn(4, 5, seed=1), randn(4, 5, seed=2)
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    got = elbo.kl_standard_normal(mu, logvar)
    torch.testing.assert_close(got, kl_divergence(q, p))
    zeros = torch.zeros_like(mu)
    torch.testing.assert_close(got, elbo.gaussian_kl(mu, logvar, zeros, zeros))


def test_gaussian_kl_matches_monte_carlo():
    # 400_000 draws; the estimate must be within 4 standard errors of the closed form.
    n = 400_000
    mu_q, lv_q = torch.tensor([0.5, -1.0], dtype=DT), torch.tensor([-0.5, 0.3], dtype=DT)
    mu_p, lv_p = torch.tensor([0.0, 0.5], dtype=DT), torch.tensor([0.2, -0.1], dtype=DT)
    z = elbo.sample_diag_gaussian(mu_q[None], lv_q[None], n, gen(3))[:, 0]  # (n, 2)
    diff = elbo.log_normal_diag(z, mu_q, lv_q) - elbo.log_normal_diag(z, mu_p, lv_p)
    stderr = diff.std() / math.sqrt(n)
    assert abs(diff.mean() - elbo.gaussian_kl(mu_q, lv_q, mu_p, lv_p)) < 4 * stderr


def test_bernoulli_log_likelihood_matches_torch_on_images():
    logits = 3 * randn(4, 2, 1, 3, 3, seed=1)  # (K, B, C, H, W)
    x = (randn(2, 1, 3, 3, seed=2) > 0).to(DT)  # (B, C, H, W), binary
    got = elbo.bernoulli_log_likelihood(x, logits)
    assert got.shape == (4, 2)
    torch.testing.assert_close(got, Bernoulli(logits=logits).log_prob(x.expand_as(logits)).sum((-3, -2, -1)))
    flat = elbo.bernoulli_log_likelihood(x.reshape(2, -1), logits.reshape(4, 2, -1))
    torch.testing.assert_close(flat, got)


def test_bernoulli_log_likelihood_is_finite_for_saturated_logits():
    x = torch.tensor([[1.0, 0.0, 1.0]], dtype=DT)
    logits = torch.tensor([[-200.0, 200.0, 200.0]], dtype=DT)
    got = elbo.bernoulli_log_likelihood(x, logits)
    torch.testing.assert_close(got, torch.tensor([-400.0], dtype=DT))


def test_gaussian_log_likelihood_matches_torch():
    x, mean = randn(3, 1, 2, 2, seed=1), randn(5, 3, 1, 2, 2, seed=2)
    got = elbo.gaussian_log_likelihood(x, mean, logvar=math.log(0.25))
    assert got.shape == (5, 3)
    torch.testing.assert_close(got, Normal(mean, 0.5).log_prob(x).sum((-3, -2, -1)))


def test_log_mean_exp_is_stable():
    a = randn(5, 3, seed=1)
    torch.testing.assert_close(elbo.log_mean_exp(a, 0), torch.log(torch.exp(a).mean(0)))
    far = a - 1000.0  # exp underflows to 0 in float64
    torch.testing.assert_close(elbo.log_mean_exp(far, 0), elbo.log_mean_exp(a, 0) - 1000.0)
    torch.testing.assert_close(elbo.log_mean_exp(a, 1), torch.log(torch.exp(a).mean(1)))


# --------------------------------------------------------------------------------------------
# Sampling and the bounds
# --------------------------------------------------------------------------------------------


def test_sample_diag_gaussian_shape_moments_and_gradient():
    mu = torch.tensor([[1.0, -2.0]], dtype=DT, requires_grad=True)
    logvar = torch.tensor([[0.0, math.log(4.0)]], dtype=DT, requires_grad=True)
    z = elbo.sample_diag_gaussian(mu, logvar, 200_000, gen(0))
    assert z.shape == (200_000, 1, 2)
    # 200_000 draws: the mean is within 0.02 (4 standard errors of 2 / 447), the std within 1%
    torch.testing.assert_close(z.mean(0).detach(), mu.detach(), atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0).detach(), torch.tensor([[1.0, 2.0]], dtype=DT), rtol=0.01, atol=0)
    z.sum().backward()  # reparameterised: d z / d mu = 1
    torch.testing.assert_close(mu.grad, torch.full((1, 2), 200_000.0, dtype=DT))
    assert logvar.grad is not None
    again = elbo.sample_diag_gaussian(mu, logvar, 3, gen(5))
    torch.testing.assert_close(again, elbo.sample_diag_gaussian(mu, logvar, 3, gen(5)))


def test_single_sample_elbo_with_fixed_noise():
    W, b = model()
    x = randn(3, D, seed=7)
    mu, logvar = randn(3, L, seed=8), randn(3, L, seed=9) - 1.0
    got = elbo.elbo(log_lik_fn(x, W, b), mu, logvar, n_samples=1, generator=gen(4))
    eps = torch.randn((1, 3, L), generator=gen(4), dtype=DT)[0]
    z = mu + torch.exp(0.5 * logvar) * eps
    log_lik = Normal(z @ W.T + b, SIGMA).log_prob(x).sum(-1)
    kl = kl_divergence(Independent(Normal(mu, torch.exp(0.5 * logvar)), 1),
                       Independent(Normal(torch.zeros_like(mu), 1.0), 1))
    torch.testing.assert_close(got, log_lik - kl)


def test_k_sample_elbo_matches_closed_form():
    # E_q log p(x | z) = -D/2 log(2 pi sigma^2) - (|x - W m - b|^2 + tr(W S W^T)) / (2 sigma^2)
    W, b = model()
    x = randn(2, D, seed=7)
    mu, logvar = randn(2, L, seed=8), randn(2, L, seed=9) - 1.0
    var = torch.exp(logvar)
    expected_lik = -0.5 * D * math.log(2 * math.pi * SIGMA**2) - (
        ((x - mu @ W.T - b) ** 2).sum(-1) + (var * (W**2).sum(0)).sum(-1)
    ) / (2 * SIGMA**2)
    expected = expected_lik - elbo.kl_standard_normal(mu, logvar)
    # 100_000 draws: within 0.05 nats (the log-likelihood's std is about 3 nats here)
    got = elbo.elbo(log_lik_fn(x, W, b), mu, logvar, n_samples=100_000, generator=gen(1))
    torch.testing.assert_close(got, expected, atol=0.05, rtol=0)
    assert torch.all(got < log_marginal(x, W, b))


def test_exact_posterior_makes_every_log_weight_log_p_x():
    # With q = p(z | x) (diagonal when W has orthogonal columns) log p(x, z) - log q(z) = log p(x).
    W = torch.linalg.qr(randn(D, L, seed=3))[0] * torch.tensor([2.0, 0.8], dtype=DT)
    b = randn(D, seed=4)
    x = randn(4, D, seed=5)
    m, S = posterior(x, W, b)
    assert torch.allclose(S, torch.diag(torch.diagonal(S)))
    logvar = torch.log(torch.diagonal(S)).expand(4, L)
    log_w = elbo.log_importance_weights(log_lik_fn(x, W, b), m, logvar, 50, gen(2))
    assert log_w.shape == (50, 4)
    torch.testing.assert_close(log_w, log_marginal(x, W, b).expand(50, 4), atol=1e-10, rtol=0)
    single = elbo.elbo(log_lik_fn(x, W, b), m, logvar, n_samples=20_000, generator=gen(3))
    torch.testing.assert_close(single, log_marginal(x, W, b), atol=0.05, rtol=0)


def test_linear_gaussian_elbo_is_log_p_x_minus_kl_to_the_full_posterior():
    # Any W (columns not orthogonal: the posterior is correlated): ELBO(q) = log p(x) - KL(q || p(z | x)),
    # the KL between a diagonal q and the full-covariance posterior from torch.distributions.
    W, b = model()
    x = randn(3, D, seed=11)
    mu, logvar = randn(3, L, seed=12), randn(3, L, seed=13) - 1.0
    m, S = posterior(x, W, b)
    assert not torch.allclose(S, torch.diag(torch.diagonal(S)))  # a correlated posterior
    q = MultivariateNormal(mu, covariance_matrix=torch.diag_embed(torch.exp(logvar)))
    kl = kl_divergence(q, MultivariateNormal(m, covariance_matrix=S.expand(3, L, L)))
    got = elbo.linear_gaussian_elbo(x, W, b, SIGMA, mu, logvar)
    assert got.shape == (3,)
    torch.testing.assert_close(got, log_marginal(x, W, b) - kl)


def test_fully_sampled_elbo_has_zero_variance_at_the_posterior_unlike_closed_form_kl():
    # Roeder et al. (2017): at q = p(z | x) every log-weight is log p(x); reconstruction
    # sampled with the KL in closed form still fluctuates.
    W = torch.linalg.qr(randn(D, L, seed=3))[0] * torch.tensor([2.0, 0.8], dtype=DT)
    b = randn(D, seed=4)
    x = randn(1, D, seed=5)
    m, S = posterior(x, W, b)
    logvar = torch.log(torch.diagonal(S)).expand(1, L)
    log_w = elbo.log_importance_weights(log_lik_fn(x, W, b), m, logvar, 1000, gen(2))[:, 0]
    z = elbo.sample_diag_gaussian(m, logvar, 1000, gen(2))
    closed_kl = log_lik_fn(x, W, b)(z)[:, 0] - elbo.kl_standard_normal(m, logvar)
    assert log_w.std() < 1e-10 and closed_kl.std() > 0.1


def test_iwae_rises_with_k_towards_log_p_x():
    # q is a poor diagonal guess; each bound is averaged over R = 2000 independent replicates
    # (its standard error is below 0.01 nats), so that the ordering is not noise.
    W, b = model()
    x = randn(1, D, seed=11)
    log_px = log_marginal(x, W, b)[0]
    m, S = posterior(x, W, b)
    R = 2000
    mu = (m + 0.3).expand(R, L)
    logvar = (torch.log(torch.diagonal(S)) + 0.5).expand(R, L)
    xs = x.expand(R, D)
    bounds = {}
    for k in (1, 5, 50, 500):
        values = elbo.iwae(log_lik_fn(xs, W, b), mu, logvar, n_samples=k, generator=gen(k))
        assert values.shape == (R,)
        bounds[k] = values.mean().item()
    gaps = [log_px.item() - bounds[k] for k in (1, 5, 50, 500)]
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3] > -0.01
    assert gaps[0] > 0.3  # the single-sample bound is loose here
    assert gaps[3] < 0.02  # and K = 500 is nearly tight
    # K = 1 is the ELBO: the same expectation as elbo() (which uses the closed-form KL)
    plain = elbo.elbo(log_lik_fn(xs, W, b), mu, logvar, n_samples=1, generator=gen(9))
    assert abs(plain.mean().item() - bounds[1]) < 0.1


def test_iwae_bound_is_log_mean_exp_over_samples():
    log_w = randn(6, 3, seed=1) - 500.0
    expected = torch.logsumexp(log_w, 0) - math.log(6)
    torch.testing.assert_close(elbo.iwae_bound(log_w), expected)
    assert torch.all(elbo.iwae_bound(log_w) >= log_w.mean(0))  # Jensen


@pytest.mark.parametrize("fn", [elbo.elbo, elbo.iwae])
def test_bounds_are_differentiable(fn):
    W, b = model()
    x = randn(3, D, seed=2)
    mu = torch.zeros(3, L, dtype=DT, requires_grad=True)
    logvar = torch.zeros(3, L, dtype=DT, requires_grad=True)
    fn(log_lik_fn(x, W, b), mu, logvar, n_samples=4, generator=gen(0)).sum().backward()
    assert torch.isfinite(mu.grad).all() and torch.isfinite(logvar.grad).all()

"""gae_course.vae: shapes, the ELBO against gae_course.elbo and torch.distributions, the
score-function gradient against an exact enumeration, one training step, the cache."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch import distributions as D

from gae_course import elbo as elbo_lib
from gae_course import estimators
from gae_course.train import TrainConfig, fit
from gae_course.vae import (
    VAE, VAEConfig, active_units, binarize, cached_vae, elbo_terms, iwae_log_likelihood,
    kl_bernoulli_half, vae_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")

GAUSS = VAEConfig(latent_dim=3, hidden=(16,))
BERN = VAEConfig(latent_dim=3, hidden=(16,), latent="bernoulli", baseline_hidden=8)
COND = VAEConfig(latent_dim=3, hidden=(16,), n_classes=4)
GAUSS_SF = VAEConfig(latent_dim=3, hidden=(16,), estimator="score_function", baseline_hidden=8)


def binary_images(n=32, seed=0):
    """(n, 28, 28) float32 in {0, 1}: random strokes, a stand-in for binarised digits."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    centres = rng.uniform(6, 22, size=(n, 2, 1, 1))
    grey = np.exp(-((yy - centres[:, 0]) ** 2 + (xx - centres[:, 1]) ** 2) / 18.0)
    return (rng.random(grey.shape) < grey).astype(np.float32)


def model(config, seed=0):
    torch.manual_seed(seed)
    return VAE(config)


# ------------------------------------------------------------------------------------------
# Shapes and bad input
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [GAUSS, BERN, COND], ids=["gaussian", "bernoulli", "conditional"])
def test_shapes(config):
    vae = model(config)
    x = torch.from_numpy(binary_images(5))
    y = torch.arange(5) % 4 if config.conditional else None
    q = vae.posterior(x, y)
    if config.latent == "gaussian":
        assert q[0].shape == q[1].shape == (5, 3)
    else:
        assert q.shape == (5, 3)
    assert vae.encode(x, y).shape == (5, 3)
    z = vae.sample_posterior(q, 7)
    assert z.shape == (7, 5, 3)
    assert vae.decoder_logits(z, y).shape == (7, 5, 784)
    assert vae.log_likelihood(x, z, y).shape == (7, 5)
    assert vae.log_weights(x, 7, y).shape == (7, 5)
    assert vae.decode(z[0], y).shape == (5, 1, 28, 28)
    assert vae.sample(5, y).shape == (5, 1, 28, 28)
    assert vae(x.reshape(5, 1, 28, 28), y).shape == (5, 784)  # any image layout with 784 pixels
    if config.latent == "bernoulli":
        assert set(torch.unique(z).tolist()) <= {0.0, 1.0}


def test_bad_input_is_refused_with_a_reason():
    x = torch.from_numpy(binary_images(4))
    with pytest.raises(ValueError, match="784 pixels"):
        model(GAUSS).posterior(torch.zeros(4, 27, 28))
    with pytest.raises(ValueError, match="pass the labels"):
        model(COND).posterior(x)
    with pytest.raises(ValueError, match="not conditional"):
        model(GAUSS).posterior(x, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"integers in \[0, 4\)"):
        model(COND).posterior(x, torch.tensor([0, 1, 2, 4]))
    with pytest.raises(ValueError, match="shape"):
        model(COND).posterior(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="latent must be one of"):
        VAEConfig(latent="categorical")
    with pytest.raises(ValueError, match="needs the labels"):
        cached_vae("v", COND, TrainConfig(epochs=1), binary_images(4))


# ------------------------------------------------------------------------------------------
# Densities and the ELBO against independent oracles
# ------------------------------------------------------------------------------------------


def test_gaussian_loss_is_the_elbo_of_gae_course_elbo():
    vae = model(GAUSS)
    x = torch.from_numpy(binary_images(16)).reshape(16, 784)
    torch.manual_seed(5)
    loss, terms = vae.loss(x)
    mu, logvar = vae.posterior(x)
    torch.manual_seed(5)  # the same draw of epsilon
    reference = elbo_lib.elbo(lambda z: vae.log_likelihood(x, z), mu, logvar, n_samples=1)
    torch.testing.assert_close(loss, -reference.mean())
    assert terms["neg_elbo"] == pytest.approx(float(loss.detach()), rel=1e-6)
    assert terms["kl"] == pytest.approx(float(elbo_lib.kl_standard_normal(mu, logvar).mean().detach()), rel=1e-6)


def test_log_weights_match_torch_distributions():
    for config in (GAUSS, BERN):
        vae = model(config)
        x = torch.from_numpy(binary_images(6)).reshape(6, 784)
        g = torch.Generator().manual_seed(3)
        log_w = vae.log_weights(x, 4, generator=g)
        g = torch.Generator().manual_seed(3)
        q = vae.posterior(x)
        z = vae.sample_posterior(q, 4, g)
        if config.latent == "gaussian":
            posterior = D.Independent(D.Normal(q[0], torch.exp(0.5 * q[1])), 1)
            prior = D.Independent(D.Normal(torch.zeros(3), torch.ones(3)), 1)
        else:
            posterior = D.Independent(D.Bernoulli(logits=q), 1)
            prior = D.Independent(D.Bernoulli(probs=torch.full((3,), 0.5)), 1)
        likelihood = D.Independent(D.Bernoulli(logits=vae.decoder_logits(z)), 1)
        expected = likelihood.log_prob(x) + prior.log_prob(z) - posterior.log_prob(z)
        torch.testing.assert_close(log_w, expected, rtol=1e-5, atol=1e-3)


def test_closed_form_kls_match_torch_distributions():
    logits = torch.randn(5, 4, dtype=torch.float64) * 3
    expected = D.kl_divergence(D.Bernoulli(logits=logits), D.Bernoulli(probs=torch.full_like(logits, 0.5))).sum(-1)
    torch.testing.assert_close(kl_bernoulli_half(logits), expected)
    # saturated units: finite, and the KL of a certain unit is log 2
    assert torch.allclose(kl_bernoulli_half(torch.tensor([[80.0], [-80.0]])), torch.full((2,), math.log(2)))
    vae = model(GAUSS)
    x = torch.from_numpy(binary_images(6))
    mu, logvar = vae.posterior(x)
    q = D.Normal(mu, torch.exp(0.5 * logvar))
    expected = D.kl_divergence(q, D.Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    torch.testing.assert_close(vae.kl((mu, logvar)), expected, rtol=1e-5, atol=1e-6)


def test_bernoulli_objective_keeps_figures_and_gradients_apart():
    """recon/kl are the -ELBO's terms; the surrogate's gradient is the score-function estimate
    with b = c + b_psi(x); the baseline learns only from its own loss (as in Pyro)."""
    vae = model(BERN).double().eval()  # eval: c is not updated by the call
    vae.baseline_mean.fill_(-300.0)
    x = torch.from_numpy(binary_images(8)).double().reshape(8, 784)
    torch.manual_seed(3)
    out = vae.objective(x)
    torch.manual_seed(3)  # the same z, by hand
    logits = vae.posterior(x)
    z = vae.sample_posterior(logits)  # (1, 8, 3)
    log_lik = vae.log_likelihood(x, z)[0]
    kl = kl_bernoulli_half(logits)
    torch.testing.assert_close(out.recon, -log_lik.detach())
    torch.testing.assert_close(out.kl, kl.detach())
    encoder = list(vae.encoder.parameters())
    b = (vae.baseline_mean + vae.baseline(x)).detach()
    by_hand = (-(log_lik.detach() - b) * estimators.bernoulli_log_prob(z[0], logits) + kl).mean()
    torch.testing.assert_close(estimators.flat_grad(out.surrogate, encoder), estimators.flat_grad(by_hand, encoder))
    baseline_params = list(vae.baseline.parameters())
    assert all(g is None for g in torch.autograd.grad(out.surrogate, baseline_params, allow_unused=True,
                                                      retain_graph=True))
    assert all(g is None for g in torch.autograd.grad(out.baseline_loss, encoder, allow_unused=True,
                                                      retain_graph=True))
    assert estimators.flat_grad(out.baseline_loss, baseline_params).abs().sum() > 0
    loss, terms = vae.loss(x)
    assert terms["neg_elbo"] == pytest.approx(terms["recon"] + terms["kl"])


def test_moving_average_updates_in_training_mode_only():
    vae = model(BERN)
    x = torch.from_numpy(binary_images(8))
    vae.eval()
    vae.loss(x)
    assert float(vae.baseline_mean) == 0.0
    vae.train()
    _, terms = vae.loss(x)
    # c <- 0.9 * 0 + 0.1 * mean log p(x | z)
    assert float(vae.baseline_mean) == pytest.approx(-0.1 * terms["recon"], rel=1e-5)


def test_iwae_rises_with_k_and_bounds_are_ordered():
    vae = model(GAUSS)
    x = binary_images(64)
    g = torch.Generator().manual_seed(0)
    l1 = iwae_log_likelihood(vae, x, 1, generator=g, progress=False).mean()
    l50 = iwae_log_likelihood(vae, x, 50, generator=g, progress=False).mean()
    l500 = iwae_log_likelihood(vae, x, 500, generator=g, progress=False).mean()
    assert l1 < l50 < l500
    terms = elbo_terms(vae, x, generator=g)
    assert terms["neg_elbo"] == pytest.approx(-l1, rel=0.05)  # both estimate -ELBO
    assert terms["neg_elbo"] == pytest.approx(terms["recon"] + terms["kl"])


def test_iwae_estimate_is_exact_for_a_tiny_bernoulli_latent():
    """With L = 3 binary units, log p(x) = log sum_z p(z) p(x|z) over 8 codes: the oracle."""
    vae = model(BERN)
    x = torch.from_numpy(binary_images(4)).reshape(4, 784)
    codes = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))  # (8, 3)
    with torch.no_grad():
        log_joint = vae.log_likelihood(x, codes[:, None, :].expand(8, 4, 3)) + 3 * math.log(0.5)
        exact = torch.logsumexp(log_joint.double(), 0)
    g = torch.Generator().manual_seed(0)
    estimate = iwae_log_likelihood(vae, x, 20000, generator=g, progress=False)
    np.testing.assert_allclose(estimate, exact.numpy(), atol=0.05)
    assert (estimate <= exact.numpy() + 0.05).all()


# ------------------------------------------------------------------------------------------
# The score-function gradient and its baseline
# ------------------------------------------------------------------------------------------


def exact_encoder_gradient(vae, x):
    """grad_phi E_q[log p(x | z)], by enumerating the 8 codes of a 3-unit Bernoulli latent."""
    codes = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)), dtype=x.dtype)  # (8, 3)
    logits = vae.posterior(x)  # (B, 3)
    with torch.no_grad():
        log_lik = vae.log_likelihood(x, codes[:, None, :].expand(8, len(x), 3))  # (8, B)
    log_q = estimators.bernoulli_log_prob(codes[:, None, :], logits)  # (8, B)
    expectation = (log_q.exp() * log_lik).sum(0).mean()
    return estimators.flat_grad(expectation, list(vae.encoder.parameters()))


def test_score_gradient_is_unbiased_with_and_without_the_baseline():
    vae = model(BERN).double()
    x = torch.from_numpy(binary_images(4)).double().reshape(4, 784)
    vae.baseline_mean.fill_(-500.0)  # any b(x) that does not depend on z keeps it unbiased
    exact = exact_encoder_gradient(vae, x)
    g = torch.Generator().manual_seed(0)
    for use_baseline in (False, True):
        stats = estimators.measure(lambda gen: vae.encoder_score_gradient(x, gen, use_baseline),
                                   4000, g, reference=exact)
        assert stats.max_abs_z < 5.0, (use_baseline, stats.max_abs_z)


def test_a_good_baseline_reduces_the_variance():
    vae = model(BERN).double()
    x = torch.from_numpy(binary_images(4)).double().reshape(4, 784)
    with torch.no_grad():
        q = vae.posterior(x)
        vae.baseline_mean.fill_(float(vae.log_likelihood(x, vae.sample_posterior(q, 200)).mean()))
    g = torch.Generator().manual_seed(0)
    plain = estimators.measure(lambda gen: vae.encoder_score_gradient(x, gen, False), 300, g)
    centred = estimators.measure(lambda gen: vae.encoder_score_gradient(x, gen, True), 300, g)
    assert plain.total_variance > 10 * centred.total_variance


def test_estimator_options_are_checked():
    with pytest.raises(ValueError, match="cannot be reparameterised"):
        VAEConfig(latent="bernoulli", estimator="reparameterisation")
    with pytest.raises(ValueError, match="estimator must be"):
        VAEConfig(estimator="reinforce")
    with pytest.raises(ValueError, match="only applies to the score-function"):
        VAEConfig(use_baseline=False)
    assert not GAUSS.score_function and BERN.score_function
    assert VAEConfig(estimator="score_function").score_function
    assert VAEConfig(**GAUSS_SF.to_dict()) == GAUSS_SF  # JSON round trip (the cache key)


def test_gaussian_score_function_objective_is_the_estimate_by_hand():
    """estimator="score_function" on a Gaussian: z detached, the encoder learns through
    (log p(x | z) - b(x)) grad log q(z | x) plus the exact KL gradient."""
    vae = model(GAUSS_SF).double().eval()
    vae.baseline_mean.fill_(-300.0)
    x = torch.from_numpy(binary_images(8)).double().reshape(8, 784)
    torch.manual_seed(3)
    out = vae.objective(x)
    torch.manual_seed(3)
    mu, logvar = vae.posterior(x)
    z = vae.sample_posterior((mu, logvar))  # (1, 8, 3)
    assert not z.requires_grad
    log_lik = vae.log_likelihood(x, z)[0]
    kl = elbo_lib.kl_standard_normal(mu, logvar)
    b = (vae.baseline_mean + vae.baseline(x)).detach()
    by_hand = (-(log_lik.detach() - b) * elbo_lib.log_normal_diag(z[0], mu, logvar) + kl).mean()
    encoder = list(vae.encoder.parameters())
    torch.testing.assert_close(estimators.flat_grad(out.surrogate, encoder),
                               estimators.flat_grad(by_hand, encoder))
    torch.testing.assert_close(out.recon, -log_lik.detach())
    assert estimators.flat_grad(out.baseline_loss, list(vae.baseline.parameters())).abs().sum() > 0


def test_gaussian_score_function_gradient_matches_the_reparameterised_one_on_average():
    """Both estimate grad E_q[log p(x | z)]: on a tiny model (6 pixels, 2 units) the mean of
    many score-function estimates agrees with the mean of many pathwise ones."""
    tiny = dict(latent_dim=2, hidden=(4,), image_shape=(1, 2, 3), baseline_hidden=3)
    sf = model(VAEConfig(estimator="score_function", **tiny)).double()
    pathwise = model(VAEConfig(**tiny)).double()
    pathwise.load_state_dict({k: v for k, v in sf.state_dict().items() if k in pathwise.state_dict()})
    x = torch.tensor([[1.0, 0, 1, 0, 0, 1], [0, 1, 1, 1, 0, 0], [1, 1, 0, 0, 1, 0]], dtype=torch.float64)
    encoder = list(pathwise.encoder.parameters())

    def pathwise_gradient(gen):
        q = pathwise.posterior(x)
        z = pathwise.sample_posterior(q, 1, gen)
        return estimators.flat_grad(pathwise.log_likelihood(x, z)[0].mean(), encoder)

    g = torch.Generator().manual_seed(0)
    reference = estimators.measure(pathwise_gradient, 4000, g).mean
    stats = estimators.measure(lambda gen: sf.encoder_score_gradient(x, gen, True), 4000, g,
                               reference=reference)
    assert stats.max_abs_z < 5.0, stats.max_abs_z


def test_score_function_without_baseline_has_none():
    config = VAEConfig(latent_dim=3, hidden=(16,), latent="bernoulli", use_baseline=False)
    vae = model(config).double()
    assert not hasattr(vae, "baseline") and "baseline_mean" not in dict(vae.named_buffers())
    x = torch.from_numpy(binary_images(8)).double().reshape(8, 784)
    torch.manual_seed(3)
    out = vae.objective(x)
    torch.manual_seed(3)
    logits = vae.posterior(x)
    z = vae.sample_posterior(logits)
    log_lik = vae.log_likelihood(x, z)[0]
    by_hand = (-log_lik.detach() * estimators.bernoulli_log_prob(z[0], logits) + kl_bernoulli_half(logits)).mean()
    encoder = list(vae.encoder.parameters())
    torch.testing.assert_close(estimators.flat_grad(out.surrogate, encoder),
                               estimators.flat_grad(by_hand, encoder))
    assert float(out.baseline_loss) == 0.0
    with pytest.raises(ValueError, match="without a baseline"):
        vae.encoder_score_gradient(x, torch.Generator(), use_baseline=True)
    assert vae.encoder_score_gradient(x, torch.Generator().manual_seed(0), use_baseline=False).shape == (
        sum(p.numel() for p in encoder),)


def test_binary_reconstruction_decodes_the_most_probable_code():
    """A binary VAE decodes a corner of the cube it was trained on, not sigmoid(logits)."""
    vae = model(BERN)
    x = torch.from_numpy(binary_images(5))
    code = vae.most_probable_code(x)
    assert set(torch.unique(code).tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(code, (vae.posterior(x) > 0).float())
    torch.testing.assert_close(vae(x), vae.decoder_logits(code))
    gauss = model(GAUSS)
    torch.testing.assert_close(gauss(x), gauss.decoder_logits(gauss.encode(x)))


def test_score_gradient_is_for_bernoulli_latents_only():
    with pytest.raises(ValueError, match="reparameterised"):
        model(GAUSS).encoder_score_gradient(torch.zeros(2, 784), torch.Generator())


# ------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------


def held_out_elbo(vae, x, y=None):
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        return float(vae.log_weights(x, 200, y, g).mean())  # a 200-sample ELBO estimate


@pytest.mark.parametrize("config", [GAUSS, COND], ids=["gaussian", "conditional"])
def test_one_training_step_raises_the_elbo(config):
    vae = model(config)
    x = torch.from_numpy(binary_images(16)).reshape(16, 784)
    y = torch.arange(16) % 4 if config.conditional else None
    before = held_out_elbo(vae, x, y)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    loss, _ = vae.loss(x, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert held_out_elbo(vae, x, y) > before


def test_bernoulli_vae_training_raises_the_elbo_and_trains_the_baseline():
    vae = model(BERN)
    x = binary_images(64)
    before = held_out_elbo(vae, torch.from_numpy(x))
    baseline_before = [p.clone() for p in vae.baseline.parameters()]
    history = fit(vae, vae_loss(), x, TrainConfig(epochs=10, batch_size=16), progress=False,
                  device="cpu", transform=binarize)
    assert held_out_elbo(vae, torch.from_numpy(x)) > before + 20
    assert history["neg_elbo"][-1] < history["neg_elbo"][0]
    assert history["objective"] == pytest.approx(history["neg_elbo"], rel=1e-6)  # beta = 1
    assert float(vae.baseline_mean) < -50  # it follows log p(x | z)
    assert any(not torch.equal(a, b) for a, b in zip(baseline_before, vae.baseline.parameters()))


def test_binarize_draws_pixels_with_their_grey_level():
    grey = torch.full((200, 28, 28), 0.3)
    g = torch.Generator().manual_seed(0)
    binary = binarize(grey, g)
    assert set(torch.unique(binary).tolist()) == {0.0, 1.0}
    assert float(binary.mean()) == pytest.approx(0.3, abs=0.005)
    labels = torch.arange(200)
    images, same = binarize((grey, labels), g)
    assert images.shape == grey.shape and torch.equal(same, labels)


def test_binarize_is_exact_at_the_ends_and_right_in_between():
    levels = torch.tensor([0.0, 0.05, 0.5, 0.95, 1.0])
    grey = levels.repeat(20_000, 1)  # (20000, 5): each column one grey level
    binary = binarize(grey, torch.Generator().manual_seed(1))
    assert binary.dtype == grey.dtype
    frequency = binary.mean(axis=0)
    assert frequency[0] == 0.0 and frequency[-1] == 1.0, "black never lights up, white always does"
    # binomial standard error sqrt(p (1 - p) / n) <= 0.0036 here; 5 of them is a generous band
    np.testing.assert_allclose(frequency.numpy(), levels.numpy(), atol=0.018)


def test_cached_vae_loads_the_second_time(tmp_path, monkeypatch):
    monkeypatch.setenv("GAE_COURSE_CACHE", str(tmp_path))
    x, labels = binary_images(32), np.arange(32) % 4
    config = TrainConfig(epochs=1, batch_size=16)
    first = cached_vae("cvae", COND, config, x, labels=labels, progress=False)
    second = cached_vae("cvae", COND, config, x, labels=labels, progress=False)
    assert not first.loaded and second.loaded and first.path == second.path
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        torch.testing.assert_close(a, b)
    other_beta = cached_vae("cvae", COND, config, x, labels=labels, beta=2.0, progress=False)
    assert other_beta.path != first.path and not other_beta.loaded


def test_active_units_counts_units_whose_mean_moves():
    rng = np.random.default_rng(0)
    codes = np.column_stack([rng.normal(0, 1, 1000), rng.normal(0, 0.01, 1000), rng.normal(0, 0.5, 1000)])
    assert active_units(codes) == 2
    with pytest.raises(ValueError, match="shape"):
        active_units(np.zeros(5))

# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Variational autoencoders: Gaussian and Bernoulli latents
#
# Chapter 2 derived the ELBO and said that an encoder could output $q$'s parameters; chapter 3
# showed how to differentiate an expectation through a sample, with reparameterisation for a
# Gaussian and with the score function (and a baseline) for anything else. A **variational
# autoencoder** (VAE) is those two ideas trained together on images: a decoder
# $p_\theta(x \mid z)$ that turns a code into pixel probabilities, an encoder
# $q_\phi(z \mid x)$ that guesses the code of an image, and one objective, the ELBO, for both.
# Unlike the autoencoder of chapter 5, a VAE is a generative model by construction: decode a
# draw from the prior and you get a new image, and the ELBO bounds the log-likelihood of test
# images, so models can be compared in nats.
#
# **What you'll do**
#
# - write the VAE's loss, reconstruction plus KL, for one batch (checked);
# - train a Gaussian VAE on dynamically binarised MNIST, watching both terms of the ELBO;
# - look at reconstructions, samples from the prior, a 2-D code space coloured by class, and
#   interpolations between validation images;
# - estimate the log-likelihood with the importance-weighted bound (K = 1000 samples per
#   image), on validation images first, and on the test images once, at the end, beside the
#   published figure;
# - train a beta-VAE for five values of beta, count the latent units each one uses, and let
#   chapter 6's judge score its prior samples;
# - draw chosen digits with a conditional VAE;
# - train VAEs with **binary** codes and with Gaussian codes by the score-function estimator,
#   with and without a baseline, changing one thing at a time, and measure how much the
#   baseline lowers the variance of the encoder's gradient;
# - write the importance-weighted bound of a VAE with a stable log-mean-exp, and the
#   score-function surrogate with a detached learning signal and a baseline (both checked).
#
# **What you'll learn**
#
# - the ELBO as "reconstruct well" minus "stay close to the prior", and what each term does
#   during training;
# - why the held-out log-likelihood needs importance sampling, and how far the ELBO is below it;
# - what beta trades: sharper reconstructions against a code that matches the prior;
# - what the reparameterisation trick buys, by training without it.
#
# **What you'll need**
#
# - chapters 2 (ELBO, IWAE bound) and 3 (reparameterisation, score function, baselines);
# - basic PyTorch; a full run trains eight networks the first time (the README gives the
#   measured time; they are cached, so later runs take a few minutes); a few minutes with
#   `GAE_COURSE_QUICK=1`.

# %% [markdown]
# ## Setup
#
# Every size is set in the next cell. Quick mode (`GAE_COURSE_QUICK=1`, used by the tests)
# trains on 4 000 images for one or two epochs and uses fewer importance samples; the code
# that runs is the same.
#
# The main model is an MLP VAE with ReLU layers 784 → 512 → 256 → 32 numbers for $q$'s mean and
# 32 for its log-variance, and back (Kingma & Welling used one hidden layer; Burda et al.'s
# one-layer VAE has two tanh layers of 200 units and 50 latent units). The smaller models of
# the later sections (beta sweep, conditional, binary codes) share one hidden layer of 400
# units (`SMALL`), so they train several times faster.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from gae_course import (checks, config, data, estimators, judge, models, plotting, presets, results,
                        side_by_side, train, vae)

chapter_start = time.perf_counter()
rng = config.seed_everything(0)
config.limit_blas_threads()

N_VALIDATION = presets.N_VALIDATION  # held out of the 60k training images (gae_course.presets)
MAIN_CONFIG = vae.VAEConfig(latent_dim=32, hidden=(512, 256))
MAIN_TRAINING = train.TrainConfig(epochs=config.pick(full=30, quick=2), batch_size=128,
                                  schedule="cosine")  # the learning rate anneals to 0
SMALL = dict(hidden=(400,))  # the architecture of the beta sweep, the conditional and binary VAEs
SMALL_TRAINING = train.TrainConfig(epochs=config.pick(full=5, quick=1), batch_size=128)
BETAS = [0.1, 0.5, 1.0, 2.0, 4.0]  # KL weights of the beta-VAE sweep
SWEEP_CONFIG = vae.VAEConfig(latent_dim=16, **SMALL)
COND_CONFIG = presets.small_vae_configs()["conditional"]  # 8 numbers leave the class to the label
COND_TRAINING = presets.small_vae_training()  # the same model chapter 6 compares
BINARY_CONFIG = vae.VAEConfig(latent_dim=64, latent="bernoulli", **SMALL)
# the missing corners of "latent type x estimator x baseline", one change each
GAUSSIAN_SF_CONFIG = vae.VAEConfig(latent_dim=16, estimator="score_function", **SMALL)
BINARY_NO_BASELINE_CONFIG = vae.VAEConfig(latent_dim=64, latent="bernoulli", use_baseline=False, **SMALL)
PLANE_CONFIG = presets.plane_vae_config()  # a 2-D code, to draw (chapter 5 draws beside it)
PLANE_TRAINING = presets.plane_training()

IWAE_K = config.pick(full=1000, quick=100)  # importance samples per test image
N_IWAE_IMAGES = config.pick(full=2000, quick=100)  # test images for the IWAE estimate (and its ELBO)
K_CURVE = config.pick(full=[1, 10, 100, 1000], quick=[1, 10, 100])  # bound against K
N_CURVE_IMAGES = config.pick(full=200, quick=50)  # validation images for the bound against K
N_JUDGE_SAMPLES = config.pick(full=2000, quick=200)  # prior samples per beta (and real images) for the judge
N_GRADIENT_REPEATS = config.pick(full=400, quick=50)  # estimates per variance
N_GRADIENT_IMAGES = 100  # the batch whose encoder gradient is measured
PUBLISHED_NLL = 86.76  # Burda et al. (2016), Table 1: VAE (k = 1 training sample), one stochastic layer
PUBLISHED_PASSES, PUBLISHED_K = 3280, 5000  # their training passes; their L_k on the full test set
TARGET_NLL = 95.0  # this course's target for the main model, in nats

print(f"mode: {config.mode()}; torch threads: {torch.get_num_threads()}")
for name in ["N_VALIDATION", "MAIN_CONFIG", "MAIN_TRAINING", "SMALL_TRAINING", "BETAS",
             "SWEEP_CONFIG", "COND_CONFIG", "COND_TRAINING", "BINARY_CONFIG", "GAUSSIAN_SF_CONFIG",
             "BINARY_NO_BASELINE_CONFIG", "PLANE_CONFIG", "PLANE_TRAINING", "IWAE_K", "K_CURVE",
             "N_CURVE_IMAGES", "N_GRADIENT_IMAGES", "N_IWAE_IMAGES", "N_GRADIENT_REPEATS",
             "N_JUDGE_SAMPLES"]:
    print(f"  {name:25s} = {globals()[name]}")

# %% [markdown]
# ## Data: dynamically binarised MNIST
#
# The decoder models each pixel as a coin, $p_\theta(x_j = 1 \mid z) = \sigma(g_\theta(z)_j)$,
# so the pixels must be 0 or 1. MNIST's grey levels are turned into coins by **dynamic
# binarisation**: every time an image is used in training, each pixel is drawn as 1 with its
# grey level as the probability, so each epoch sees a fresh binary version of every image (this
# is also a regulariser). The test images are binarised **once**, with a fixed seed, so that
# every model is scored on the same binary images; this is the protocol of the published
# figure we compare with (Burda et al., 2016). The networks train on the course's training
# part of the 60 000 images (`gae_course.presets.validation_split`, shared with chapters 5 and
# 6). Its validation images, binarised once with their own seed, are held out: every figure
# of this chapter until the last section is measured on them, and the test set is used once,
# at the end, for the headline figure.

# %%
split = presets.validation_split("mnist")  # the validation images are held out of training
train_images, train_labels = split.images("train"), split.labels("train")
validation_images, validation_labels = split.images("validation"), split.labels("validation")
test_images, test_labels = data.load_dataset("mnist", "test")

validation_binary = torch.bernoulli(torch.from_numpy(validation_images.copy()),
                                    generator=torch.Generator().manual_seed(2015))  # (n_val, 28, 28)
binarizer = torch.Generator().manual_seed(2016)
test_binary = torch.bernoulli(torch.from_numpy(test_images.copy()), generator=binarizer)  # (10000, 28, 28)
print(f"{len(train_images)} training images (grey levels, binarised anew each epoch); "
      f"{len(validation_binary)} validation images and {len(test_binary)} test images, each "
      f"binarised once")

two_draws = [vae.binarize(torch.from_numpy(train_images[:8].copy()), torch.Generator().manual_seed(s))
             for s in (1, 2)]
plotting.image_grid(np.concatenate([train_images[:8], two_draws[0].numpy(), two_draws[1].numpy()]),
                    n_cols=8, row_labels=["grey", "draw 1", "draw 2"],
                    title="Dynamic binarisation: each epoch draws new binary pixels",
                    xlabel="training image", ylabel="version")
plt.show()

# %% [markdown]
# Each column is one training image: its grey levels, then two binary draws. Thick strokes
# survive every draw; the soft edges flicker from one draw to the next, which is the noise the
# decoder's probabilities have to explain.

# %% [markdown]
# ## The model and its loss
#
# Prior $p(z) = \mathcal N(0, I)$; decoder $p_\theta(x \mid z) = \prod_j
# \mathrm{Bernoulli}(x_j \mid \sigma(\ell_j))$ with logits $\ell = g_\theta(z)$; encoder
# $q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag} \sigma^2_\phi(x))$, which
# outputs $\mu$ and $\log \sigma^2$ ("logvar": any real number is a valid log-variance). The
# ELBO of chapter 2, split in two:
#
# $$
# \mathrm{ELBO}(x) = \underbrace{\mathbb E_{q_\phi(z \mid x)}\big[\log p_\theta(x \mid z)\big]}_{-\,\text{reconstruction}}
#   \;-\; \underbrace{\mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big)}_{\text{KL}}
#   \;\le\; \log p_\theta(x).
# $$
#
# - The **reconstruction** term is estimated with one reparameterised sample,
#   $z = \mu + \sigma \odot \varepsilon$ with $\varepsilon \sim \mathcal N(0, I)$ (chapter 3),
#   and equals the binary cross-entropy summed over the 784 pixels, computed from the logits.
# - The **KL** between two Gaussians is in closed form (chapter 2):
#   $-\tfrac12 \sum_j \big(1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2\big)$.
#
# Training minimises the mean over a batch of reconstruction + KL, the negative ELBO, in nats per
# image. The reconstruction term wants codes that pin the image down; the KL wants every
# $q(z \mid x)$ to look like the prior, so that prior draws decode to sensible images.
#
# ### Exercise: the two terms for a batch
#
# Write `vae_negative_elbo(x, mu, logvar, eps, decoder)`: from the encoder's outputs and a draw
# of noise, form $z$, decode it to logits, and return the reconstruction term and the KL, one
# number per image each.

# %%
def vae_negative_elbo(x, mu, logvar, eps, decoder):
    """Reconstruction -log p(x | z) and KL(q || N(0, I)), each of shape (B,), in nats.

    x: (B, D) binary pixels; mu, logvar: (B, L); eps: (B, L) standard normal noise;
    decoder: codes (B, L) -> logits (B, D).
    """
    ### BEGIN SOLUTION
    z = mu + torch.exp(0.5 * logvar) * eps  # reparameterised: sigma = exp(logvar / 2)
    logits = decoder(z)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)  # (B,)
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - torch.exp(logvar), dim=-1)  # (B,)
    return recon, kl
    ### END SOLUTION


checks.vae_negative_elbo(vae_negative_elbo)

# %% [markdown]
# `gae_course.vae.VAE.loss` is the verified version used from here on (it is checked against
# `gae_course.elbo` and `torch.distributions` in the test suite).
#
# ## Train this chapter's VAEs, two at a time
#
# This chapter trains eleven VAEs (the main one, a 2-D one, five for the beta sweep, a
# conditional one and three with other latents or estimators) and chapter 6's judge, which
# scores the beta sweep's samples. They are independent, and networks this small keep a
# second thread of one training busy only part of the time, so the cell below trains those
# not yet in the model cache side by side, one per core, in worker processes
# (`gae_course.side_by_side`; the README's training benchmark measures the steps per second
# this gains). A VAE trained there gets the same weights as one trained in this notebook (the
# test suite checks it). The judge is a convolutional network, whose weights depend on the
# number of threads that trained it, so it is always trained on one thread, wherever it is
# asked for. The sections below load them from the cache. On a first run this cell takes
# most of the chapter's time (its bar counts the models and gives each one's time); later
# runs skip it.

# %%
vae_jobs = [  # the longest first: the short ones fill in around it
    side_by_side.Job("main VAE", vae.cached_vae, ("vae-mnist", MAIN_CONFIG, MAIN_TRAINING, train_images)),
    side_by_side.Job("2-D VAE", presets.plane_vae),
    side_by_side.Job("judge (chapter 6's CNN)", presets.judge, ("mnist",)),
    side_by_side.Job("conditional VAE", presets.small_vae, ("conditional", "mnist")),
    side_by_side.Job("binary VAE", vae.cached_vae, ("bvae-mnist", BINARY_CONFIG, SMALL_TRAINING, train_images)),
    side_by_side.Job("score-function VAE", vae.cached_vae,
                     ("vae-mnist-sf", GAUSSIAN_SF_CONFIG, SMALL_TRAINING, train_images)),
    side_by_side.Job("binary VAE, no baseline", vae.cached_vae,
                     ("bvae-mnist-nobaseline", BINARY_NO_BASELINE_CONFIG, SMALL_TRAINING, train_images)),
    *[side_by_side.Job(f"beta = {beta:g}", vae.cached_vae,
                       (f"vae-mnist-beta{beta:g}", SWEEP_CONFIG, SMALL_TRAINING, train_images), {"beta": beta})
      for beta in BETAS],
]
trained = side_by_side.train_missing(vae_jobs)
print(f"{len(trained['cached'])} of {len(vae_jobs)} networks were in the cache; trained "
      f"{len(trained['trained'])} now in {trained['seconds']:.0f} s "
      f"(their own times add up to {sum(trained['trained'].values()):.0f} s)")

# %% [markdown]
# ## Train the Gaussian VAE
#
# Adam on batches of 128, with the learning rate annealed to zero over the run (a cosine
# schedule), so the last epochs settle into a minimum. The cell above trained it (or found it
# in the cache); this call loads it, and would train it here, with a progress bar of the
# loss, if it were missing.

# %%
fitted = vae.cached_vae("vae-mnist", MAIN_CONFIG, MAIN_TRAINING, train_images)
main_vae, main_history = fitted.model, fitted.history
print(f"{models.count_parameters(main_vae):,} parameters; trained in "
      f"{sum(main_history['seconds']):.0f} s; final training -ELBO "
      f"{main_history['neg_elbo'][-1]:.2f} nats (reconstruction {main_history['recon'][-1]:.2f}, "
      f"KL {main_history['kl'][-1]:.2f})")

# %%
epochs = np.arange(1, len(main_history["loss"]) + 1)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].plot(epochs, main_history["recon"], marker="o", label="reconstruction")
axes[0].plot(epochs, main_history["neg_elbo"], marker="o", label="-ELBO = reconstruction + KL")
axes[0].set(title="Both terms of the loss over training", xlabel="epoch", ylabel="nats per image")
axes[0].legend()
axes[1].plot(epochs, main_history["kl"], marker="o", color="tab:green")
axes[1].set(title="KL(q(z | x) || p(z)) over training", xlabel="epoch", ylabel="nats per image")
plt.show()
print(f"KL: epoch 1 {main_history['kl'][0]:.2f} -> last {main_history['kl'][-1]:.2f} nats; "
      f"-ELBO: {main_history['neg_elbo'][0]:.2f} -> {main_history['neg_elbo'][-1]:.2f}")
neg_elbo_steps = np.diff(main_history["neg_elbo"])
print(f"-ELBO rose from one epoch to the next {int((neg_elbo_steps > 0).sum())} times "
      f"(largest rise {max(neg_elbo_steps.max(), 0):.3f} nats)")
if not config.is_quick():
    assert main_history["kl"][-1] > main_history["kl"][0], "the KL should rise over training"
    assert neg_elbo_steps.max() < 0.5, "the -ELBO should fall over training (up to an epoch average's noise)"

# %% [markdown]
# Look at the two panels: the reconstruction term falls fast, while the KL *rises* from the
# first epoch's average to the last (both ends printed above): the encoder learns to
# spend nats of KL on codes that pin each image down, as long as each nat buys more than a nat
# of reconstruction. The sum, the negative ELBO, falls over training (the printed count says how
# often an epoch's average rose instead, which the noise of an average over fresh binarisations
# allows).
#
# ## Reconstructions and samples
#
# Top: binary validation images. Middle: the decoder's pixel probabilities for the mean code
# $\mu(x)$. Bottom: new images, decoded from draws $z \sim \mathcal N(0, I)$ of the prior.

# %%
show = validation_binary[:12]
with torch.no_grad():
    reconstruction = torch.sigmoid(main_vae(show)).reshape(-1, 28, 28)
    prior_samples = main_vae.sample(12, generator=torch.Generator().manual_seed(0))[:, 0]
plotting.image_grid(np.concatenate([show.numpy(), reconstruction.numpy(), prior_samples.numpy()]),
                    n_cols=12, row_labels=["validation", "recon", "prior"],
                    title="Gaussian VAE: reconstructions of validation images and samples from the prior",
                    xlabel="image", ylabel="row")
plt.show()

# %% [markdown]
# Compare the rows: reconstructions keep the digit and its slant but are a little blurred (the
# decoder outputs probabilities, the mean of many binary images that share a code). In the
# prior samples, look for how many are readable digits and how many blend two digits: the
# prior also covers regions between classes. Chapter 6 measures this with an independent
# classifier instead of by eye.
#
# ## A code you can draw
#
# A 32-dimensional code cannot be plotted, so the same recipe is trained with a 2-D code (a
# smaller network, 10 epochs). Left: the posterior means $\mu(x)$ of the validation images, coloured by
# digit (the labels are not used in training). Right: decoded codes on a grid whose spacing
# follows the prior, at the standard-normal quantiles 5 % ... 95 % in each direction.

# %%
plane = presets.plane_vae().model  # chapter 5 loads the same checkpoint
plane_means = train.encode_dataset(plane, validation_binary)
quantiles = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, 12))
grid = torch.cartesian_prod(quantiles.flip(0), quantiles)[:, [1, 0]]  # rows: z2 from high to low
fig, axes = plt.subplots(1, 2, figsize=(13, 6))
points = axes[0].scatter(plane_means[:, 0], plane_means[:, 1], c=validation_labels, cmap="tab10", s=2, alpha=0.5)
fig.colorbar(points, ax=axes[0], label="digit")
axes[0].set(title="Posterior means of the validation images (2-D VAE)", xlabel="z1", ylabel="z2",
            xlim=(-4, 4), ylim=(-4, 4))
plotting.image_grid(train.decode_latents(plane, grid), n_cols=12, ax=axes[1],
                    title="Decoded grid of prior quantiles (z1 left to right, z2 top to bottom)",
                    xlabel="z1: 5 % ... 95 % quantile", ylabel="z2: 95 % ... 5 % quantile")
plt.show()

# %% [markdown]
# The KL term pulls the codes towards the prior's round blob: look at how
# the classes share that disc, and compare with the autoencoder's codes in chapter 5, which
# nothing pulls together. On the right, look for where the decoded grid is digit-like and where
# it blurs between two classes, and for the classes whose colours overlap on the left: two
# numbers cannot keep ten classes apart.
#
# ## Interpolation
#
# Walk in a straight line from the code of one validation image to the code of another and
# decode each step.

# %%
first_of = {digit: int(np.flatnonzero(validation_labels == digit)[0]) for digit in range(10)}
pairs = [(first_of[a], first_of[b]) for a, b in [(7, 2), (1, 0), (4, 9)]]  # validation indices
steps = torch.linspace(0, 1, 10)[:, None]
with torch.no_grad():
    means = main_vae.encode(validation_binary[[i for pair in pairs for i in pair]])
    paths = [(1 - steps) * means[2 * p] + steps * means[2 * p + 1] for p in range(len(pairs))]
    path_images = train.decode_latents(main_vae, torch.cat(paths))
labels = [f"{int(validation_labels[a])}→{int(validation_labels[b])}" for a, b in pairs]
plotting.image_grid(path_images, n_cols=10, row_labels=labels,
                    title="Straight lines between the codes of two validation images",
                    xlabel="step along the line (0 = first image, 1 = second)", ylabel="pair")
plt.show()

# %% [markdown]
# Look at the middle of each row: does it show one of the two digits, a blend, or a third
# digit? Three paths are anecdotes, not a measurement; chapter 6 scores many midpoints of this
# kind with an independent classifier, for the VAE and for the autoencoder of chapter 5, and
# finds which model's midpoints are closer to real images.
#
# ## The log-likelihood, measured on validation images
#
# The ELBO is a lower bound; the quantity to report is $\log p_\theta(x)$ itself, which has no
# closed form. The importance-weighted bound of chapter 2 gets close to it with many samples
# from $q$ as the proposal:
#
# $$
# \log p_\theta(x) \;\ge\; \mathcal L_K(x) = \mathbb E\Big[\log \frac1K \sum_{k=1}^K
#   \frac{p(z_k)\, p_\theta(x \mid z_k)}{q_\phi(z_k \mid x)}\Big],\qquad z_k \sim q_\phi(z \mid x),
# $$
#
# which rises with $K$ towards $\log p_\theta(x)$ (Burda et al., 2016, Theorem 1).
#
# ### Exercise: the importance-weighted bound of a VAE
#
# Write `vae_iwae_bound(x, mu, logvar, eps, decoder)`: with $K$ noise draws `eps` of shape
# (K, B, L), form the $K$ codes of each image, their log-weights
# $\log p(z_k) + \log p_\theta(x \mid z_k) - \log q_\phi(z_k \mid x)$, and return
# $\mathcal L_K(x)$, one number per image. The log-weights of real images are about a hundred
# nats below zero, where float32's $\exp$ is already subnormal or 0 ($e^{-104}$ rounds to 0):
# take the log of the mean of the weights with the
# max trick, $\log \frac1K \sum_k e^{w_k} = m + \log \frac1K \sum_k e^{w_k - m}$ with
# $m = \max_k w_k$ (`torch.logsumexp` does this), and do not forget the $-\log K$.

# %%
def vae_iwae_bound(x, mu, logvar, eps, decoder):
    """L_K per image, shape (B,), in nats.

    x: (B, D) binary pixels; mu, logvar: (B, L); eps: (K, B, L) standard normal noise;
    decoder: codes (N, L) -> logits (N, D).
    """
    ### BEGIN SOLUTION
    K, B, L = eps.shape
    std = torch.exp(0.5 * logvar)
    z = mu + std * eps  # (K, B, L)
    logits = decoder(z.reshape(K * B, L)).reshape(K, B, -1)  # (K, B, D)
    log_lik = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
    log_2pi = np.log(2 * np.pi)
    log_prior = -0.5 * (z**2 + log_2pi).sum(-1)  # (K, B)
    log_q = -0.5 * (eps**2 + logvar + log_2pi).sum(-1)  # (K, B): (z - mu) / std = eps
    log_w = log_lik + log_prior - log_q
    return torch.logsumexp(log_w, dim=0) - np.log(K)
    ### END SOLUTION


checks.vae_iwae_bound(vae_iwae_bound)

# %% [markdown]
# From here on `gae_course.vae.iwae_log_likelihood` computes it (the log-mean-exp in float64,
# in batches, for every kind of VAE). First, how the estimate moves with $K$ on a few
# validation images, before the test set is touched: `IWAE_K` is kept if its last factor of 10
# gains less than a nat (asserted below), about the size of the test estimate's standard error.

# %%
estimate_rng = torch.Generator().manual_seed(1)
curve_images = validation_binary[:N_CURVE_IMAGES]
curve = {K: -vae.iwae_log_likelihood(main_vae, curve_images, K, generator=estimate_rng).mean()
         for K in K_CURVE}
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(list(curve), list(curve.values()), marker="o")
ax.set(xscale="log", title=f"-L_K on {N_CURVE_IMAGES} validation images: the bound tightens with K",
       xlabel="importance samples K", ylabel="-L_K (nats per image)")
plt.show()
for K, value in curve.items():
    print(f"K = {K:>5}: -L_K = {value:.2f} nats")
gains = np.diff(list(curve.values()))
print("gain from each factor of 10 in K (nats): " + ", ".join(f"{-g:.2f}" for g in gains))
if not config.is_quick():
    assert all(g < 0 for g in gains), "the bound should tighten as K grows"
    assert all(a < b for a, b in zip(gains, gains[1:])), "each factor of 10 should gain less"
    assert -gains[-1] < 1.0, f"the last factor of 10 still gains {-gains[-1]:.2f} nats: raise IWAE_K"

# %% [markdown]
# $K = 1$ is the ELBO; each factor of 10 in $K$ tightens the bound (the gains are printed), by
# less each time, as the bound approaches $\log p(x)$. $K = $ `IWAE_K` is what the last section
# uses on the test images (Burda et al. evaluated with $K = 5000$).
#
# ### How the settings were chosen
#
# The number of epochs was chosen on the validation split, with the test images out of
# sight: `tools/tune_vae.py` trains this model for 10, 15, 20 and 30 epochs (the cosine
# schedule anneals over each run, so each length is its own run) and scores each on the
# validation images; the README's tuning table has its figures. The bound kept improving
# with every extra epoch tried, so the chapter trains for the longest of them, the most its
# time budget allows. The other settings (the cosine schedule, widths 512-256, 32 latent
# units) were settled in earlier versions of this chapter, before it had a validation split,
# while a test figure was in view, and were not re-chosen: the test figure at the end is a
# held-out estimate for the training length, not for *those* choices. The figure below, the
# chosen model's negative ELBO on the validation images, is the number any other setting has
# to beat; the test set is used once, in the last section.

# %%
validation_terms = vae.elbo_terms(main_vae, validation_binary, generator=torch.Generator().manual_seed(2))
print(f"main VAE on the {len(validation_binary)} validation images: -ELBO "
      f"{validation_terms['neg_elbo']:.2f} nats (reconstruction {validation_terms['recon']:.2f}, "
      f"KL {validation_terms['kl']:.2f}); training -ELBO of the last epoch "
      f"{main_history['neg_elbo'][-1]:.2f}")

# %% [markdown]
# ## beta-VAE: weighing the KL
#
# Multiply the KL by $\beta$ and train again (Higgins et al., 2017). $\beta < 1$ lets the codes
# move away from the prior and reconstruct better; $\beta > 1$ pulls them towards it: the KL
# falls, reconstructions blur, and units that are not worth their KL can be switched off
# (their $q$ equals the prior for every image). A unit $j$ counts as **active** when its posterior mean
# varies across images, $\mathrm{Var}_x\, \mathbb E_q[z_j] > 0.01$ (Burda et al., 2016, sec. 5.2).
# Five small VAEs (16 latent units, one hidden layer), each trained for the same 5 epochs at a
# constant learning rate (not the main model's 30 cosine epochs), differing only in $\beta$:

# %%
sweep = {}
for beta in BETAS:
    fitted_beta = vae.cached_vae(f"vae-mnist-beta{beta:g}", SWEEP_CONFIG, SMALL_TRAINING,
                                 train_images, beta=beta)
    model = fitted_beta.model
    terms = vae.elbo_terms(model, validation_binary, generator=torch.Generator().manual_seed(0))
    sweep[beta] = dict(model=model, history=fitted_beta.history, **terms,
                       active_units=vae.active_units(train.encode_dataset(model, validation_binary)))

print(f"{'beta':>5} {'recon':>8} {'KL':>7} {'-ELBO':>8} {'active units':>13}   (nats per validation image)")
for beta, row in sweep.items():
    print(f"{beta:>5g} {row['recon']:>8.2f} {row['kl']:>7.2f} {row['neg_elbo']:>8.2f} "
          f"{row['active_units']:>6} of {SWEEP_CONFIG.latent_dim}")
best_elbo_beta = min(sweep, key=lambda b: sweep[b]["neg_elbo"])
kl_falls = all(sweep[a]["kl"] > sweep[b]["kl"] for a, b in zip(BETAS, BETAS[1:]))
recon_rises = all(sweep[a]["recon"] < sweep[b]["recon"] for a, b in zip(BETAS, BETAS[1:]))
print(f"as beta grows: KL falls at every step: {kl_falls}; reconstruction rises at every step: "
      f"{recon_rises}; best -ELBO at beta = {best_elbo_beta:g}")
if not config.is_quick():
    assert kl_falls and recon_rises, sweep
    assert best_elbo_beta in (0.5, 1.0, 2.0), best_elbo_beta

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
betas = list(sweep)
axes[0].plot(betas, [sweep[b]["recon"] for b in betas], marker="o", label="reconstruction")
axes[0].plot(betas, [sweep[b]["kl"] for b in betas], marker="o", label="KL")
axes[0].plot(betas, [sweep[b]["neg_elbo"] for b in betas], marker="o", label="-ELBO (beta = 1)")
axes[0].set(xscale="log", title="Validation terms of the ELBO against beta", xlabel="beta",
            ylabel="nats per image")
axes[0].legend()
axes[1].bar([f"{b:g}" for b in betas], [sweep[b]["active_units"] for b in betas])
axes[1].set(title="Active latent units against beta", xlabel="beta",
            ylabel=f"active units (of {SWEEP_CONFIG.latent_dim})")
plt.show()

# %% [markdown]
# As $\beta$ grows the KL falls and the reconstruction term rises (both printed above); the
# plain ELBO (the sum with $\beta = 1$) is best near $\beta = 1$, the value for which the
# training objective *is* the ELBO ($\beta > 1$ trains a looser bound, $\beta < 1$ no bound at
# all). Read the last column for how many units each $\beta$ leaves active (printed above; with
# 16 units and 5 epochs, units can stay worth their KL even at $\beta = 4$, so the bars may
# not move).
#
# Samples from the prior and reconstructions for each $\beta$ (rows):

# %%
sample_rng = torch.Generator().manual_seed(3)
with torch.no_grad():
    prior_rows = np.concatenate([row["model"].sample(10, generator=sample_rng)[:, 0].numpy()
                                 for row in sweep.values()])
    recon_rows = np.concatenate([torch.sigmoid(row["model"](validation_binary[:10])).reshape(-1, 28, 28).numpy()
                                 for row in sweep.values()])
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
beta_labels = [f"beta={b:g}" for b in sweep]
plotting.image_grid(prior_rows, n_cols=10, ax=axes[0], row_labels=beta_labels,
                    title="Samples from the prior", xlabel="sample", ylabel="model")
plotting.image_grid(recon_rows, n_cols=10, ax=axes[1], row_labels=beta_labels,
                    title="Reconstructions of the first 10 validation images", xlabel="validation image",
                    ylabel="model")
fig.tight_layout()
plt.show()

# %% [markdown]
# Look along the columns of the left panel for what $\beta$ does to prior samples, and of the
# right panel for what it does to reconstructions: small $\beta$ lets the codes leave the
# region the prior covers, large $\beta$ pulls reconstructions towards a typical digit.
#
# ### Does a lower beta generate better? The judge decides
#
# A course report on this model says that a lower $\beta$ "generates better". Judging samples
# by eye is how such claims are made; chapter 6's judge, a small CNN trained on the real
# training images (`gae_course.presets.judge`), measures it instead. These VAEs are not
# conditional, so the judge's class consistency (does it name the class asked for?) is not
# defined; two of chapter 6's measures for unconditional samples are: the **Fréchet distance**
# between the judge's features of `N_JUDGE_SAMPLES` prior samples and of as many held-out real
# images (validation images; lower is closer to real digits), and the judge's **mean
# confidence**, its top class probability averaged over the samples (a digit it recognises
# gets a high one). The distance's estimator is biased upwards by a term that shrinks like
# $1/n$, so every row uses the same $n$, and the first row is real against real at that $n$: the floor of the scale.

# %%
referee = presets.judge("mnist").model  # the same cached judge as chapter 6
order = np.random.default_rng(7).permutation(len(validation_images))
reference_images = validation_images[order[:N_JUDGE_SAMPLES]]  # grey levels, as the judge was trained
held_out_real = validation_images[order[N_JUDGE_SAMPLES:2 * N_JUDGE_SAMPLES]]


def judged_figures(images):
    return {"frechet": judge.frechet_distance_between(referee, images, reference_images),
            "confidence": float(judge.predict_proba(referee, images).max(1).mean())}


judged = {"real held-out images": judged_figures(held_out_real)}
for beta, row in sweep.items():
    with torch.no_grad():  # decoder means, as chapter 6 scores VAE samples
        samples = row["model"].sample(N_JUDGE_SAMPLES, generator=torch.Generator().manual_seed(8))[:, 0]
    judged[f"beta={beta:g}"] = judged_figures(samples.numpy())
print(f"n = {N_JUDGE_SAMPLES} images per row, Fréchet distance to {len(reference_images)} other "
      "validation images")
print(f"{'':22} {'Fréchet':>9} {'mean confidence':>16}")
for name, figures in judged.items():
    print(f"{name:22} {figures['frechet']:>9.2f} {figures['confidence']:>16.3f}")

frechet_by_beta = [judged[f"beta={b:g}"]["frechet"] for b in BETAS]
confidence_by_beta = [judged[f"beta={b:g}"]["confidence"] for b in BETAS]
best_frechet, best_confidence = BETAS[int(np.argmin(frechet_by_beta))], BETAS[int(np.argmax(confidence_by_beta))]
if all(a < b for a, b in zip(frechet_by_beta, frechet_by_beta[1:])):
    beta_verdict = "holds: the Fréchet distance grows with beta at every step"
elif best_frechet == min(BETAS):
    beta_verdict = "holds in part: the lowest beta is closest to real images, but not every step down helps"
else:
    beta_verdict = (f"does not hold: the samples closest to real images (Fréchet) come from "
                    f"beta = {best_frechet:g}, not the lowest beta")
print(f"verdict on 'lower beta generates better': {beta_verdict}; the judge is most confident "
      f"on the samples of beta = {best_confidence:g}")
if not config.is_quick():
    assert judged["real held-out images"]["frechet"] < min(frechet_by_beta), judged

# %% [markdown]
# The printed verdict answers the report's claim with the judge's numbers rather than our
# eyes; read it beside the table. The real-against-real row is the floor: no model's
# samples get as close to real images as other real images do. The ELBO table above and this
# one need not agree: the ELBO rewards explaining held-out images, the Fréchet distance
# rewards prior samples that look like them; compare the two tables' orderings of $\beta$.
# Each row is one training run and one set of samples, so a small difference between two
# $\beta$ is not evidence.
#
# ## A conditional VAE: draw the digit you ask for
#
# Give the label $y$ (one-hot) to both networks: $q_\phi(z \mid x, y)$ and
# $p_\theta(x \mid z, y)$ (Sohn et al., 2015). The code no longer needs to say which digit it
# is, so it is free to describe the *style*. It gets 8 units rather than 16: every nat of KL
# that the code would spend on the class is free through the label, and a smaller code makes
# the decoder lean on the label sooner. Rows: the digit asked for; columns: one prior draw $z$
# each, shared down the column.

# %%
conditional = presets.small_vae("conditional", "mnist").model  # chapter 6 loads the same file
z = torch.randn(10, COND_CONFIG.latent_dim, generator=torch.Generator().manual_seed(4))
with torch.no_grad():
    drawn = torch.cat([conditional.decode(z, torch.full((10,), digit)) for digit in range(10)])
plotting.image_grid(drawn[:, 0].numpy(), n_cols=10, row_labels=[str(d) for d in range(10)],
                    title="Conditional VAE: each row asks for a digit, each column shares one z",
                    xlabel="prior draw z (same in every row)", ylabel="digit asked for")
plt.show()

# %% [markdown]
# Look whether each row shows the digit it asked for, and whether each column keeps something
# of one style (slant, stroke width) across the digits: the label should carry the class, the
# code the rest. Look also for failed draws, blurred or of the wrong digit.
# Chapter 6 measures how often an independent classifier agrees with the label asked for, and
# compares with sampling from per-class Gaussian mixtures (chapter 5).
#
# ## Binary codes: a VAE without reparameterisation
#
# Now let $z \in \{0, 1\}^{64}$, with $q_\phi(z \mid x) = \prod_j \mathrm{Bernoulli}(\sigma(\ell_j))$
# and the prior $\mathrm{Bernoulli}(\tfrac12)^{64}$. The KL between factorised Bernoullis is in
# closed form, but $\mathbb E_q[\log p_\theta(x \mid z)]$ cannot be reparameterised: a binary
# sample is not a smooth function of $\ell$. The encoder's gradient is the score-function
# estimate of chapter 3,
#
# $$
# \nabla_\phi\, \mathbb E_q[\log p_\theta(x \mid z)] \approx
#   \big(\log p_\theta(x \mid z) - b(x)\big)\, \nabla_\phi \log q_\phi(z \mid x),
#   \qquad z \sim q_\phi(z \mid x),
# $$
#
# with the NVIL baseline $b(x) = c + b_\psi(x)$: a moving average $c$ of the learning signal
# $\log p_\theta(x \mid z)$, plus a small network trained to predict what is left for each image (Mnih & Gregor,
# 2014). Neither depends on the sampled $z$, so the estimate stays unbiased. The decoder's
# gradient is exact given $z$. NVIL also uses variance normalisation, which this course
# leaves out: it divides the centred signal $\log p_\theta(x \mid z) - b(x)$ by
# $\max(1, \hat\sigma)$, a running estimate of its standard deviation (Mnih & Gregor, 2014,
# sec. 3.3), which keeps the
# size of the encoder's steps steady while the signal's spread changes during training.
#
# ### Exercise: the score-function surrogate with a baseline
#
# Autograd differentiates a loss, not an estimator, so the estimator is written as a
# **surrogate**: a scalar whose gradient is the estimate. Write
# `score_function_surrogate(log_lik, log_q, baseline)` for a batch of one sample per image:
# `log_lik` $= \log p_\theta(x \mid z)$ at the sampled $z$ (its gradient path is the
# decoder's), `log_q` $= \log q_\phi(z \mid x)$ (the encoder's) and `baseline` $= b(x)$, a
# network's output; each of shape (B,). Return the scalar to *minimise*,
# $-\frac1B \sum_b \big[\log p_\theta(x_b \mid z_b) + (\log p_\theta(x_b \mid z_b) - b(x_b))
# \log q_\phi(z_b \mid x_b)\big]$, with the learning signal $\log p - b$ **detached**: as a
# number it multiplies $\nabla \log q$, but no gradient may flow through it, neither into the
# decoder nor into the baseline (which learns by its own squared-error loss). The check
# compares the gradients of your scalar, not its value.

# %%
def score_function_surrogate(log_lik, log_q, baseline):
    """Scalar surrogate whose gradient is minus the one-sample estimate of grad E_q[log p(x | z)].

    log_lik, log_q, baseline: (B,) tensors; returns a tensor of shape ().
    """
    ### BEGIN SOLUTION
    signal = log_lik.detach() - baseline.detach()  # (B,): how much better than usual this z was
    return -(log_lik + signal * log_q).mean()
    ### END SOLUTION


checks.score_function_surrogate(score_function_surrogate)

# %% [markdown]
# `gae_course.vae.VAE.objective` builds the same surrogate with
# `gae_course.estimators.score_function` and adds the closed-form KL.
#
# Setting the binary VAE beside the Gaussian one changes two things at once: the latent type
# and the gradient estimator. To see what each costs, two more small VAEs fill in the missing
# corners, each changing one thing: a **Gaussian** VAE trained by the **score function** (its
# samples detached, with the same learned baseline: `estimator="score_function"`), and the
# binary VAE trained **without** its baseline (`use_baseline=False`, $b = 0$). All four have
# the same hidden layer, the same epochs and the same data as the $\beta = 1$ model above.

# %%
binary = vae.cached_vae("bvae-mnist", BINARY_CONFIG, SMALL_TRAINING, train_images)
binary_vae, binary_history = binary.model, binary.history
gaussian_small, gaussian_history = sweep[1.0]["model"], sweep[1.0]["history"]
gaussian_sf = vae.cached_vae("vae-mnist-sf", GAUSSIAN_SF_CONFIG, SMALL_TRAINING, train_images)
binary_plain = vae.cached_vae("bvae-mnist-nobaseline", BINARY_NO_BASELINE_CONFIG, SMALL_TRAINING, train_images)
corners = {
    "Gaussian z (16), reparameterised": (gaussian_small, gaussian_history),
    "Gaussian z (16), score function + baseline": (gaussian_sf.model, gaussian_sf.history),
    "binary z (64), score function + baseline": (binary_vae, binary_history),
    "binary z (64), score function, no baseline": (binary_plain.model, binary_plain.history),
}
fig, ax = plt.subplots(figsize=(7.5, 4))
for label, (_, history) in corners.items():
    ax.plot(np.arange(1, len(history["neg_elbo"]) + 1), history["neg_elbo"], marker="o", label=label)
ax.set(title="Training -ELBO: latent type, estimator and baseline, one change at a time",
       xlabel="epoch", ylabel="-ELBO (nats per image, training batches)")
ax.legend(fontsize=8)
plt.show()
print("look at which curve lies lowest at every epoch, and how far apart the binary pair is")

final = {label: history["neg_elbo"][-1] for label, (_, history) in corners.items()}
one_change = [
    ("the estimator (Gaussian z: reparameterised -> score function)",
     "Gaussian z (16), reparameterised", "Gaussian z (16), score function + baseline"),
    ("the latent (score function + baseline: Gaussian 16 -> binary 64)",
     "Gaussian z (16), score function + baseline", "binary z (64), score function + baseline"),
    ("the baseline (binary z: with -> without)",
     "binary z (64), score function + baseline", "binary z (64), score function, no baseline"),
]
print(f"final training -ELBO after {SMALL_TRAINING.epochs} epochs (nats per image):")
for label, value in final.items():
    print(f"  {label:44} {value:8.2f}")
print("what one change costs (positive: the bound gets worse):")
for what, before, after in one_change:
    print(f"  {what:66} {final[after] - final[before]:+8.2f}")

# %% [markdown]
# Read the last three printed lines: each changes one thing, so each number is what that one
# change does to the training -ELBO after these few epochs (positive: the change makes the
# bound worse; negative: better). The first is what reparameterisation buys over the score
# function on the same Gaussian latent; the second is what going from 16 real numbers to 64
# bits does under the same estimator and baseline; the third is what the baseline buys on the
# binary latent. These are single training runs of a few epochs on training batches, with no
# spread over seeds: read the large differences only, and the same comparison on held-out
# images (bounds of the four models on validation images) at the end of this section.
# Samples and reconstructions of the
# binary VAE with its baseline follow. A binary VAE's decoder has only ever seen corners of the
# cube $\{0, 1\}^{64}$, so a reconstruction decodes the most probable code $\mathbb 1[\ell > 0]$
# (`VAE.most_probable_code`), not the mean $\sigma(\ell)$, which lies inside the cube where the
# decoder was never trained; prior samples decode draws from $\mathrm{Bernoulli}(\tfrac12)^{64}$.

# %%
with torch.no_grad():
    binary_recon = torch.sigmoid(binary_vae(validation_binary[:10])).reshape(-1, 28, 28)  # most probable code
    binary_samples = binary_vae.sample(10, generator=torch.Generator().manual_seed(5))[:, 0]
plotting.image_grid(np.concatenate([validation_binary[:10].numpy(), binary_recon.numpy(), binary_samples.numpy()]),
                    n_cols=10, row_labels=["validation", "recon", "prior"],
                    title="Binary-code VAE: reconstructions and samples from the prior",
                    xlabel="image", ylabel="row")
plt.show()

# %% [markdown]
# ### What the baseline buys
#
# Take the trained binary VAE and a fixed batch of 100 validation images. Draw the encoder's gradient
# estimate many times, with $b(x)$ and with $b = 0$, and compare: the two means must agree
# (both are unbiased) and the total variance (the sum over the encoder's parameters) is what the
# baseline is for.

# %%
gradient_batch = validation_binary[-N_GRADIENT_IMAGES:]
gradient_stats = {}
for use_baseline in (False, True):
    generator = torch.Generator().manual_seed(6)
    gradient_stats[use_baseline] = estimators.measure(
        lambda g: binary_vae.encoder_score_gradient(gradient_batch, g, use_baseline),
        N_GRADIENT_REPEATS, generator)
plain, centred = gradient_stats[False], gradient_stats[True]
reduction = plain.total_variance / centred.total_variance
agreement = ((plain.mean - centred.mean).abs()
             / (plain.std_error**2 + centred.std_error**2).sqrt().clamp_min(1e-12))
print(f"{'encoder gradient':<28} {'total variance':>15}")
print(f"{'no baseline (b = 0)':<28} {plain.total_variance:>15.4g}")
print(f"{'NVIL baseline c + b_psi(x)':<28} {centred.total_variance:>15.4g}")
print(f"variance reduction: {reduction:.0f}x over {N_GRADIENT_REPEATS} estimates each")
print(f"means more than 3 standard errors apart: {float((agreement > 3).float().mean()):.2%} of "
      f"{agreement.numel():,} coordinates (chance alone gives about 0.3 %)")
with torch.no_grad():  # log p(x | z) at one code z ~ q(z | x) per image: shape (B,)
    q_batch = binary_vae.posterior(gradient_batch)
    z_batch = binary_vae.sample_posterior(q_batch, 1, generator=torch.Generator().manual_seed(7))
    signal = binary_vae.log_likelihood(gradient_batch, z_batch)[0]
print(f"learning signal log p(x | z) on this batch: mean {signal.mean():.1f}, "
      f"range {signal.min():.1f} ... {signal.max():.1f} nats")
helped = float(np.mean(np.log10((plain.variance / centred.variance.clamp_min(1e-30)).numpy()) > 0))
print(f"encoder parameters whose variance the baseline lowers: {helped:.1%}")
if not config.is_quick():
    assert reduction > 10, f"the baseline should cut the variance many times over; got {reduction:.1f}x"
    assert float(signal.max()) < -10, "the learning signal should be far below zero for every image"

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
axes[0].bar(["no baseline (b = 0)", "NVIL baseline c + b_psi(x)"],
            [plain.total_variance, centred.total_variance], color=["tab:red", "tab:blue"])
axes[0].set(yscale="log", title=f"Total variance of the encoder gradient: {reduction:.0f}x lower",
            xlabel="baseline", ylabel="sum of per-parameter variances (log scale)")
ratio = (plain.variance / centred.variance.clamp_min(1e-30)).numpy()
axes[1].hist(np.log10(ratio[np.isfinite(ratio) & (ratio > 0)]), bins=50, color="tab:gray")
axes[1].axvline(0.0, color="k", linestyle="--", label="no change")
axes[1].set(title="Per-parameter variance ratio, without / with the baseline",
            xlabel="log10(variance without / variance with)", ylabel="encoder parameters")
axes[1].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# Without a baseline the learning signal $\log p(x \mid z)$ is far below zero for every image
# (its range is printed above), so each estimate is mostly a large multiple of
# $\nabla \log q$, whose mean is zero: pure noise. Subtracting $b(x)$ leaves only how much better or worse this $z$ was than usual
# for this image, and the variance falls by the factor printed above, at no cost in bias.
# Left: the two total variances; right: for each encoder parameter, how many times smaller its
# variance is with the baseline; the share of parameters right of the dashed line is printed
# above: look whether the baseline helps most parameters or only a few large ones. The mean
# agreement printed above is approximate: both runs use the same seed, so their estimates
# share their draws of $z$.
#
# The bounds of the four small VAEs, measured the same way (on the first 500 validation
# images, $K = $ `IWAE_K`), with the standard error of each model's mean; compare the
# differences with them:

# %%
compare_images = validation_binary[: min(500, N_IWAE_IMAGES)]
binary_nll = {label: float(-vae.iwae_log_likelihood(model, compare_images, IWAE_K, generator=estimate_rng).mean())
              for label, (model, _) in corners.items()}
for label, value in binary_nll.items():
    print(f"{label:<44} -L_{IWAE_K} = {value:.2f} nats ({len(compare_images)} validation images, "
          f"{SMALL_TRAINING.epochs} epochs)")
print("one change at a time, on these images (positive: worse):")
for what, before, after in one_change:
    print(f"  {what:66} {binary_nll[after] - binary_nll[before]:+8.2f}")

# %% [markdown]
# ## The test set, once
#
# Every setting is now fixed, so the main model meets the test images, the only time in this
# chapter (its training length was chosen on validation; its architecture and schedule
# were fixed earlier with a test figure in view, see "How the settings were chosen"): $\mathcal L_K$ with $K = $ `IWAE_K` and the ELBO, **on the same images**.

# %%
test_order = rng.permutation(len(test_binary))
iwae_images = test_binary[test_order[:N_IWAE_IMAGES]]
log_px = vae.iwae_log_likelihood(main_vae, iwae_images, IWAE_K, generator=estimate_rng)
test_nll = float(-log_px.mean())
test_nll_se = float(log_px.std(ddof=1) / np.sqrt(len(log_px)))
test_elbo_terms = vae.elbo_terms(main_vae, iwae_images, generator=estimate_rng)
iwae_gap = test_elbo_terms["neg_elbo"] - test_nll  # L_K - ELBO, nats per image
print(f"{'':48} {'nats':>8}")
print(f"{f'published VAE, 1 stochastic layer, L_{PUBLISHED_K}':48} {PUBLISHED_NLL:>8.2f}")
print(f"{f'this VAE, -L_K, K={IWAE_K}, {len(log_px)} test images':48} {test_nll:>8.2f} ± {test_nll_se:.2f}")
print(f"{f'this VAE, -ELBO on the same {len(log_px)} test images':48} {test_elbo_terms['neg_elbo']:>8.2f}")
print(f"L_K - ELBO on these images: {iwae_gap:.2f} nats")
print(f"training passes: {MAIN_TRAINING.epochs} here, {PUBLISHED_PASSES} for the published model "
      f"({PUBLISHED_PASSES / MAIN_TRAINING.epochs:.0f} times more)")
if not config.is_quick():
    assert test_nll <= TARGET_NLL, f"test NLL {test_nll:.2f} nats is above the target {TARGET_NLL}"
    assert iwae_gap > 1.0, f"L_K should be above the ELBO on the same images; gap {iwae_gap:.2f}"
print(f"target: at most {TARGET_NLL} nats; measured {test_nll:.2f} ({config.mode()} mode); "
      f"standard deviation of log p(x) over these images {float(log_px.std(ddof=1)):.1f} nats")

# %% [markdown]
# The ± is one standard error of the mean over the test images (the standard deviation of
# their log-likelihoods is printed above). The published figure comes from far more
# training (the ratio of passes is printed) and from $\mathcal L_{5000}$ on the full test set
# (Burda et al., 2016, used $k = 5000$ on all 10 000 test images); here $K = $ `IWAE_K` on
# `N_IWAE_IMAGES` of them (the cost grows with the number of images times $K$: all 10 000
# would take five times as long).
#
# What the printed gap means, exactly: $\log p(x) - \mathrm{ELBO}(x) = \mathrm{KL}\big(q(z \mid x)
# \,\|\, p(z \mid x)\big)$ (chapter 2), and $\log p(x) \ge \mathcal L_K(x)$, so
# $\mathcal L_K - \mathrm{ELBO}$ is a **lower bound** on the mean KL between $q$ and the true
# posterior over these images, not the KL itself; the rest of it, $\log p(x) - \mathcal L_K \ge 0$,
# is the gap that more samples would still close. The whole KL is what an encoder that output
# the exact posterior would win for this decoder; a Gaussian $q$ can close only part of it.
# The published figure also comes from a different network (two tanh layers of 200 units,
# 50 latent units, batches of 20; here 512-256, 32 units, batches of 128).

# %% [markdown]
# ## Check yourself
#
# 1. The KL term rises during the first epochs while the loss falls. Why is that not a
#    contradiction?
# 2. Why is the test set binarised once with a fixed seed, while training images are binarised
#    anew each epoch?
# 3. $\mathcal L_{1000}$ is larger than the ELBO on the same images. Which of the two would you
#    report as the model's log-likelihood, why is even $\mathcal L_{1000}$ a lower bound, and why
#    is $\mathcal L_{1000} - \mathrm{ELBO}$ only a lower bound on $\mathrm{KL}(q \,\|\, p(z \mid x))$?
# 4. Why were the beta sweep, the choice of $K$ and the binary VAEs measured on validation
#    images, and the test images used only in the last section?
# 5. A unit is inactive when its posterior mean barely moves across images (variance at most
#    0.01). What does the KL push $q(z_j \mid x)$ towards for such a unit, and what can the
#    decoder learn from $z_j$?
# 6. The baseline $b(x)$ depends on the image. Why may it not depend on the sampled $z$?
#
# <details><summary>Answers</summary>
#
# 1. The loss is the sum of both terms. Early on the encoder's codes say little about the image
#    (small KL, poor reconstruction); spending a nat of KL on a more informative code pays as
#    long as it saves more than a nat of reconstruction, so the KL rises while the sum falls.
# 2. The test figure must be a fixed number: binarising anew would add sampling noise to it and
#    make runs disagree (Burda et al. binarise once with a fixed seed). For training, fresh
#    binarisations are free data augmentation and keep the model from fitting one draw.
# 3. $\mathcal L_{1000}$: it is the tighter lower bound, closer to $\log p(x)$. It is still a
#    bound because $\log$ is concave: $\mathbb E[\log \hat p] \le \log \mathbb E[\hat p] = \log p(x)$
#    for the unbiased importance estimate $\hat p$ (Jensen). $\log p - \mathrm{ELBO} =
#    \mathrm{KL}(q \,\|\, p(z \mid x))$ exactly, and $\mathcal L_{1000} \le \log p$, so
#    $\mathcal L_{1000} - \mathrm{ELBO} \le \mathrm{KL}$: the remaining $\log p - \mathcal L_{1000}$
#    is unknown.
# 4. A figure used to choose settings is optimistically biased for the setting chosen; only
#    images that played no part in any choice give an honest estimate, and only if they are
#    used once.
# 5. Towards the prior $\mathcal N(0, 1)$ for every image: then the unit's KL is near 0, its
#    samples are noise independent of $x$, and the decoder learns to ignore $z_j$.
# 6. The estimator's mean is unbiased because $\mathbb E_q[b\, \nabla \log q] = b\, \mathbb E_q[\nabla \log q] = 0$
#    when $b$ is a constant under $q$; a $b$ that depends on $z$ cannot be taken out of the
#    expectation, and $\mathbb E_q[b(z)\, \nabla \log q(z)]$ is in general not zero, so the
#    estimate would be biased.
#
# </details>
#
# ## Summary
#
# - A VAE maximises the ELBO, reconstruction minus KL, with a reparameterised sample for the
#   first term and a closed form for the second; the KL shapes the code space like the prior, so
#   prior draws decode to digits.
# - Its held-out log-likelihood, estimated by importance sampling with $K = 1000$ on 2 000 of
#   the test images, once, is checked against the course's target; the ELBO on the same images is below
#   it, and their difference is a lower bound on the KL from $q$ to the true posterior.
# - $\beta$ trades reconstruction against prior matching; whether a lower $\beta$ draws better
#   samples is a question for the judge, not the eye; a conditional VAE separates class from
#   style.
# - Without reparameterisation (binary codes) the score function still trains the encoder, and
#   a baseline makes that practical by cutting the gradient's variance many times over; the
#   four small VAEs separate what the estimator, the latent type and the baseline each cost.
# - Chapter 5 takes the opposite road: no KL during training, a deterministic autoencoder, and
#   Gaussian mixtures fitted to its codes afterwards. Chapter 6 compares the two.

# %%
summary = results.record(
    "04_vae",
    test_nll_nats=test_nll,
    test_nll_std_error=test_nll_se,
    iwae_k=IWAE_K,
    n_test_images=len(log_px),
    published_nll_nats=PUBLISHED_NLL,
    test_neg_elbo_nats=test_elbo_terms["neg_elbo"],
    iwae_minus_elbo_nats=iwae_gap,
    n_validation_images=len(validation_binary),
    validation_neg_elbo_nats=validation_terms["neg_elbo"],
    iwae_curve={str(K): float(v) for K, v in curve.items()},
    training_epochs=MAIN_TRAINING.epochs,
    train_seconds=sum(main_history["seconds"]),
    baseline_variance_reduction=reduction,
    gradient_variance={"no_baseline": plain.total_variance, "baseline": centred.total_variance,
                       "n_repeats": N_GRADIENT_REPEATS, "n_images": N_GRADIENT_IMAGES},
    beta_sweep={f"{b:g}": {k: row[k] for k in ("recon", "kl", "neg_elbo", "active_units")}
                for b, row in sweep.items()},
    binary_vs_gaussian_nll=binary_nll,
    binary_corners_final_train_neg_elbo=final,
    beta_sweep_judge={"n": N_JUDGE_SAMPLES, "verdict": beta_verdict, **judged},
    chapter_seconds=time.perf_counter() - chapter_start,
)
summary

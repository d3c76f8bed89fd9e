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
#   interpolations between test images;
# - estimate the test log-likelihood with the importance-weighted bound (K = 1000 samples per
#   image) and set it beside the published figure;
# - train a beta-VAE for five values of beta and count the latent units each one uses;
# - draw chosen digits with a conditional VAE;
# - train a VAE with **binary** codes by the score-function estimator, and measure how much
#   its baseline lowers the variance of the encoder's gradient.
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
# - basic PyTorch; about 8 minutes of CPU for a full run the first time (six networks are
#   trained once and cached), about a minute afterwards; under a minute with
#   `GAE_COURSE_QUICK=1`.

# %% [markdown]
# ## Setup
#
# Every size is set in the next cell. Quick mode (`GAE_COURSE_QUICK=1`, used by the tests)
# trains on 4 000 images for one or two epochs and uses fewer importance samples; the code
# that runs is the same.
#
# The main model follows the usual MLP VAE of the literature, one hidden layer more than
# Kingma & Welling's: 784 → 512 → 256 → 32 numbers for $q$'s mean and 32 for its
# log-variance, and back. The smaller models of the later sections (beta sweep, conditional,
# binary codes) share one hidden layer of 400 units, so they train in seconds per epoch.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from gae_course import checks, config, data, estimators, models, plotting, presets, results, train, vae

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
PLANE_CONFIG = vae.VAEConfig(latent_dim=2, **SMALL)  # a 2-D code, to draw
PLANE_TRAINING = train.TrainConfig(epochs=config.pick(full=10, quick=1), batch_size=128)

IWAE_K = config.pick(full=1000, quick=100)  # importance samples per test image
N_IWAE_IMAGES = config.pick(full=2000, quick=100)  # test images for the IWAE estimate
K_CURVE = config.pick(full=[1, 10, 100, 1000], quick=[1, 10, 100])  # bound against K
N_CURVE_IMAGES = config.pick(full=200, quick=50)
N_GRADIENT_REPEATS = config.pick(full=400, quick=50)  # estimates per variance
N_GRADIENT_IMAGES = 100  # the batch whose encoder gradient is measured
PUBLISHED_NLL = 86.76  # Burda et al. (2016), Table 1: VAE, one stochastic layer, k = 1
TARGET_NLL = 95.0  # this course's target for the main model, in nats

print(f"mode: {config.mode()}; torch threads: {torch.get_num_threads()}")
for name in ["N_VALIDATION", "MAIN_CONFIG", "MAIN_TRAINING", "SMALL_TRAINING", "BETAS",
             "SWEEP_CONFIG", "COND_CONFIG", "COND_TRAINING", "BINARY_CONFIG", "PLANE_CONFIG",
             "PLANE_TRAINING", "IWAE_K", "K_CURVE", "N_CURVE_IMAGES", "N_GRADIENT_IMAGES",
             "N_IWAE_IMAGES", "N_GRADIENT_REPEATS"]:
    print(f"  {name:18s} = {globals()[name]}")

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
# 6); its validation images are held out for choosing settings, and the test set is for the
# final figures.

# %%
split = presets.validation_split("mnist")  # the validation images are held out of training
train_images, train_labels = split.images("train"), split.labels("train")
test_images, test_labels = data.load_dataset("mnist", "test")

binarizer = torch.Generator().manual_seed(2016)
test_binary = torch.bernoulli(torch.from_numpy(test_images.copy()), generator=binarizer)  # (10000, 28, 28)
print(f"{len(train_images)} training images (grey levels, binarised anew each epoch); "
      f"{len(test_binary)} test images binarised once")

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
# ## Train the Gaussian VAE
#
# Adam on batches of 128, with the learning rate annealed to zero over the run (a cosine
# schedule), so the last epochs settle into a minimum. The model is cached: the first run trains
# it (a progress bar shows the loss), later runs load it.

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

# %% [markdown]
# The reconstruction term falls fast, while the KL *rises*: at first the encoder puts every
# image near the prior (KL near 0, codes that say nothing), then it learns to spend nats of KL
# on codes that pin each image down, as long as each nat buys more than a nat of
# reconstruction. The sum, the negative ELBO, falls all the way.
#
# ## Reconstructions and samples
#
# Top: binary test images. Middle: the decoder's pixel probabilities for the mean code $\mu(x)$.
# Bottom: new images, decoded from draws $z \sim \mathcal N(0, I)$ of the prior.

# %%
show = test_binary[:12]
with torch.no_grad():
    reconstruction = torch.sigmoid(main_vae(show)).reshape(-1, 28, 28)
    prior_samples = main_vae.sample(12, generator=torch.Generator().manual_seed(0))[:, 0]
plotting.image_grid(np.concatenate([show.numpy(), reconstruction.numpy(), prior_samples.numpy()]),
                    n_cols=12, row_labels=["test", "recon", "prior"],
                    title="Gaussian VAE: reconstructions of test images and samples from the prior",
                    xlabel="image", ylabel="row")
plt.show()

# %% [markdown]
# Reconstructions keep the digit and its slant but are a little blurred: the decoder outputs
# probabilities, the mean of many binary images that share a code. Prior samples are mostly
# readable digits, some of them ambiguous: the prior covers regions between classes where the
# decoder blends two digits.
#
# ## A code you can draw
#
# A 32-dimensional code cannot be plotted, so the same recipe is trained with a 2-D code (a
# smaller network, 10 epochs). Left: the posterior means $\mu(x)$ of the test images, coloured by
# digit (the labels are not used in training). Right: decoded codes on a grid whose spacing
# follows the prior, at the standard-normal quantiles 5 % ... 95 % in each direction.

# %%
plane = vae.cached_vae("vae-mnist-2d", PLANE_CONFIG, PLANE_TRAINING, train_images).model
plane_means = train.encode_dataset(plane, test_binary)
quantiles = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, 12))
grid = torch.cartesian_prod(quantiles.flip(0), quantiles)[:, [1, 0]]  # rows: z2 from high to low
fig, axes = plt.subplots(1, 2, figsize=(13, 6))
points = axes[0].scatter(plane_means[:, 0], plane_means[:, 1], c=test_labels, cmap="tab10", s=2, alpha=0.5)
fig.colorbar(points, ax=axes[0], label="digit")
axes[0].set(title="Posterior means of the test images (2-D VAE)", xlabel="z1", ylabel="z2",
            xlim=(-4, 4), ylim=(-4, 4))
plotting.image_grid(train.decode_latents(plane, grid), n_cols=12, ax=axes[1],
                    title="Decoded grid of prior quantiles (z1 left to right, z2 top to bottom)",
                    xlabel="z1: 5 % ... 95 % quantile", ylabel="z2: 95 % ... 5 % quantile")
plt.show()

# %% [markdown]
# The KL term pulls the codes into a round blob the size of the prior: the classes tile one
# disc with no empty space between them, unlike the autoencoder's clouds in chapter 5. So every
# point of the prior decodes to something digit-like (right), at the price of blurry
# transitions where classes meet, and of classes (4, 7, 9) that overlap in two dimensions.
#
# ## Interpolation
#
# Walk in a straight line from the code of one test image to the code of another and decode
# each step.

# %%
pairs = [(0, 1), (2, 3), (4, 7)]  # indices of test images (digits 7->2, 1->0, 4->9)
steps = torch.linspace(0, 1, 10)[:, None]
with torch.no_grad():
    means = main_vae.encode(test_binary[[i for pair in pairs for i in pair]])
    paths = [(1 - steps) * means[2 * p] + steps * means[2 * p + 1] for p in range(len(pairs))]
    path_images = train.decode_latents(main_vae, torch.cat(paths))
labels = [f"{int(test_labels[a])}→{int(test_labels[b])}" for a, b in pairs]
plotting.image_grid(path_images, n_cols=10, row_labels=labels,
                    title="Straight lines between the codes of two test images",
                    xlabel="step along the line (0 = first image, 1 = second)", ylabel="pair")
plt.show()

# %% [markdown]
# Each row morphs smoothly, and the middle images are mostly digit-like: the KL term has packed
# the codes together, so a straight line between two codes stays where the decoder was trained.
#
# ## The test log-likelihood
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
# which rises with $K$ towards $\log p_\theta(x)$ (Burda et al., 2016, Theorem 1). First, how
# the estimate moves with $K$ on a few test images:

# %%
estimate_rng = torch.Generator().manual_seed(1)
test_order = rng.permutation(len(test_binary))
curve_images = test_binary[test_order[:N_CURVE_IMAGES]]
curve = {K: -vae.iwae_log_likelihood(main_vae, curve_images, K, generator=estimate_rng).mean()
         for K in K_CURVE}
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(list(curve), list(curve.values()), marker="o")
ax.set(xscale="log", title=f"-L_K on {N_CURVE_IMAGES} test images: the bound tightens with K",
       xlabel="importance samples K", ylabel="-L_K (nats per image)")
plt.show()
for K, value in curve.items():
    print(f"K = {K:>5}: -L_K = {value:.2f} nats")

# %% [markdown]
# $K = 1$ is the ELBO; the first 10 samples gain several nats, the next factors of 10 gain less
# and less as the bound approaches $\log p(x)$. With $K = 1000$ the remaining gap is small
# compared with the differences between models. Now the estimate on the held-out images:

# %%
iwae_images = test_binary[test_order[:N_IWAE_IMAGES]]
log_px = vae.iwae_log_likelihood(main_vae, iwae_images, IWAE_K, generator=estimate_rng)
test_nll = float(-log_px.mean())
test_nll_se = float(log_px.std(ddof=1) / np.sqrt(len(log_px)))
test_elbo_terms = vae.elbo_terms(main_vae, test_binary, generator=estimate_rng)
print(f"{'':42} {'nats':>8}")
print(f"{'published VAE, 1 stochastic layer (3280 passes)':42} {PUBLISHED_NLL:>8.2f}")
print(f"{f'this VAE, -L_K, K={IWAE_K}, {len(log_px)} test images':42} {test_nll:>8.2f} ± {test_nll_se:.2f}")
print(f"{f'this VAE, -ELBO on all {len(test_binary)} test images':42} {test_elbo_terms['neg_elbo']:>8.2f}")
print(f"training passes: {MAIN_TRAINING.epochs} (the published model: 3280)")

# %% [markdown]
# The ± is one standard error of the mean over the test images (their log-likelihoods differ
# by tens of nats from one digit to another). The published figure took about a hundred times
# more passes over the data, a GPU and a week; a few minutes on a laptop CPU get within a few
# nats of it. The ELBO is several nats below $\mathcal L_{1000}$: that gap is the KL between
# $q$ and the true posterior, what a better encoder could still win.

# %%
if config.mode() == "full":
    assert test_nll <= TARGET_NLL, f"test NLL {test_nll:.2f} nats is above the target {TARGET_NLL}"
print(f"target: at most {TARGET_NLL} nats; measured {test_nll:.2f} ({config.mode()} mode)")

# %% [markdown]
# ## beta-VAE: weighing the KL
#
# Multiply the KL by $\beta$ and train again (Higgins et al., 2017). $\beta < 1$ lets the codes
# move away from the prior and reconstruct better; $\beta > 1$ pulls them towards it: the KL
# falls, reconstructions blur, and units that are not worth their KL can be switched off
# (their $q$ equals the prior for every image). A unit $j$ counts as **active** when its posterior mean
# varies across images, $\mathrm{Var}_x\, \mathbb E_q[z_j] > 0.01$ (Burda et al., 2016, sec. 5.2).
# Five small VAEs (16 latent units, one hidden layer), trained the same way but for $\beta$:

# %%
sweep = {}
for beta in BETAS:
    fitted_beta = vae.cached_vae(f"vae-mnist-beta{beta:g}", SWEEP_CONFIG, SMALL_TRAINING,
                                 train_images, beta=beta)
    model = fitted_beta.model
    terms = vae.elbo_terms(model, test_binary, generator=torch.Generator().manual_seed(0))
    sweep[beta] = dict(model=model, history=fitted_beta.history, **terms,
                       active_units=vae.active_units(train.encode_dataset(model, test_binary)))

print(f"{'beta':>5} {'recon':>8} {'KL':>7} {'-ELBO':>8} {'active units':>13}   (nats per test image)")
for beta, row in sweep.items():
    print(f"{beta:>5g} {row['recon']:>8.2f} {row['kl']:>7.2f} {row['neg_elbo']:>8.2f} "
          f"{row['active_units']:>6} of {SWEEP_CONFIG.latent_dim}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
betas = list(sweep)
axes[0].plot(betas, [sweep[b]["recon"] for b in betas], marker="o", label="reconstruction")
axes[0].plot(betas, [sweep[b]["kl"] for b in betas], marker="o", label="KL")
axes[0].plot(betas, [sweep[b]["neg_elbo"] for b in betas], marker="o", label="-ELBO (beta = 1)")
axes[0].set(xscale="log", title="Test terms of the ELBO against beta", xlabel="beta",
            ylabel="nats per image")
axes[0].legend()
axes[1].bar([f"{b:g}" for b in betas], [sweep[b]["active_units"] for b in betas])
axes[1].set(title="Active latent units against beta", xlabel="beta",
            ylabel=f"active units (of {SWEEP_CONFIG.latent_dim})")
plt.show()

# %% [markdown]
# As $\beta$ grows the KL falls and the reconstruction term rises; the plain ELBO (the sum with
# $\beta = 1$) is best near $\beta = 1$, the value that makes it a bound on $\log p(x)$. Units
# switch off only at the largest $\beta$, and few of them: with 16 units and 5 epochs most are
# worth their KL even at $\beta = 4$.
#
# Samples from the prior and reconstructions for each $\beta$ (rows):

# %%
sample_rng = torch.Generator().manual_seed(3)
with torch.no_grad():
    prior_rows = np.concatenate([row["model"].sample(10, generator=sample_rng)[:, 0].numpy()
                                 for row in sweep.values()])
    recon_rows = np.concatenate([torch.sigmoid(row["model"](test_binary[:10])).reshape(-1, 28, 28).numpy()
                                 for row in sweep.values()])
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
beta_labels = [f"beta={b:g}" for b in sweep]
plotting.image_grid(prior_rows, n_cols=10, ax=axes[0], row_labels=beta_labels,
                    title="Samples from the prior", xlabel="sample", ylabel="model")
plotting.image_grid(recon_rows, n_cols=10, ax=axes[1], row_labels=beta_labels,
                    title="Reconstructions of the first 10 test images", xlabel="test image",
                    ylabel="model")
fig.tight_layout()
plt.show()

# %% [markdown]
# Small $\beta$: sharp reconstructions, but prior samples that are often not digits, because
# the codes no longer fill the prior (the same failure as uniform codes in chapter 5). Large
# $\beta$: every sample is a plausible, blurry digit, and reconstructions drift towards a typical
# digit of the same shape.
#
# ## A conditional VAE: draw the digit you ask for
#
# Give the label $y$ (one-hot) to both networks: $q_\phi(z \mid x, y)$ and
# $p_\theta(x \mid z, y)$ (Sohn et al., 2015). The code no longer needs to say which digit it
# is, so it is free to describe the *style*. It gets 8 units rather than 16: every nat of KL
# that the code would spend on the class is free through the label, and a smaller code makes
# the decoder lean on the label sooner (with 16 units and 10 epochs, the class still leaked
# into $z$ and columns looked alike). Rows: the digit asked for; columns: one prior draw $z$
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
# Most images show the digit their row asked for, and each column keeps something of one
# style (slant, stroke width) across the digits: the label carries the class, the code the
# rest. Some draws fail: prior draws far from where the training codes sit decode to blurred
# or wrong digits.
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
# with the NVIL baseline $b(x) = c + b_\psi(x)$: a moving average $c$ of the reconstruction
# term, plus a small network trained to predict what is left for each image (Mnih & Gregor,
# 2014). Neither depends on the sampled $z$, so the estimate stays unbiased. The decoder's
# gradient is exact given $z$. Same hidden layer and epochs as the $\beta = 1$ model above.

# %%
binary = vae.cached_vae("bvae-mnist", BINARY_CONFIG, SMALL_TRAINING, train_images)
binary_vae, binary_history = binary.model, binary.history
gaussian_small, gaussian_history = sweep[1.0]["model"], sweep[1.0]["history"]
fig, ax = plt.subplots(figsize=(6, 3.5))
for label, history in [("Gaussian z (16 units), reparameterised", gaussian_history),
                       ("binary z (64 units), score function + baseline", binary_history)]:
    ax.plot(np.arange(1, len(history["neg_elbo"]) + 1), history["neg_elbo"], marker="o", label=label)
ax.set(title="Training -ELBO: Gaussian against binary codes", xlabel="epoch",
       ylabel="-ELBO (nats per image)")
ax.legend()
plt.show()

# %% [markdown]
# The binary VAE learns, but more slowly and to a worse bound: each of its gradient steps is
# noisier, and 64 bits say less than 16 real numbers. Its samples and reconstructions:

# %%
with torch.no_grad():
    binary_recon = torch.sigmoid(binary_vae(test_binary[:10])).reshape(-1, 28, 28)
    binary_samples = binary_vae.sample(10, generator=torch.Generator().manual_seed(5))[:, 0]
plotting.image_grid(np.concatenate([test_binary[:10].numpy(), binary_recon.numpy(), binary_samples.numpy()]),
                    n_cols=10, row_labels=["test", "recon", "prior"],
                    title="Binary-code VAE: reconstructions and samples from the prior",
                    xlabel="image", ylabel="row")
plt.show()

# %% [markdown]
# ### What the baseline buys
#
# Take the trained binary VAE and a fixed batch of 100 test images. Draw the encoder's gradient
# estimate many times, with $b(x)$ and with $b = 0$, and compare: the two means must agree
# (both are unbiased) and the total variance (the sum over the encoder's parameters) is what the
# baseline is for.

# %%
gradient_batch = test_binary[test_order[:N_GRADIENT_IMAGES]]
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

# %% [markdown]
# Without a baseline the learning signal $\log p(x \mid z)$ is about $-100$ nats for every
# image, so each estimate is mostly a large multiple of $\nabla \log q$, whose mean is zero:
# pure noise. Subtracting $b(x)$ leaves only how much better or worse this $z$ was than usual
# for this image, and the variance falls by the factor printed above, at no cost in bias.
#
# The bound of the binary VAE, measured the same way as the Gaussian one (the same images and
# $K$) with the Gaussian VAE of the same size beside it:

# %%
compare_images = iwae_images[: min(500, N_IWAE_IMAGES)]
binary_nll = {
    "Gaussian z (16), reparameterised": -vae.iwae_log_likelihood(gaussian_small, compare_images, IWAE_K, generator=estimate_rng).mean(),
    "binary z (64), score function": -vae.iwae_log_likelihood(binary_vae, compare_images, IWAE_K, generator=estimate_rng).mean(),
}
for label, value in binary_nll.items():
    print(f"{label:<36} -L_{IWAE_K} = {value:.2f} nats ({len(compare_images)} test images, "
          f"{SMALL_TRAINING.epochs} epochs)")

# %% [markdown]
# ## Check yourself
#
# 1. The KL term rises during the first epochs while the loss falls. Why is that not a
#    contradiction?
# 2. Why is the test set binarised once with a fixed seed, while training images are binarised
#    anew each epoch?
# 3. $\mathcal L_{1000}$ is larger than the ELBO on the same images. Which of the two would you
#    report as the model's log-likelihood, and why is even $\mathcal L_{1000}$ a lower bound?
# 4. With $\beta = 4$ some units are inactive. What is $q(z_j \mid x)$ for such a unit, and what
#    does the decoder learn about $z_j$?
# 5. The baseline $b(x)$ depends on the image. Why may it not depend on the sampled $z$?
#
# ## Summary
#
# - A VAE maximises the ELBO, reconstruction minus KL, with a reparameterised sample for the
#   first term and a closed form for the second; the KL shapes the code space like the prior, so
#   prior draws decode to digits.
# - Its held-out log-likelihood, estimated by importance sampling with $K = 1000$, comes within
#   a few nats of the published figure after a few minutes of CPU.
# - $\beta$ trades reconstruction against prior matching; a conditional VAE separates class
#   from style.
# - Without reparameterisation (binary codes) the score function still trains the encoder, and
#   a baseline makes that practical by cutting the gradient's variance many times over.
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
    iwae_curve={str(K): float(v) for K, v in curve.items()},
    training_epochs=MAIN_TRAINING.epochs,
    train_seconds=sum(main_history["seconds"]),
    baseline_variance_reduction=reduction,
    gradient_variance={"no_baseline": plain.total_variance, "baseline": centred.total_variance,
                       "n_repeats": N_GRADIENT_REPEATS, "n_images": N_GRADIENT_IMAGES},
    beta_sweep={f"{b:g}": {k: row[k] for k in ("recon", "kl", "neg_elbo", "active_units")}
                for b, row in sweep.items()},
    binary_vs_gaussian_nll={label: float(v) for label, v in binary_nll.items()},
    chapter_seconds=time.perf_counter() - chapter_start,
)
summary

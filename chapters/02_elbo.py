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
# # Bound the log-likelihood: from EM to the ELBO
#
# Chapter 1 fitted a Gaussian mixture by alternating two steps and promised that the
# log-likelihood never goes down. This chapter shows *why*: both steps climb one function,
# the evidence lower bound (ELBO), which sits below $\log p(x)$ at a distance equal to a KL
# divergence. The same bound, with a Gaussian $q(z \mid x)$ computed by a network instead of
# by Bayes' rule, is what a variational autoencoder maximises in chapter 4. Here everything is
# small enough to check against closed forms.
#
# **What you'll do**
#
# - derive $\log p(x) = \mathrm{ELBO}(q) + \mathrm{KL}(q \,\|\, p(z \mid x))$, and the
#   ELBO again from Jensen's inequality;
# - write the KL between diagonal Gaussians, the $K$-sample ELBO estimate and the
#   importance-weighted bound (IWAE) in torch, each checked against known answers;
# - run EM on a 2-D Gaussian mixture as coordinate ascent on the ELBO, printing the gap after
#   every E-step and every M-step;
# - derive and write the ELBO of a linear-Gaussian model in closed form, where $\log p(x)$ and
#   the posterior are exact; move $q$ away from the posterior and watch the ELBO fall by
#   exactly the KL;
# - measure the noise of two sampled ELBO estimators, at the posterior and away from it;
# - fit a small encoder that outputs $q$'s parameters by maximising the ELBO, and compare it
#   with the exact posterior (the amortisation gap);
# - give the model a correlated posterior, find the best diagonal $q$ in closed form, and split
#   the encoder's gap into its approximation and amortisation parts;
# - compare the closed-form Gaussian KL with a Monte Carlo estimate.
#
# **What you'll learn**
#
# - what the E-step and the M-step each do to the bound and to the gap;
# - why the ELBO is a lower bound, when it is tight, and how $K$ importance samples tighten it;
# - the reparameterisation trick that makes a sampled ELBO differentiable;
# - when a closed form removes sampling noise, and when sampling the whole bound is quieter;
# - why a mean-field (diagonal) $q$ under-estimates posterior variances.
#
# **What you'll need**
#
# - chapter 1 (EM for Gaussian mixtures, log-sum-exp);
# - Gaussians, expectations, Bayes' rule; basic torch (tensors, `backward`, an optimiser);
# - well under a minute on a 2-core CPU for a full run (less with `GAE_COURSE_QUICK=1`), no GPU.

# %% [markdown]
# ## Setup
#
# One cell imports the course package by module, fixes the seeds, and sets every size this
# chapter uses. Quick mode (`GAE_COURSE_QUICK=1`, used by the test suite) shrinks the number of
# data points, training steps and Monte Carlo samples; every model is the same in both modes.
# Everything in torch is float64, because we compare with closed forms to $10^{-6}$.

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from gae_course import checks, config, elbo, mixture, results

rng = config.seed_everything(0)  # torch is imported first, so this seeds it too
config.limit_blas_threads(1)  # tiny tensors: a second thread only adds synchronisation
DTYPE = torch.float64  # closed forms are compared to 1e-6: float32 would not do

# EM on a 2-D mixture (cheap: identical in both modes)
N_TOY = 600  # points from four tilted blobs, as in chapter 1
EM_STEPS = 8  # EM iterations, each printed as an E-step and an M-step

# The linear-Gaussian model p(z) = N(0, I), p(x | z) = N(W z + b, sigma^2 I)
D_OBS = 5  # dimension of x
L_LATENT = 2  # dimension of z
SIGMA = 0.5  # observation noise standard deviation
COLUMN_LENGTHS = [2.0, 1.0]  # of the orthogonal W's columns
MIXING = 0.9  # the correlated W's second column gets this much of the first: a correlated posterior
N_POINTS = config.pick(full=2_000, quick=500)  # data points drawn from the model (train half, test half)
N_SHIFTS = 41  # values of the step t that moves q away from the posterior
MC_SAMPLES = config.pick(full=20_000, quick=4_000)  # draws for Monte Carlo ELBO estimates
IWAE_K = [1, 2, 5, 20, 100, 500]  # importance samples per bound
IWAE_REPEATS = config.pick(full=400, quick=100)  # independent bounds averaged for each K

# Amortised inference
ENCODER_HIDDEN = 32  # width of the encoder's one hidden layer
ENCODER_STEPS = config.pick(full=1_500, quick=300)  # full-batch Adam steps
ENCODER_LR = 1e-2  # Adam step size
ENCODER_SAMPLES = 4  # reparameterised draws per point in each ELBO estimate

# Gaussian KL by Monte Carlo
KL_MC_SAMPLES = config.pick(full=200_000, quick=20_000)  # draws from q

print(f"mode: {config.mode()}")
for name in ["DTYPE", "N_TOY", "EM_STEPS", "D_OBS", "L_LATENT", "SIGMA", "COLUMN_LENGTHS",
             "MIXING", "N_POINTS", "N_SHIFTS", "MC_SAMPLES", "IWAE_K", "IWAE_REPEATS",
             "ENCODER_HIDDEN", "ENCODER_STEPS", "ENCODER_LR", "ENCODER_SAMPLES", "KL_MC_SAMPLES"]:
    print(f"  {name:15s} = {globals()[name]}")
chapter_start = time.perf_counter()

# %% [markdown]
# ## 1. The evidence lower bound
#
# A latent-variable model has a joint $p(x, z) = p(z)\,p(x \mid z)$. The data's
# log-likelihood (the *evidence*) integrates the latent out,
# $\log p(x) = \log \int p(x, z)\,dz$ (a sum over components for a mixture), and the posterior
# $p(z \mid x) = p(x, z)/p(x)$ needs that same integral. Take **any** density $q(z)$ over the
# latent. Because $p(x, z) = p(x)\,p(z \mid x)$, for every $z$
#
# $$
# \log p(x) = \log p(x, z) - \log p(z \mid x)
#           = \bigl[\log p(x, z) - \log q(z)\bigr] + \bigl[\log q(z) - \log p(z \mid x)\bigr].
# $$
#
# The left side does not depend on $z$, so averaging both sides over $z \sim q$ changes
# nothing:
#
# $$
# \log p(x) = \underbrace{\mathbb E_{q}\bigl[\log p(x, z) - \log q(z)\bigr]}_{\mathrm{ELBO}(q)}
#   + \underbrace{\mathbb E_{q}\Bigl[\log \frac{q(z)}{p(z \mid x)}\Bigr]}_{\mathrm{KL}(q \,\|\, p(z \mid x)) \;\ge\; 0} .
# $$
#
# The KL divergence is never negative and is zero only when $q$ is the posterior. So
#
# - $\mathrm{ELBO}(q) \le \log p(x)$ for every $q$: a lower bound on the evidence;
# - the **gap** is exactly $\mathrm{KL}(q \,\|\, p(z \mid x))$: how far $q$ is from the posterior;
# - maximising the ELBO over $q$ (with the model fixed) is the same as making $q$ close to the
#   posterior, and it does not need $p(x)$.
#
# **Jensen's form.** The same bound in one line: $\log$ is concave, so
# $\log \mathbb E[Y] \ge \mathbb E[\log Y]$, and
#
# $$
# \log p(x) = \log \int q(z)\, \frac{p(x, z)}{q(z)}\, dz
#           = \log \mathbb E_{q}\Bigl[\frac{p(x, z)}{q(z)}\Bigr]
#           \ \ge\ \mathbb E_{q}\Bigl[\log \frac{p(x, z)}{q(z)}\Bigr] = \mathrm{ELBO}(q).
# $$
#
# Jensen's inequality is an equality when $p(x, z)/q(z)$ is constant in $z$, that is
# $q(z) \propto p(x, z)$: the posterior again.
#
# **Two more ways to write it.** Splitting $\log p(x, z) = \log p(x \mid z) + \log p(z)$,
#
# $$
# \mathrm{ELBO}(q) = \mathbb E_{q}\bigl[\log p(x \mid z)\bigr] - \mathrm{KL}(q(z) \,\|\, p(z)),
# $$
#
# a reconstruction term and a pull towards the prior: the form a VAE uses.
#
# **Importance-weighted bound.** With $K$ draws $z_1, \dots, z_K \sim q$ and weights
# $w_k = p(x, z_k)/q(z_k)$, the average $\frac1K\sum_k w_k$ is still an unbiased estimate of
# $p(x)$, and Jensen gives
#
# $$
# \mathcal L_K = \mathbb E\Bigl[\log \frac1K \sum_{k=1}^K w_k\Bigr] \le \log p(x),
# \qquad \mathcal L_1 = \mathrm{ELBO}(q) \le \mathcal L_K \le \mathcal L_{K+1},
# $$
#
# tighter as $K$ grows, because the average inside the log fluctuates less (Burda et al., 2016).
# In code, $\log \frac1K \sum_k e^{\log w_k}$ is a *log-mean-exp*: log-sum-exp with the max
# trick, minus $\log K$.
#
# **The KL between diagonal Gaussians.** For $q = \mathcal N(\mu_q, \operatorname{diag}\sigma_q^2)$
# and $p = \mathcal N(\mu_p, \operatorname{diag}\sigma_p^2)$ in $L$ dimensions, the expectation
# has a closed form (Kingma & Welling, 2014, Appendix B, for $p = \mathcal N(0, I)$):
#
# $$
# \mathrm{KL}(q \,\|\, p) = \frac12 \sum_{j=1}^L \Bigl[\frac{\sigma_{q,j}^2}{\sigma_{p,j}^2}
#    + \frac{(\mu_{q,j} - \mu_{p,j})^2}{\sigma_{p,j}^2} - 1 - \log\frac{\sigma_{q,j}^2}{\sigma_{p,j}^2}\Bigr],
# \qquad
# \mathrm{KL}(q \,\|\, \mathcal N(0, I)) = -\frac12\sum_j \bigl(1 + \log\sigma_{q,j}^2 - \mu_{q,j}^2 - \sigma_{q,j}^2\bigr).
# $$
#
# Networks output $\text{logvar} = \log\sigma^2$ (any real number, no positivity constraint), so
# the code works with `logvar` throughout, and forms the ratio of variances as
# $e^{\text{logvar}_q - \text{logvar}_p}$.

# %% [markdown]
# ## 2. Exercises: the bound's building blocks
#
# Write each function between the solution markers in torch, then run the cell below it. The
# check calls your function on small float64 tensors with known answers and either prints that
# all cases pass or says precisely what is off (and gives a hint when the answer matches a
# typical mistake). Keep float64: do not call `.float()`.
#
# **Exercise 1.** The KL between two diagonal Gaussians, one value per row.

# %%
def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, diag exp(logvar_q)) || N(mu_p, diag exp(logvar_p))) for each row.

    Parameters
    ----------
    mu_q, logvar_q, mu_p, logvar_p : Tensor of shape (B, L)

    Returns
    -------
    kl : Tensor of shape (B,)
        Summed over the L coordinates.
    """
    ### BEGIN SOLUTION
    var_ratio = torch.exp(logvar_q - logvar_p)  # sigma_q^2 / sigma_p^2, formed in log space
    mahalanobis = (mu_q - mu_p) ** 2 * torch.exp(-logvar_p)
    return 0.5 * torch.sum(var_ratio + mahalanobis - 1.0 - (logvar_q - logvar_p), dim=-1)
    ### END SOLUTION


checks.gaussian_kl(gaussian_kl)


# %% [markdown]
# **Exercise 2.** The $K$-sample ELBO estimate of a VAE: given $\log p(x_b \mid z_{kb})$ for
# $K$ draws $z_{kb} \sim q(z \mid x_b)$, average over the draws and subtract the closed-form
# $\mathrm{KL}(q \,\|\, \mathcal N(0, I))$.

# %%
def elbo_estimate(log_lik, mu, logvar):
    """mean_k log p(x_b | z_kb) - KL(N(mu_b, diag exp(logvar_b)) || N(0, I)).

    Parameters
    ----------
    log_lik : Tensor of shape (K, B)
        log p(x_b | z_kb) for K draws per data point.
    mu, logvar : Tensor of shape (B, L)
        The parameters of q(z | x_b).

    Returns
    -------
    elbo : Tensor of shape (B,)
    """
    ### BEGIN SOLUTION
    kl = -0.5 * torch.sum(1.0 + logvar - mu**2 - torch.exp(logvar), dim=-1)  # (B,)
    return log_lik.mean(dim=0) - kl
    ### END SOLUTION


checks.elbo_estimate(elbo_estimate)


# %% [markdown]
# **Exercise 3.** The importance-weighted bound from the log-weights
# $\log w_{kb} = \log p(x_b, z_{kb}) - \log q(z_{kb} \mid x_b)$: a log-mean-exp over the $K$
# samples. For images the log-weights are near $-100$ to $-1000$, so use the max trick
# (`torch.logsumexp`).

# %%
def iwae_bound(log_weights):
    """log (1/K) sum_k exp(log_weights[k, b]) for each data point b.

    Parameters
    ----------
    log_weights : Tensor of shape (K, B)

    Returns
    -------
    bound : Tensor of shape (B,)
    """
    ### BEGIN SOLUTION
    n_samples = log_weights.shape[0]
    return torch.logsumexp(log_weights, dim=0) - math.log(n_samples)
    ### END SOLUTION


checks.iwae_bound(iwae_bound)

# %% [markdown]
# From here on the chapter uses the package's verified versions in `gae_course.elbo`
# (`elbo.gaussian_kl`, `elbo.kl_standard_normal`, `elbo.elbo`, `elbo.iwae_bound`,
# `elbo.iwae`), so one wrong answer above does not break the rest. `elbo.elbo` and
# `elbo.iwae` also draw the samples: they take a function that maps $z$ of shape (K, B, L) to
# $\log p(x \mid z)$ of shape (K, B), with the data bound inside it.

# %% [markdown]
# ## 3. EM is coordinate ascent on the ELBO
#
# For a Gaussian mixture the latent is the component, and $q$ is a table of probabilities
# $q_i(k) = r_{ik}$ per point (rows summing to 1). The ELBO of the whole data set, per point, is
#
# $$
# \mathcal F(r, \theta) = \frac1n \sum_{i=1}^n \sum_{k=1}^K r_{ik}\,
#   \bigl[\log\pi_k + \log\mathcal N(x_i \mid \mu_k, \Sigma_k) - \log r_{ik}\bigr]
#   = \frac1n \sum_i \log p(x_i \mid \theta) - \frac1n\sum_i \mathrm{KL}\bigl(r_{i\cdot} \,\|\, p(z_i \mid x_i, \theta)\bigr).
# $$
#
# EM maximises $\mathcal F$ one block of variables at a time:
#
# - **E-step** (maximise over $r$, $\theta$ fixed): $\log p(x_i \mid \theta)$ does not depend
#   on $r$, so the best $r$ makes every KL zero: $r_{ik} = \gamma_{ik}$, the responsibilities.
#   The gap closes: $\mathcal F = \log p$.
# - **M-step** (maximise over $\theta$, $r$ fixed): the $-r\log r$ term does not depend on
#   $\theta$, so this maximises $Q(\theta)$ of chapter 1. $\mathcal F$ rises; $\log p$ rises at
#   least as much, because the gap (a KL) opens from zero.
#
# Hence chapter 1's guarantee: $\log p(X \mid \theta_{t+1}) \ge \mathcal F(\gamma_t, \theta_{t+1})
# \ge \mathcal F(\gamma_t, \theta_t) = \log p(X \mid \theta_t)$ (per point, as above). Below, the chapter 1 toy blobs, a
# poor start, and *uniform* responsibilities as the first $q$ (not the posterior), so that the
# first gap is not zero.

# %%
TRUE_WEIGHTS = np.array([0.30, 0.25, 0.25, 0.20])
TRUE_MEANS = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 4.5], [5.5, 5.0]])
AXIS_STDS = np.array([[1.6, 0.5], [1.2, 0.4], [1.3, 0.5], [0.9, 0.6]])  # along each blob's axes
ANGLES = np.deg2rad([30.0, -45.0, 80.0, 10.0])  # of each blob's long axis


def rotation(angle):
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


TRUE_COVARIANCES = np.array(
    [rotation(a) @ np.diag(s**2) @ rotation(a).T for s, a in zip(AXIS_STDS, ANGLES)]
)
toy_labels = rng.choice(len(TRUE_WEIGHTS), size=N_TOY, p=TRUE_WEIGHTS)
X_toy = np.empty((N_TOY, 2))
for k in range(len(TRUE_WEIGHTS)):
    here = toy_labels == k
    X_toy[here] = rng.multivariate_normal(TRUE_MEANS[k], TRUE_COVARIANCES[k], size=here.sum())


def mixture_elbo(X, resp, weights, means, covariances):
    """F(r, theta) per point, and (1/n) sum_i log p(x_i | theta), for full covariances."""
    precisions_cholesky = mixture.compute_precision_cholesky(covariances)
    weighted = mixture.log_gaussian_density(X, means, precisions_cholesky) + np.log(weights)  # (n, K)
    # r log r -> 0 as r -> 0: a component with zero responsibility adds nothing
    entropy_terms = np.where(resp > 0, resp * np.log(np.where(resp > 0, resp, 1.0)), 0.0)
    bound = np.sum(resp * weighted - entropy_terms) / len(X)
    return bound, float(np.mean(mixture.logsumexp(weighted, axis=1)))


K_TOY = len(TRUE_WEIGHTS)
weights = np.full(K_TOY, 1.0 / K_TOY)
means = X_toy.mean(axis=0) + 0.3 * rng.standard_normal((K_TOY, 2))
covariances = np.tile(0.5 * np.eye(2), (K_TOY, 1, 1))
resp = np.full((N_TOY, K_TOY), 1.0 / K_TOY)  # a q that is not the posterior

em_trace = []  # (step label, ELBO, log p(x)) after every half-step, per point
bound, log_px = mixture_elbo(X_toy, resp, weights, means, covariances)
em_trace.append(("start", bound, log_px))
print(f"{'step':>9s} {'ELBO':>11s} {'log p(x)':>11s} {'gap = KL':>11s}")
print(f"{'start':>9s} {bound:11.5f} {log_px:11.5f} {log_px - bound:11.3e}")
for t in range(1, EM_STEPS + 1):
    log_resp, _ = mixture.e_step(X_toy, weights, means, mixture.compute_precision_cholesky(covariances))
    resp = np.exp(log_resp)
    bound, log_px = mixture_elbo(X_toy, resp, weights, means, covariances)
    em_trace.append((f"E{t}", bound, log_px))
    print(f"{'E-step ' + str(t):>9s} {bound:11.5f} {log_px:11.5f} {log_px - bound:11.3e}")
    weights, means, covariances = mixture.m_step(X_toy, resp, reg_covar=0.0)
    bound, log_px = mixture_elbo(X_toy, resp, weights, means, covariances)
    em_trace.append((f"M{t}", bound, log_px))
    print(f"{'M-step ' + str(t):>9s} {bound:11.5f} {log_px:11.5f} {log_px - bound:11.3e}")

em_bound = np.array([b for _, b, _ in em_trace])
em_log_px = np.array([lp for _, _, lp in em_trace])
em_gap = em_log_px - em_bound
e_gaps, m_gaps = em_gap[1::2], em_gap[2::2]  # after each E-step, after each M-step
m_rises = em_bound[2::2] - em_bound[1::2]  # what each M-step adds to the bound
print(f"largest gap after an E-step: {np.abs(e_gaps).max():.2e}")
print(f"smallest rise of the bound in an M-step: {m_rises.min():.3e}")
print(f"ELBO at the start and after E-step 1: {em_bound[0]:.3f}, {em_bound[1]:.3f}; "
      f"lowest value plotted (from M-step 1 on): {min(em_bound[2:].min(), em_log_px[2:].min()):.3f}")
assert np.abs(e_gaps).max() < 1e-10, "the E-step must close the gap"
assert m_rises.min() > 0 and m_gaps.min() >= -1e-12, "the M-step raises the bound; the gap reopens"
assert np.diff(em_log_px[1:]).min() >= -1e-10, "log p(x) never goes down"
assert max(em_bound[0], em_bound[1]) < em_bound[2:].min(), "the first two points lie below the plot"

# %% [markdown]
# The staircase of EM, from the first M-step on: the start and the first E-step are left out
# of the left panel, because they lie well below everything after them (their values are
# printed above) and would flatten the staircase. Blue: $\log p(x)$ per point; orange: the
# ELBO. Each E-step lifts the orange curve onto the blue one: the gap closes. Each M-step
# raises both, the blue one more: the gap (shaded, a KL) reopens, and the next E-step closes it
# again. The right panel shows the gap on a log scale: after every E-step it is at rounding
# level (the largest is printed above and asserted below $10^{-10}$; exact zeros are drawn at
# $10^{-17}$), after every M-step a positive KL.

# %%
half_steps = np.arange(len(em_trace))
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
ax = axes[0]
shown = half_steps[2:]  # from the first M-step on
ax.plot(shown, em_log_px[2:], marker="o", label=r"$\log p(x)$ per point")
ax.plot(shown, em_bound[2:], marker="s", label=r"ELBO $\mathcal{F}(r, \theta)$ per point")
ax.fill_between(shown, em_bound[2:], em_log_px[2:], color="C1", alpha=0.2, label="gap = KL")
ax.set_xticks(shown, [label for label, _, _ in em_trace[2:]], fontsize=8)
ax.set_xlabel("after the step (E = E-step, M = M-step)")
ax.set_ylabel("nats per point")
ax.set_title("EM climbs the ELBO (from the first M-step)")
ax.legend(loc="lower right")
ax = axes[1]
ax.semilogy(half_steps[1::2], np.maximum(np.abs(e_gaps), 1e-17), "o", label="after an E-step")
ax.semilogy(half_steps[2::2], m_gaps, "s", label="after an M-step")
ax.set_xticks(half_steps[1:], [label for label, _, _ in em_trace[1:]], fontsize=8)
ax.set_xlabel("after the step")
ax.set_ylabel(r"gap $\log p(x) - \mathcal{F}$ (nats per point)")
ax.set_title("The E-step closes the gap, the M-step reopens it")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## 4. A continuous latent with everything in closed form
#
# For a mixture the posterior is a table and the E-step is exact. A continuous latent needs a
# model with a Gaussian joint to stay exact: the linear-Gaussian model (probabilistic PCA,
# Tipping & Bishop, 1999)
#
# $$
# p(z) = \mathcal N(0, I_L), \qquad p(x \mid z) = \mathcal N(Wz + b, \sigma^2 I_D).
# $$
#
# Everything is Gaussian (Bishop, *PRML*, eqs. 12.35 and 12.42):
#
# $$
# p(x) = \mathcal N\bigl(b,\; WW^\top + \sigma^2 I\bigr), \qquad
# p(z \mid x) = \mathcal N\bigl(S W^\top (x - b)/\sigma^2,\; S\bigr), \quad S = \bigl(I + W^\top W/\sigma^2\bigr)^{-1}.
# $$
#
# We first choose $W$ with orthogonal columns, so $W^\top W$ and $S$ are diagonal and the
# diagonal Gaussians of the VAE contain the exact posterior. (PPCA's maximum-likelihood $W$ is
# $U_L(E_L - \sigma^2 I)^{1/2}R$, with $U_L$ the leading $L$ eigenvectors of the data covariance,
# $E_L$ their eigenvalues and $R$ *any* rotation; Bishop, *PRML*, eq. 12.45. All of them have
# the same likelihood, and only $R = I$, up to signs and the order of the columns, gives
# orthogonal columns. So it has orthogonal columns only up to a rotation. Section 5 takes a
# $W$ whose columns are not orthogonal.)
#
# **Exercise 4.** For a diagonal $q = \mathcal N(m, \operatorname{diag} s)$ the ELBO of this model
# has a closed form, for any $W$. Derive it, then write it. Steps:
#
# 1. $\mathrm{ELBO}(q) = \mathbb E_q[\log p(x \mid z)] - \mathrm{KL}(q \,\|\, \mathcal N(0, I))$,
#    and the KL is the one of exercise 1 with $p = \mathcal N(0, I)$;
# 2. $\log p(x \mid z) = -\frac D2\log(2\pi\sigma^2) - \lVert x - Wz - b\rVert^2 / (2\sigma^2)$;
# 3. under $q$, write $z = m + \delta$ with $\mathbb E\,\delta = 0$ and
#    $\mathbb E\,\delta\delta^\top = \operatorname{diag} s$, expand $\lVert (x - Wm - b) - W\delta\rVert^2$
#    and take the expectation term by term: the cross term vanishes, and
#    $\mathbb E\lVert W\delta\rVert^2 = \operatorname{tr}(W \operatorname{diag}(s) W^\top)$, which
#    you can write with the squared lengths of the columns of $W$.
#
# The check tries it on a $q$ that is the exact posterior (where the ELBO is $\log p(x)$), on a
# $W$ with correlated columns, on $q = p(z)$ and on a one-dimensional latent.

# %%
def linear_gaussian_elbo(x, W, b, sigma, mu, logvar):
    """ELBO of q = N(mu, diag exp(logvar)) under p(z) = N(0, I), p(x | z) = N(W z + b, sigma^2 I).

    Parameters
    ----------
    x : Tensor of shape (B, D)
    W : Tensor of shape (D, L)
    b : Tensor of shape (D,)
    sigma : float, the observation noise standard deviation
    mu, logvar : Tensor of shape (B, L)

    Returns
    -------
    elbo : Tensor of shape (B,)
    """
    ### BEGIN SOLUTION
    D = x.shape[-1]
    residual = ((x - mu @ W.T - b) ** 2).sum(-1)  # |x - W m - b|^2, (B,)
    spread = (torch.exp(logvar) * (W**2).sum(0)).sum(-1)  # E|W delta|^2 = sum_j s_j |W_:,j|^2
    expected_log_lik = -0.5 * D * math.log(2 * math.pi * sigma**2) - (residual + spread) / (2 * sigma**2)
    kl = -0.5 * torch.sum(1.0 + logvar - mu**2 - torch.exp(logvar), dim=-1)
    return expected_log_lik - kl
    ### END SOLUTION


checks.linear_gaussian_elbo(linear_gaussian_elbo)

# %% [markdown]
# The result, used from here on as `elbo.linear_gaussian_elbo`:
#
# $$
# \mathrm{ELBO}(q) = -\frac D2 \log(2\pi\sigma^2)
#   - \frac{\lVert x - Wm - b\rVert^2 + \sum_j s_j \lVert W_{:,j}\rVert^2}{2\sigma^2}
#   - \mathrm{KL}(q \,\|\, \mathcal N(0, I)).
# $$
#
# The cell below draws the orthogonal $W$, the data, and defines $\log p(x)$, the exact
# posterior and the closed-form ELBO for any $W$ of this model.

# %%
torch_gen = torch.Generator().manual_seed(0)
basis, _ = torch.linalg.qr(torch.randn(D_OBS, L_LATENT, generator=torch_gen, dtype=DTYPE))
W = basis * torch.tensor(COLUMN_LENGTHS, dtype=DTYPE)  # orthogonal columns
b = torch.randn(D_OBS, generator=torch_gen, dtype=DTYPE)
z_true = torch.randn(N_POINTS, L_LATENT, generator=torch_gen, dtype=DTYPE)
X = z_true @ W.T + b + SIGMA * torch.randn(N_POINTS, D_OBS, generator=torch_gen, dtype=DTYPE)
X_train, X_test = X[: N_POINTS // 2], X[N_POINTS // 2 :]


def log_marginal(x, W_model=None):
    """log p(x) = log N(x | b, W W^T + sigma^2 I); x (B, D) -> (B,). W_model defaults to W."""
    W_model = W if W_model is None else W_model
    covariance = W_model @ W_model.T + SIGMA**2 * torch.eye(D_OBS, dtype=DTYPE)
    return torch.distributions.MultivariateNormal(b, covariance_matrix=covariance).log_prob(x)


def posterior_covariance(W_model=None):
    """S = (I + W^T W / sigma^2)^{-1}, the same for every x; (L, L)."""
    W_model = W if W_model is None else W_model
    return torch.linalg.inv(torch.eye(L_LATENT, dtype=DTYPE) + W_model.T @ W_model / SIGMA**2)


def exact_posterior(x):
    """p(z | x) = N(mu, diag exp(logvar)) for the orthogonal W; x (B, D) -> mu, logvar (B, L)."""
    S = posterior_covariance()  # (L, L), diagonal for this W
    mu = (x - b) @ W @ S / SIGMA**2  # rows of S W^T (x - b) / sigma^2
    logvar = torch.log(torch.diagonal(S)).expand(len(x), L_LATENT)
    return mu, logvar


def closed_form_elbo(x, mu, logvar, W_model=None):
    """ELBO of q = N(mu, diag exp(logvar)); (B, D), (B, L), (B, L) -> (B,). W_model defaults to W."""
    return elbo.linear_gaussian_elbo(x, W if W_model is None else W_model, b, SIGMA, mu, logvar)


def log_likelihood_of(x, W_model=None):
    """The function elbo.elbo and elbo.iwae take: z (K, B, L) -> log p(x_b | z_kb) (K, B)."""
    W_model = W if W_model is None else W_model
    return lambda z: elbo.log_normal_diag(x, z @ W_model.T + b, 2 * math.log(SIGMA))


post_mu, post_logvar = exact_posterior(X_train)
S_post = posterior_covariance()
print(f"posterior covariance S (diagonal, the same for every x) =\n{S_post.numpy().round(6)}")
print(f"mean log p(x) on the training points: {log_marginal(X_train).mean():.4f} nats")

# %% [markdown]
# Now take one point $x$ and move $q$ away from its posterior along a straight path in
# $(m, \log s)$: $m(t) = m^\star + t\,\delta_m$, $\log s(t) = \log s^\star + t\,\delta_s$,
# $t \in [-2, 2]$ ($t = 0$ is the posterior). For every $t$ compute, all in closed form, the
# ELBO, $\log p(x)$ and $\mathrm{KL}(q_t \,\|\, p(z \mid x))$ (with `elbo.gaussian_kl`, since the
# posterior is a diagonal Gaussian), and check the identity
# $\log p(x) = \mathrm{ELBO} + \mathrm{KL}$ on every one of the training points too.

# %%
shifts = torch.linspace(-2.0, 2.0, N_SHIFTS, dtype=DTYPE)
DELTA_MU = torch.tensor([0.6, -0.4], dtype=DTYPE)  # direction in which q's mean moves
DELTA_LOGVAR = torch.tensor([0.8, -0.5], dtype=DTYPE)  # and its log-variance

x_one = X_train[:1]  # (1, D)
mu_star, logvar_star = exact_posterior(x_one)
mu_path = mu_star + shifts[:, None] * DELTA_MU  # (T, L)
logvar_path = logvar_star + shifts[:, None] * DELTA_LOGVAR
x_path = x_one.expand(N_SHIFTS, D_OBS)
elbo_path = closed_form_elbo(x_path, mu_path, logvar_path)  # (T,)
kl_path = elbo.gaussian_kl(mu_path, logvar_path, mu_star, logvar_star)  # (T,)
log_px_one = log_marginal(x_one)[0]

# the identity on every training point, for every shift: (T, N)
mu_all = post_mu + shifts[:, None, None] * DELTA_MU
logvar_all = post_logvar + shifts[:, None, None] * DELTA_LOGVAR
x_all = X_train.expand(N_SHIFTS, *X_train.shape)
identity_error = (
    log_marginal(X_train) - closed_form_elbo(x_all, mu_all, logvar_all)
    - elbo.gaussian_kl(mu_all, logvar_all, post_mu, post_logvar)
).abs()
identity_max_error = identity_error.max().item()
print(f"log p(x) - ELBO - KL: largest |error| over {N_SHIFTS} shifts x {len(X_train)} points "
      f"= {identity_max_error:.2e}")
assert identity_max_error < 1e-6, "log p(x) = ELBO + KL must hold to 1e-6"
print(f"at t = 0 (q = posterior): ELBO = {elbo_path[N_SHIFTS // 2]:.6f}, log p(x) = {log_px_one:.6f}")

# %% [markdown]
# Left: the ELBO (orange) touches $\log p(x)$ (the flat blue line) at $t = 0$, where $q$ is the
# posterior, and falls away on both sides. Right: the KL, which is exactly the distance between
# the two curves on the left (the dots are $\log p(x) - \mathrm{ELBO}$, the line is the KL
# computed on its own). Maximising the ELBO over $q$ is minimising this KL.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
t_np = shifts.numpy()
ax = axes[0]
ax.axhline(log_px_one.item(), color="C0", label=r"$\log p(x)$")
ax.plot(t_np, elbo_path.numpy(), color="C1", label=r"ELBO$(q_t)$")
ax.fill_between(t_np, elbo_path.numpy(), log_px_one.item(), color="C1", alpha=0.2,
                label=r"gap = KL$(q_t \,\|\, p(z \mid x))$")
ax.set_xlabel("t (q moves away from the posterior; t = 0 is the posterior)")
ax.set_ylabel("nats")
ax.set_title("The ELBO is a lower bound, tight at the posterior")
ax.legend(loc="lower center")
ax = axes[1]
ax.plot(t_np, kl_path.numpy(), color="C2", label=r"KL$(q_t \,\|\, p(z \mid x))$, closed form")
ax.plot(t_np[::4], (log_px_one - elbo_path).numpy()[::4], "o", color="k", ms=4,
        label=r"$\log p(x) - $ELBO")
ax.set_xlabel("t")
ax.set_ylabel("nats")
ax.set_title("The gap is the KL to the posterior")
ax.legend()
fig.tight_layout()

# %% [markdown]
# **Two sampled ELBO estimators.** A VAE cannot compute the ELBO in closed form; it estimates
# it with reparameterised draws $z_k = m + \sqrt{s}\odot\varepsilon_k$. Two estimates from the
# same draws are in use:
#
# - *reconstruction sampled, KL in closed form* (`elbo.elbo`, what a VAE uses):
#   $\frac1K\sum_k \log p(x \mid z_k) - \mathrm{KL}(q \,\|\, p(z))$;
# - *everything sampled*: $\frac1K\sum_k \log w_k$ with
#   $\log w_k = \log p(x, z_k) - \log q(z_k)$ (`elbo.log_importance_weights`).
#
# Both are unbiased. Which is less noisy? At $q$ = posterior every log-weight equals
# $\log p(x)$ (section 1): the fully sampled estimate has *zero* variance, while
# $\log p(x \mid z_k)$ still varies with $z_k$. The cell measures the standard error of both
# from `MC_SAMPLES` draws, at $t = 0$ (the posterior), $t = 1$ and $t = 2$ (far from it).

# %%
def both_elbo_estimates(x, mu, logvar, n_samples, generator):
    """Per-draw values (K,) of the two estimators, from the same reparameterised draws."""
    z = elbo.sample_diag_gaussian(mu, logvar, n_samples, generator)  # (K, 1, L)
    log_lik = log_likelihood_of(x)(z)  # (K, 1)
    closed_kl = log_lik - elbo.kl_standard_normal(mu, logvar)
    log_prior = elbo.log_normal_diag(z, torch.zeros_like(z), torch.zeros_like(z))
    everything = log_lik + log_prior - elbo.log_normal_diag(z, mu, logvar)
    return {"closed-form KL": closed_kl[:, 0], "all sampled": everything[:, 0]}


t_one = N_SHIFTS // 2 + N_SHIFTS // 4  # index of t = 1
estimator_noise = {}
print(f"{'t':>4s}{'closed-form ELBO':>18s}{'closed-form KL: mean ± s.e.':>32s}"
      f"{'all sampled: mean ± s.e.':>30s}")
for t_index in [N_SHIFTS // 2, t_one, N_SHIFTS - 1]:
    mu_t, logvar_t = mu_path[t_index : t_index + 1], logvar_path[t_index : t_index + 1]
    per_draw = both_elbo_estimates(x_one, mu_t, logvar_t, MC_SAMPLES, torch_gen)
    row = {name: (v.mean().item(), (v.std() / math.sqrt(MC_SAMPLES)).item())
           for name, v in per_draw.items()}
    estimator_noise[round(shifts[t_index].item(), 3)] = row
    print(f"{shifts[t_index]:4.1f}{elbo_path[t_index]:18.4f}"
          + "".join(f"{m:20.4f} ± {se:9.2e}" for m, se in row.values()))
    for mean, stderr in row.values():  # unbiased: within 4 standard errors (or to rounding)
        assert abs(mean - elbo_path[t_index]) < 4 * stderr + 1e-9
    if t_index == t_one:
        draws = per_draw["all sampled"]
at_posterior, far = estimator_noise[0.0], estimator_noise[2.0]
print(f"at the posterior: s.e. all sampled / closed-form KL = "
      f"{at_posterior['all sampled'][1] / at_posterior['closed-form KL'][1]:.1e}; "
      f"at t = 2: {far['all sampled'][1] / far['closed-form KL'][1]:.2f}")
if not config.is_quick():
    assert at_posterior["all sampled"][1] < 1e-10 < 1e-3 < at_posterior["closed-form KL"][1]
    assert 0.8 < far["all sampled"][1] / far["closed-form KL"][1] < 1.25

# %% [markdown]
# Both estimators agree with the closed form within their own standard errors (printed beside
# each mean) at every $t$. At the posterior the fully sampled estimate has a standard error at
# rounding level, while the closed-form KL leaves the reconstruction term's noise: "a closed
# form removes variance" holds for the KL term on its own, not for the whole estimate, because
# the sampled KL's noise can cancel the reconstruction's. "Sticking the landing" (Roeder, Wu &
# Duvenaud, 2017) builds on this: as $q$ nears the posterior, the variance of a fully sampled
# gradient estimate (with the score term of $\log q$ dropped) vanishes. Far from the posterior
# ($t = 2$) the two standard errors are about equal here (the ratio printed last): neither
# estimator is quieter everywhere. A VAE, whose $q$ is never the exact posterior, usually takes
# the KL in closed form (chapter 4 does).
#
# **The importance-weighted bound.** Now the IWAE bound $\mathcal L_K$ (`elbo.iwae`) of the $q$
# at $t = 1$, averaged over `IWAE_REPEATS` independent estimates for each $K$.

# %%
mu_q, logvar_q = mu_path[t_one : t_one + 1], logvar_path[t_one : t_one + 1]
print(f"q at t = {shifts[t_one]:.1f}: closed-form ELBO = {elbo_path[t_one]:.4f}, "
      f"log p(x) = {log_px_one:.4f}, KL = {kl_path[t_one]:.4f}")

x_rep = x_one.expand(IWAE_REPEATS, D_OBS)
mu_rep, logvar_rep = mu_q.expand(IWAE_REPEATS, L_LATENT), logvar_q.expand(IWAE_REPEATS, L_LATENT)
iwae_mean, iwae_stderr = [], []
for K in IWAE_K:
    bounds = elbo.iwae(log_likelihood_of(x_rep), mu_rep, logvar_rep, n_samples=K,
                       generator=torch_gen)  # (IWAE_REPEATS,)
    iwae_mean.append(bounds.mean().item())
    iwae_stderr.append((bounds.std() / math.sqrt(IWAE_REPEATS)).item())
    print(f"K = {K:4d}: L_K = {iwae_mean[-1]:.4f} ± {iwae_stderr[-1]:.4f}   "
          f"gap to log p(x) = {log_px_one.item() - iwae_mean[-1]:.4f}")
iwae_gaps = {K: log_px_one.item() - m for K, m in zip(IWAE_K, iwae_mean)}
print(f"gap at K = {IWAE_K[-1]} / gap at K = 1: {iwae_gaps[IWAE_K[-1]] / iwae_gaps[1]:.3f}")
assert iwae_gaps[IWAE_K[-1]] < 0.1 * iwae_gaps[1], "L_K approaches log p(x)"
if not config.is_quick():
    assert all(m2 > m1 - 3 * (s1 + s2) for m1, m2, s1, s2 in
               zip(iwae_mean, iwae_mean[1:], iwae_stderr, iwae_stderr[1:]))

# %% [markdown]
# The bound rises with $K$ towards $\log p(x)$ (the line), from the ELBO at $K = 1$. Error bars
# are one standard error of the average over the repeats. Even this poor $q$ gives a nearly
# tight bound with a few hundred samples in two dimensions: at the largest $K$ less than a
# tenth of the ELBO's gap is left (the ratio printed above). In the 32-dimensional latent
# spaces of later chapters the weights spread over many more orders of magnitude, and $K$
# would have to grow much faster.

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.errorbar(IWAE_K, iwae_mean, yerr=iwae_stderr, marker="o", capsize=3,
            label=r"IWAE bound $\mathcal{L}_K$")
ax.axhline(log_px_one.item(), color="k", ls="--", label=r"$\log p(x)$ (exact)")
ax.axhline(elbo_path[t_one].item(), color="C1", ls=":", label="ELBO (closed form)")
ax.set_xscale("log")
ax.set_xlabel("K, importance samples")
ax.set_ylabel("nats")
ax.set_title("More samples, a tighter bound (q at t = 1)")
ax.legend(loc="lower right")
fig.tight_layout()

# %% [markdown]
# ## 5. Amortised inference: an encoder that outputs q
#
# EM computed a separate $q_i$ for each point. With a neural model there is no closed-form
# posterior, and optimising a separate $q$ for each of 60 000 images every time is slow.
# *Amortised* inference trains one network, the encoder, that maps $x$ to $q$'s parameters,
# $(\mu, \log\sigma^2) = f_\phi(x)$, by maximising the ELBO summed over the data:
#
# $$
# \max_\phi \sum_i \mathrm{ELBO}\bigl(q_\phi(z \mid x_i)\bigr)
#   = \sum_i \log p(x_i) - \sum_i \mathrm{KL}\bigl(q_\phi(z \mid x_i) \,\|\, p(z \mid x_i)\bigr).
# $$
#
# The model here is fixed (known $W$, $b$, $\sigma$), so this only moves the encoder's $q$
# towards each posterior. The gradient passes through the samples thanks to the
# reparameterisation $z = \mu + e^{\text{logvar}/2}\odot\varepsilon$: the noise $\varepsilon$ does
# not depend on $\phi$, so autograd differentiates through $z$. We use it here on trust;
# chapter 3 derives why this gives an unbiased gradient of the ELBO, and what to do when no
# such reparameterisation exists. A small MLP (one hidden
# layer of `ENCODER_HIDDEN` tanh units) is trained on the training half, then compared with the
# exact posterior on the test half. What remains,
# $\log p(x) - \mathrm{ELBO}(q_\phi) = \mathrm{KL}(q_\phi \,\|\, p(z \mid x))$, is the
# **amortisation gap**: here the best diagonal $q$ is exact, so all of it is the encoder's fault.

# %%
def train_encoder(x_train, W_model=None, seed=0):
    """Fit an MLP x -> (mu, logvar) by maximising the sampled ELBO; return encode, history."""
    torch.manual_seed(seed)
    encoder = torch.nn.Sequential(
        torch.nn.Linear(D_OBS, ENCODER_HIDDEN), torch.nn.Tanh(),
        torch.nn.Linear(ENCODER_HIDDEN, 2 * L_LATENT),  # mu and logvar, side by side
    ).to(DTYPE)
    optimiser = torch.optim.Adam(encoder.parameters(), lr=ENCODER_LR)
    train_gen = torch.Generator().manual_seed(seed + 1)

    def encode(x):
        """(B, D) -> mu, logvar of shape (B, L)."""
        return encoder(x).chunk(2, dim=-1)

    history = []
    for step in tqdm(range(ENCODER_STEPS), desc="encoder", leave=False):
        mu, logvar = encode(x_train)
        loss = -elbo.elbo(log_likelihood_of(x_train, W_model), mu, logvar,
                          n_samples=ENCODER_SAMPLES, generator=train_gen).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 10 == 0 or step == ENCODER_STEPS - 1:
            with torch.no_grad():  # the exact ELBO of the current encoder, for the plot
                history.append((step, closed_form_elbo(x_train, *encode(x_train), W_model).mean().item()))
    return encode, history


start = time.perf_counter()
encode, encoder_history = train_encoder(X_train)
encoder_seconds = time.perf_counter() - start

with torch.no_grad():
    enc_mu, enc_logvar = encode(X_test)
    true_mu, true_logvar = exact_posterior(X_test)
    log_px_test = log_marginal(X_test)
    elbo_test = closed_form_elbo(X_test, enc_mu, enc_logvar)
    amortisation_gap = (log_px_test - elbo_test).mean().item()
    kl_to_posterior = elbo.gaussian_kl(enc_mu, enc_logvar, true_mu, true_logvar).mean().item()
    mean_error = (enc_mu - true_mu).abs().max().item()
    std_ratio = torch.exp(0.5 * (enc_logvar - true_logvar))
print(f"trained for {ENCODER_STEPS} steps in {encoder_seconds:.1f} s")
print(f"test points: mean log p(x) = {log_px_test.mean():.4f}, mean ELBO(encoder) = "
      f"{elbo_test.mean():.4f}")
print(f"amortisation gap log p(x) - ELBO = {amortisation_gap:.4f} nats per point "
      f"(KL to the posterior: {kl_to_posterior:.4f})")
print(f"largest |encoder mean - posterior mean| = {mean_error:.3f}; encoder std / posterior std "
      f"in [{std_ratio.min():.3f}, {std_ratio.max():.3f}]")
assert abs(amortisation_gap - kl_to_posterior) < 1e-6  # the identity again, for the encoder's q
distance = (X_test - b).norm(dim=-1)
gap_per_point = (log_px_test - elbo_test).numpy()
# Spearman's rank correlation: the Pearson correlation of the ranks (no ties in continuous data)
gap_rank_correlation = float(np.corrcoef(distance.numpy().argsort().argsort(),
                                         gap_per_point.argsort().argsort())[0, 1])
far_half = (distance > distance.median()).numpy()
far_over_near = float(gap_per_point[far_half].mean() / gap_per_point[~far_half].mean())
print(f"Spearman rank correlation between the gap and the distance from b: "
      f"{gap_rank_correlation:.2f}; mean gap of the farther half / the nearer half: {far_over_near:.1f}")
if not config.is_quick():
    assert gap_rank_correlation > 0.1 and far_over_near > 1.5

# %% [markdown]
# Left: the training ELBO (exact, per point) climbs towards the mean $\log p(x)$, the ceiling it
# can only reach if $q_\phi$ is the posterior at every point. Middle: the encoder's mean against
# the exact posterior mean, for both latent coordinates on the test points: close to the
# diagonal (the largest difference is printed above). Right: the amortisation gap per test
# point against its distance from the data's centre. It tends to grow with the distance, as
# the network has seen fewest points far from the bulk, but only as a trend: the rank
# correlation printed above is positive and weak, while the mean gap of the farther half of
# the test points is well above that of the nearer half (the ratio printed last).

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
ax = axes[0]
steps, values = zip(*encoder_history)
ax.plot(steps, values, label=r"ELBO$(q_\phi)$ on training points")
ax.axhline(log_marginal(X_train).mean().item(), color="k", ls="--", label=r"mean $\log p(x)$")
ax.set_ylim(log_marginal(X_train).mean().item() - 3, log_marginal(X_train).mean().item() + 0.3)
ax.set_xlabel("Adam step")
ax.set_ylabel("nats per point")
ax.set_title("Training the encoder by maximising the ELBO")
ax.legend(loc="lower right")
ax = axes[1]
for j in range(L_LATENT):
    ax.scatter(true_mu[:, j].numpy(), enc_mu[:, j].numpy(), s=4, alpha=0.5, label=f"coordinate {j + 1}")
lims = [true_mu.min().item(), true_mu.max().item()]
ax.plot(lims, lims, color="k", lw=1)
ax.set_xlabel("exact posterior mean")
ax.set_ylabel("encoder mean")
ax.set_title("The encoder's q against the exact posterior")
ax.legend()
ax = axes[2]
ax.scatter(distance.numpy(), gap_per_point, s=4, alpha=0.5)
ax.set_yscale("log")
ax.set_xlabel(r"$\|x - b\|$ (distance from the data's centre)")
ax.set_ylabel(r"$\log p(x) - $ELBO (nats)")
ax.set_title("Amortisation gap per test point")
fig.tight_layout()

# %% [markdown]
# ### A correlated posterior: approximation gap and amortisation gap
#
# With orthogonal columns the best diagonal $q$ was the posterior itself. Now give the model a
# $W$ whose second column contains `MIXING` times the first: $W^\top W$ is no longer diagonal,
# and neither is the posterior covariance $S$. Its precision is
# $\Lambda = S^{-1} = I + W^\top W/\sigma^2$. The best *diagonal* $q$ (mean-field: it maximises
# the ELBO, so it minimises $\mathrm{KL}(q \,\|\, p(z \mid x))$, over all diagonal Gaussians)
# has a closed form too. Write the KL to $\mathcal N(\mu^\star, S)$ for $q = \mathcal N(m, \operatorname{diag} s)$:
#
# $$
# \mathrm{KL} = \tfrac12\Bigl[\sum_j \Lambda_{jj} s_j + (m - \mu^\star)^\top \Lambda (m - \mu^\star)
#   - L + \log\det S - \sum_j \log s_j\Bigr],
# $$
#
# so $m = \mu^\star$ (the exact posterior mean) and, setting $\partial/\partial s_j$ to zero,
# $s_j = 1/\Lambda_{jj}$: **the precisions of the best diagonal $q$ are the diagonal of the
# posterior precision**. Since $1/\Lambda_{jj} \le S_{jj}$ (with equality only when the posterior
# is uncorrelated), mean-field $q$ *under-estimates* every marginal variance. The gap it leaves,
# the same for every $x$,
# $\tfrac12\bigl[\sum_j \log\Lambda_{jj} - \log\det\Lambda\bigr]$, is the **approximation gap**:
# no encoder with diagonal outputs can do better. What a trained encoder loses beyond it is
# the **amortisation gap** (Cremer, Li & Duvenaud, 2018):
#
# $$
# \log p(x) - \mathrm{ELBO}(q_\phi)
#   = \underbrace{\log p(x) - \mathrm{ELBO}(q^\star)}_{\text{approximation}}
#   + \underbrace{\mathrm{ELBO}(q^\star) - \mathrm{ELBO}(q_\phi)}_{\text{amortisation}\;\ge\;0}.
# $$
#
# The cell draws data from this second model (same $b$, $\sigma$ and sizes), trains the same
# encoder on it, and splits its gap on the test half.

# %%
W_corr = W @ torch.tensor([[1.0, MIXING], [0.0, 1.0]], dtype=DTYPE)  # column 1 += MIXING column 0
z_corr = torch.randn(N_POINTS, L_LATENT, generator=torch_gen, dtype=DTYPE)
X_corr = z_corr @ W_corr.T + b + SIGMA * torch.randn(N_POINTS, D_OBS, generator=torch_gen, dtype=DTYPE)
X_corr_train, X_corr_test = X_corr[: N_POINTS // 2], X_corr[N_POINTS // 2 :]

S_corr = posterior_covariance(W_corr)  # (L, L), not diagonal
precision = torch.linalg.inv(S_corr)  # I + W^T W / sigma^2
mean_field_var = 1.0 / torch.diagonal(precision)  # the best diagonal q's variances
posterior_corr = (S_corr[0, 1] / torch.sqrt(S_corr[0, 0] * S_corr[1, 1])).item()
approximation_gap_formula = 0.5 * (torch.log(torch.diagonal(precision)).sum()
                                   - torch.logdet(precision)).item()


def mean_field_posterior(x):
    """The best diagonal q for W_corr: the exact posterior mean, variances 1 / Lambda_jj."""
    mu = (x - b) @ W_corr @ S_corr / SIGMA**2  # rows of S W^T (x - b) / sigma^2
    return mu, torch.log(mean_field_var).expand(len(x), L_LATENT)


start = time.perf_counter()
encode_corr, encoder_corr_history = train_encoder(X_corr_train, W_corr, seed=10)
encoder_corr_seconds = time.perf_counter() - start
with torch.no_grad():
    log_px_corr = log_marginal(X_corr_test, W_corr)
    elbo_best_diagonal = closed_form_elbo(X_corr_test, *mean_field_posterior(X_corr_test), W_corr)
    enc_corr_mu, enc_corr_logvar = encode_corr(X_corr_test)
    elbo_encoder_corr = closed_form_elbo(X_corr_test, enc_corr_mu, enc_corr_logvar, W_corr)
approximation_part = (log_px_corr - elbo_best_diagonal)  # (N_test,), constant
amortisation_part = (elbo_best_diagonal - elbo_encoder_corr)  # (N_test,), >= 0
gap_split = {"orthogonal W": (0.0, amortisation_gap),
             "correlated W": (approximation_part.mean().item(), amortisation_part.mean().item())}

print(f"posterior covariance S =\n{S_corr.numpy().round(4)}\ncorrelation {posterior_corr:.3f}")
print(f"marginal variances: posterior {torch.diagonal(S_corr).numpy().round(4)}, "
      f"best diagonal q {mean_field_var.numpy().round(4)} "
      f"(ratio {(mean_field_var / torch.diagonal(S_corr)).numpy().round(3)})")
print(f"approximation gap: {approximation_gap_formula:.4f} nats by the formula, "
      f"{approximation_part.mean():.4f} measured (spread over test points "
      f"{(approximation_part.max() - approximation_part.min()):.1e})")
print(f"encoder ({ENCODER_STEPS} steps, {encoder_corr_seconds:.1f} s): total gap "
      f"{(log_px_corr - elbo_encoder_corr).mean():.4f} = approximation "
      f"{gap_split['correlated W'][0]:.4f} + amortisation {gap_split['correlated W'][1]:.4f} nats per point")
print(f"encoder's variances / best diagonal q's, on the test points: "
      f"[{(torch.exp(enc_corr_logvar) / mean_field_var).min():.3f}, "
      f"{(torch.exp(enc_corr_logvar) / mean_field_var).max():.3f}]")
assert abs(approximation_part.mean().item() - approximation_gap_formula) < 1e-8
assert (approximation_part.max() - approximation_part.min()).item() < 1e-8  # the same for every x
assert amortisation_part.min().item() > -1e-9  # q* is the best diagonal q for every x
assert (mean_field_var < torch.diagonal(S_corr)).all()  # mean field under-estimates variances
if not config.is_quick():
    assert gap_split["correlated W"][0] > gap_split["correlated W"][1]
    assert abs(posterior_corr) > 0.5 and (mean_field_var / torch.diagonal(S_corr)).max() < 0.5
    assert (torch.exp(enc_corr_logvar) < torch.diagonal(S_corr)).all()  # the encoder's too

# %% [markdown]
# The posterior is strongly correlated (printed above), and the best diagonal $q$'s variances
# are a fraction of the true marginal variances: a mean-field $q$ is over-confident. Left: the
# posterior of one test point (its 1- and 2-standard-deviation ellipses), the best diagonal
# $q$ and the encoder's $q$: the diagonal ones are axis-aligned and narrower than the
# posterior's shadow on each axis. Right: each encoder's gap split in two. With orthogonal $W$
# all of it is amortisation; with the correlated $W$ the larger part is the approximation gap
# that no amount of encoder training removes, and the amortisation part stays small (both
# printed above).

# %%
def ellipse(mean, covariance, n_std, n_points=200):
    """Points (n_points, 2) of the n_std-standard-deviation ellipse of a 2-D Gaussian."""
    angles = np.linspace(0, 2 * np.pi, n_points)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return mean + n_std * circle @ np.linalg.cholesky(covariance).T


point = 0
post_mean_point = mean_field_posterior(X_corr_test[point : point + 1])[0][0].numpy()
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
ax = axes[0]
shown_q = {"exact posterior": (post_mean_point, S_corr.numpy(), "k"),
           "best diagonal q": (post_mean_point, np.diag(mean_field_var.numpy()), "C1"),
           "encoder's q": (enc_corr_mu[point].numpy(),
                           np.diag(torch.exp(enc_corr_logvar[point]).numpy()), "C2")}
for label, (mean, covariance, colour) in shown_q.items():
    for n_std, style in [(1, "-"), (2, ":")]:
        xy = ellipse(mean, covariance, n_std)
        ax.plot(xy[:, 0], xy[:, 1], color=colour, ls=style, label=label if n_std == 1 else None)
ax.set_aspect("equal")
ax.set_xlabel(r"$z_1$")
ax.set_ylabel(r"$z_2$")
ax.set_title("One test point: posterior and diagonal q (1 and 2 s.d.)")
ax.legend(loc="upper right", fontsize=8)
ax = axes[1]
labels = list(gap_split)
approx = [gap_split[k][0] for k in labels]
amort = [gap_split[k][1] for k in labels]
ax.bar(labels, approx, color="C1", label="approximation gap (best diagonal q)")
ax.bar(labels, amort, bottom=approx, color="C2", label="amortisation gap (encoder)")
ax.set_ylabel(r"mean $\log p(x) - $ELBO$(q_\phi)$ on test points (nats)")
ax.set_title("The encoder's gap, split (Cremer et al., 2018)")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## 6. The Gaussian KL: closed form against Monte Carlo
#
# When no closed form exists, a KL is estimated by sampling:
# $\mathrm{KL}(q \,\|\, p) \approx \frac1N \sum_{n} [\log q(z_n) - \log p(z_n)]$ with
# $z_n \sim q$. Unbiased, but noisy: its standard error shrinks only as $1/\sqrt N$. The closed
# form of the KL on its own has no noise at all, which is why a VAE usually takes its KL term in
# closed form and samples only the reconstruction term (section 4 showed that this does not
# make the whole ELBO estimate quieter in every case).

# %%
kl_gen = torch.Generator().manual_seed(2)
KL_PAIRS = {  # name: (mu_q, logvar_q, mu_p, logvar_p), each of shape (L,)
    "q against N(0, I)": ([0.5, -1.0, 0.0], [-0.5, 0.3, -2.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
    "two close Gaussians": ([0.1, 0.2, 0.0], [0.1, -0.1, 0.0], [0.0, 0.0, 0.1], [0.0, 0.0, 0.1]),
    "far apart, unequal widths": ([2.0, -1.0, 1.0], [-1.0, 1.0, 0.5], [-1.0, 1.0, 0.0], [0.5, -0.5, 1.0]),
}
kl_table = {}
for name, params in KL_PAIRS.items():
    mu_q, logvar_q, mu_p, logvar_p = (torch.tensor(p, dtype=DTYPE) for p in params)
    closed = elbo.gaussian_kl(mu_q, logvar_q, mu_p, logvar_p).item()
    z = elbo.sample_diag_gaussian(mu_q[None], logvar_q[None], KL_MC_SAMPLES, kl_gen)[:, 0]  # (N, L)
    log_ratio = elbo.log_normal_diag(z, mu_q, logvar_q) - elbo.log_normal_diag(z, mu_p, logvar_p)
    estimate, stderr = log_ratio.mean().item(), (log_ratio.std() / math.sqrt(KL_MC_SAMPLES)).item()
    kl_table[name] = dict(closed_form=closed, monte_carlo=estimate, stderr=stderr,
                          running=(log_ratio.cumsum(0) / torch.arange(1, KL_MC_SAMPLES + 1)).numpy())
    print(f"{name:27s} closed form {closed:.5f}   Monte Carlo {estimate:.5f} ± {stderr:.5f} "
          f"({(estimate - closed) / stderr:+.2f} standard errors)")
    assert abs(estimate - closed) < 4 * stderr

# %% [markdown]
# The running Monte Carlo average (one line per pair) wanders around the closed form (dashed)
# and settles slowly: the error after $N$ draws is about $\text{std}/\sqrt N$, so a ten times
# better estimate costs a hundred times more samples.

# %%
fig, ax = plt.subplots(figsize=(7.5, 4))
n_axis = np.arange(1, KL_MC_SAMPLES + 1)
for j, (name, row) in enumerate(kl_table.items()):
    ax.plot(n_axis, row["running"], color=f"C{j}", lw=1, label=name)
    ax.axhline(row["closed_form"], color=f"C{j}", ls="--", lw=1)
ax.set_xscale("log")
ax.set_xlabel("N, Monte Carlo draws from q")
ax.set_ylabel("KL estimate (nats)")
ax.set_title("Monte Carlo KL converges to the closed form (dashed)")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## Check yourself
#
# 1. Write $\log p(x) - \mathrm{ELBO}(q)$ as an expectation under $q$. Why is it never negative?
# 2. After an E-step of EM the gap is zero. Why can the M-step not be skipped, then, and why
#    does $\log p(x)$ rise at least as much as the ELBO in an M-step?
# 3. What does Jensen's inequality become an equality for, and what $q$ achieves it?
# 4. Why is $\mathcal L_K$ computed with log-mean-exp and not with `torch.log(torch.exp(w).mean(0))`?
# 5. The encoder of section 5 has an amortisation gap, the exact posterior has none. Name two
#    reasons a real VAE's gap is larger still.
# 6. Is the sampled ELBO with a closed-form KL always less noisy than the fully sampled
#    $\frac1K\sum_k \log w_k$? What does a closed form remove?
# 7. Why does a diagonal $q$ under-estimate the variances of a correlated Gaussian posterior,
#    and which part of the gap can a better encoder not remove?
#
# <details><summary>Answers</summary>
#
# 1. $\mathbb E_q[\log q(z) - \log p(z \mid x)] = \mathrm{KL}(q \,\|\, p(z \mid x))$, a KL
#    divergence, which is non-negative (Gibbs' inequality, itself from Jensen).
# 2. The E-step only changes $q$; the M-step changes the model. Skipping it leaves the model
#    where it was. During the M-step $q$ is fixed, the ELBO rises by $\Delta$, and the gap, a KL
#    that was zero, becomes non-negative: $\log p(x)$ rises by $\Delta$ plus the new gap.
# 3. When $p(x, z)/q(z)$ is the same for every $z$: when $q(z) = p(z \mid x)$. Then every
#    log-weight equals $\log p(x)$ (the test suite checks this).
# 4. For images the log-weights are near $-100$ or below: `torch.exp` underflows to 0 (in
#    float32 below about $-104$) and the log gives $-\infty$. The max trick keeps the largest
#    term at $e^0$.
# 5. The posterior of a non-linear decoder is not Gaussian (the *approximation* gap), and one
#    network must serve every image, with finite capacity and training (the *amortisation* gap
#    proper); the model is also trained at the same time, towards posteriors that are easy to fit.
# 6. No. A closed form removes the sampling noise of *its own term*, but the sampled terms of
#    the ELBO are correlated and their noise can cancel. Answer 3 is the extreme case: at
#    $q = p(z \mid x)$ every log-weight equals $\log p(x)$, so the fully sampled estimate has
#    zero variance, while reconstruction sampled plus closed-form KL still fluctuates with
#    $\log p(x \mid z_k)$ (section 4 measures both; Roeder et al., 2017, build the "sticking the
#    landing" gradient on it). Away from the posterior neither is quieter everywhere; measure.
# 7. Minimising $\mathrm{KL}(q \,\|\, p)$ over diagonal $q$ gives precisions equal to the diagonal
#    of the posterior precision, $s_j = 1/\Lambda_{jj} \le S_{jj}$: $q$ matches the *conditional*
#    variance of $z_j$ given the other coordinates, narrower than the marginal one. The
#    approximation gap $\log p(x) - \mathrm{ELBO}(q^\star)$ stays whatever the encoder; only the
#    amortisation gap $\mathrm{ELBO}(q^\star) - \mathrm{ELBO}(q_\phi)$ shrinks with a better one.
#
# </details>
#
# ## Summary
#
# - For any $q$: $\log p(x) = \mathrm{ELBO}(q) + \mathrm{KL}(q \,\|\, p(z \mid x))$; the ELBO is
#   a lower bound, tight exactly at the posterior, and also follows from Jensen's inequality.
# - EM is coordinate ascent on the ELBO: the E-step sets $q$ to the posterior (gap zero), the
#   M-step raises the bound (and the gap reopens). Hence EM never lowers $\log p(x)$.
# - With a continuous latent, a Gaussian $q$, the reparameterisation trick and a closed-form
#   KL give a differentiable ELBO; an encoder that outputs $q$'s parameters amortises
#   inference across data points, at the price of an amortisation gap.
# - $K$ importance samples give the tighter bound $\mathcal L_K$, computed with log-mean-exp.
# - A closed-form KL removes the KL's own noise, not always the ELBO estimate's: at the
#   posterior the fully sampled estimate has zero variance.
# - A diagonal $q$ of a correlated posterior under-estimates its variances; the encoder's gap
#   is an approximation part (the best diagonal $q$'s) plus an amortisation part.

# %% [markdown]
# ## Headline figures
#
# Saved for `build/results.json` when the course runner executes this chapter.

# %%
summary = results.record(
    "02_elbo",
    identity_max_error=identity_max_error,
    em_gap_after_e_step_max=float(np.abs(e_gaps).max()),
    em_gap_after_m_step={str(t + 1): float(g) for t, g in enumerate(m_gaps)},
    em_bound_rise_in_m_step_min=float(m_rises.min()),
    em_final_log_likelihood=float(em_log_px[-1]),
    iwae_gap={str(K): gap for K, gap in iwae_gaps.items()},
    mc_elbo_error=float(abs(draws.mean() - elbo_path[t_one])),
    elbo_estimator_stderr={str(t): {name: se for name, (_, se) in row.items()}
                           for t, row in estimator_noise.items()},
    gap_distance_spearman=gap_rank_correlation,
    correlated_posterior={"approximation_gap": gap_split["correlated W"][0],
                          "amortisation_gap": gap_split["correlated W"][1],
                          "mean_field_variance_ratio": (mean_field_var / torch.diagonal(S_corr)).tolist()},
    amortisation_gap=amortisation_gap,
    encoder_max_mean_error=mean_error,
    encoder_train_seconds=encoder_seconds,
    kl_monte_carlo_z={name: (row["monte_carlo"] - row["closed_form"]) / row["stderr"]
                      for name, row in kl_table.items()},
    chapter_seconds=time.perf_counter() - chapter_start,
)
summary

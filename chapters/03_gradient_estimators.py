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
# # Estimate gradients of expectations: reparameterisation and the score function
#
# Training a variational autoencoder means climbing an objective of the form
# $\mathbb E_{q_\theta(z)}[f(z)]$: an average over random latent codes whose distribution
# depends on the parameters $\theta$ we want to train. The expectation has no closed form,
# so we estimate it by sampling, and we need its *gradient* too. This chapter derives the two
# classical Monte Carlo estimators of that gradient, checks that both are right on average
# against gradients known in closed form, and measures what separates them: their variance.
# It then shows how baselines tame the score function's variance, why binary latents leave
# no other choice, and what a continuous relaxation of them costs.
#
# **What you'll do**
#
# - derive the reparameterisation (pathwise) estimator and the score-function (REINFORCE)
#   estimator, and write both in torch as *surrogate* losses whose gradient is the estimate;
# - verify, on Gaussians, that both are unbiased against closed-form gradients;
# - measure how their variance grows with the dimension and falls with the number of samples;
# - reduce the score function's variance with baselines (constant, moving average, learned
#   input-dependent, leave-one-out, and the optimal control variate), measured in one table;
# - find a function for which the pathwise estimator is the *noisier* one;
# - see why Bernoulli latents need the score function, and measure the bias of the
#   Gumbel-softmax (Concrete) relaxation as the temperature changes.
#
# **What you'll learn**
#
# - why "sample, then differentiate" is wrong when the samples depend on $\theta$;
# - the log-derivative trick $\nabla q = q\,\nabla\log q$, and why $\mathbb E[\nabla \log q] = 0$
#   makes any baseline that does not depend on the sample it multiplies free of bias;
# - that a baseline is a control variate, and which one is optimal;
# - how to turn an estimator into a loss for autograd (`detach` in the right places);
# - that a relaxation trades bias for variance, and that a biased estimate shows up as a
#   mean many standard errors away from the truth.
#
# **What you'll need**
#
# - torch tensors and autograd (`requires_grad`, `.backward()`, `.detach()`);
# - probability: expectations, the Gaussian and Bernoulli densities, variance of a mean;
# - chapter 2's ELBO is the motivation, but not needed to follow;
# - about 1 minute on a 2-core CPU for a full run (under 30 s with `GAE_COURSE_QUICK=1`), no GPU.

# %% [markdown]
# ## Setup
#
# One cell imports the course package by module, fixes the seeds and the number of threads,
# and sets every size. Quick mode (`GAE_COURSE_QUICK=1`) only lowers the number of repeated
# estimates behind each mean and variance; the problems are the same. All randomness comes
# from explicit `torch.Generator`s, so a rerun prints the same numbers.

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from gae_course import checks, config, estimators, results

config.seed_everything(0)
config.limit_blas_threads(1)  # tiny tensors: a second thread only adds synchronisation
torch.set_default_dtype(torch.float64)  # variances of tiny gradients: keep the digits
chapter_start = time.perf_counter()

N_REPEATS = config.pick(full=4_000, quick=1_000)  # independent estimates per mean / variance
DIMS = [1, 2, 4, 8, 16, 32, 64]  # latent dimensions D for the variance-vs-dimension plot
SAMPLE_COUNTS = [1, 2, 4, 8, 16, 32, 64]  # samples K per estimate, for variance vs K
N_SWEEP_REPEATS = config.pick(full=1_000, quick=300)  # repeats per point of those two sweeps

# The baseline comparison: a batch of inputs x, binary latents, K samples per input
N_INPUTS = 16  # inputs x in the batch (B)
N_BITS = 8  # binary latent dimensions (D)
K_BASELINE = 4  # samples per input (leave-one-out needs K >= 2)
N_BASELINE_REPEATS = config.pick(full=3_000, quick=600)  # estimates per row of the table
LEARNED_STEPS = config.pick(full=1_500, quick=400)  # Adam steps that train the learned baseline
DECAY = 0.9  # moving average: b <- DECAY * b + (1 - DECAY) * mean(f)

LEARNED_HIDDEN = 16  # width of the learned baseline's hidden layer
LEARNED_LR = 0.02  # its Adam step size
WARMUP_BATCHES = 100  # batches that warm the moving average up (it starts at 0)
N_PILOT = config.pick(full=4_000, quick=1_000)  # samples per input for the constant and optimal baselines

FREQUENCIES = [0.5, 1.0, 2.0, 4.0, 8.0]  # omega in f(z) = cos(omega z), where pathwise loses
TEMPERATURES = [0.1, 0.2, 0.5, 1.0, 2.0]  # Concrete relaxation temperatures
K_AVERAGE = 100  # samples averaged per estimate, for the mean squared error of an average
N_GUMBEL = config.pick(full=100_000, quick=20_000)  # draws that check Gumbel - Gumbel = Logistic
Z_MAX = 4.5  # an unbiased mean lies within this many standard errors of the truth

print(f"mode: {config.mode()}")
for name in ["N_REPEATS", "DIMS", "SAMPLE_COUNTS", "N_SWEEP_REPEATS", "N_INPUTS", "N_BITS",
             "K_BASELINE", "N_BASELINE_REPEATS", "LEARNED_STEPS", "LEARNED_HIDDEN", "LEARNED_LR",
             "DECAY", "WARMUP_BATCHES", "N_PILOT", "FREQUENCIES", "TEMPERATURES", "K_AVERAGE", "N_GUMBEL",
             "Z_MAX"]:
    print(f"  {name:18s} = {globals()[name]}")

# %% [markdown]
# ## 1. The problem: the samples depend on what we differentiate
#
# We want $g = \nabla_\theta\, \mathbb E_{q_\theta(z)}[f(z)]$. The Monte Carlo estimate of the
# expectation itself is easy, $\frac1K\sum_k f(z_k)$ with $z_k \sim q_\theta$. But its gradient
# is not the average of $\nabla_\theta f(z_k)$: $f$ often does not depend on $\theta$ at all
# (then that average is zero), and a sample $z_k$ drawn by `torch.normal` or a comparison
# `u < p` carries no record of how it would move if $\theta$ moved. The expectation depends
# on $\theta$ *through the distribution*:
#
# $$
# \nabla_\theta \int q_\theta(z) f(z)\, dz = \int \nabla_\theta q_\theta(z)\, f(z)\, dz ,
# $$
#
# and $\nabla_\theta q_\theta(z)$ is not a probability density, so the right-hand side is not
# an expectation we can sample. There are two ways to make it one.
#
# **Reparameterisation (the pathwise estimator).** If $z$ can be written as a differentiable
# function of $\theta$ and of noise whose distribution does not depend on $\theta$, for a
# diagonal Gaussian $z = \mu + \sigma \odot \varepsilon$ with $\varepsilon \sim \mathcal N(0, I)$ and
# $\sigma = e^{\log\sigma}$, then the expectation is over $\varepsilon$ and the gradient moves inside:
#
# $$
# \nabla_\theta\, \mathbb E_{q_\theta}[f(z)] = \mathbb E_{\varepsilon}\bigl[\nabla_\theta f(\mu + \sigma\odot\varepsilon)\bigr]
# \approx \frac1K \sum_{k=1}^K \nabla_\theta f(\mu + \sigma\odot\varepsilon_k).
# $$
#
# By the chain rule, $\partial f/\partial\mu = \nabla_z f$ and
# $\partial f/\partial \log\sigma = \nabla_z f \odot \sigma \odot \varepsilon$. It needs $f$
# differentiable in $z$ and a continuous $z$.
#
# **The score function (REINFORCE, the likelihood-ratio estimator).** The log-derivative
# trick $\nabla_\theta q_\theta = q_\theta\, \nabla_\theta \log q_\theta$ turns the integral
# back into an expectation under $q_\theta$:
#
# $$
# \nabla_\theta\, \mathbb E_{q_\theta}[f(z)] = \mathbb E_{q_\theta}\bigl[f(z)\, \nabla_\theta \log q_\theta(z)\bigr]
# \approx \frac1K \sum_{k=1}^K f(z_k)\, \nabla_\theta \log q_\theta(z_k).
# $$
#
# It only needs $\log q_\theta(z)$ to be differentiable in $\theta$: $f$ can be a black box and
# $z$ discrete. For the diagonal Gaussian, with $\log q = \sum_d \bigl[-\tfrac12 ((z_d-\mu_d)/\sigma_d)^2 - \log\sigma_d - \tfrac12\log 2\pi\bigr]$,
# the scores are $\partial_{\mu_d} \log q = (z_d - \mu_d)/\sigma_d^2 = \varepsilon_d/\sigma_d$ and
# $\partial_{\log\sigma_d}\log q = \varepsilon_d^2 - 1$.
#
# **The score has mean zero**, $\mathbb E_q[\nabla\log q] = \int \nabla q = \nabla \int q = \nabla 1 = 0$.
# So for any $b$ that does not depend on the sample $z$ it multiplies,
# $\mathbb E[(f(z) - b)\nabla\log q(z)] = \mathbb E[f(z)\nabla\log q(z)]$: subtracting a *baseline*
# changes nothing on average, and (section 6) can remove most of the variance.
#
# **Surrogate losses.** Autograd computes gradients of what we build, so each estimator is
# written as a scalar whose gradient *is* the estimate:
#
# - reparameterisation: $\frac1K\sum_k f(\mu + \sigma\odot\varepsilon_k)$, built from $\mu$ and
#   $\log\sigma$ so the path is there;
# - score function: $\frac1K\sum_k \operatorname{sg}[f(z_k) - b]\, \log q_\theta(z_k)$ with the
#   samples $z_k$ detached, where $\operatorname{sg}$ (`.detach()`) stops the gradient. Its
#   value is meaningless; its gradient is the estimate.
#
# The package returns both the detached value (the objective's estimate, for plots) and the
# surrogate, as `estimators.Estimate(value, surrogate)`. Shapes: noise and samples
# `(K, B, D)` (K samples, a batch of B independent problems, D dimensions); `f` maps
# `(K, B, D)` to `(K, B)`; the surrogate sums over the batch, so each problem's parameters get
# their own estimate.

# %% [markdown]
# ## 2. Exercises: build the two estimators
#
# Write each function between the solution markers, then run the check below it: it calls
# your function on four small cases with fixed noise, runs `.backward()` on your surrogate,
# and compares the value and both gradients with the package's version, naming the first
# wrong entry and, for typical mistakes, what went wrong.
#
# **Exercise 1.** The reparameterisation estimator for a diagonal Gaussian with parameters
# `mu` and `log_sigma` of shape `(B, D)` and fixed noise `eps` of shape `(K, B, D)`.

# %%
def reparam_gaussian(f, mu, log_sigma, eps):
    """Pathwise estimate of grad E_{N(mu, sigma^2)}[f(z)], sigma = exp(log_sigma).

    Parameters
    ----------
    f : callable, (K, B, D) -> (K, B)
    mu, log_sigma : Tensor of shape (B, D), requires_grad=True
    eps : Tensor of shape (K, B, D), standard normal noise

    Returns
    -------
    value : Tensor of shape (B,)
        mean_k f(z_k), detached.
    surrogate : Tensor of shape ()
        Its gradient is (1/K) sum_k grad f(mu + sigma * eps_k), summed over the batch.
    """
    ### BEGIN SOLUTION
    z = mu + torch.exp(log_sigma) * eps  # (K, B, D): keeps the path from (mu, log_sigma) to z
    mean_f = f(z).mean(0)  # (B,)
    return mean_f.detach(), mean_f.sum()
    ### END SOLUTION


checks.reparam_gaussian(reparam_gaussian)


# %% [markdown]
# **Exercise 2.** The score-function estimator, forced on the same Gaussian and the same noise:
# build the samples, cut their path to the parameters, and let the gradient flow through
# $\log\mathcal N(z \mid \mu, \sigma^2)$ (summed over the $D$ dimensions) only.

# %%
def score_function_gaussian(f, mu, log_sigma, eps):
    """Score-function estimate of grad E_{N(mu, sigma^2)}[f(z)] from the samples mu + sigma * eps.

    Parameters and returns as for `reparam_gaussian`; the surrogate's gradient is
    (1/K) sum_k f(z_k) grad log N(z_k | mu, sigma^2), summed over the batch.
    """
    ### BEGIN SOLUTION
    sigma = torch.exp(log_sigma)
    z = (mu + sigma * eps).detach()  # (K, B, D): samples with no path to the parameters
    log_q = (-0.5 * ((z - mu) / sigma) ** 2 - log_sigma
             - 0.5 * math.log(2 * math.pi)).sum(-1)  # (K, B)
    fz = f(z).detach()  # (K, B)
    return fz.mean(0), (fz * log_q).mean(0).sum()
    ### END SOLUTION


checks.score_function_gaussian(score_function_gaussian)

# %% [markdown]
# **Where the `detach` goes matters.** Two tempting shortcuts, on one fixed sample in $D = 2$
# with $f(z) = \sum_d z_d^2$, next to the right surrogate:
#
# - *(a)* `f(z).detach() * log_q(z)` with $z$ **not** detached: in the graph,
#   $(z - \mu)/\sigma = (\mu + \sigma\varepsilon - \mu)/\sigma$ is just $\varepsilon$, so the
#   quadratic term of $\log q$ no longer depends on $\mu$ or $\log\sigma$; only $-\log\sigma$ is
#   left. The "estimate" is $0$ for every $\mu_d$ and $-f(z)$ for every $\log\sigma_d$, whatever $f$ is.
# - *(b)* $f(z)$ attached (pathwise) plus `f(z).detach() * log_q(z.detach())`: the pathwise and
#   the score-function estimates added, an estimate of *twice* the gradient.
#
# The cell computes all three with autograd and compares them with those formulas.

# %%
def surrogate_gradients(variant, mu, log_sigma, eps, f=lambda z: (z**2).sum(-1)):
    mu, log_sigma = mu.clone().requires_grad_(True), log_sigma.clone().requires_grad_(True)
    z = mu + torch.exp(log_sigma) * eps  # (1, 1, D), attached
    z_for_log_q = z if variant == "(a) z not detached" else z.detach()
    log_q = estimators.gaussian_log_prob(z_for_log_q, mu, log_sigma)  # (1, 1)
    surrogate = f(z).detach() * log_q
    if variant == "(b) f attached too":
        surrogate = surrogate + f(z)
    return estimators.flat_grad(surrogate.sum(), [mu, log_sigma]), float(f(z.detach()))


mu_demo, log_sigma_demo = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.0, 0.7]])
eps_demo = torch.tensor([[[1.0, -0.5]]])
shortcut = {v: surrogate_gradients(v, mu_demo, log_sigma_demo, eps_demo)
            for v in ["score function (z detached)", "(a) z not detached", "(b) f attached too"]}
right, f_demo = shortcut["score function (z detached)"]
z_demo = mu_demo + torch.exp(log_sigma_demo) * eps_demo  # (1, 1, D)
pathwise = torch.cat([2 * z_demo, 2 * z_demo * torch.exp(log_sigma_demo) * eps_demo]).reshape(-1)
for variant, (grad, _) in shortcut.items():
    print(f"{variant:30s} d/dmu = {np.round(grad[:2].numpy(), 4)}, "
          f"d/dlog_sigma = {np.round(grad[2:].numpy(), 4)}")
print(f"f(z) = {f_demo:.4f}")
print(f"pathwise estimate 2z, 2z sigma eps: {np.round(pathwise.numpy(), 4)}")
assert torch.allclose(shortcut["(a) z not detached"][0], torch.tensor([0.0, 0.0, -f_demo, -f_demo]))
assert torch.allclose(shortcut["(b) f attached too"][0], right + pathwise)

# %% [markdown]
# Only the detached samples give the score-function estimate; (a) is $(0, -f)$ exactly, and
# (b) is the sum of the two estimators.
#
# From here on the chapter uses the package's verified versions,
# `estimators.reparam_gaussian` and `estimators.score_function_gaussian` (plus
# `estimators.score_function`, the general form that takes values of $f$, log-densities and a
# baseline), so one wrong answer above does not break the rest.
#
# ## 3. Both estimators are unbiased
#
# Two test functions whose Gaussian expectations are known in closed form, in $D = 3$:
#
# - $f(z) = \sum_d (z_d - 1)^2$: $\mathbb E f = \sum_d (\mu_d - 1)^2 + \sigma_d^2$, so
#   $\partial_{\mu_d} = 2(\mu_d - 1)$ and $\partial_{\log\sigma_d} = 2\sigma_d^2$;
# - $f(z) = \sum_d e^{z_d}$: $\mathbb E f = \sum_d e^{\mu_d + \sigma_d^2/2}$, so
#   $\partial_{\mu_d} = e^{\mu_d + \sigma_d^2/2}$ and $\partial_{\log\sigma_d} = \sigma_d^2 e^{\mu_d + \sigma_d^2/2}$.
#
# `estimators.measure` draws `N_REPEATS` independent single-sample ($K = 1$) estimates and
# returns their mean, variance and standard error; an unbiased estimator's mean is within a
# few standard errors of the truth in every coordinate.

# %%
MU = torch.tensor([[0.3, -0.8, 1.2]])
LOG_SIGMA = torch.tensor([[0.0, -0.5, 0.4]])
SIGMA = torch.exp(LOG_SIGMA)

test_functions = {
    "sum (z - 1)^2": (lambda z: ((z - 1) ** 2).sum(-1),
                      torch.cat([2 * (MU - 1), 2 * SIGMA**2]).reshape(-1)),
    "sum exp(z)": (lambda z: torch.exp(z).sum(-1),
                   torch.cat([torch.exp(MU + SIGMA**2 / 2),
                              SIGMA**2 * torch.exp(MU + SIGMA**2 / 2)]).reshape(-1)),
}
gaussian_estimators = {"reparameterisation": estimators.reparam_gaussian,
                       "score function": estimators.score_function_gaussian}


def gaussian_grad_fn(estimator, f, mu, log_sigma, n_samples=1):
    """One gradient estimate (mu and log_sigma, flattened) per call, noise from `generator`."""
    mu = mu.clone().requires_grad_(True)
    log_sigma = log_sigma.clone().requires_grad_(True)

    def estimate(generator):
        eps = estimators.gaussian_noise(n_samples, mu.shape, generator)  # (K, 1, D)
        return estimators.flat_grad(estimator(f, mu, log_sigma, eps).surrogate, [mu, log_sigma])

    return estimate


unbiased = {}
for f_name, (f, truth) in test_functions.items():
    for est_name, estimator in gaussian_estimators.items():
        stats = estimators.measure(gaussian_grad_fn(estimator, f, MU, LOG_SIGMA), N_REPEATS,
                                   torch.Generator().manual_seed(1), reference=truth)
        unbiased[f_name, est_name] = stats

labels = [f"d/d{name}_{d}" for name in ["mu", "logsig"] for d in range(3)]
for f_name, (f, truth) in test_functions.items():
    print(f"f(z) = {f_name}")
    print(f"  {'':14s}{'closed form':>12s}" + "".join(f"{n:>26s}" for n in gaussian_estimators))
    for i, label in enumerate(labels):
        row = f"  {label:14s}{float(truth[i]):12.4f}"
        for est_name in gaussian_estimators:
            s = unbiased[f_name, est_name]
            row += f"{float(s.mean[i]):14.4f} ± {float(s.std_error[i]):8.4f}"
        print(row)
    print("  max |mean - truth| / standard error: " + ", ".join(
        f"{n}: {unbiased[f_name, n].max_abs_z:.2f}" for n in gaussian_estimators))

# %%
assert all(s.max_abs_z < Z_MAX for s in unbiased.values()), {
    k: s.max_abs_z for k, s in unbiased.items()}
stderr_ratio = {f_name: (unbiased[f_name, "score function"].std_error
                         / unbiased[f_name, "reparameterisation"].std_error)
                for f_name in test_functions}
for f_name, ratio in stderr_ratio.items():
    print(f"{f_name}: score-function standard error / pathwise, per coordinate: "
          f"{ratio.min():.1f} to {ratio.max():.1f}")
if not config.is_quick():
    assert all(ratio.min() > 1.5 for ratio in stderr_ratio.values())

# %% [markdown]
# Both columns agree with the closed form within their standard errors (the "±": every
# |z-score| is below `Z_MAX`), but the score function's standard errors are larger in every
# coordinate, by the factors printed just above, from the same number of samples.
# The histogram shows the single-sample estimates behind one of those means.

# %%
f_quad, truth_quad = test_functions["sum (z - 1)^2"]
draws = {}
for est_name, estimator in gaussian_estimators.items():
    estimate = gaussian_grad_fn(estimator, f_quad, MU, LOG_SIGMA)
    generator = torch.Generator().manual_seed(2)
    draws[est_name] = torch.stack([estimate(generator)[0] for _ in range(N_REPEATS)]).numpy()

fig, ax = plt.subplots(figsize=(8, 4))
bins = np.linspace(-12, 8, 81)
for est_name, values in draws.items():
    ax.hist(values, bins=bins, alpha=0.55, density=True,
            label=f"{est_name}: mean {values.mean():.3f}, sd {values.std():.2f}")
ax.axvline(float(truth_quad[0]), color="black", linestyle="--",
           label=f"closed form {float(truth_quad[0]):.2f}")
ax.set(title=r"Single-sample estimates of $\partial\, \mathbb{E}[\sum_d (z_d-1)^2] / \partial\mu_0$",
       xlabel="estimate", ylabel="density")
ax.legend()
fig.tight_layout()

# %% [markdown]
# Both histograms are centred on the dashed line. The reparameterisation estimate
# $2(z_0 - 1)$ is a Gaussian of width $2\sigma_0$; the score-function estimate
# $f(z)\,\varepsilon_0/\sigma_0$ is a product of two random numbers, much wider and heavy-tailed:
# the same mean, far more noise.
#
# ## 4. Variance as the dimension grows
#
# Take $f(z) = \sum_{d=1}^D (z_d - 1)^2$ with $\mu = 0$, $\sigma = 1$ and look at one coordinate,
# $\partial/\partial\mu_0$, whose true value $-2$ does not depend on $D$. The pathwise
# estimate $2(z_0 - 1)$ only sees dimension 0: its variance is 4 whatever $D$. The score
# function multiplies *all* of $f$, a sum of $D$ terms, by $\varepsilon_0$. Its mean
# $\mathbb E f = 2D$ multiplies $\varepsilon_0$ too, so the variance contains $(2D)^2$: it grows
# like $D^2$ for large $D$ (the fluctuations of the other $D - 1$ terms add a part linear in $D$).

# %%
def variance_of_first_coordinate(estimator, D, n_samples, seed):
    mu, log_sigma = torch.zeros(1, D), torch.zeros(1, D)
    stats = estimators.measure(gaussian_grad_fn(estimator, f_quad, mu, log_sigma, n_samples),
                               N_SWEEP_REPEATS, torch.Generator().manual_seed(seed))
    return float(stats.variance[0])


variance_vs_dim = {name: [variance_of_first_coordinate(est, D, 1, 3) for D in DIMS]
                   for name, est in gaussian_estimators.items()}
variance_vs_k = {name: [variance_of_first_coordinate(est, 8, K, 4) for K in SAMPLE_COUNTS]
                 for name, est in gaussian_estimators.items()}

fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
for name in gaussian_estimators:
    axes[0].loglog(DIMS, variance_vs_dim[name], "o-", label=name)
    axes[1].loglog(SAMPLE_COUNTS, variance_vs_k[name], "o-", label=name)
axes[0].loglog(DIMS, [4.0] * len(DIMS), "k:", label="4 (pathwise, exact)")
axes[1].loglog(SAMPLE_COUNTS, [variance_vs_k["score function"][0] / K for K in SAMPLE_COUNTS],
               "k:", label="score function at K = 1, divided by K")
axes[0].set(title=r"Variance of $\partial/\partial\mu_0$ vs dimension (K = 1)",
            xlabel="latent dimension D", ylabel="variance of the estimate")
axes[1].set(title=r"Variance of $\partial/\partial\mu_0$ vs samples (D = 8)",
            xlabel="samples per estimate K", ylabel="variance of the estimate")
for ax in axes:
    ax.legend()
fig.tight_layout()

# %%
slope_dim = {name: float(np.polyfit(np.log(DIMS), np.log(v), 1)[0])
             for name, v in variance_vs_dim.items()}
slope_dim_last = {name: float(np.log(v[-1] / v[-2]) / np.log(DIMS[-1] / DIMS[-2]))
                  for name, v in variance_vs_dim.items()}
slope_k = {name: float(np.polyfit(np.log(SAMPLE_COUNTS), np.log(v), 1)[0])
           for name, v in variance_vs_k.items()}
ratio_at_largest_d = variance_vs_dim["score function"][-1] / variance_vs_dim["reparameterisation"][-1]
samples_to_match = variance_vs_k["score function"][0] / variance_vs_k["reparameterisation"][0]
print("log-log slope vs D, fitted over all D:", {k: round(v, 2) for k, v in slope_dim.items()})
print(f"  and between D = {DIMS[-2]} and {DIMS[-1]}:", {k: round(v, 2) for k, v in slope_dim_last.items()})
print("log-log slope vs K:", {k: round(v, 2) for k, v in slope_k.items()})
print(f"pathwise variance over D: from {min(variance_vs_dim['reparameterisation']):.2f} to "
      f"{max(variance_vs_dim['reparameterisation']):.2f} (exactly 4 in expectation)")
print(f"score-function variance / pathwise at D = {DIMS[-1]}: {ratio_at_largest_d:.0f}")
print(f"at D = 8, K = 1: score-function variance / pathwise = {samples_to_match:.0f} "
      f"(the factor of samples the score function needs to match it)")
assert abs(slope_dim["reparameterisation"]) < 0.15 and slope_dim["score function"] > 1.0
assert all(abs(s + 1) < 0.2 for s in slope_k.values())
if not config.is_quick():
    assert 1.0 < slope_dim["score function"] < slope_dim_last["score function"] < 2.3
    assert ratio_at_largest_d > 1_000
    assert all(3.4 < v < 4.6 for v in variance_vs_dim["reparameterisation"])
    assert 50 < samples_to_match < 200

# %% [markdown]
# Left: the pathwise variance stays at 4 while the score function's grows with $D$. The
# fitted log-log slope lies between 1 and 2, and the slope between the two largest $D$ is
# steeper, nearer 2 (the $(2D)^2$ term takes over); at the largest $D$ the score function is
# more than a thousand times noisier (the ratio is printed above). The quadratic part comes
# from the *mean* of $f$, exactly what a baseline removes (section 6). Right: averaging $K$
# independent samples divides *both* variances by $K$ (slope $-1$), so more samples cannot
# close a gap of a constant factor cheaply: to match the pathwise estimate at $D = 8$ the
# score function needs as many times more samples as the printed variance ratio: about a
# hundred (exactly $380/4 = 95$ in expectation, from the moments of $\varepsilon$).

# %% [markdown]
# **Not always: a function for which the pathwise estimator is the noisier one.** The
# pathwise estimate of $\partial/\partial\mu$ is $f'(z)$, so its variance is set by how fast
# $f$ changes; the score-function estimate $f(z)\,\varepsilon/\sigma$ is set by how large $f$ is.
# For $f(z) = \cos(\omega z)$ in one dimension, $|f| \le 1$ for every $\omega$, but
# $f'(z) = -\omega\sin(\omega z)$ has a variance near $\omega^2/2$. Mohamed et al. (2020,
# section 5) discuss this: the pathwise estimator's variance is governed by the smoothness of
# $f$, and for rapidly oscillating $f$ the score function can win. The cell measures both at
# $\mu = 0.5$, $\sigma = 1$, $K = 1$, for the frequencies `FREQUENCIES`.

# %%
def cos_of(omega):
    return lambda z: torch.cos(omega * z).sum(-1)


mu_cos, log_sigma_cos = torch.tensor([[0.5]]), torch.tensor([[0.0]])
variance_vs_frequency = {
    name: [float(estimators.measure(gaussian_grad_fn(est, cos_of(omega), mu_cos, log_sigma_cos),
                                    N_SWEEP_REPEATS, torch.Generator().manual_seed(10)).variance[0])
           for omega in FREQUENCIES]
    for name, est in gaussian_estimators.items()}
print(f"{'omega':>6s}{'pathwise var':>15s}{'score fn. var':>15s}{'pathwise / score':>18s}")
for i, omega in enumerate(FREQUENCIES):
    path, score = variance_vs_frequency["reparameterisation"][i], variance_vs_frequency["score function"][i]
    print(f"{omega:6.1f}{path:15.4f}{score:15.4f}{path / score:18.2f}")
frequency_ratio = [p / s for p, s in zip(*variance_vs_frequency.values())]
assert frequency_ratio[0] < 1 < frequency_ratio[-1]  # the winner changes with omega
if not config.is_quick():
    assert frequency_ratio[0] < 0.3 and frequency_ratio[-1] > 10

fig, ax = plt.subplots(figsize=(7, 4))
for name in gaussian_estimators:
    ax.loglog(FREQUENCIES, variance_vs_frequency[name], "o-", label=name)
ax.set(title=r"Variance of $\partial/\partial\mu$ for $f(z) = \cos(\omega z)$ (K = 1)",
       xlabel=r"frequency $\omega$", ylabel="variance of the estimate (log scale)")
ax.legend()
fig.tight_layout()

# %% [markdown]
# The two curves cross: at the lowest frequency the pathwise estimate is the quieter one, at
# the highest it is the noisier one, by the factor in the last row of the table. So the
# advice of this section is qualified: prefer reparameterisation when $z$ is continuous and
# $f$ is differentiable *and smooth on the scale of $\sigma$*; when $f$ varies fast (or is
# flat with sharp steps), measure both. (For a VAE's decoder reparameterisation is the
# standard choice; chapter 4 uses it.)
#
# ## 5. Why Bernoulli latents need the score function
#
# Now let $z \in \{0, 1\}^D$ with $z_d \sim \text{Bernoulli}(p_d)$, $p = \operatorname{sigmoid}(\ell)$.
# A sample is $z = \mathbb 1[u < p]$ with $u \sim U(0, 1)$: a step function of $p$. Its
# derivative is zero wherever it exists, so a "pathwise" gradient through the sample is zero,
# and autograd agrees: a comparison has no gradient at all.

# %%
logit = torch.tensor([0.4], requires_grad=True)
u = torch.tensor([0.3])
hard_z = (u < torch.sigmoid(logit)).double()
print("requires_grad of the hard sample:", hard_z.requires_grad)

# torch.distributions says the same: `rsample` is the reparameterised draw (a path to the
# parameters), `sample` a draw with no path, and a Bernoulli has no `rsample` at all.
mu_t, sigma_t = torch.tensor([0.3], requires_grad=True), torch.tensor([1.2], requires_grad=True)
normal = torch.distributions.Normal(mu_t, sigma_t)
bernoulli = torch.distributions.Bernoulli(logits=logit)
print("Normal.rsample() requires_grad:", normal.rsample().requires_grad,
      "| Normal.sample() requires_grad:", normal.sample().requires_grad)
print("Bernoulli.has_rsample:", bernoulli.has_rsample)
assert normal.rsample().requires_grad and not normal.sample().requires_grad
assert not bernoulli.has_rsample

# %% [markdown]
# In `torch.distributions` terms: the pathwise estimator is `f(dist.rsample())` backpropagated,
# the score function is `f(z).detach() * dist.log_prob(z)` with `z = dist.sample()`. A
# Bernoulli has no `rsample`. A common workaround, the **straight-through** estimator
# (Bengio, Léonard & Courville, 2013), uses the hard sample in the forward pass and pretends
# it was $p$ in the backward pass, `z = hard + p - p.detach()`: it runs, but it is the
# gradient of a different function, biased. Section 7 measures its bias beside the Concrete
# relaxation's.
#
# Yet $\mathbb E[f(z)] = \sum_z q(z) f(z)$ depends smoothly on $\ell$: for one bit,
# $\partial \mathbb E f / \partial\ell = p(1-p)\,[f(1) - f(0)]$. The score function only needs
# $\log q(z) = z\ell - \operatorname{softplus}(\ell)$, whose derivative is $z - p$. With
# $f(z) = \sum_d (z_d - t_d)^2$ the exact expectation is $\sum_d p_d(1-t_d)^2 + (1-p_d)t_d^2$,
# so autograd on it gives the true gradient to compare with.

# %%
TARGET = torch.tensor([0.2, 0.9, 0.5, 0.0, 1.0, 0.3, 0.7, 0.6])  # t_d, one per bit (D = 8)
LOGITS = torch.tensor([[0.4, -1.2, 2.0, 0.0, -0.5, 1.0, -2.0, 0.3]])  # (1, D)


def bit_error(z):
    """f(z) = sum_d (z_d - t_d)^2: (K, B, D) -> (K, B); also defined for z in [0, 1]."""
    return ((z - TARGET) ** 2).sum(-1)


def exact_bernoulli_grad(logits):
    """Gradient of E f = sum_d p_d (1 - t_d)^2 + (1 - p_d) t_d^2 w.r.t. logits, flattened."""
    logits = logits.clone().requires_grad_(True)
    p = torch.sigmoid(logits)
    (p * (1 - TARGET) ** 2 + (1 - p) * TARGET**2).sum().backward()
    return logits.grad.reshape(-1)


def bernoulli_grad_fn(logits, temperature=None):
    """One estimate per call: score function (temperature None), the Concrete relaxation
    (a float) or the straight-through estimator (temperature "straight-through")."""
    logits = logits.clone().requires_grad_(True)

    def estimate(generator):
        u = estimators.uniform_noise(1, logits.shape, generator)
        if temperature is None:
            out = estimators.score_function_bernoulli(bit_error, logits, u)
        elif temperature == "straight-through":
            out = estimators.straight_through_bernoulli(bit_error, logits, u)
        else:
            out = estimators.concrete_bernoulli(bit_error, logits, u, temperature)
        return estimators.flat_grad(out.surrogate, [logits])

    return estimate


bernoulli_truth = exact_bernoulli_grad(LOGITS)
bernoulli_stats = estimators.measure(bernoulli_grad_fn(LOGITS), N_REPEATS,
                                     torch.Generator().manual_seed(5), reference=bernoulli_truth)
print("true gradient      :", np.round(bernoulli_truth.numpy(), 4))
print("score function mean:", np.round(bernoulli_stats.mean.numpy(), 4))
print("standard error     :", np.round(bernoulli_stats.std_error.numpy(), 4))
print(f"max |z-score| = {bernoulli_stats.max_abs_z:.2f}")
assert bernoulli_stats.max_abs_z < Z_MAX

# %% [markdown]
# ## 6. Baselines: the same mean, less variance
#
# The score-function estimate multiplies $f(z)$ by the score. If $f$ is large everywhere,
# say $f(z) \approx 20$ plus a small part that depends on $z$, then most of the product is
# $20 \cdot \nabla\log q(z)$: pure noise with mean zero. Subtracting a baseline $b$ that
# tracks the typical size of $f$ removes it, and by section 1 costs no bias as long as $b$
# does not depend on the sample it multiplies. The four classical choices:
#
# | baseline | $b$ for sample $k$ of input $x$ | depends on |
# |---|---|---|
# | constant | a fixed number (here: mean $f$ from a pilot batch) | nothing |
# | moving average | $b \leftarrow \text{decay}\cdot b + (1-\text{decay})\cdot\operatorname{mean}(f)$, updated *after* use | earlier batches |
# | learned (NVIL) | $b_\phi(x)$, a small network trained on $(f - b_\phi(x))^2$ | the input $x$ |
# | leave-one-out | $\frac{1}{K-1}\sum_{j \ne k} f(z_j)$ | the *other* samples of $x$ |
#
# The learned baseline has its own loss, kept apart from the estimator's surrogate (the
# surrogate detaches $b$): minimising the squared error makes $b_\phi(x) \approx \mathbb E[f \mid x]$,
# close to the variance-minimising choice.
#
# **Exercise 3.** The leave-one-out baseline: for each of the $K$ samples of each problem,
# the mean of $f$ over the other $K - 1$.

# %%
def leave_one_out_baseline(f_values):
    """b[k, b] = mean of f_values[j, b] over j != k.

    Parameters
    ----------
    f_values : Tensor of shape (K, B), K >= 2

    Returns
    -------
    Tensor of shape (K, B)
    """
    ### BEGIN SOLUTION
    n_samples = f_values.shape[0]
    return (f_values.sum(0, keepdim=True) - f_values) / (n_samples - 1)
    ### END SOLUTION


checks.leave_one_out_baseline(leave_one_out_baseline)

# %% [markdown]
# **Baselines are control variates.** Take any estimator $g$ and any $h$ whose mean
# $\mathbb E h$ is known. Then $g - c\,(h - \mathbb E h)$ has the same mean for every number
# $c$, and its variance, $\operatorname{Var} g - 2c\operatorname{Cov}(g, h) + c^2\operatorname{Var} h$,
# is smallest at
#
# $$
# c^\star = \frac{\operatorname{Cov}(g, h)}{\operatorname{Var} h},
# \qquad \operatorname{Var}\bigl[g - c^\star (h - \mathbb E h)\bigr] = (1 - \rho_{gh}^2)\operatorname{Var} g ,
# $$
#
# so the better $h$ correlates with $g$, the more it removes. A baseline is exactly this with
# $g = f(z)\,s(z)$, $s = \nabla_\theta\log q_\theta(z)$, $h = s$ ($\mathbb E s = 0$) and $c = b$:
# $g - b\,s = (f - b)\,s$. Per coordinate $d$ the optimal $c$ is
# $\mathbb E[f s_d^2]/\mathbb E[s_d^2]$; one $b$ shared by all coordinates of an input minimises
# the total variance $\mathbb E[(f - b)^2\lVert s\rVert^2] - \lVert \nabla \mathbb E f\rVert^2$ at
#
# $$
# b^\star = \frac{\mathbb E\bigl[f(z)\,\lVert s(z)\rVert^2\bigr]}{\mathbb E\bigl[\lVert s(z)\rVert^2\bigr]},
# $$
#
# which is $\mathbb E f$ only when $f$ and $\lVert s\rVert^2$ are uncorrelated. The table below
# adds this optimal $b^\star(x)$, estimated per input from `N_PILOT` pilot samples drawn
# independently of the measurement (so it does not depend on the samples it multiplies).
#
# **The test bed.** A batch of $B$ = `N_INPUTS` inputs $x \in [-1, 1]$, each with its own
# Bernoulli logits over `N_BITS` bits, and
# $f(z, x) = \sum_d (z_d - t_d)^2 + 20 + 10x$: a small $z$-dependent part and a large offset
# that depends on the input, as a VAE's reconstruction term depends on how hard the image is.
# The gradient with respect to all $B \times D$ logits is known in closed form (the offset
# contributes nothing). Each estimate uses $K$ = `K_BASELINE` samples per input; the table
# gives the total variance (the sum over the $B \times D$ coordinates) over
# `N_BASELINE_REPEATS` estimates.

# %%
x_inputs = torch.linspace(-1.0, 1.0, N_INPUTS)[:, None]  # (B, 1)
offset = 20.0 + 10.0 * x_inputs[:, 0]  # (B,)
batch_logits = LOGITS.repeat(N_INPUTS, 1)  # (B, D)
batch_truth = exact_bernoulli_grad(batch_logits)


def f_with_offset(z):
    return bit_error(z) + offset  # (K, B)


def sample_bits(logits, n_samples, generator):
    u = estimators.uniform_noise(n_samples, logits.shape, generator)
    return (u < torch.sigmoid(logits)).double()  # (K, B, D)


# The learned baseline: trained first, by its own squared-error loss and its own optimiser.
torch.manual_seed(0)
learned = estimators.LearnedBaseline(n_inputs=1, n_hidden=LEARNED_HIDDEN)
optimiser = torch.optim.Adam(learned.parameters(), lr=LEARNED_LR)
train_generator = torch.Generator().manual_seed(6)
baseline_losses = []
for step in range(LEARNED_STEPS):
    f_values = f_with_offset(sample_bits(batch_logits, K_BASELINE, train_generator))
    optimiser.zero_grad()
    loss = learned.loss(learned(x_inputs), f_values)
    loss.backward()
    optimiser.step()
    baseline_losses.append(loss.item())
with torch.no_grad():
    learned_b = learned(x_inputs)  # (B,), frozen for the measurement

pilot_z = sample_bits(batch_logits, N_PILOT, torch.Generator().manual_seed(7))  # (N_PILOT, B, D)
pilot = f_with_offset(pilot_z)  # (N_PILOT, B)
pilot_score_sq = ((pilot_z - torch.sigmoid(batch_logits)) ** 2).sum(-1)  # ||d log q / d logits||^2
optimal_b = (pilot * pilot_score_sq).mean(0) / pilot_score_sq.mean(0)  # (B,): b*(x) per input
moving = estimators.MovingAverageBaseline(decay=DECAY)
for _ in range(WARMUP_BATCHES):  # warm up: the average starts at 0 and needs ~1 / (1 - decay) batches
    moving.update(f_with_offset(sample_bits(batch_logits, K_BASELINE, train_generator)))


def use_moving_average(f_values):
    b = moving()  # used first, then updated: b never depends on these samples
    moving.update(f_values)
    return b


baselines = {
    "none": lambda f_values: 0.0,
    "constant": lambda f_values: estimators.ConstantBaseline(float(pilot.mean()))(),
    "moving average": use_moving_average,
    "learned": lambda f_values: learned_b,
    "leave-one-out": estimators.leave_one_out_baseline,
    "optimal b*(x)": lambda f_values: optimal_b,
}


def score_with_baseline(make_baseline):
    logits = batch_logits.clone().requires_grad_(True)

    def estimate(generator):
        z = sample_bits(logits.detach(), K_BASELINE, generator)
        f_values = f_with_offset(z)  # (K, B)
        out = estimators.score_function(f_values, estimators.bernoulli_log_prob(z, logits),
                                        make_baseline(f_values))
        return estimators.flat_grad(out.surrogate, [logits])

    return estimate


baseline_stats = {
    name: estimators.measure(score_with_baseline(make), N_BASELINE_REPEATS,
                             torch.Generator().manual_seed(8), reference=batch_truth)
    for name, make in baselines.items()
}
variance_table = {
    name: {"total_variance": s.total_variance,
           "reduction": baseline_stats["none"].total_variance / s.total_variance,
           "max_abs_z": s.max_abs_z}
    for name, s in baseline_stats.items()
}
print(f"{'baseline':16s}{'total variance':>16s}{'reduction':>12s}{'max |z|':>10s}")
for name, row in variance_table.items():
    print(f"{name:16s}{row['total_variance']:16.2f}{row['reduction']:11.1f}x"
          f"{row['max_abs_z']:10.2f}")

# the floor of the learned baseline's loss: Var f(z) given x, the z-dependent part only,
# sum_d p_d (1 - p_d) (1 - 2 t_d)^2, since (z - t)^2 = z (1 - 2t) + t^2 for z in {0, 1}
p_bits = torch.sigmoid(LOGITS[0])
loss_floor = float((p_bits * (1 - p_bits) * (1 - 2 * TARGET) ** 2).sum())
final_loss = float(np.mean(baseline_losses[-100:]))

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
names = list(variance_table)
axes[0].bar(names, [variance_table[n]["total_variance"] for n in names], color="tab:blue")
axes[0].set_yscale("log")
axes[0].tick_params(axis="x", labelrotation=20)
axes[0].set(title=f"Score-function variance by baseline (K = {K_BASELINE})",
            xlabel="baseline", ylabel="total variance of the gradient (log scale)")
axes[1].semilogy(baseline_losses, lw=0.8, label="loss per Adam step")
axes[1].axhline(loss_floor, color="k", ls="--",
                label=r"floor $\sum_d p_d(1-p_d)(1-2t_d)^2$ = Var of the $z$-dependent part")
axes[1].set(title="Training the learned baseline b(x)",
            xlabel="Adam step", ylabel="squared error (f - b(x))² (log scale)")
axes[1].legend()
fig.tight_layout()

# %%
further = {name: variance_table[name]["reduction"] / variance_table["constant"]["reduction"]
           for name in ["learned", "leave-one-out", "optimal b*(x)"]}
print("reduction beyond the constant baseline:", {k: round(v, 1) for k, v in further.items()})
print(f"learned baseline: mean loss over the last 100 steps {final_loss:.4f}, "
      f"floor {loss_floor:.4f} (ratio {final_loss / loss_floor:.3f})")
optimal_over_learned = (variance_table["optimal b*(x)"]["total_variance"]
                        / variance_table["learned"]["total_variance"])
print(f"b*(x) - E[f | x] (pilot means): from {(optimal_b - pilot.mean(0)).min():.3f} to "
      f"{(optimal_b - pilot.mean(0)).max():.3f}; variance with b* / with learned b(x) = "
      f"{optimal_over_learned:.3f}")
assert all(row["max_abs_z"] < Z_MAX for row in variance_table.values()), variance_table
assert all(variance_table[name]["reduction"] > 5 for name in ["constant", "moving average"])
assert all(further[name] > 10 for name in ["learned", "leave-one-out", "optimal b*(x)"])
if not config.is_quick():
    assert all(variance_table[name]["reduction"] > 100
               for name in ["learned", "leave-one-out", "optimal b*(x)"])
    assert abs(final_loss / loss_floor - 1) < 0.15
    assert 0.8 < optimal_over_learned < 1.0
    assert (optimal_b - pilot.mean(0)).abs().max() < 0.5

# %% [markdown]
# Every baseline leaves the mean where it was (the last column of the table: all within
# `Z_MAX` standard errors of the closed form) and lowers the variance. The constant and the
# moving average remove the *average* offset, 20 by construction, but not its dependence on
# $x$, so they stall at a modest factor. The learned $b_\phi(x)$ follows the offset input by
# input (right: its loss falls onto the dashed floor, the variance of the $z$-dependent part,
# which no baseline that ignores $z$ can go below) and leave-one-out uses the other samples of
# the same input, so both remove the offset entirely: more than ten times further beyond the
# constant and more than a hundred times against no baseline (the factors are printed above),
# for free. The optimal $b^\star(x)$ is lower still, but only by a few per cent (the variance
# ratio printed last): $f$ and $\lVert s\rVert^2$ are only weakly correlated here, so
# $b^\star(x)$ differs from $\mathbb E[f \mid x]$, the target of the learned baseline's squared
# error, by a fraction of one unit of $f$ (printed). Regressing $b$ on $f$ is a good default,
# close to but not exactly the optimum.
# Leave-one-out needs no training but $K \ge 2$ samples;
# the learned baseline works with $K = 1$ but must be trained alongside the model.
#
# ## 7. A relaxation: Gumbel-softmax / Concrete
#
# **Gumbel noise.** A Gumbel(0, 1) variable is $g = -\log(-\log u)$ with $u \sim U(0, 1)$. Its
# use is the *Gumbel-max trick*: for $K$ categories with probabilities $\pi_1, \dots, \pi_K$ and
# independent $g_1, \dots, g_K \sim \text{Gumbel}(0, 1)$,
# $\arg\max_k (\log\pi_k + g_k)$ is a draw from the categorical distribution $\pi$. The argmax
# is a step function again, so the Gumbel-softmax (Concrete) relaxation replaces the one-hot
# argmax by a softmax of temperature $\tau$ (Maddison et al., 2017; Jang et al., 2017):
#
# $$
# z^{(\tau)} = \operatorname{softmax}\Bigl(\frac{\log\pi + g}{\tau}\Bigr) \in \Delta^{K-1},
# \qquad z^{(\tau)}_k = \frac{\exp((\log\pi_k + g_k)/\tau)}{\sum_j \exp((\log\pi_j + g_j)/\tau)},
# $$
#
# a point of the simplex that tends to the one-hot sample as $\tau \to 0$. For a bit ($K = 2$,
# $\log\pi_1 - \log\pi_0 = \ell$) the softmax of two entries is a sigmoid of their difference,
# $z^{(\tau)}_1 = \operatorname{sigmoid}\bigl((\ell + g_1 - g_0)/\tau\bigr)$, and the difference of
# two independent Gumbel(0, 1) draws is a standard Logistic variable, which one uniform gives
# directly as $\log(1-u) - \log u$ (or $\log u - \log(1 - u)$: the Logistic is symmetric):
#
# $$
# z^{(\tau)} = \operatorname{sigmoid}\Bigl(\frac{\ell + \log(1-u) - \log u}{\tau}\Bigr), \qquad u \sim U(0, 1),
# $$
#
# which tends to the hard sample $\mathbb 1[u < p]$ as $\tau \to 0$ (the argument is positive
# exactly when $u < \operatorname{sigmoid}(\ell)$; the Logistic cdf is the sigmoid). The cell
# checks the Logistic claim on `N_GUMBEL` draws with a Kolmogorov-Smirnov test.

# %%
gumbel_generator = torch.Generator().manual_seed(12)
g1, g0 = (-torch.log(-torch.log(estimators.uniform_noise(1, (N_GUMBEL,), gumbel_generator)[0]))
          for _ in range(2))
u_logistic = estimators.uniform_noise(1, (N_GUMBEL,), gumbel_generator)[0]


def ks_statistic(samples, cdf):
    """Kolmogorov-Smirnov distance sup |F_empirical - F| of 1-D samples from a cdf."""
    x, _ = torch.sort(samples)
    n = len(x)
    F = cdf(x)
    above = torch.arange(1, n + 1, dtype=x.dtype) / n - F
    below = F - torch.arange(0, n, dtype=x.dtype) / n
    return float(torch.maximum(above, below).max())


def logistic_cdf(x):
    return torch.sigmoid(x)


def normal_cdf(x):
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


KS_CRITICAL = 1.63 / math.sqrt(N_GUMBEL)  # the 1 % level of the KS test, for large N
ks_gumbel = ks_statistic(g1 - g0, logistic_cdf)
ks_uniform = ks_statistic(torch.log1p(-u_logistic) - torch.log(u_logistic), logistic_cdf)
ks_normal = ks_statistic((g1 - g0) / (math.pi / math.sqrt(3)), normal_cdf)  # unit variance
print(f"KS distance to Logistic(0, 1): g1 - g0 {ks_gumbel:.4f}, log(1-u) - log u {ks_uniform:.4f}")
print(f"for contrast, g1 - g0 scaled to unit variance against N(0, 1): {ks_normal:.4f}")
print(f"1 % critical value for N = {N_GUMBEL}: {KS_CRITICAL:.4f}")
if not config.is_quick():
    assert ks_gumbel < KS_CRITICAL and ks_uniform < KS_CRITICAL < ks_normal

# %% [markdown]
# Both samples are closer to the Logistic distribution than the 1 % critical distance of the
# Kolmogorov-Smirnov test, while the same draws, scaled to unit variance, are clearly *not*
# Gaussian (the contrast row: beyond the critical distance). Now the pathwise
# estimator applies to $z^{(\tau)}$, but to $\mathbb E[f(z^{(\tau)})]$, a *different* objective:
# $f$ is evaluated at points between 0 and 1 that the model never produces. The estimate is
# biased, and as $\tau \to 0$ the bias shrinks while the sigmoid gets steep and the variance
# grows. We measure both against the exact Bernoulli gradient of section 5, in the same units:
# the squared bias $\lVert \mathbb E\hat g - g\rVert^2$, the total variance, and their sum, the
# mean squared error of one estimate. The measured $\lVert \bar g - g\rVert^2$ of a mean over
# $R$ repeats overshoots the squared bias by the total variance over $R$ (the noise floor), so
# the table subtracts it. The straight-through estimator of section 5 is measured beside them.

# %%
def error_budget(stats):
    """Squared bias (noise floor subtracted), total variance and MSE of one estimate."""
    raw = float(((stats.mean - bernoulli_truth) ** 2).sum())
    floor = stats.total_variance / stats.n_repeats  # E|mean - E g|^2 of an unbiased mean
    return {"bias_sq": raw - floor, "noise_floor": floor, "total_variance": stats.total_variance,
            "mse": raw - floor + stats.total_variance,  # of one single-sample estimate
            # an average of K_AVERAGE samples divides the variance by K, not the bias
            "mse_average": raw - floor + stats.total_variance / K_AVERAGE,
            "max_abs_z": stats.max_abs_z}


concrete = {
    tau: error_budget(estimators.measure(bernoulli_grad_fn(LOGITS, tau), N_REPEATS,
                                         torch.Generator().manual_seed(9), reference=bernoulli_truth))
    for tau in TEMPERATURES
}
straight_through = error_budget(estimators.measure(
    bernoulli_grad_fn(LOGITS, "straight-through"), N_REPEATS, torch.Generator().manual_seed(9),
    reference=bernoulli_truth))
score_row = error_budget(bernoulli_stats)
score_variance = bernoulli_stats.total_variance

print(f"{'estimator':>18s}{'bias²':>10s}{'noise floor':>13s}{'variance':>10s}{'MSE':>10s}"
      f"{f'MSE, K={K_AVERAGE}':>13s}{'max |z|':>9s}")
for label, row in [*[(f"Concrete tau={tau}", concrete[tau]) for tau in TEMPERATURES],
                   ("straight-through", straight_through), ("score function", score_row)]:
    print(f"{label:>18s}{row['bias_sq']:10.4f}{row['noise_floor']:13.4f}"
          f"{row['total_variance']:10.4f}{row['mse']:10.4f}{row['mse_average']:13.4f}"
          f"{row['max_abs_z']:9.1f}")
best_tau = min(TEMPERATURES, key=lambda t: concrete[t]["mse"])
best_tau_average = min(TEMPERATURES, key=lambda t: concrete[t]["mse_average"])
unresolved = [t for t in TEMPERATURES if concrete[t]["max_abs_z"] < Z_MAX]
print(f"lowest Concrete MSE: tau = {best_tau} for one sample, tau = {best_tau_average} for an "
      f"average of {K_AVERAGE}")
print(f"temperatures whose mean is within Z_MAX = {Z_MAX} standard errors of the truth: {unresolved}")

fig, ax = plt.subplots(figsize=(8, 4.2))
ax.loglog(TEMPERATURES, [max(concrete[t]["bias_sq"], 1e-6) for t in TEMPERATURES], "o-",
          label=r"Concrete: squared bias $\|\mathbb{E}\hat g - g\|^2$")
ax.loglog(TEMPERATURES, [concrete[t]["total_variance"] for t in TEMPERATURES], "s-",
          label="Concrete: total variance")
ax.loglog(TEMPERATURES, [concrete[t]["mse"] for t in TEMPERATURES], "^-",
          label="Concrete: mean squared error = bias² + variance")
ax.loglog(TEMPERATURES, [concrete[t]["mse_average"] for t in TEMPERATURES], "v--",
          label=f"Concrete: MSE of an average of K = {K_AVERAGE}")
ax.loglog(TEMPERATURES, [concrete[t]["noise_floor"] for t in TEMPERATURES], "k:",
          label="noise floor of the squared-bias estimate")
ax.axhline(score_variance, color="tab:green", linestyle="--",
           label="score function: MSE = variance (unbiased)")
ax.axhline(straight_through["mse"], color="tab:red", linestyle="-.",
           label="straight-through: MSE")
ax.set(title="Concrete relaxation of 8 Bernoulli bits: bias², variance and MSE",
       xlabel=r"temperature $\tau$", ylabel="squared gradient units (log scale)")
ax.legend(fontsize=8)
fig.tight_layout()

# %%
high, low = concrete[max(TEMPERATURES)], concrete[min(TEMPERATURES)]
assert high["max_abs_z"] > 10  # clearly biased at high temperature
assert low["bias_sq"] < high["bias_sq"] and low["total_variance"] > high["total_variance"]
assert straight_through["max_abs_z"] > Z_MAX  # straight-through is biased too
if not config.is_quick():
    assert high["bias_sq"] > 3 * high["total_variance"]  # high tau: the bias dominates the MSE
    assert low["total_variance"] > 100 * low["bias_sq"]  # low tau: the variance dominates
    assert best_tau >= 1.0  # one sample: a high temperature wins
    assert min(TEMPERATURES) < best_tau_average < best_tau  # an average: a lower one
    assert straight_through["bias_sq"] > 10 * straight_through["noise_floor"]
    assert min(TEMPERATURES) in unresolved

# %% [markdown]
# At high temperature the relaxed estimate has a small variance but is far off: its squared
# bias is several times its variance and its mean more than ten standard errors from the truth
# (the `max |z|` column), a different objective, precisely estimated. As $\tau$ falls the squared
# bias shrinks and the variance rises; at the lowest temperature the variance is more than a
# hundred times the squared bias, and the temperatures listed above the figure have means
# within `Z_MAX` standard errors of the truth: with this many repeats their bias cannot be
# told apart from noise, though it is not zero for any $\tau > 0$. Which temperature is best
# depends on how many samples are averaged: for one sample the MSE is lowest at a high
# temperature (the variance dominates), for an average of `K_AVERAGE` samples, whose variance
# is $K$ times smaller while the bias stays, at a lower one (both printed above). The
# straight-through estimator is biased too, clearly above its noise floor. The relaxation is attractive when some bias is acceptable and $f$ is differentiable
# and defined between 0 and 1 (a Bernoulli decoder is); the score function with a good
# baseline stays exact for any $f$. Chapter 4 trains a VAE with Bernoulli latents that way.

# %% [markdown]
# ## Check yourself
#
# 1. Why is $\frac1K\sum_k \nabla_\theta f(z_k)$, with $z_k$ drawn by `torch.normal(mu, sigma)`,
#    not an estimate of $\nabla_\theta\mathbb E[f(z)]$?
# 2. In the score-function surrogate, what goes wrong if the samples are not detached? If
#    $f(z)$ is not detached when $f$ does not depend on $\theta$?
# 3. Why does a baseline that uses the sample's own $f(z_k)$ bias the estimator, while
#    leave-one-out does not?
# 4. Section 4 found the score function's variance growing like $D^2$. Which part of $f$ is
#    responsible, and what would a baseline leave?
# 5. Why is the moving average updated *after* it is used on a batch?
# 6. A reader reports a Concrete estimate whose mean has a z-score of 40 against the exact
#    gradient. Is their code wrong?
# 7. A baseline is a control variate with $h = \nabla\log q$. Why is the best single baseline
#    $\mathbb E[f\lVert s\rVert^2]/\mathbb E[\lVert s\rVert^2]$ rather than $\mathbb E[f]$, and when are
#    the two the same?
# 8. Name a differentiable $f$ for which the pathwise estimator is noisier than the score
#    function, and say why.
#
# <details><summary>Answers</summary>
#
# 1. A sample drawn that way has no path back to $\mu$ and $\sigma$, so autograd sees only
#    $f$'s own dependence on $\theta$ (often none); the dependence through the distribution
#    is lost. Reparameterise, or use the score function.
# 2. It depends on where the path survives (the cell after exercise 2 computes each case).
#    With `f(z).detach() * log_q(z)` and $z$ not detached, $(z - \mu)/\sigma$ is $\varepsilon$
#    in the graph, so the $\mu$-gradient is 0 and every $\log\sigma_d$-gradient is $-f(z)$:
#    the estimate is $(0, -f)$, wrong on average for every $f$. Only if $f(z)$ stays attached
#    *and* $\log q$ is evaluated at a detached $z$ does one get the pathwise plus the
#    score-function estimate, an estimate of twice the gradient. If $f(z)$ is not detached but
#    does not depend on $\theta$ (and $z$ is detached), it changes nothing; if it does (an
#    ELBO), its own gradient is a term you want, and only its factor in front of $\log q$
#    must be detached.
# 3. $\mathbb E[b\,\nabla\log q(z)] = 0$ only when $b$ does not depend on $z$. With
#    $b = f(z_k)$ the product $(f(z_k) - b)\nabla\log q(z_k)$ is zero: the estimate is 0.
#    Leave-one-out's $b_k$ uses other, independent samples.
# 4. The mean of $f$, $2D$, multiplies $\varepsilon_0/\sigma_0$: noise without signal, of
#    variance $4D^2$. A baseline $b \approx 2D$ removes it; what is left grows linearly, from
#    the fluctuations of the $D - 1$ terms that do not involve $z_0$. Only using the structure
#    of $f$ (Rao-Blackwellisation: drop those terms from dimension 0's estimate) removes them.
# 5. So that $b$ does not depend on the current samples: updated first, it would contain a
#    $(1 - \text{decay})$ share of the sample's own $f$ and bias the estimate slightly.
# 6. Not necessarily: the relaxation estimates the gradient of $\mathbb E[f(z^{(\tau)})]$,
#    not of $\mathbb E[f(z)]$. Compare at lower temperature, or against the relaxed objective.
# 7. The total variance of $(f - b)s$ is $\mathbb E[(f - b)^2\lVert s\rVert^2]$ minus a term free of
#    $b$; setting its derivative in $b$ to zero gives $b^\star$, a weighted mean of $f$ with
#    weights $\lVert s\rVert^2$. It equals $\mathbb E f$ when $f$ and $\lVert s\rVert^2$ are
#    uncorrelated (for instance when $\lVert s\rVert^2$ is the same for every sample).
# 8. $f(z) = \cos(\omega z)$ with a large $\omega$ (section 4): the pathwise estimate
#    $-\omega\sin(\omega z)$ has variance near $\omega^2/2$, the score-function estimate
#    $\cos(\omega z)\,\varepsilon/\sigma$ stays of order 1 because $|f| \le 1$.
#
# </details>
#
# ## Summary
#
# - $\nabla_\theta\mathbb E_{q_\theta}[f(z)]$ needs care because the samples depend on $\theta$.
#   Reparameterisation moves the randomness into fixed noise and differentiates through $f$;
#   the score function differentiates $\log q_\theta$ and treats $f$ as a black box.
# - Both are unbiased (checked here against closed forms, within a few standard errors); in
#   code, each is a surrogate loss with `.detach()` in the right places.
# - The score function's variance grows with the dimension; both fall as $1/K$ with samples.
#   Use reparameterisation when $z$ is continuous and $f$ differentiable and smooth; for a
#   rapidly varying $f$ (a high-frequency cosine) the pathwise estimate can be the noisier.
# - Baselines are control variates: they keep the score function unbiased and cut its
#   variance. A constant or moving average removes the average size of $f$; an
#   input-dependent (learned) or leave-one-out baseline removes far more; the optimal
#   $b^\star = \mathbb E[f\lVert s\rVert^2]/\mathbb E[\lVert s\rVert^2]$ a little more still.
# - Discrete latents have no pathwise gradient: the score function is exact, a Concrete
#   relaxation trades bias (large at high temperature) for variance (large at low).

# %% [markdown]
# ## Headline figures
#
# Saved for `build/results.json` when the course runner executes this chapter.

# %%
summary = results.record(
    "03_gradient_estimators",
    variance_table=variance_table,
    baseline_setup={"n_inputs": N_INPUTS, "n_bits": N_BITS, "k": K_BASELINE,
                    "n_repeats": N_BASELINE_REPEATS, "decay": DECAY},
    unbiasedness_max_abs_z={f"{f_name} / {est_name}": s.max_abs_z
                            for (f_name, est_name), s in unbiased.items()},
    variance_vs_dim={name: dict(zip(DIMS, v)) for name, v in variance_vs_dim.items()},
    variance_vs_k={name: dict(zip(SAMPLE_COUNTS, v)) for name, v in variance_vs_k.items()},
    slope_vs_dim=slope_dim,
    concrete={str(tau): row for tau, row in concrete.items()},
    straight_through=straight_through,
    learned_baseline_loss={"final": final_loss, "floor": loss_floor},
    pathwise_over_score_variance_cos={str(w): r for w, r in zip(FREQUENCIES, frequency_ratio)},
    bernoulli_score_function={"total_variance": score_variance,
                              "max_abs_z": bernoulli_stats.max_abs_z},
    n_repeats=N_REPEATS,
    elapsed_s=time.perf_counter() - chapter_start,
)
summary

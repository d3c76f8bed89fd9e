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
# # Fit Gaussian mixtures with EM, from scratch
#
# A Gaussian mixture explains data as coming from a few Gaussian "blobs", without being told
# which point came from which blob. Expectation-maximisation (EM) fits it by alternating two
# easy steps: guess who owns each point, then refit each blob to the points it owns. This
# chapter derives both steps, has you write them in NumPy, and then runs the course's verified
# version on 2-D toy data and on the 784 pixels of MNIST and Fashion-MNIST images. Everything
# later in the course (the ELBO, variational autoencoders, and one Gaussian mixture per class
# in a learned latent space) builds on what you do here.
#
# **What you'll do**
#
# - derive the E-step (responsibilities, by Bayes' rule) and write it; derive the M-step
#   (weights, means and covariances, by setting gradients to zero) and write it;
# - write `log_gaussian`, `e_step`, `m_step` and the k-means++ seeding `kmeans_plusplus`
#   yourself, each checked against known answers or, for the random seeding, against the
#   properties and the distribution every correct version has;
# - watch EM separate overlapping 2-D blobs, iteration by iteration, and verify that the
#   log-likelihood never goes down;
# - compare initialisations (random, k-means++, k-means), see k-means appear as the limit of
#   EM when a shared variance shrinks to zero, break EM with a singular covariance and repair
#   it with `reg_covar`, and choose the number of components by BIC and by held-out likelihood;
# - fit mixtures of 5, 10 and 15 Gaussians straight on pixels, look at their means and their
#   samples, and measure how well the components match the classes (NMI).
#
# **What you'll learn**
#
# - why log-densities need a Cholesky factor and responsibilities need log-sum-exp;
# - where the M-step formulas come from, including the Lagrange multiplier for the weights;
# - why a Gaussian mixture's likelihood can go to infinity, and what `reg_covar` does (and
#   does not do) about it;
# - what a diagonal Gaussian on pixels can and cannot represent, which motivates the latent
#   spaces of the later chapters.
#
# **What you'll need**
#
# - NumPy (broadcasting, `@`, `np.linalg`), and a little linear algebra: determinants,
#   inverses, the Cholesky factorisation $\Sigma = LL^\top$;
# - probability: Bayes' rule, the multivariate Gaussian density;
# - about 3 minutes on a 2-core CPU for a full run (under 30 s with `GAE_COURSE_QUICK=1`), no GPU.

# %% [markdown]
# ## Setup
#
# One cell imports the course package by module, fixes the seeds, holds the linear-algebra
# library to the machine's cores, and sets every size this chapter uses (it prints them all).
# Quick mode (`GAE_COURSE_QUICK=1`, used by the test suite) only shrinks the pixel experiments
# and the number of repeated fits; the toy data are the same in both modes.

# %%
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import normalized_mutual_info_score
from tqdm.auto import tqdm

from gae_course import checks, config, data, mixture, plotting, results

rng = config.seed_everything(0)
config.limit_blas_threads()

# 2-D toy data (cheap: identical in both modes)
N_TOY = 1_500  # points drawn from the four true blobs
TOY_MAX_ITER = 500  # EM iterations at most, for the from-scratch loop
TOY_TOL = 1e-8  # stop when the mean log-likelihood per point rises by less than this
MATCH_RADIUS = 0.5  # a true blob is "found" when a fitted mean is this close to its mean
N_GRID = 900  # points on a 3 x 3 grid of blobs, for comparing initialisations
N_SEED_DRAWS = 200  # k-means++ and uniform seedings drawn, to count how often all blobs are hit
N_INIT_SEEDS = config.pick(full=20, quick=5)  # seeds per initialisation method
INIT_TOL, INIT_MAX_ITER = 1e-6, 2_000  # EM runs of the initialisation comparison: to convergence
SIGMAS = np.logspace(0.5, -2, 11)  # shared standard deviations, for the k-means limit of EM
N_DUPLICATES = 40  # copies of one record added to the toy data (section 6)
REG_COVAR_VALUES = np.logspace(-1, -10, 10)  # reg_covar values of the duplicated-points curve
K_RANGE = list(range(1, 9))  # candidate numbers of components when choosing K
N_INIT_BIC = config.pick(full=3, quick=1)  # EM restarts per K when choosing K
BIC_TOL, BIC_MAX_ITER = 1e-6, 1_000  # EM runs when choosing K

# Mixtures on pixels
DATASETS = ["mnist", "fashion-mnist"]
K_VALUES = [5, 10, 15]  # components per mixture
N_PIXEL_TRAIN = config.pick(full=20_000, quick=1_000)  # training images per dataset
N_PIXEL_TEST = config.pick(full=10_000, quick=1_000)  # test images, for NMI and held-out fit
PIXEL_MAX_ITER = config.pick(full=100, quick=15)  # EM iterations at most
PIXEL_TOL = 5e-2  # nats per image (of about 500): the curves are flat by then
PIXEL_REG_COVAR = 1e-2  # variance floor per pixel (a standard deviation of 0.1)
N_SAMPLES_SHOWN = 8  # samples drawn per component, and per mixture (times 1.5), in the figures

SETTINGS = ["N_TOY", "TOY_MAX_ITER", "TOY_TOL", "MATCH_RADIUS", "N_GRID", "N_SEED_DRAWS",
            "N_INIT_SEEDS", "INIT_TOL", "INIT_MAX_ITER", "SIGMAS", "N_DUPLICATES",
            "REG_COVAR_VALUES", "K_RANGE", "N_INIT_BIC", "BIC_TOL", "BIC_MAX_ITER", "DATASETS",
            "K_VALUES", "N_PIXEL_TRAIN", "N_PIXEL_TEST", "PIXEL_MAX_ITER", "PIXEL_TOL",
            "PIXEL_REG_COVAR", "N_SAMPLES_SHOWN"]
print(f"mode: {config.mode()}")
with np.printoptions(precision=3):
    for name in SETTINGS:
        print(f"  {name:16s} = {globals()[name]}")

# %% [markdown]
# ## 1. The model
#
# A Gaussian mixture with $K$ components has weights $\pi_k \ge 0$ with $\sum_k \pi_k = 1$,
# means $\mu_k \in \mathbb R^d$ and covariance matrices $\Sigma_k$ (symmetric, positive
# definite). Its density is
#
# $$
# p(x) = \sum_{k=1}^K \pi_k\, \mathcal N(x \mid \mu_k, \Sigma_k),
# \qquad
# \log \mathcal N(x \mid \mu, \Sigma) = -\frac d2 \log 2\pi - \frac12 \log\det\Sigma
#   - \frac12 (x-\mu)^\top \Sigma^{-1} (x-\mu).
# $$
#
# **The latent variable.** The same density comes from a two-stage story. First draw which
# component generates the point, $z \in \{1, \dots, K\}$ with $p(z = k) = \pi_k$; then draw
# $x \mid z = k \sim \mathcal N(\mu_k, \Sigma_k)$. Summing the joint $p(x, z)$ over the
# unobserved $z$ gives back $p(x)$ above. We never see $z$: it is *latent*.
#
# **Computing the log-density well.** Never form $\Sigma^{-1}$ or $\det\Sigma$ directly:
# with the Cholesky factor $\Sigma = LL^\top$ ($L$ lower triangular, positive diagonal),
#
# $$
# \log\det\Sigma = 2\sum_j \log L_{jj},
# \qquad
# (x-\mu)^\top\Sigma^{-1}(x-\mu) = \lVert L^{-1}(x-\mu)\rVert^2 ,
# $$
#
# where $L^{-1}(x-\mu)$ is one triangular solve. Why not $\det\Sigma$ itself? It is a product
# of $d$ eigenvalues, and in hundreds of dimensions that product leaves the range of float64.
# For pixel-like variances, $\Sigma = 0.01\, I$ in $d = 784$ dimensions:

# %%
d_pixels = 784
covariance_pixels = 0.01 * np.eye(d_pixels)
print(f"np.linalg.det(0.01 I_784)       = {np.linalg.det(covariance_pixels)}")
print(f"true value                      = 10^{d_pixels * np.log10(0.01):.0f}")
print(f"smallest positive float64       = {np.finfo(float).smallest_subnormal:.3g}")
print(f"log det by Cholesky, 2 sum log L_jj = "
      f"{2 * np.sum(np.log(np.diag(np.linalg.cholesky(covariance_pixels)))):.2f}")
print(f"log det by np.linalg.slogdet        = {np.linalg.slogdet(covariance_pixels)[1]:.2f}")
assert np.linalg.det(covariance_pixels) == 0.0

# %% [markdown]
# `np.linalg.det` returns exactly `0.0`, so `np.log` of it is $-\infty$; its logarithm, from
# the Cholesky diagonal or `np.linalg.slogdet`, is an ordinary number (the two printed lines
# agree).
#
# **Exercise 1.** The log-density of one Gaussian at every row of `X`. Use the Cholesky
# factor as above, not `np.linalg.inv` or `np.linalg.det`: one of the check's cases is a
# 300-dimensional Gaussian whose determinant underflows to 0.0.

# %%
def log_gaussian(X, mean, covariance):
    """log N(x_i | mean, covariance) for every row x_i of X.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    mean : ndarray of shape (n_features,)
    covariance : ndarray of shape (n_features, n_features)
        Symmetric positive definite.

    Returns
    -------
    log_density : ndarray of shape (n_samples,)
    """
    ### BEGIN SOLUTION
    n_features = X.shape[1]
    L = np.linalg.cholesky(covariance)  # covariance = L @ L.T
    diff = X - mean  # (n, d)
    z = np.linalg.solve(L, diff.T)  # L^-1 (x_i - mean), one column per sample: (d, n)
    mahalanobis = np.sum(z**2, axis=0)  # (n,)
    log_det = 2.0 * np.sum(np.log(np.diag(L)))
    return -0.5 * (n_features * np.log(2.0 * np.pi) + log_det + mahalanobis)
    ### END SOLUTION


checks.log_gaussian(log_gaussian)


# %% [markdown]
# ## 2. The E-step: who owns each point
#
# **Responsibilities, by Bayes' rule.** Given a point, how likely is it that component $k$
# generated it?
#
# $$
# \gamma_{ik} = p(z_i = k \mid x_i)
# = \frac{\pi_k\, \mathcal N(x_i \mid \mu_k, \Sigma_k)}{\sum_{j=1}^K \pi_j\, \mathcal N(x_i \mid \mu_j, \Sigma_j)} .
# $$
#
# **Why log-sum-exp.** A point far from a component has a log-density far below zero, and in
# hundreds of dimensions log-densities are easily hundreds of nats away from zero, in either
# direction (section 8's pixel densities are large and *positive*). float64 cannot hold
# the exponential of such numbers:

# %%
with np.errstate(over="ignore"):
    for a in (-2000.0, -746.0, -745.0, -700.0, 700.0, 709.0, 710.0):
        print(f"np.exp({a:7.1f}) = {np.exp(a):.3g}")
print(f"log of the smallest positive float64: {np.log(np.finfo(float).smallest_subnormal):.1f}")
print(f"log of the largest float64:           {np.log(np.finfo(float).max):.1f}")
with np.errstate(over="ignore"):
    assert np.exp(-746.0) == 0.0 and np.exp(-745.0) > 0.0
    assert np.isinf(np.exp(710.0)) and np.isfinite(np.exp(709.0))

# %% [markdown]
# Below about $-745$ `np.exp` returns exactly `0.0`, above about $709$ it returns `inf`. If
# every term of the denominator underflows, the ratio above becomes $0/0$; if one overflows,
# $\infty/\infty$: NaN either way. So work with
# $a_{ik} = \log\pi_k + \log\mathcal N(x_i \mid \mu_k, \Sigma_k)$ and
#
# $$
# \log\gamma_{ik} = a_{ik} - \operatorname{LSE}_j(a_{ij}),
# \qquad
# \operatorname{LSE}_j(a_{ij}) = m_i + \log\sum_j e^{a_{ij} - m_i},\quad m_i = \max_j a_{ij}.
# $$
#
# Subtracting the maximum changes nothing mathematically, but now the largest term is
# $e^0 = 1$: the sum is at least 1 and at most $K$, and its log is finite. The same
# $\operatorname{LSE}_j(a_{ij}) = \log p(x_i)$ is each point's log-likelihood, so the E-step
# returns it too: its average over the points,
#
# $$
# \frac1n\,\ell(\theta) = \frac1n \sum_{i=1}^n \log \sum_{k=1}^K \pi_k\, \mathcal N(x_i \mid \mu_k, \Sigma_k),
# $$
#
# is the number EM must never lower.
#
# **Exercise 2.** The E-step: log-responsibilities $\log\gamma_{ik}$ and each point's
# $\log p(x_i)$, both through log-sum-exp with the max trick (no `scipy`). You may build on
# your `log_gaussian`; if it does not pass yet, the verified
# `mixture.log_gaussian_density(X, means, mixture.compute_precision_cholesky(covariances))`
# returns all $K$ columns $\log\mathcal N(x_i \mid \mu_k, \Sigma_k)$ at once.

# %%
def e_step(X, weights, means, covariances):
    """Log-responsibilities and per-sample log-likelihood.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray of shape (n_components, n_features, n_features)

    Returns
    -------
    log_resp : ndarray of shape (n_samples, n_components)
        log gamma_ik; the rows of exp(log_resp) sum to 1.
    log_prob_norm : ndarray of shape (n_samples,)
        log p(x_i) = logsumexp_k [log pi_k + log N(x_i | mu_k, Sigma_k)].
    """
    ### BEGIN SOLUTION
    # a_ik = log pi_k + log N(x_i | mu_k, Sigma_k), one column per component: (n, K)
    weighted_log_prob = np.column_stack(
        [np.log(w) + log_gaussian(X, m, c) for w, m, c in zip(weights, means, covariances)]
    )
    top = weighted_log_prob.max(axis=1, keepdims=True)  # the max trick: (n, 1)
    log_prob_norm = top[:, 0] + np.log(np.sum(np.exp(weighted_log_prob - top), axis=1))
    log_resp = weighted_log_prob - log_prob_norm[:, None]
    return log_resp, log_prob_norm
    ### END SOLUTION


checks.e_step(e_step)


# %% [markdown]
# ## 3. The M-step: refit each component to the points it owns
#
# The log-likelihood $\ell(\theta)$ has a log of a sum: setting its gradient to zero gives
# equations in which every parameter depends on all the others through $\gamma_{ik}$. There is
# no closed-form maximiser. Had we observed $z_i$, the *complete-data* log-likelihood
# $\sum_i \log \pi_{z_i} + \log\mathcal N(x_i \mid \mu_{z_i}, \Sigma_{z_i})$ would be easy: each
# component would be fitted to its own points. We don't observe $z_i$, so EM takes its
# expectation under the current responsibilities:
#
# - **E-step:** with the current parameters, compute $\gamma_{ik}$ for every point and
#   component (exercise 2).
# - **M-step:** holding $\gamma_{ik}$ fixed, maximise the expected complete-data log-likelihood
#
# $$
# Q(\theta) = \sum_{i=1}^n \sum_{k=1}^K \gamma_{ik}\,\bigl[\log\pi_k + \log \mathcal N(x_i \mid \mu_k, \Sigma_k)\bigr].
# $$
#
# $Q$ splits into one term per parameter, each with a closed-form maximiser. Write
# $N_k = \sum_i \gamma_{ik}$, the (soft) number of points component $k$ owns.
#
# **Means.** Using $\partial_\mu\, (x-\mu)^\top\Sigma^{-1}(x-\mu) = -2\Sigma^{-1}(x-\mu)$,
#
# $$
# \frac{\partial Q}{\partial \mu_k} = \sum_i \gamma_{ik}\, \Sigma_k^{-1}(x_i - \mu_k) = 0
# \quad\Longrightarrow\quad
# \mu_k = \frac{1}{N_k}\sum_i \gamma_{ik}\, x_i .
# $$
#
# **Covariances.** Differentiate with respect to the precision $\Lambda_k = \Sigma_k^{-1}$.
# Treating the $d^2$ entries of $\Lambda$ as free variables, $\partial_\Lambda \log\det\Lambda
# = \Lambda^{-\top} = \Lambda^{-1}$ and $\partial_\Lambda\, a^\top \Lambda a = a a^\top$, so the
# unconstrained gradient is
#
# $$
# G_k = \frac{\partial Q}{\partial \Lambda_k} = \sum_i \gamma_{ik}\Bigl[\tfrac12 \Lambda_k^{-1} - \tfrac12 (x_i-\mu_k)(x_i-\mu_k)^\top\Bigr] = 0
# \quad\Longrightarrow\quad
# \Sigma_k = \frac{1}{N_k}\sum_i \gamma_{ik}\,(x_i-\mu_k)(x_i-\mu_k)^\top .
# $$
#
# $\Lambda_k$ is symmetric, though, so $\Lambda_{jl}$ and $\Lambda_{lj}$ are one variable; the
# gradient with respect to the $d(d+1)/2$ free entries of a symmetric matrix is
# $G + G^\top - \operatorname{diag}(G) = 2G - \operatorname{diag}(G)$ for a symmetric $G$.
# That map is invertible (it doubles the off-diagonal entries and keeps the diagonal), so the
# symmetric gradient is zero exactly when $G$ is: both give the same stationary point, the
# $\Sigma_k$ above. (Divide by $N_k$, not $N_k - 1$: this is the maximum-likelihood estimate.)
#
# **Weights.** Maximise $\sum_k N_k \log \pi_k$ subject to $\sum_k \pi_k = 1$ with a
# Lagrange multiplier $\lambda$:
#
# $$
# \frac{\partial}{\partial \pi_k}\Bigl[\sum_j N_j \log\pi_j + \lambda\bigl(1 - \sum_j \pi_j\bigr)\Bigr]
# = \frac{N_k}{\pi_k} - \lambda = 0
# \;\Rightarrow\; \pi_k = \frac{N_k}{\lambda},
# \qquad \sum_k \pi_k = 1 \;\Rightarrow\; \lambda = \sum_k N_k = n,
# \qquad \pi_k = \frac{N_k}{n}.
# $$
#
# (The constraint $\pi_k \ge 0$ holds by itself, since $N_k \ge 0$.)
#
# **In practice** a small `reg_covar` is added to each covariance's diagonal,
# $\Sigma_k + \varepsilon I$, for reasons section 6 makes vivid. Strictly, that update no
# longer maximises $Q$, so the guarantee below is exact only for $\varepsilon = 0$ (section 8
# shows what a large $\varepsilon$ does to it).
#
# **Exercise 3.** The M-step: weights, means and covariances from responsibilities, with
# `reg_covar` added to the diagonal of every covariance.

# %%
def m_step(X, resp, reg_covar):
    """Mixture parameters that maximise Q for fixed responsibilities.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    resp : ndarray of shape (n_samples, n_components)
        Responsibilities gamma_ik; rows sum to 1.
    reg_covar : float
        Added to the diagonal of every covariance.

    Returns
    -------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray of shape (n_components, n_features, n_features)
    """
    ### BEGIN SOLUTION
    n_samples, n_features = X.shape
    nk = resp.sum(axis=0)  # soft counts N_k: (K,)
    weights = nk / n_samples
    means = resp.T @ X / nk[:, None]  # (K, d)
    covariances = np.empty((len(nk), n_features, n_features))
    for k in range(len(nk)):
        diff = X - means[k]  # (n, d)
        covariances[k] = (resp[:, k, None] * diff).T @ diff / nk[k]
        covariances[k] += reg_covar * np.eye(n_features)
    return weights, means, covariances
    ### END SOLUTION


checks.m_step(m_step)

# %% [markdown]
# **The log-likelihood never decreases.** Each EM iteration (exact M-step, $\varepsilon = 0$)
# gives $\ell(\theta^{\text{new}}) \ge \ell(\theta^{\text{old}})$, with equality only at a
# stationary point. Chapter 2 proves it: $\ell(\theta)$ equals a lower bound (the ELBO) plus a
# KL divergence; the E-step makes the KL term zero, the M-step raises the bound. Here we only
# check it numerically, at every iteration. EM finds a *local* maximum: where it ends depends
# on where it starts (section 5).
#
# From here on the chapter uses the package's verified kernels, `mixture.e_step`,
# `mixture.m_step` and `mixture.log_likelihood`, so one wrong answer above does not break
# the rest. They compute the same things as yours; `mixture.e_step` takes the Cholesky
# factors of the *precisions* (`mixture.compute_precision_cholesky(covariances)`) instead of
# the covariances, so that one factorisation serves a whole E-step. Once your functions pass
# their checks, you can swap them into the loop of section 4 (the comment there shows how).

# %% [markdown]
# ## 4. EM on 2-D toy data, watched iteration by iteration
#
# Four elongated, tilted blobs of different sizes, two of them overlapping. We know the true
# labels, but EM does not get them.

# %%
TRUE_WEIGHTS = np.array([0.30, 0.25, 0.25, 0.20])
TRUE_MEANS = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 4.5], [5.5, 5.0]])
# each blob: standard deviations along its two axes, and the angle of its long axis
AXIS_STDS = np.array([[1.6, 0.5], [1.2, 0.4], [1.3, 0.5], [0.9, 0.6]])
ANGLES = np.deg2rad([30.0, -45.0, 80.0, 10.0])


def rotation(angle):
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


TRUE_COVARIANCES = np.array(
    [rotation(a) @ np.diag(s**2) @ rotation(a).T for s, a in zip(AXIS_STDS, ANGLES)]
)
N_BLOBS = len(TRUE_WEIGHTS)

toy_labels = rng.choice(N_BLOBS, size=N_TOY, p=TRUE_WEIGHTS)
X_toy = np.empty((N_TOY, 2))
for k in range(N_BLOBS):
    here = toy_labels == k
    X_toy[here] = rng.multivariate_normal(TRUE_MEANS[k], TRUE_COVARIANCES[k], size=here.sum())
print(f"X_toy: {X_toy.shape}, points per blob: {np.bincount(toy_labels)}")
print(f"true mean log-likelihood per point: "
      f"{mixture.log_likelihood(X_toy, TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVARIANCES):.4f}")

# %% [markdown]
# A deliberately poor start: all four means close to the centre of the data, every
# covariance a small circle, equal weights. Then EM, written out: an E-step, an M-step, the
# log-likelihood after each iteration, and the stopping rule: stop when an iteration raises
# the mean log-likelihood by less than `TOY_TOL`. We run exact EM, `reg_covar = 0`, so the
# guarantee of section 3 applies to the letter: the `assert` checks it at every step.

# %%
K_TOY = N_BLOBS
REG_COVAR = 0.0  # exact EM: safe here, no component can collapse onto these data

weights = np.full(K_TOY, 1.0 / K_TOY)
means = X_toy.mean(axis=0) + 0.3 * rng.standard_normal((K_TOY, 2))
covariances = np.tile(0.5 * np.eye(2), (K_TOY, 1, 1))

snapshots = {0: (weights, means, covariances)}  # parameters after each iteration
toy_history = [mixture.log_likelihood(X_toy, weights, means, covariances)]
for iteration in range(1, TOY_MAX_ITER + 1):
    precisions_cholesky = mixture.compute_precision_cholesky(covariances)
    log_resp, _ = mixture.e_step(X_toy, weights, means, precisions_cholesky)
    weights, means, covariances = mixture.m_step(X_toy, np.exp(log_resp), REG_COVAR)
    # With your own functions instead:
    #   log_resp, _ = e_step(X_toy, weights, means, covariances)
    #   weights, means, covariances = m_step(X_toy, np.exp(log_resp), REG_COVAR)
    snapshots[iteration] = (weights, means, covariances)
    toy_history.append(mixture.log_likelihood(X_toy, weights, means, covariances))
    if toy_history[-1] - toy_history[-2] < TOY_TOL:
        break

toy_history = np.array(toy_history)
final_iteration = iteration
print(f"EM stopped after {final_iteration} iterations; mean log-likelihood per point "
      f"{toy_history[0]:.4f} -> {toy_history[-1]:.4f}")
smallest_step = np.diff(toy_history).min()
print(f"smallest change between iterations: {smallest_step:.3g}")
assert smallest_step >= -1e-9, "EM lowered the log-likelihood: a bug in e_step or m_step"

# %% [markdown]
# Each panel shows the components after that many iterations: ellipses at one and two
# standard deviations, more transparent for a smaller weight. Watch the four circles in the
# centre stretch, turn and drift apart, and count the blobs that have an ellipse of their own.

# %%
shown = [t for t in (0, 1, 2, 5, 10, 15, 20, 50) if t < final_iteration] + [final_iteration]
n_cols = 4
n_rows = int(np.ceil(len(shown) / n_cols))
fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.2 * n_cols, 3.1 * n_rows),
                         sharex=True, sharey=True, squeeze=False)
for ax, t in zip(axes.flat, shown):
    w, m, c = snapshots[t]
    ax.scatter(X_toy[:, 0], X_toy[:, 1], s=3, color="0.6", alpha=0.5)
    plotting.plot_covariance_ellipses(ax, m, c, weights=w, alpha=0.35)
    ax.scatter(m[:, 0], m[:, 1], marker="x", color="k", s=30)
    ax.set_title(f"iteration {t}" + (" (final)" if t == final_iteration else "")
                 + f"\nlog-lik. {toy_history[t]:.3f}", fontsize=10)
for ax in axes.flat[len(shown):]:
    ax.set_visible(False)
for ax in axes[-1]:
    ax.set_xlabel("$x_1$")
for ax in axes[:, 0]:
    ax.set_ylabel("$x_2$")
fig.suptitle("EM from a poor start: the components after each iteration")
fig.tight_layout()

# %% [markdown]
# The story of this run in numbers: after each iteration, how many true blobs are *found*
# (a fitted mean within `MATCH_RADIUS` of the blob's mean), the smallest weight, and the gain
# in mean log-likelihood over the previous iteration.

# %%
found = np.array([
    np.sum(np.linalg.norm(snapshots[t][1][:, None] - TRUE_MEANS[None], axis=2).min(axis=0)
           < MATCH_RADIUS)
    for t in range(final_iteration + 1)
])  # (iterations + 1,): true blobs with a fitted mean nearby
gains = np.diff(toy_history, prepend=np.nan)
print(f"{'iteration':>9s} {'blobs found':>12s} {'smallest weight':>16s} {'gain':>9s}")
for t in range(final_iteration + 1):
    if t <= 20 or t == final_iteration:
        print(f"{t:9d} {found[t]:12d} {snapshots[t][0].min():16.3f} {gains[t]:9.4f}")
first_two = int(np.argmax(found >= 2))  # first iteration with two blobs found
first_all = int(np.argmax(found == N_BLOBS))
stall = first_two + int(np.argmin(gains[first_two:first_all]))  # smallest gain in between
burst = stall + int(np.argmax(gains[stall:first_all + 1]))
print(f"\ntwo blobs found at iteration {first_two}, all {N_BLOBS} at iteration {first_all}")
print(f"in between, the gain falls to {gains[stall]:.4f} (iteration {stall}) and then rises "
      f"to {gains[burst]:.4f} (iteration {burst}); smallest weight at the stall: "
      f"{snapshots[stall][0].min():.3f}")
true_ll = mixture.log_likelihood(X_toy, TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVARIANCES)
print(f"final log-likelihood {toy_history[-1]:.4f}, of the true parameters {true_ll:.4f}")
assert found[-1] == N_BLOBS and first_two <= 10 and first_all - first_two >= 5
assert snapshots[stall][0].min() < 0.1  # one component owns little during the stall
assert gains[burst] > 5 * gains[stall]  # a stall, then a burst
assert toy_history[-1] > true_ll  # EM fits this sample better than the truth does

# %% [markdown]
# Two blobs are found within the first few iterations; the other two components sit between
# the remaining blobs, one of them owning little, and the gain per iteration falls: EM is
# stalled. Then they slide onto their blobs and the gain rises again (the iterations are in
# the last two printed lines), and the run ends in a flat tail.
#
# The curves below show the same run: left, all of it (the first E- and M-step fix most of
# the poor start); right, from iteration 1 on, where the stall and the burst are visible as a
# shallow stretch and a steeper one. The dashed line is the log-likelihood of the true
# parameters that generated the data; EM ends *above* it (printed above), because it fits this
# particular sample.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for ax, start in zip(axes, (0, 1)):
    plotting.plot_log_likelihood(
        toy_history[start:], ax=ax, first_iteration=start, label="EM",
        title="all iterations" if start == 0 else "from iteration 1 (zoomed in)",
        xlabel="EM iteration (0 = initial parameters)",
    )
    ax.axhline(true_ll, color="k", ls="--", lw=1, label="true parameters")
    ax.legend(loc="lower right")
fig.suptitle("EM on the toy data: the log-likelihood never decreases")
fig.tight_layout()

# %% [markdown]
# The package's `GaussianMixture` runs the same loop, with `tol` on the same per-point gain.
# Started from the same parameters, does it end where ours did?

# %%
gmm_toy = mixture.GaussianMixture(
    K_TOY, reg_covar=REG_COVAR, tol=TOY_TOL, max_iter=TOY_MAX_ITER,
    weights_init=snapshots[0][0], means_init=snapshots[0][1],
    precisions_init=np.linalg.inv(snapshots[0][2]),
).fit(X_toy)
print(f"our loop: {toy_history[-1]:.8f} after {final_iteration} iterations")
print(f"package : {gmm_toy.score(X_toy):.8f} after {gmm_toy.n_iter_} iterations")
assert abs(gmm_toy.score(X_toy) - toy_history[-1]) < 1e-6

# %% [markdown]
# It does: the two log-likelihoods agree to within $10^{-6}$ per point (the `assert`).

# %% [markdown]
# ## 5. Initialisation: k-means++
#
# EM climbs to the nearest local maximum, so the start matters. Four common starts, all
# options of `GaussianMixture(init_params=...)`:
#
# - `'random'`: random soft responsibilities, so every component starts near the overall
#   mean, as in our poor start above;
# - `'random_from_data'`: $K$ data points picked uniformly at random as seeds, each point
#   given to its nearest seed;
# - `'k-means++'`: the seeds are picked one by one, each new seed drawn with probability
#   proportional to its squared distance from the nearest seed already chosen (Arthur and
#   Vassilvitskii, 2007), which pushes seeds apart;
# - `'kmeans'`: Lloyd's k-means run from k-means++ seeds, and EM started from its clusters
#   (the default, here and in scikit-learn).
#
# **Exercise 4.** k-means++ seeding. With $D(x)$ the distance from $x$ to the nearest seed
# chosen so far:
#
# 1. draw the first seed uniformly among the rows of `X`: `rng.integers(n_samples)`;
# 2. draw each next seed with probability $D(x_i)^2 / \sum_j D(x_j)^2$:
#    `rng.choice(n_samples, p=...)`;
# 3. after each new seed, update $D(x)^2$ as the minimum of the old value and the squared
#    distance to the new seed (one pass over the data per seed, not one per pair of seeds).
#
# Use only `rng` for randomness (not `np.random`), so that a seeded run can be repeated. You
# may assume `X` has at least `n_components` distinct rows. The seeding is random, so the
# check cannot compare with one known answer: it tests what every correct k-means++ does
# (distinct rows of `X`, one seed per group of identical points, the same seeds from the same
# `rng`) and, over thousands of `rng`s, how often each pair of first and second seeds comes
# out. The package's `mixture.kmeans_plusplus` is the *greedy* variant of scikit-learn: it
# draws $2 + \lfloor\log K\rfloor$ candidates this way at each step and keeps the one that
# lowers $\sum_i D(x_i)^2$ most.

# %%
def kmeans_plusplus(X, n_components, rng):
    """k-means++ seeds: rows of X, each drawn with probability proportional to D(x)^2.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_components : int
        Number of seeds, at most the number of distinct rows of X.
    rng : numpy.random.Generator
        The only source of randomness.

    Returns
    -------
    centers : ndarray of shape (n_components, n_features)
        X[indices].
    indices : ndarray of shape (n_components,)
        Integer row numbers of the seeds, in the order they were drawn.
    """
    ### BEGIN SOLUTION
    n_samples = X.shape[0]
    indices = np.empty(n_components, dtype=np.int64)
    indices[0] = rng.integers(n_samples)
    d2 = np.sum((X - X[indices[0]]) ** 2, axis=1)  # D(x)^2, to the nearest seed so far: (n,)
    for c in range(1, n_components):
        indices[c] = rng.choice(n_samples, p=d2 / d2.sum())
        d2 = np.minimum(d2, np.sum((X - X[indices[c]]) ** 2, axis=1))
    return X[indices], indices
    ### END SOLUTION


checks.kmeans_plusplus(kmeans_plusplus)

# %% [markdown]
# On the four blobs above, does the start matter? Each initialisation, from `N_INIT_SEEDS`
# seeds, run to convergence; a run "ends at the best" when its final log-likelihood is within
# $10^{-3}$ of the best of all runs.

# %%
INIT_METHODS = ["random", "random_from_data", "k-means++", "kmeans"]


def fit_from_each_init(X, K):
    """{init_params: [GaussianMixture fitted from seeds 0, 1, ...]} for each method."""
    fits = {method: [] for method in INIT_METHODS}
    for method in INIT_METHODS:
        for seed in range(N_INIT_SEEDS):
            fits[method].append(mixture.GaussianMixture(
                K, init_params=method, random_state=seed, tol=INIT_TOL, max_iter=INIT_MAX_ITER,
            ).fit(X))
    return fits


def runs_at_best(fits, best):
    return {m: int(np.sum([g.lower_bound_ > best - 1e-3 for g in gs])) for m, gs in fits.items()}


toy_init_fits = fit_from_each_init(X_toy, K_TOY)
toy_best = max(g.lower_bound_ for gs in toy_init_fits.values() for g in gs)
toy_at_best = runs_at_best(toy_init_fits, toy_best)
for method in INIT_METHODS:
    worst = min(g.lower_bound_ for g in toy_init_fits[method])
    print(f"{method:17s}: {toy_at_best[method]:2d} of {N_INIT_SEEDS} runs end at the best "
          f"({toy_best:.4f}); the worst at {worst:.4f}")
if not config.is_quick():
    assert all(toy_at_best[m] == N_INIT_SEEDS for m in ("random", "k-means++", "kmeans"))
    assert N_INIT_SEEDS / 2 < toy_at_best["random_from_data"] < N_INIT_SEEDS

# %% [markdown]
# On these four blobs almost every start ends at the same optimum: only uniform seeds
# (`'random_from_data'`) miss it now and then, when two seeds fall in one blob (in quick mode,
# with fewer seeds, no run may miss). Nine blobs on a $3 \times 3$ grid, fitted with $K = 9$,
# are a harder test. First the seeds alone: how often do the nine seeds fall in nine
# different blobs, for uniform picks and for k-means++ (the package's)?

# %%
GRID_CENTERS = 4.0 * np.array([[i, j] for i in range(3) for j in range(3)], dtype=float)
K_GRID = len(GRID_CENTERS)
grid_labels = rng.integers(K_GRID, size=N_GRID)
X_grid = GRID_CENTERS[grid_labels] + rng.standard_normal((N_GRID, 2)) * [0.8, 0.5]

seed_rng = np.random.default_rng(1)
covers_all = {"uniform random": 0, "k-means++": 0}
for _ in range(N_SEED_DRAWS):
    uniform_idx = seed_rng.choice(N_GRID, size=K_GRID, replace=False)
    _, plusplus_idx = mixture.kmeans_plusplus(X_grid, K_GRID, seed_rng)
    covers_all["uniform random"] += len(set(grid_labels[uniform_idx])) == K_GRID
    covers_all["k-means++"] += len(set(grid_labels[plusplus_idx])) == K_GRID
for method, count in covers_all.items():
    print(f"{method:15s}: the {K_GRID} seeds fall in {K_GRID} different blobs in "
          f"{count / N_SEED_DRAWS:.0%} of {N_SEED_DRAWS} draws")
assert covers_all["k-means++"] > 2 * covers_all["uniform random"]

# %% [markdown]
# k-means++ hits every blob far more often than uniform picks (more than twice as often,
# asserted). One draw of each, on the data coloured by their true blob: uniform picks land
# where the data are, blind to each other, so look for blobs with two seeds and blobs with
# none (the titles count the blobs hit); k-means++ seeds spread out over the grid.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), sharex=True, sharey=True)
draw_rng = np.random.default_rng(3)
picks = {
    "uniform random": draw_rng.choice(N_GRID, size=K_GRID, replace=False),
    "k-means++": mixture.kmeans_plusplus(X_grid, K_GRID, draw_rng)[1],
}
for ax, (method, idx) in zip(axes, picks.items()):
    ax.scatter(X_grid[:, 0], X_grid[:, 1], s=3, c=grid_labels, cmap="tab10", vmin=0, vmax=9,
               alpha=0.5)
    ax.scatter(X_grid[idx, 0], X_grid[idx, 1], marker="*", s=250, color="k", edgecolor="w")
    ax.set_title(f"{method} seeds: {len(set(grid_labels[idx]))} of {K_GRID} blobs hit")
    ax.set_xlabel("$x_1$")
axes[0].set_ylabel("$x_2$")
fig.suptitle(f"{K_GRID} seeds (stars) chosen uniformly at random versus by k-means++")
fig.tight_layout()

# %% [markdown]
# Then the whole fit, from each initialisation and several seeds, each run to convergence:

# %%
init_fits = {}
for method in tqdm(INIT_METHODS, desc="initialisations"):
    init_fits[method] = [
        mixture.GaussianMixture(K_GRID, init_params=method, random_state=seed, tol=INIT_TOL,
                                max_iter=INIT_MAX_ITER).fit(X_grid)
        for seed in range(N_INIT_SEEDS)
    ]
# lower_bound_ is the log-likelihood of the parameters before the last M-step (as in
# scikit-learn); at convergence it differs from the final one by less than tol.
init_ll = {m: np.array([g.lower_bound_ for g in fits]) for m, fits in init_fits.items()}
init_iters = {m: np.array([g.n_iter_ for g in fits]) for m, fits in init_fits.items()}

best_ll = max(ll.max() for ll in init_ll.values())
at_best = runs_at_best(init_fits, best_ll)
print(f"best mean log-likelihood over all runs: {best_ll:.4f}\n")
print(f"{'init_params':17s} {'best':>8s} {'worst':>8s} {'mean':>8s} {'runs at the best (1e-3)':>24s} "
      f"{'median EM iterations':>21s}")
for method in INIT_METHODS:
    ll = init_ll[method]
    print(f"{method:17s} {ll.max():8.4f} {ll.min():8.4f} {ll.mean():8.4f} "
          f"{at_best[method]:>13d} of {len(ll):<8d} {np.median(init_iters[method]):21.0f}")
median_iters = {m: np.median(it) for m, it in init_iters.items()}
mean_ll = {m: ll.mean() for m, ll in init_ll.items()}
if not config.is_quick():
    assert max(median_iters, key=median_iters.get) == "random"
    assert min(mean_ll, key=mean_ll.get) == "random"
    assert at_best["random_from_data"] < at_best["k-means++"]
    for method in ("k-means++", "kmeans"):
        assert at_best[method] > N_INIT_SEEDS / 2
        assert median_iters[method] < min(median_iters["random"], median_iters["random_from_data"])

# %% [markdown]
# Left: the final log-likelihood of every run (one dot per seed); right: how many EM
# iterations each run took. In the table above, the `'random'` start has the lowest mean and
# the most iterations: with random soft responsibilities all components see nearly the same
# data and start nearly identical, close to the symmetric fixed point where every component
# is the single Gaussian fit of all the data, and EM needs many iterations to break the
# symmetry before ending in a local maximum. Uniform seeds (`'random_from_data'`) often leave
# some blobs without a seed (the seed count above) and end at the best less often than
# k-means++; k-means++ and k-means end at the best in most runs, in fewer iterations than
# either random start (all asserted in full mode). In practice: use a k-means start and
# several restarts (`n_init`), keeping the best.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
jitter = np.random.default_rng(0).uniform(-0.15, 0.15, size=N_INIT_SEEDS)
for j, method in enumerate(INIT_METHODS):
    axes[0].scatter(j + jitter, init_ll[method], s=18, alpha=0.7)
    axes[1].scatter(j + jitter, init_iters[method], s=18, alpha=0.7)
for ax in axes:
    ax.set_xticks(range(len(INIT_METHODS)), INIT_METHODS)
    ax.set_xlabel("init_params")
axes[0].axhline(best_ll, color="k", ls=":", lw=1)
axes[0].set_ylabel("final mean log-likelihood per point")
axes[0].set_title("Where EM ends (dotted: best of all runs)")
axes[1].set_ylabel("EM iterations")
axes[1].set_yscale("log")
axes[1].set_title("How long it takes")
fig.suptitle(f"{N_INIT_SEEDS} seeds per initialisation, nine blobs, K = {K_GRID}, "
             f"tol = {INIT_TOL:g}")
fig.tight_layout()

# %% [markdown]
# What these end points look like: the best run, and the worst runs from uniform seeds and
# from `'random'`. In the local maxima, look for a blob covered by two ellipses next to an
# ellipse stretched over two blobs (EM cannot move a component across the empty space between
# blobs, since every small move lowers the likelihood), and, after a `'random'` start, for
# components that split the data into stripes.

# %%
worst_uniform = init_fits["random_from_data"][int(np.argmin(init_ll["random_from_data"]))]
best_fit = max((g for fits in init_fits.values() for g in fits), key=lambda g: g.lower_bound_)
worst_random = init_fits["random"][int(np.argmin(init_ll["random"]))]
fig, axes = plt.subplots(1, 3, figsize=(13, 4.3), sharex=True, sharey=True)
for ax, (label, gmm) in zip(axes, [("best run", best_fit),
                                   ("worst 'random_from_data' run", worst_uniform),
                                   ("worst 'random' run", worst_random)]):
    ax.scatter(X_grid[:, 0], X_grid[:, 1], s=3, color="0.6", alpha=0.5)
    plotting.plot_covariance_ellipses(ax, gmm.means_, gmm.covariances_, weights=gmm.weights_,
                                      alpha=0.3)
    ax.set_title(f"{label}\nlog-lik. {gmm.lower_bound_:.3f}, {gmm.n_iter_} iterations")
    ax.set_xlabel("$x_1$")
axes[0].set_ylabel("$x_2$")
fig.suptitle("The best fit and two local maxima of the likelihood")
fig.tight_layout()

# %% [markdown]
# ### k-means is EM's limit as a shared variance shrinks
#
# Fix every weight at $1/K$ and every covariance at $\sigma^2 I$, and let EM update only the
# means. The responsibilities become
#
# $$
# \gamma_{ik} = \frac{\exp\bigl(-\lVert x_i - \mu_k\rVert^2 / 2\sigma^2\bigr)}
#                    {\sum_j \exp\bigl(-\lVert x_i - \mu_j\rVert^2 / 2\sigma^2\bigr)} ,
# $$
#
# a softmax of the negative squared distances with temperature $2\sigma^2$. As
# $\sigma \to 0$ the nearest mean takes all the weight, $\gamma_{ik} \to 1$ for the nearest
# $k$ and 0 for the others: the E-step becomes k-means' assignment step, and the M-step
# $\mu_k = \sum_i\gamma_{ik}x_i / N_k$ becomes its update step (the mean of the points
# assigned). EM's soft clustering turns into Lloyd's hard one (Bishop, PRML, section 9.3.2).
# Below, from the same k-means++ seeds on the grid data, EM with a fixed $\sigma$ for each
# value in `SIGMAS`, and Lloyd's k-means; for each $\sigma$, the mean entropy of a point's
# responsibilities ($\log K$ when every component owns it equally, 0 for a hard assignment)
# and the largest distance between EM's means and k-means' means.

# %%
def em_shared_sigma(X, means, sigma, max_iter=1_000, tol=1e-12):
    """EM for the means only, weights 1/K and covariances sigma^2 I fixed: (means, resp)."""
    K, d = means.shape
    weights = np.full(K, 1.0 / K)
    precisions_cholesky = np.tile(np.eye(d) / sigma, (K, 1, 1))  # (sigma^2 I)^-1 = L L^T
    for _ in range(max_iter):
        resp = np.exp(mixture.e_step(X, weights, means, precisions_cholesky)[0])  # (n, K)
        new_means = resp.T @ X / resp.sum(axis=0)[:, None]
        moved = np.max(np.abs(new_means - means))
        means = new_means
        if moved < tol:
            break
    return means, np.exp(mixture.e_step(X, weights, means, precisions_cholesky)[0])


def lloyd(X, centers, max_iter=1_000):
    """Lloyd's k-means from the given centres, until no assignment changes."""
    for _ in range(max_iter):
        labels = np.argmin(np.sum((X[:, None] - centers[None]) ** 2, axis=2), axis=1)
        new_centers = np.stack([X[labels == k].mean(axis=0) for k in range(len(centers))])
        if np.array_equal(new_centers, centers):
            break
        centers = new_centers
    return centers


seeds, _ = mixture.kmeans_plusplus(X_grid, K_GRID, np.random.default_rng(0))
kmeans_means = lloyd(X_grid, seeds)
entropy, mean_gap = [], []
for sigma in SIGMAS:
    em_means, resp = em_shared_sigma(X_grid, seeds, sigma)
    entropy.append(max(0.0, -np.mean(np.sum(resp * np.log(np.where(resp > 0, resp, 1.0)), axis=1))))
    mean_gap.append(np.max(np.abs(em_means - kmeans_means)))
entropy, mean_gap = np.array(entropy), np.array(mean_gap)
print(f"{'sigma':>7s} {'mean entropy of resp.':>22s} {'max |EM mean - k-means mean|':>29s}")
for sigma, h, gap in zip(SIGMAS, entropy, mean_gap):
    print(f"{sigma:7.3f} {h:22.2e} {gap:29.2e}")
print(f"log K = {np.log(K_GRID):.3f}")
assert entropy[0] > 0.9 * np.log(K_GRID)  # large sigma: every component owns every point
assert np.all(np.diff(entropy) <= 1e-12)  # assignments harden as sigma shrinks
assert entropy[-1] < 1e-6 and mean_gap[-1] < 1e-8  # small sigma: k-means, to rounding

# %% [markdown]
# At the largest $\sigma$ every component owns every point almost equally (the entropy is
# close to $\log K$, printed) and the means are far from k-means'; as $\sigma$ shrinks the
# entropy falls at every step, and at the smallest values EM's means *are* k-means' means, to
# rounding error. In the figure, look for the $\sigma$ at which each curve drops, and compare
# it with the spread of the blobs and the distance between them (the grid spacing).

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].semilogx(SIGMAS, entropy, "o-")
axes[0].axhline(np.log(K_GRID), color="k", ls=":", lw=1, label="log K (all equal)")
axes[0].set_ylabel("mean entropy of a point's responsibilities [nats]")
axes[0].set_title(r"Responsibilities harden as $\sigma$ shrinks")
axes[0].legend()
axes[1].loglog(SIGMAS, np.maximum(mean_gap, 1e-16), "o-", color="C1")
axes[1].set_ylabel("max |EM mean - k-means mean|")
axes[1].set_title("EM's means become k-means' means")
for ax in axes:
    ax.set_xlabel(r"shared standard deviation $\sigma$ (fixed)")
    ax.invert_xaxis()
fig.suptitle(rf"EM with covariances $\sigma^2 I$ and weights $1/K$ on the grid data, K = {K_GRID}")
fig.tight_layout()

# %% [markdown]
# ## 6. Singular covariances and `reg_covar`
#
# The log-likelihood of a Gaussian mixture has no upper bound. Put a component's mean on a
# data point $x_i$ and shrink its covariance to $\sigma^2 I$: that point's density contains
# the term $\pi_k (2\pi\sigma^2)^{-d/2}$, which goes to infinity as $\sigma \to 0$, while
# the other components keep every other point's density finite. The likelihood "maximum" is
# a spike on one point: a degenerate solution, not a model. (Bishop, *Pattern Recognition
# and Machine Learning*, section 9.2.1.)
#
# EM finds such spikes when a component owns points with no spread in some direction:
# duplicated records, a pixel that is always 0, fewer points than dimensions. Below,
# `N_DUPLICATES` copies of one record join the toy data. k-means gives them a cluster of their
# own, whose covariance is then exactly zero.

# %%
DUPLICATE = np.array([9.0, -3.0])
X_dup = np.vstack([X_toy, np.tile(DUPLICATE, (N_DUPLICATES, 1))])

try:
    mixture.GaussianMixture(K_TOY + 1, reg_covar=0.0, random_state=0).fit(X_dup)
except ValueError as error:
    print("reg_covar=0 ->", type(error).__name__ + ":", error)
else:
    raise AssertionError("expected the fit with reg_covar=0 to fail")

gmm_dup = mixture.GaussianMixture(K_TOY + 1, reg_covar=1e-6, random_state=0).fit(X_dup)
spike = int(np.argmin(np.linalg.norm(gmm_dup.means_ - DUPLICATE, axis=1)))  # nearest mean
print(f"\nreg_covar=1e-6 -> fitted. The component on the duplicates: weight "
      f"{gmm_dup.weights_[spike]:.4f}, mean {gmm_dup.means_[spike].round(4)}, variances "
      f"{np.diag(gmm_dup.covariances_[spike])}")
others = [k for k in range(K_TOY + 1) if k != spike]
print(f"smallest variance of the other components: "
      f"{min(np.linalg.eigvalsh(gmm_dup.covariances_[k]).min() for k in others):.3f}")
assert np.all(np.isfinite(gmm_dup.score_samples(X_dup)))
assert np.allclose(np.diag(gmm_dup.covariances_[spike]), 1e-6)

# %% [markdown]
# With `reg_covar = 0` the M-step produces a zero covariance and the Cholesky factorisation
# fails, with a message that says what to do. With `reg_covar > 0` every variance is at
# least `reg_covar`, and the component on the duplicates has exactly that variance (printed),
# so the spike has a finite height and EM carries on. How high? Each of the $m$ duplicates
# has log-density about $\log\pi_k - \frac d2 \log(2\pi\,\varepsilon)$, so among the
# $n$ points the mean log-likelihood grows by
#
# $$
# \frac{m}{n}\cdot\frac d2\cdot\log 10 \quad\text{nats per factor of 10 less } \varepsilon
# $$
#
# without limit as `reg_covar` $= \varepsilon$ shrinks, while on the toy data without
# duplicates it barely moves. The cell fits both for each value in `REG_COVAR_VALUES` and
# compares the measured slope with this formula.

# %%
ll_with_dup, ll_without = [], []
for reg in tqdm(REG_COVAR_VALUES, desc="reg_covar"):
    ll_with_dup.append(mixture.GaussianMixture(K_TOY + 1, reg_covar=reg, random_state=0)
                       .fit(X_dup).score(X_dup))
    ll_without.append(mixture.GaussianMixture(K_TOY, reg_covar=reg, random_state=0)
                      .fit(X_toy).score(X_toy))
ll_with_dup, ll_without = np.array(ll_with_dup), np.array(ll_without)
predicted_slope = N_DUPLICATES / len(X_dup) * X_dup.shape[1] / 2 * np.log(10)
measured_slope = np.diff(ll_with_dup)  # per factor of 10 less reg_covar
print(f"predicted gain per factor of 10: (m/n)(d/2) log 10 = ({N_DUPLICATES}/{len(X_dup)})"
      f"({X_dup.shape[1]}/2) log 10 = {predicted_slope:.4f} nats per point")
print(f"measured gains, reg_covar from {REG_COVAR_VALUES[0]:g} to {REG_COVAR_VALUES[-1]:g}: "
      f"{np.round(measured_slope, 4)}")
print(f"without duplicates, from reg_covar = {REG_COVAR_VALUES[2]:g} on, the mean "
      f"log-likelihood spans {np.ptp(ll_without[2:]):.2e} nats")
assert np.allclose(measured_slope[2:], predicted_slope, atol=1e-3)  # reg_covar <= 1e-3
assert np.ptp(ll_without[2:]) < 1e-3

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.semilogx(REG_COVAR_VALUES, ll_with_dup, "o-",
            label=f"toy + {N_DUPLICATES} duplicates, K = {K_TOY + 1}")
ax.semilogx(REG_COVAR_VALUES, ll_without, "s-", label=f"toy only, K = {K_TOY}")
ax.invert_xaxis()
ax.set_xlabel("reg_covar (smaller to the right)")
ax.set_ylabel("mean log-likelihood per point")
ax.set_title("A component on duplicated points: the likelihood has no maximum")
ax.legend()
fig.tight_layout()

# %% [markdown]
# The curve with duplicates is a straight line on this log axis once `reg_covar` is small
# (from $10^{-3}$ on, the measured gains match the formula to $10^{-3}$ nats, asserted), and
# it goes on rising forever; without duplicates the curve is flat there. So `reg_covar` is
# part of the model, not a numerical detail: it is a floor on every variance, and it should
# be set on the scale of the data (here $10^{-6}$ against the other components' variances,
# the smallest printed two cells up; for pixels in $[0, 1]$, section 8 uses $10^{-2}$).

# %% [markdown]
# ## 7. Choosing the number of components
#
# With one more component a mixture can reproduce the smaller one (give the new component
# zero weight), so the *maximum* of the training log-likelihood never goes down as $K$ grows.
# EM only finds local maxima, so a particular fit with more components can still score lower;
# either way the training log-likelihood cannot choose $K$. Two fixes:
#
# - **BIC** (Bayesian information criterion, Schwarz 1978) penalises the parameter count
#   $p$: $\mathrm{BIC} = -2\,\ell(\hat\theta) + p \log n$, lower is better. A full-covariance
#   mixture in $d$ dimensions has $p = (K-1) + Kd + K\,d(d+1)/2$.
# - **Held-out log-likelihood**: fit on a training split, score on data EM never saw; extra
#   components that only fit noise stop helping (or start hurting).
#
# Two thirds of the toy points train, one third validates:

# %%
order = rng.permutation(N_TOY)
X_fit, X_val = X_toy[order[: 2 * N_TOY // 3]], X_toy[order[2 * N_TOY // 3 :]]

bic, heldout = [], []
for K in tqdm(K_RANGE, desc="K"):
    gmm = mixture.GaussianMixture(K, n_init=N_INIT_BIC, random_state=K, tol=BIC_TOL,
                                  max_iter=BIC_MAX_ITER).fit(X_fit)
    bic.append(gmm.bic(X_fit))
    heldout.append(gmm.score(X_val))
bic, heldout = np.array(bic), np.array(heldout)
k_bic = K_RANGE[int(np.argmin(bic))]
k_heldout = K_RANGE[int(np.argmax(heldout))]
true_index = K_RANGE.index(N_BLOBS)

print(f"{'K':>3s} {'BIC (train)':>12s} {'held-out log-lik.':>18s}")
for K, b, h in zip(K_RANGE, bic, heldout):
    print(f"{K:3d} {b:12.1f} {h:18.4f}")
print(f"\nK chosen by BIC: {k_bic};  K with the best held-out log-likelihood: {k_heldout};  "
      f"true number of blobs: {N_BLOBS}")
rise = heldout[true_index] - heldout[true_index - 1]
beyond = heldout[true_index + 1:] - heldout[true_index]
print(f"held-out gain from K = {N_BLOBS - 1} to {N_BLOBS}: {rise:.4f}; beyond K = {N_BLOBS}, "
      f"changes between {beyond.min():+.4f} and {beyond.max():+.4f} per point")
if not config.is_quick():  # quick mode uses a single EM start per K
    assert k_bic == N_BLOBS, f"BIC chose K={k_bic}, expected {N_BLOBS}"
    assert rise > 10 * np.abs(beyond).max()

# %% [markdown]
# BIC has its minimum at the true $K$ (asserted in full mode). The held-out log-likelihood
# rises steeply up to $K = 4$ and is then flat: beyond it, the changes printed above are a
# small fraction of the last rise (less than a tenth, asserted), so extra components neither
# help nor hurt much, and its exact maximum can land above 4 by chance. A common rule is
# therefore the smallest $K$ whose held-out score is within noise of the best. On images
# (section 8) neither criterion stops early: section 8 measures how much 15 components gain
# over 10 on test images, against BIC's penalty per extra component. Images are not a mixture
# of a few Gaussians, so there is no "true $K$" to find: $K$ becomes a modelling choice.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].plot(K_RANGE, bic, "o-")
axes[0].axvline(k_bic, color="k", ls=":", lw=1)
axes[0].set_title(f"BIC on the training split (minimum at K = {k_bic})")
axes[0].set_ylabel("BIC (lower is better)")
axes[1].plot(K_RANGE, heldout, "o-", color="C1")
axes[1].axvline(N_BLOBS, color="k", ls=":", lw=1)
axes[1].set_title(f"Held-out log-likelihood (dotted: true K = {N_BLOBS})")
axes[1].set_ylabel("mean log-likelihood per validation point")
for ax in axes:
    ax.set_xlabel("number of components K")
    ax.set_xticks(K_RANGE)
fig.suptitle("Choosing K on the toy data")
fig.tight_layout()

# %% [markdown]
# ## 8. Gaussian mixtures on pixels: MNIST and Fashion-MNIST
#
# Now the same algorithm on images, each flattened to a vector of $d = 28 \times 28 = 784$
# pixel values in $[0, 1]$. Fitting a mixture with $K$ components is clustering the images
# into $K$ groups, without labels; each component's mean is a "typical" image of its group.
# We fit on `N_PIXEL_TRAIN` training images (a random subset) and measure on
# `N_PIXEL_TEST` test images. The cell loads them and prints what decides the covariance
# type: the size of a full covariance, how many images a component gets, and how many pixels
# never vary.

# %%
pixel_data = {}
for name in DATASETS:
    images, labels = data.load_dataset(name, "train")
    test_images, test_labels = data.load_dataset(name, "test")
    train_idx = np.sort(rng.choice(len(images), size=N_PIXEL_TRAIN, replace=False))
    test_idx = np.sort(rng.choice(len(test_images), size=N_PIXEL_TEST, replace=False))
    pixel_data[name] = {
        "X": images[train_idx].reshape(N_PIXEL_TRAIN, -1).astype(np.float64),
        "y": labels[train_idx],
        "X_test": test_images[test_idx].reshape(N_PIXEL_TEST, -1).astype(np.float64),
        "y_test": test_labels[test_idx],
    }
n_pixels = pixel_data[DATASETS[0]]["X"].shape[1]
full_cov_params = n_pixels * (n_pixels + 1) // 2
print(f"a full covariance on {n_pixels} pixels: {full_cov_params:,} free parameters per "
      f"component, {max(K_VALUES) * full_cov_params:,} for K = {max(K_VALUES)}")
print(f"training images per component, on average: "
      + ", ".join(f"{N_PIXEL_TRAIN / K:.0f} (K = {K})" for K in K_VALUES))
zero_variance, below_floor = {}, {}
for name in DATASETS:
    X = pixel_data[name]["X"]
    zero_variance[name] = int(np.sum(X.var(axis=0) == 0))
    below_floor[name] = int(np.sum(X.var(axis=0) < PIXEL_REG_COVAR))
    print(f"{name:14s} train {X.shape}, test {pixel_data[name]['X_test'].shape}; pixels with "
          f"zero variance in the training subset: {zero_variance[name]} of {n_pixels}; with a "
          f"variance below reg_covar = {PIXEL_REG_COVAR:g}: {below_floor[name]}")
constant_pixel = -0.5 * np.log(2 * np.pi * PIXEL_REG_COVAR)
print(f"log-density of a pixel that is always 0, variance {PIXEL_REG_COVAR:g}: "
      f"{constant_pixel:+.2f} nats")
if not config.is_quick():
    assert zero_variance["mnist"] >= 24  # dozens of border pixels are always 0
    assert zero_variance["fashion-mnist"] < zero_variance["mnist"]

# %% [markdown]
# **Why diagonal covariances.** A full $784 \times 784$ covariance has the number of free
# parameters printed above (about $3 \times 10^5$ per component, millions for $K = 15$), to be
# estimated from a component's share of the images (the averages printed above), and each
# E-step would need one $784 \times 784$ Cholesky factor per component. Worse, dozens of MNIST
# border pixels are 0 in every training image (counted above), so their variance is 0 and a
# full covariance is singular: section 6's problem, in dozens of directions at once; and a
# component owning fewer than 784 images has a singular covariance whatever the pixels do.
# A *diagonal* covariance treats pixels as independent given the component: 784 variances per
# component, cheap and always invertible once `reg_covar` sets a floor. We use
# `covariance_type="diag"` with `reg_covar = 1e-2` (each pixel's standard deviation at least
# 0.1). The alternative is to project the images onto their first few dozen principal
# components (an `np.linalg.svd` of the centred data) and fit full covariances there;
# chapter 5 does something in that spirit, with a learned projection.
#
# The numbers: these are *densities* on $\mathbb R^{784}$, and a pixel that never varies
# contributes the constant printed last above, positive, to every image's log-density. So the
# log-likelihoods below are large and positive, depend on `reg_covar`, and cannot be compared
# with the discrete log-likelihoods of binarised images in chapter 4.
#
# Initialisation is `'k-means++'`: one pass over the data per seed, where a full k-means run
# would add many passes over the 784-dimensional images before EM starts.

# %%
pixel_models, fit_seconds = {}, {}
jobs = [(name, K) for name in DATASETS for K in K_VALUES]
for name, K in tqdm(jobs, desc="pixel mixtures"):
    gmm = mixture.GaussianMixture(
        K, covariance_type="diag", reg_covar=PIXEL_REG_COVAR, tol=PIXEL_TOL,
        max_iter=PIXEL_MAX_ITER, init_params="k-means++", random_state=0,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        # quick mode stops EM early on purpose: record convergence in the table instead
        warnings.simplefilter("ignore", mixture.ConvergenceWarning)
        gmm.fit(pixel_data[name]["X"])
    fit_seconds[name, K] = time.perf_counter() - start
    pixel_models[name, K] = gmm

# %% [markdown]
# ### How the fits went
#
# Train log-likelihood (`lower_bound_`, as in scikit-learn: the mean log-likelihood of the
# parameters *before* the last M-step, within `tol` of the final one when EM has converged),
# test log-likelihood, iterations, fit time, and the normalised mutual information (NMI)
# between the most responsible component of each test image and its true class. NMI is 0 when
# the components tell nothing about the classes and 1 when components and classes are the
# same partition, whatever the numbering (scikit-learn's `normalized_mutual_info_score`, with
# the arithmetic-mean normalisation),
# $\mathrm{NMI} = I(Y; C) / \tfrac12\bigl(H(Y) + H(C)\bigr)$. Below the table: how much the
# test log-likelihood gains from 10 to 15 components, against BIC's penalty for the extra
# parameters.

# %%
nmi, train_ll, test_ll, n_iter = {}, {}, {}, {}
for (name, K), gmm in pixel_models.items():
    d = pixel_data[name]
    components = gmm.predict(d["X_test"])
    nmi[name, K] = normalized_mutual_info_score(d["y_test"], components, average_method="arithmetic")
    train_ll[name, K] = gmm.lower_bound_
    test_ll[name, K] = gmm.score(d["X_test"])
    n_iter[name, K] = gmm.n_iter_

print(f"{'dataset':14s} {'K':>3s} {'train LL':>9s} {'test LL':>9s} {'iterations':>11s} "
      f"{'converged':>10s} {'fit [s]':>8s} {'NMI':>6s}")
for name, K in jobs:
    gmm = pixel_models[name, K]
    print(f"{name:14s} {K:3d} {train_ll[name, K]:9.2f} {test_ll[name, K]:9.2f} "
          f"{n_iter[name, K]:11d} {str(gmm.converged_):>10s} {fit_seconds[name, K]:8.1f} "
          f"{nmi[name, K]:6.3f}")

params_per_component = 2 * n_pixels + 1  # a mean and a variance per pixel, and a weight
bic_penalty = (max(K_VALUES) - 10) * params_per_component * np.log(N_PIXEL_TRAIN) / (2 * N_PIXEL_TRAIN)
print(f"\nBIC's penalty for going from K = 10 to {max(K_VALUES)} ({params_per_component} "
      f"parameters per component), per training image, in log-likelihood units: "
      f"{bic_penalty:.2f} nats")
for name in DATASETS:
    gain = test_ll[name, max(K_VALUES)] - test_ll[name, 10]
    print(f"{name:14s}: test log-likelihood gain from K = 10 to {max(K_VALUES)}: "
          f"{gain:.1f} nats per image")
if not config.is_quick():
    for name in DATASETS:
        assert all(test_ll[name, a] < test_ll[name, b] for a, b in zip(K_VALUES, K_VALUES[1:]))
        assert test_ll[name, max(K_VALUES)] - test_ll[name, 10] > 10 * bic_penalty
    assert all(test_ll["fashion-mnist", K] < test_ll["mnist", K] for K in K_VALUES)

# %% [markdown]
# More components reach a higher test log-likelihood, and the gain from 10 to 15 components
# is many times BIC's penalty (more than ten times, asserted in full mode): on images BIC
# would not stop at 10. Fashion-MNIST's values are lower than MNIST's at every $K$: fewer of
# its pixels are constant (the counts printed before the fits), and each varying pixel pays
# for its variance. The EM curves below: look for the jump in the first few iterations from
# the k-means++ start, then the flattening.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for ax, name in zip(axes, DATASETS):
    for K in K_VALUES:
        plotting.plot_log_likelihood(
            pixel_models[name, K].log_likelihood_history_, ax=ax, label=f"K = {K}",
            title=f"{name}: EM on {N_PIXEL_TRAIN} images",
            ylabel="mean log-likelihood per image (train)",
        )
fig.suptitle("EM log-likelihood curves of the diagonal-covariance pixel mixtures")
fig.tight_layout()

# %% [markdown]
# The curves look monotone, but are they? Not necessarily, and that is not a bug: with
# `reg_covar` $= \varepsilon > 0$ the M-step returns $\Sigma_k + \varepsilon I$, which is
# *not* the maximiser of $Q$, so the guarantee of section 3 no longer holds exactly. On the
# toy data ($\varepsilon = 0$) it held to the letter; here $\varepsilon$ is larger than many
# pixels' variances (the counts printed before the fits), and EM with this modified update
# climbs no fixed objective exactly. The cell counts the steps that go down:

# %%
for name, K in jobs:
    history = pixel_models[name, K].log_likelihood_history_
    steps = np.diff(history)
    largest_drop = max(0.0, -steps.min())
    print(f"{name:14s} K={K:2d}: {np.sum(steps < 0):2d} of {len(steps):2d} steps go down, "
          f"the largest by {largest_drop:.3f} nats per image; the whole climb: "
          f"{history[-1] - history[0]:.1f}")
    assert largest_drop < 0.01 * (history[-1] - history[0])

# %% [markdown]
# Where a step does go down (the counts above), it is tiny next to the whole climb of the
# curve (less than 1% of it, asserted): the update with `reg_covar` is close to EM, but it is
# not EM.


# %% [markdown]
# ### What the components are
#
# For each component we look at which classes its test images come from. Components are
# sorted by their majority class so that similar ones sit side by side. The cell prints the
# majority class of each component, and for the 15-component models the classes that are a
# majority in several components and those that are a majority nowhere.

# %%
def component_classes(name, K):
    """(K, n_classes) table of test images per (component, true class)."""
    d, gmm = pixel_data[name], pixel_models[name, K]
    n_classes = len(data.CLASS_NAMES[name])
    components = gmm.predict(d["X_test"])
    return np.bincount(components * n_classes + d["y_test"],
                       minlength=K * n_classes).reshape(K, n_classes)


def sorted_components(name, K):
    """Component indices sorted by majority class, then by weight (heaviest first)."""
    table = component_classes(name, K)
    weights = pixel_models[name, K].weights_
    return sorted(range(K), key=lambda k: (table[k].argmax(), -weights[k]))


for name in DATASETS:
    print(name)
    class_names = data.CLASS_NAMES[name]
    for K in K_VALUES:
        table = component_classes(name, K)
        majority = [class_names[table[k].argmax()] for k in sorted_components(name, K)]
        covered = len(set(majority))
        print(f"  K={K:2d}: majority class of each component, left to right: "
              f"{', '.join(majority)}  ({covered} of {len(class_names)} classes are a "
              f"majority somewhere)")
    counts = {c: majority.count(c) for c in class_names}
    print(f"  K={K:2d}: several components: {[c for c in class_names if counts[c] > 1]}; "
          f"a majority nowhere: {[c for c in class_names if counts[c] == 0]}")

# %% [markdown]
# The means, one row per model (K = 5, 10, 15 from top to bottom), sorted as above. On
# MNIST the components are blurred prototypes of digits. Compare the figure with the lists
# printed above: a digit that is written in several ways (a round or a narrow 0, a 2 with or
# without a loop) can get several components (the first list), and a class that is a majority
# nowhere (the second list, when it is not empty) shares blurry components with classes of
# similar ink. On Fashion-MNIST the components follow
# *silhouettes* and brightness: look for trousers, bags and footwear, and for the tops
# (T-shirts, pullovers, coats and shirts) sharing components that differ mainly in sleeves
# and shade.

# %%
def padded_rows(rows, width, size=28):
    """Stack rows of images, padding each to `width` images with NaN (drawn as background)."""
    out = []
    for row in rows:
        pad = np.full((width - len(row), size, size), np.nan)
        out.append(np.concatenate([row, pad]))
    return np.concatenate(out)


fig, axes = plt.subplots(2, 1, figsize=(12, 6.4))
for ax, name in zip(axes, DATASETS):
    rows = [pixel_models[name, K].means_[sorted_components(name, K)].reshape(K, 28, 28)
            for K in K_VALUES]
    plotting.image_grid(
        padded_rows(rows, max(K_VALUES)), n_cols=max(K_VALUES), ax=ax,
        row_labels=[f"K={K}" for K in K_VALUES],
        title=f"{name}: component means, sorted by majority class",
        xlabel="components, left to right", ylabel="model",
    )
fig.tight_layout()

# %% [markdown]
# How the components split the classes, for the 15-component models: each row is one
# component, each column a class, and the shade is the fraction of that component's test
# images in that class. A dark single cell means a pure component; several mid-grey cells in
# a row mean the component mixes classes that look alike in pixel space.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
K = max(K_VALUES)
for ax, name in zip(axes, DATASETS):
    table = component_classes(name, K)[sorted_components(name, K)]
    share = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(share, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(10), data.CLASS_NAMES[name], rotation=60, ha="right")
    ax.set_yticks(range(K))
    ax.set_xlabel("true class")
    ax.set_ylabel("component (sorted by majority class)")
    ax.set_title(f"{name}, K = {K}: NMI {nmi[name, K]:.3f}")
fig.suptitle("Which classes each component captures")
colorbar = fig.colorbar(image, ax=axes, label="fraction of the component's test images")

# %% [markdown]
# ### Samples from each component
#
# A sample from component $k$ is $\mu_k + \sigma_k \odot \epsilon$ with
# $\epsilon \sim \mathcal N(0, I)$: every pixel gets its own independent noise. Each row
# below is one component of the 10-component models: its mean first, then `N_SAMPLES_SHOWN`
# samples (values outside $[0, 1]$ are shown clipped to black or white).

# %%
def samples_from_component(gmm, k, n, sample_rng):
    """n draws from component k of a diagonal-covariance mixture: (n, n_features)."""
    noise = sample_rng.standard_normal((n, gmm.means_.shape[1]))
    return gmm.means_[k] + noise * np.sqrt(gmm.covariances_[k])


K = 10
sample_rng = np.random.default_rng(0)
fig, axes = plt.subplots(1, 2, figsize=(12, 6.8))
for ax, name in zip(axes, DATASETS):
    gmm = pixel_models[name, K]
    table = component_classes(name, K)
    order = sorted_components(name, K)
    rows = [np.vstack([gmm.means_[k][None], samples_from_component(gmm, k, N_SAMPLES_SHOWN,
                                                                    sample_rng)])
            for k in order]
    plotting.image_grid(
        np.concatenate(rows).reshape(-1, 28, 28), n_cols=N_SAMPLES_SHOWN + 1, ax=ax,
        row_labels=[f"{k}: {data.CLASS_NAMES[name][table[k].argmax()]}" for k in order],
        title=f"{name}, K = {K}: mean, then {N_SAMPLES_SHOWN} samples",
        xlabel="mean | samples", ylabel="component: majority class",
    )
fig.suptitle("Samples from a diagonal Gaussian per component look like noisy means")
fig.tight_layout()

# %% [markdown]
# And samples from each whole mixture, $K = 5$, 10 and 15: draw a component with probability
# $\pi_k$, then a sample from it (`GaussianMixture.sample`, sorted by component). Each row is
# one model; the label above each image is the majority class of the component it came from.
# Look for the same speckle at every $K$: more components give more kinds of means, not
# sharper samples.

# %%
N_MIXTURE_SAMPLES = int(1.5 * N_SAMPLES_SHOWN)
fig, axes = plt.subplots(len(K_VALUES), 2, figsize=(13, 1.3 * len(K_VALUES) + 0.8),
                         squeeze=False)
for column, name in enumerate(DATASETS):
    for row, K in enumerate(K_VALUES):
        gmm = pixel_models[name, K]
        draws, drawn_from = gmm.sample(N_MIXTURE_SAMPLES, rng=np.random.default_rng(K))
        table = component_classes(name, K)
        ax = axes[row, column]
        plotting.image_grid(
            draws.reshape(-1, 28, 28), n_cols=N_MIXTURE_SAMPLES, ax=ax,
            title=f"{name}, K = {K}", xlabel="samples, grouped by component",
            ylabel=f"K={K}",
        )
        ax.set_title(f"{name}, K = {K}", pad=10)  # room for the class labels below the title
        for j, k in enumerate(drawn_from):
            ax.text((j + 0.5) / N_MIXTURE_SAMPLES, 1.0,
                    data.CLASS_NAMES[name][table[k].argmax()][:5], transform=ax.transAxes,
                    ha="center", va="bottom", fontsize=6)
fig.suptitle("Samples from the 5-, 10- and 15-component pixel mixtures")
fig.tight_layout()
print(f"a full covariance on {n_pixels} pixels would have {full_cov_params:,} parameters "
      f"per component")

# %% [markdown]
# The samples are the mean plus speckle, at every $K$. A diagonal Gaussian knows each pixel's
# average and spread but nothing about which pixels go *together*: the stroke of a 7 is a
# correlated line of bright pixels, and independent noise cannot draw it. A full covariance
# would capture pairwise correlations but, as printed above, costs about $3 \times 10^5$
# parameters per component and is singular on pixels. The way out, taken by the rest of the
# course, is to model images through a low-dimensional *latent space*: encode each image as a
# few numbers where a Gaussian (mixture) is a good model, and let a decoder turn latent
# samples into sharp images (chapters 4 and 5).
#
# The NMI table, one row per dataset, and beside it a different quantity:
# $I(Y; C)/H(Y)$, the fraction of the uncertainty about the class $Y$ that knowing the
# component $C$ removes. The arithmetic-mean NMI divides $I$ by the mean of $H(Y)$ and $H(C)$
# instead, and $H(C)$ grows with $K$.

# %%
def entropy_nats(counts):
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log(p)))


uncertainty_removed, component_entropy = {}, {}
for name in DATASETS:
    for K in K_VALUES:
        table = component_classes(name, K)  # (K, n_classes) joint counts
        h_class, h_comp = entropy_nats(table.sum(axis=0)), entropy_nats(table.sum(axis=1))
        mutual = h_class + h_comp - entropy_nats(table.ravel())
        uncertainty_removed[name, K] = mutual / h_class
        component_entropy[name, K] = h_comp
        # the same I, normalised by the arithmetic mean: the NMI of the table above
        assert np.isclose(mutual / (0.5 * (h_class + h_comp)), nmi[name, K], atol=1e-9)

print(f"{'':14s}" + "".join(f"{'NMI K=' + str(K):>10s}" for K in K_VALUES)
      + "".join(f"{'I/H(Y) K=' + str(K):>13s}" for K in K_VALUES))
for name in DATASETS:
    print(f"{name:14s}" + "".join(f"{nmi[name, K]:10.3f}" for K in K_VALUES)
          + "".join(f"{uncertainty_removed[name, K]:13.3f}" for K in K_VALUES))
if not config.is_quick():
    for name in DATASETS:
        assert all(uncertainty_removed[name, a] < uncertainty_removed[name, b]
                   for a, b in zip(K_VALUES, K_VALUES[1:]))
        assert all(max(nmi[name, K], uncertainty_removed[name, K]) < 0.8 for K in K_VALUES)

# %% [markdown]
# Knowing the component removes a growing share of the uncertainty about the class as $K$
# grows ($I(Y;C)/H(Y)$, asserted to rise with $K$ in full mode): more components can follow
# more of the class structure. Read the NMI column with care: it also divides by $H(C)$, which
# grows with $K$, so it is not "the fraction of uncertainty removed". Both stay far from 1
# (below 0.8, asserted in full mode)
# because pixel-space Gaussians group images by ink layout (thickness, slant, size) as much as
# by class, and because classes that look alike in pixel space share components (the
# heatmap above).

# %% [markdown]
# ## Check yourself
#
# 1. Why can't you compute $\gamma_{ik}$ as `np.exp(a) / np.exp(a).sum(axis=1, keepdims=True)`
#    for 784-dimensional images? What does subtracting the row maximum change?
# 2. In the M-step, why are covariances divided by $N_k$ and not by $N_k - 1$ or by $n$?
# 3. Where did the constraint $\sum_k \pi_k = 1$ enter the derivation, and what would the
#    weights be without it?
# 4. The log-likelihood curve of section 4 must never go down. Name two bugs that would make
#    it go down. Why may the pixel curves of section 8 go down a little without any bug?
# 5. Why is "the maximum-likelihood Gaussian mixture" not well defined, and what does
#    `reg_covar` change about the problem EM solves?
# 6. Why does the training log-likelihood not tell you the number of components, while BIC and
#    held-out likelihood can?
# 7. A 15-component diagonal mixture on MNIST scores a large positive log-likelihood per
#    image (section 8's table), a chapter-4 VAE a negative one. Which is better?
# 8. Why does k-means++ draw each seed at random with probability $\propto D(x)^2$ instead
#    of taking the farthest point?
#
# <details><summary>Answers</summary>
#
# 1. In 784 dimensions the log-densities are hundreds of nats away from zero (section 8):
#    `np.exp` underflows to 0 below about $-745$ (far from every component) and overflows to
#    `inf` above about $709$, giving $0/0$ or $\infty/\infty$. Subtracting the maximum
#    divides numerator and denominator by the same $e^{m_i}$, so the result is unchanged, but
#    the largest term becomes $e^0 = 1$: nothing overflows, and the sum is at least 1.
# 2. Setting the gradient of $Q$ with respect to $\Lambda_k$ to zero gives exactly $1/N_k$: it
#    is the maximum-likelihood estimate (biased, like the $1/n$ variance). $n$ would ignore how
#    many points the component owns.
# 3. Through the Lagrange multiplier: without the constraint $\sum_k N_k\log\pi_k$ grows
#    without bound as the $\pi_k$ grow.
# 4. For example: unnormalised responsibilities (no log-sum-exp normalisation); covariances
#    weighted by the wrong counts; means and covariances updated with responsibilities from
#    different iterations. The pixel curves use `reg_covar = 0.01`: the update
#    $\Sigma_k + \varepsilon I$ does not maximise $Q$, so the guarantee does not apply exactly.
# 5. The likelihood can be made arbitrarily large by shrinking one component onto a point
#    (section 6), so it has no maximum. On the constrained set $\{\Sigma_k \succeq \varepsilon
#    I\}$ it does have one, but EM with `reg_covar` does not aim at it: for fixed
#    responsibilities, the maximiser of $Q$ over that set clips each eigenvalue $\lambda$ of
#    the weighted scatter $S_k$ at $\max(\lambda, \varepsilon)$, while $S_k + \varepsilon I$
#    shifts all of them, the large ones too. `reg_covar` is a heuristic that keeps every
#    eigenvalue above $\varepsilon$ and makes the spikes impossible; EM with it climbs no fixed
#    objective exactly (section 8 counts the steps that go down).
# 6. With one more component a mixture can reproduce the smaller one (zero weight), so the
#    *maximum* training likelihood never drops as $K$ grows (EM's local maxima can), and it
#    keeps rising by fitting the sample's noise. BIC charges for parameters; held-out data
#    punish components that model the training sample's noise.
# 7. Neither comparison is meaningful: one is a density of continuous pixel values that
#    depends on `reg_covar`, the other a probability of binary pixels. Compare models on the
#    same data, the same likelihood, and held-out images.
# 8. The farthest point is often an outlier: a deterministic farthest-first rule spends seeds
#    on outliers, while drawing $\propto D(x)^2$ favours far points but weighs them by how many
#    there are. Arthur and Vassilvitskii (2007) prove that this random seeding is within a
#    factor $O(\log K)$ of the optimal k-means cost in expectation.
#
# </details>
#
# ## Summary
#
# - A Gaussian mixture is a latent-variable model: a component $z$, then a Gaussian. Its
#   log-likelihood is a log of a sum, with no closed-form maximiser.
# - Log-densities go through a Cholesky factor (determinants underflow in high dimension),
#   responsibilities through log-sum-exp.
# - EM alternates responsibilities (Bayes' rule) and weighted maximum-likelihood updates
#   ($\pi_k = N_k/n$, weighted means and covariances), and never lowers the log-likelihood
#   (exactly so without `reg_covar`).
# - It finds a local maximum: k-means++ or k-means starts avoid poor optima better than
#   random ones, in fewer iterations. k-means itself is EM's limit for a shared variance
#   shrinking to zero.
# - The likelihood is unbounded when a component collapses onto points; `reg_covar` is a floor
#   on the variances that makes the spikes impossible, a heuristic rather than a constrained
#   maximum.
# - BIC and held-out likelihood choose $K$; the training likelihood cannot.
# - On pixels, diagonal mixtures find prototypes that partly match the classes (the NMI and
#   $I(Y;C)/H(Y)$ of section 8), but their samples are noisy: pixels are not independent given
#   a cluster. The next chapters model images through a latent space instead.

# %% [markdown]
# ## Headline figures
#
# Saved for `build/results.json` when the course runner executes this chapter.

# %%
summary = results.record(
    "01_em_gmm",
    nmi={name: {str(K): nmi[name, K] for K in K_VALUES} for name in DATASETS},
    class_uncertainty_removed={name: {str(K): uncertainty_removed[name, K] for K in K_VALUES}
                               for name in DATASETS},
    train_log_likelihood={name: {str(K): train_ll[name, K] for K in K_VALUES} for name in DATASETS},
    test_log_likelihood={name: {str(K): test_ll[name, K] for K in K_VALUES} for name in DATASETS},
    fit_time_s={name: {str(K): fit_seconds[name, K] for K in K_VALUES} for name in DATASETS},
    em_iterations={name: {str(K): n_iter[name, K] for K in K_VALUES} for name in DATASETS},
    n_pixel_train=N_PIXEL_TRAIN,
    n_pixel_test=N_PIXEL_TEST,
    pixel_reg_covar=PIXEL_REG_COVAR,
    toy_chosen_k=k_bic,
    toy_heldout_best_k=k_heldout,
    toy_true_k=N_BLOBS,
    toy_em_iterations=final_iteration,
    toy_final_log_likelihood=float(toy_history[-1]),
)
summary

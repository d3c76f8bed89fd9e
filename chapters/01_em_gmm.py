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
# - derive the E-step (responsibilities, by Bayes' rule) and the M-step (weights, means and
#   covariances, by setting gradients to zero);
# - write `log_gaussian`, `e_step`, `m_step` and `log_likelihood` yourself, each checked
#   against known answers;
# - watch EM separate overlapping 2-D blobs, iteration by iteration, and verify that the
#   log-likelihood never goes down;
# - compare initialisations (random, k-means++, k-means), break EM with a singular covariance
#   and repair it with `reg_covar`, and choose the number of components by BIC and by
#   held-out likelihood;
# - fit mixtures of 5, 10 and 15 Gaussians straight on pixels, look at their means and their
#   samples, and measure how well the components match the classes (NMI).
#
# **What you'll learn**
#
# - why responsibilities must be computed in log space (log-sum-exp);
# - where the M-step formulas come from, including the Lagrange multiplier for the weights;
# - why a Gaussian mixture's likelihood can go to infinity, and what `reg_covar` does about it;
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
# library to the machine's cores, and sets every size this chapter uses. Quick mode
# (`GAE_COURSE_QUICK=1`, used by the test suite) only shrinks the pixel experiments and the
# number of repeated fits; the toy data are the same in both modes.

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
N_GRID = 900  # points on a 3 x 3 grid of blobs, for comparing initialisations
TOY_MAX_ITER = 500  # EM iterations at most, for the from-scratch loop
TOY_TOL = 1e-8  # stop when the mean log-likelihood per point rises by less than this
K_RANGE = list(range(1, 9))  # candidate numbers of components when choosing K
N_INIT_SEEDS = config.pick(full=20, quick=5)  # seeds per initialisation method
N_INIT_BIC = config.pick(full=3, quick=1)  # EM restarts per K when choosing K

# Mixtures on pixels
DATASETS = ["mnist", "fashion-mnist"]
K_VALUES = [5, 10, 15]  # components per mixture
N_PIXEL_TRAIN = config.pick(full=20_000, quick=2_000)  # training images per dataset
N_PIXEL_TEST = config.pick(full=10_000, quick=2_000)  # test images, for NMI and held-out fit
PIXEL_MAX_ITER = config.pick(full=100, quick=15)  # EM iterations at most
PIXEL_TOL = 5e-2  # nats per image (of about 500): the curves are flat by then
PIXEL_REG_COVAR = 1e-2  # variance floor per pixel (a standard deviation of 0.1)

print(f"mode: {config.mode()}")
for name in ["N_TOY", "N_GRID", "TOY_MAX_ITER", "K_RANGE", "N_INIT_SEEDS", "N_INIT_BIC", "K_VALUES",
             "N_PIXEL_TRAIN", "N_PIXEL_TEST", "PIXEL_MAX_ITER", "PIXEL_TOL", "PIXEL_REG_COVAR"]:
    print(f"  {name:15s} = {globals()[name]}")

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
# where $L^{-1}(x-\mu)$ is one triangular solve. $\det\Sigma$ itself under- or overflows
# as soon as $d$ is in the hundreds (a product of 784 variances of 0.01 is $10^{-1568}$), its
# logarithm does not.
#
# **Responsibilities, by Bayes' rule.** Given a point, how likely is it that component $k$
# generated it?
#
# $$
# \gamma_{ik} = p(z_i = k \mid x_i)
# = \frac{\pi_k\, \mathcal N(x_i \mid \mu_k, \Sigma_k)}{\sum_{j=1}^K \pi_j\, \mathcal N(x_i \mid \mu_j, \Sigma_j)} .
# $$
#
# **Why log-sum-exp.** In 784 dimensions $\log \mathcal N(x_i \mid \mu_k, \Sigma_k)$ is
# easily $-2000$, and `np.exp(-2000)` is exactly `0.0` in float64 (anything below about
# $-745$ is). The ratio above becomes $0/0$. So work with
# $a_{ik} = \log\pi_k + \log\mathcal N(x_i \mid \mu_k, \Sigma_k)$ and
#
# $$
# \log\gamma_{ik} = a_{ik} - \operatorname{LSE}_j(a_{ij}),
# \qquad
# \operatorname{LSE}_j(a_{ij}) = m_i + \log\sum_j e^{a_{ij} - m_i},\quad m_i = \max_j a_{ij}.
# $$
#
# Subtracting the maximum changes nothing mathematically, but now the largest term is
# $e^0 = 1$: the sum is at least 1 and its log is finite. The same
# $\operatorname{LSE}_j(a_{ij}) = \log p(x_i)$ is each point's log-likelihood.
#
# **The log-likelihood** of $n$ points,
#
# $$
# \ell(\theta) = \sum_{i=1}^n \log \sum_{k=1}^K \pi_k\, \mathcal N(x_i \mid \mu_k, \Sigma_k),
# $$
#
# has a log of a sum: setting its gradient to zero gives equations in which every parameter
# depends on all the others through $\gamma_{ik}$. There is no closed-form maximiser.
#
# ## 2. EM: two easy steps instead of one hard one
#
# Had we observed $z_i$, the *complete-data* log-likelihood
# $\sum_i \log \pi_{z_i} + \log\mathcal N(x_i \mid \mu_{z_i}, \Sigma_{z_i})$ would be easy: each
# component would be fitted to its own points. We don't observe $z_i$, so EM takes its
# expectation under the current responsibilities:
#
# - **E-step:** with the current parameters, compute $\gamma_{ik}$ for every point and component.
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
# **Covariances.** Differentiate with respect to the precision $\Lambda_k = \Sigma_k^{-1}$,
# using $\partial_\Lambda \log\det\Lambda = \Lambda^{-1}$ and
# $\partial_\Lambda\, a^\top \Lambda a = a a^\top$ (both for symmetric $\Lambda$):
#
# $$
# \frac{\partial Q}{\partial \Lambda_k} = \sum_i \gamma_{ik}\Bigl[\tfrac12 \Lambda_k^{-1} - \tfrac12 (x_i-\mu_k)(x_i-\mu_k)^\top\Bigr] = 0
# \quad\Longrightarrow\quad
# \Sigma_k = \frac{1}{N_k}\sum_i \gamma_{ik}\,(x_i-\mu_k)(x_i-\mu_k)^\top .
# $$
#
# (Divide by $N_k$, not $N_k - 1$: this is the maximum-likelihood estimate.)
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
# **The log-likelihood never decreases.** Each EM iteration gives
# $\ell(\theta^{\text{new}}) \ge \ell(\theta^{\text{old}})$, with equality only at a
# stationary point. Chapter 2 proves it: $\ell(\theta)$ equals a lower bound (the ELBO) plus a
# KL divergence; the E-step makes the KL term zero, the M-step raises the bound. Here we only
# check it numerically, at every iteration. EM finds a *local* maximum: where it ends depends
# on where it starts (section 5).

# %% [markdown]
# ## 3. Exercises: build EM's kernels
#
# Write each function between the solution markers, then run the cell below it: the check
# calls your function on small cases with known answers and either prints that all cases
# pass or says precisely what is off (which quantity, which entry, and a hint when the answer
# matches a typical mistake). Use full covariance matrices and plain NumPy.
#
# **Exercise 1.** The log-density of one Gaussian at every row of `X`. Use the Cholesky
# factor as in section 1, not `np.linalg.inv` or `np.linalg.det`.

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
# **Exercise 4.** The mean log-likelihood per sample, $\frac1n \sum_i \log p(x_i)$: the
# number EM must never lower.

# %%
def log_likelihood(X, weights, means, covariances):
    """Mean log-likelihood per sample, (1/n) sum_i log p(x_i), as a float."""
    ### BEGIN SOLUTION
    _, log_prob_norm = e_step(X, weights, means, covariances)
    return float(np.mean(log_prob_norm))
    ### END SOLUTION


checks.log_likelihood(log_likelihood)

# %% [markdown]
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
# covariance a small circle, equal weights. Then EM, written out: an E-step, an M-step, and
# the log-likelihood after each iteration. We run exact EM, `reg_covar = 0`, so the
# guarantee of section 2 applies to the letter: the `assert` checks it at every step.

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
# centre stretch, turn and drift apart. Three components find a blob each within a few
# iterations; the fourth is left in between, owning little, until it slides onto the last
# blob and the others shrink to fit theirs.

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
# The log-likelihood rises at every iteration. Left, the whole run: the first E- and M-step
# fix most of the poor start. Right, from iteration 1 on: a slow climb while the fourth
# component is stuck between blobs, a steep rise when it finds its blob, then a flat tail.
# The dashed line is the log-likelihood of the true parameters that generated the data; EM
# ends slightly *above* it, because it fits this particular sample.

# %%
true_ll = mixture.log_likelihood(X_toy, TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVARIANCES)
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
# The package's `GaussianMixture` runs exactly this loop (with `tol` on the same per-point
# gain). Started from the same parameters, it reaches the same optimum:

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
# The four blobs above are too easy to tell these apart: every start ends at the same
# optimum. Nine blobs on a $3 \times 3$ grid, fitted with $K = 9$, are a harder test.

# %%
GRID_CENTERS = 4.0 * np.array([[i, j] for i in range(3) for j in range(3)], dtype=float)
K_GRID = len(GRID_CENTERS)
grid_labels = rng.integers(K_GRID, size=N_GRID)
X_grid = GRID_CENTERS[grid_labels] + rng.standard_normal((N_GRID, 2)) * [0.8, 0.5]

seed_rng = np.random.default_rng(1)
n_draws = 200
covers_all = {"uniform random": 0, "k-means++": 0}
for _ in range(n_draws):
    uniform_idx = seed_rng.choice(N_GRID, size=K_GRID, replace=False)
    _, plusplus_idx = mixture.kmeans_plusplus(X_grid, K_GRID, seed_rng)
    covers_all["uniform random"] += len(set(grid_labels[uniform_idx])) == K_GRID
    covers_all["k-means++"] += len(set(grid_labels[plusplus_idx])) == K_GRID
for method, count in covers_all.items():
    print(f"{method:15s}: the {K_GRID} seeds fall in {K_GRID} different blobs in "
          f"{count / n_draws:.0%} of {n_draws} draws")

# %% [markdown]
# One draw of each, on the data coloured by their true blob. Uniform picks (left) land
# where the data are, blind to each other, so some blobs get two seeds and others none;
# k-means++ seeds (right) spread out over the grid.

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
INIT_METHODS = ["random", "random_from_data", "k-means++", "kmeans"]
init_fits = {method: [] for method in INIT_METHODS}
for method in tqdm(INIT_METHODS, desc="initialisations"):
    for seed in range(N_INIT_SEEDS):
        init_fits[method].append(
            mixture.GaussianMixture(K_GRID, init_params=method, random_state=seed, tol=1e-6,
                                    max_iter=2_000).fit(X_grid)
        )
init_ll = {m: np.array([g.lower_bound_ for g in fits]) for m, fits in init_fits.items()}
init_iters = {m: np.array([g.n_iter_ for g in fits]) for m, fits in init_fits.items()}

best_ll = max(ll.max() for ll in init_ll.values())
print(f"best mean log-likelihood over all runs: {best_ll:.4f}\n")
print(f"{'init_params':17s} {'best':>8s} {'worst':>8s} {'runs at the best (1e-3)':>24s} "
      f"{'median EM iterations':>21s}")
for method in INIT_METHODS:
    ll = init_ll[method]
    at_best = f"{np.sum(ll > best_ll - 1e-3)} of {len(ll)}"
    print(f"{method:17s} {ll.max():8.4f} {ll.min():8.4f} {at_best:>24s} "
          f"{np.median(init_iters[method]):21.0f}")

# %% [markdown]
# Left: the final log-likelihood of every run (one dot per seed); right: how many EM
# iterations each run took. The `'random'` start is the worst on both counts: with random
# soft responsibilities all components see nearly the same data and start nearly identical,
# close to the symmetric fixed point where every component is the single Gaussian fit of all
# the data. EM needs many iterations to break the symmetry, and then ends in a local
# maximum. Uniform seeds (`'random_from_data'`) usually leave some blobs without a seed and
# also end in local maxima; k-means++ and k-means reach the best value in most runs, in the
# fewest iterations. In practice: use a k-means start and several restarts (`n_init`),
# keeping the best.

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
fig.suptitle(f"{N_INIT_SEEDS} seeds per initialisation, nine blobs, K = {K_GRID}, tol = 1e-6")
fig.tight_layout()

# %% [markdown]
# What these end points look like: the best run, one ellipse per blob; the worst run from
# uniform seeds, a local maximum where two components share one blob while another stretches
# over two (EM cannot move a component across the empty space between blobs, since every
# small move lowers the likelihood); and the worst `'random'` run, where components that
# started as copies of each other split the data into stripes.

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
# duplicated records, a pixel that is always 0, fewer points than dimensions. Below, 40
# copies of one record join the toy data. k-means gives them a cluster of their own, whose
# covariance is then exactly zero.

# %%
DUPLICATE = np.array([9.0, -3.0])
X_dup = np.vstack([X_toy, np.tile(DUPLICATE, (40, 1))])

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
assert np.all(np.isfinite(gmm_dup.score_samples(X_dup)))

# %% [markdown]
# With `reg_covar = 0` the M-step produces a zero covariance and the Cholesky factorisation
# fails, with a message that says what to do. With `reg_covar > 0` every variance is at
# least `reg_covar`, so the spike has a finite height and EM carries on. How high? The
# duplicates' log-density grows like $-\frac d2 \log(2\pi\,\varepsilon)$, so the mean
# log-likelihood climbs without limit as `reg_covar` $= \varepsilon$ shrinks, while on the
# toy data without duplicates it does not move:

# %%
reg_values = np.logspace(-1, -10, 10)
ll_with_dup, ll_without = [], []
for reg in tqdm(reg_values, desc="reg_covar"):
    ll_with_dup.append(mixture.GaussianMixture(K_TOY + 1, reg_covar=reg, random_state=0)
                       .fit(X_dup).score(X_dup))
    ll_without.append(mixture.GaussianMixture(K_TOY, reg_covar=reg, random_state=0)
                      .fit(X_toy).score(X_toy))

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.semilogx(reg_values, ll_with_dup, "o-", label=f"toy + 40 duplicates, K = {K_TOY + 1}")
ax.semilogx(reg_values, ll_without, "s-", label=f"toy only, K = {K_TOY}")
ax.invert_xaxis()
ax.set_xlabel("reg_covar (smaller to the right)")
ax.set_ylabel("mean log-likelihood per point")
ax.set_title("A component on duplicated points: the likelihood has no maximum")
ax.legend()
fig.tight_layout()

# %% [markdown]
# The curve with duplicates is a straight line on this log axis: each factor of 10 less
# `reg_covar` adds $\frac{40}{1540}\cdot\log 10 \approx 0.06$ nats per point, forever. So
# `reg_covar` is part of the model, not a numerical detail: it is a floor on every variance,
# and it should be set on the scale of the data (here $10^{-6}$ against variances of order 1;
# for pixels in $[0, 1]$, section 8 uses $10^{-2}$).

# %% [markdown]
# ## 7. Choosing the number of components
#
# More components never lower the *training* log-likelihood, so it cannot choose $K$. Two
# fixes:
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
    gmm = mixture.GaussianMixture(K, n_init=N_INIT_BIC, random_state=K, tol=1e-6,
                                  max_iter=1_000).fit(X_fit)
    bic.append(gmm.bic(X_fit))
    heldout.append(gmm.score(X_val))
bic, heldout = np.array(bic), np.array(heldout)
k_bic = K_RANGE[int(np.argmin(bic))]
k_heldout = K_RANGE[int(np.argmax(heldout))]

print(f"{'K':>3s} {'BIC (train)':>12s} {'held-out log-lik.':>18s}")
for K, b, h in zip(K_RANGE, bic, heldout):
    print(f"{K:3d} {b:12.1f} {h:18.4f}")
print(f"\nK chosen by BIC: {k_bic};  K with the best held-out log-likelihood: {k_heldout};  "
      f"true number of blobs: {N_BLOBS}")
if not config.is_quick():  # quick mode uses a single EM start per K
    assert k_bic == N_BLOBS, f"BIC chose K={k_bic}, expected {N_BLOBS}"

# %% [markdown]
# BIC has a clear minimum at the true $K$. The held-out log-likelihood rises steeply up to
# $K = 4$ and is then flat: extra components neither help nor hurt much, and its exact
# maximum can land on 5 or 6 by chance. A common rule is therefore the smallest $K$ whose
# held-out score is within noise of the best. On images (section 8) neither criterion stops
# early: going from 10 to 15 components gains about 25 nats per test image, far more than
# BIC's penalty of $\frac{p}{2n}\log n \approx 0.4$ nats per image for each extra
# component's 1,569 parameters.
# Images are not a mixture of a few Gaussians, so there is no "true $K$" to find: $K$
# becomes a modelling choice.

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
#
# **Why diagonal covariances.** A full $784 \times 784$ covariance has
# $784 \cdot 785 / 2 = 307{,}720$ free parameters per component, about 4.6 million for
# $K = 15$, to be estimated from a component's share of the images (a few thousand), and
# each E-step would need fifteen $784 \times 784$ Cholesky factors. Worse, many MNIST border
# pixels are 0 in every image (the cell below counts them), so their variance is 0 and a
# full covariance is singular: section 6's problem, in dozens of directions at once; and a
# component owning fewer than 784 images has a singular covariance whatever the pixels do.
# A *diagonal* covariance treats pixels as
# independent given the component: 784 variances per component, cheap and always
# invertible once `reg_covar` sets a floor. We use `covariance_type="diag"` with
# `reg_covar = 1e-2` (each pixel's standard deviation at least 0.1). The alternative is to
# project the images onto their first few dozen principal components (an `np.linalg.svd` of
# the centred data) and fit full covariances there; chapter 5 does something in that
# spirit, with a learned projection.
#
# The numbers: these are *densities* on $\mathbb R^{784}$, and pixels that never vary
# contribute a constant $-\tfrac12\log(2\pi\cdot 0.01) \approx +1.38$ nats each. So the
# log-likelihoods below are large and positive, depend on `reg_covar`, and cannot be compared
# with the discrete log-likelihoods of binarised images in chapter 4.
#
# We fit on `N_PIXEL_TRAIN` training images (a random subset) and measure on test images.
# Initialisation is `'k-means++'`: one pass to pick the seeds, where a full k-means run on
# 784-dimensional images would cost more than EM itself.

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
    X = pixel_data[name]["X"]
    print(f"{name:14s} train {X.shape}, test {pixel_data[name]['X_test'].shape}; pixels with "
          f"zero variance in the training subset: {np.sum(X.var(axis=0) == 0)} of {X.shape[1]}")

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
# Train log-likelihood (the last EM iteration), test log-likelihood, iterations, fit time,
# and the normalised mutual information (NMI) between the most responsible component of each
# test image and its true class. NMI is 0 when the components tell nothing about the
# classes and 1 when components and classes are the same partition, whatever the numbering
# (scikit-learn's `normalized_mutual_info_score`, with the arithmetic-mean normalisation).

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

# %% [markdown]
# The EM curves: each starts at the k-means++ assignment, jumps in the first few
# iterations, and flattens. More components reach a higher likelihood (on test images too,
# in the table). Fashion-MNIST's values are lower: its images have more non-zero, varying
# pixels, each paying for its variance.

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
# *not* the maximiser of $Q$, so the guarantee of section 2 no longer holds exactly. On the
# toy data ($\varepsilon = 0$) it held to the letter; here $\varepsilon = 0.01$ is as large as
# many pixels' variances, and EM heads for the fixed point of this slightly modified update
# rather than for a maximum of the likelihood. Near the end a step can go down a little:

# %%
for name, K in jobs:
    steps = np.diff(pixel_models[name, K].log_likelihood_history_)
    print(f"{name:14s} K={K:2d}: {np.sum(steps < 0):2d} of {len(steps):2d} steps go down, "
          f"the largest by {max(0.0, -steps.min()):.3f} nats per image")


# %% [markdown]
# ### What the components are
#
# For each component we look at which classes its test images come from. Components are
# sorted by their majority class so that similar ones sit side by side.

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
    for K in K_VALUES:
        table = component_classes(name, K)
        majority = [data.CLASS_NAMES[name][table[k].argmax()] for k in sorted_components(name, K)]
        covered = len(set(majority))
        print(f"  K={K:2d}: majority class of each component, left to right: "
              f"{', '.join(majority)}  ({covered} of 10 classes are a majority somewhere)")

# %% [markdown]
# The means, one row per model (K = 5, 10, 15 from top to bottom), sorted as above. On
# MNIST the components are blurred prototypes of digits: with more components, a digit
# that is written in several ways (a round or a narrow 0, a 2 with or without a loop) gets
# several, while digits that overlap in ink (4, 7 and 9; 3, 5 and 8) share blurry ones. On
# Fashion-MNIST the components follow *silhouettes* and brightness: trousers, bags and
# footwear are found at once, while T-shirts, pullovers, coats and shirts share components
# that differ mainly in sleeves and shade.

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
# below is one component of the 10-component models: its mean first, then eight samples
# (values outside $[0, 1]$ are shown clipped to black or white).

# %%
def samples_from_component(gmm, k, n, sample_rng):
    """n draws from component k of a diagonal-covariance mixture: (n, n_features)."""
    noise = sample_rng.standard_normal((n, gmm.means_.shape[1]))
    return gmm.means_[k] + noise * np.sqrt(gmm.covariances_[k])


N_SAMPLES_SHOWN = 8
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
# The samples are the mean plus speckle. A diagonal Gaussian knows each pixel's average and
# spread but nothing about which pixels go *together*: the stroke of a 7 is a correlated
# line of bright pixels, and independent noise cannot draw it. A full covariance would
# capture pairwise correlations but, as we saw, costs $10^5$ parameters per component and
# is singular on pixels. The way out, taken by the rest of the course, is to model
# images through a low-dimensional *latent space*: encode each image as a few numbers where
# a Gaussian (mixture) is a good model, and let a decoder turn latent samples into sharp
# images (chapters 4 and 5).
#
# The NMI table, one row per dataset:

# %%
print(f"{'NMI':14s}" + "".join(f"{'K=' + str(K):>8s}" for K in K_VALUES))
for name in DATASETS:
    print(f"{name:14s}" + "".join(f"{nmi[name, K]:8.3f}" for K in K_VALUES))

# %% [markdown]
# The NMI grows with $K$: more components can follow more of the class structure (an NMI of
# about 0.5 means that knowing the component removes roughly half the uncertainty about
# the class). It stays far from 1 because pixel-space Gaussians group images by ink
# layout (thickness, slant, size) as much as by class, and because some classes (4 and 9;
# shirts, pullovers and coats) overlap in pixel space.

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
# 7. A 15-component diagonal mixture on MNIST scores about 540 nats per image, a chapter-4 VAE
#    about $-90$. Which is better?
#
# <details><summary>Answers</summary>
#
# 1. The log-densities are around $-2000$ and `np.exp` underflows to 0, giving $0/0$.
#    Subtracting the maximum divides numerator and denominator by the same $e^{m_i}$, so the
#    result is unchanged, but the largest term becomes $e^0 = 1$.
# 2. Setting $\partial Q/\partial\Lambda_k = 0$ gives exactly $1/N_k$: it is the
#    maximum-likelihood estimate (biased, like the $1/n$ variance). $n$ would ignore how many
#    points the component owns.
# 3. Through the Lagrange multiplier: without the constraint $\sum_k N_k\log\pi_k$ grows
#    without bound as the $\pi_k$ grow.
# 4. For example: unnormalised responsibilities (no log-sum-exp normalisation); covariances
#    weighted by the wrong counts; means and covariances updated with responsibilities from
#    different iterations. The pixel curves use `reg_covar = 0.01`: the update
#    $\Sigma_k + \varepsilon I$ does not maximise $Q$, so the guarantee does not apply exactly.
# 5. The likelihood can be made arbitrarily large by shrinking one component onto a point
#    (section 6). With `reg_covar` every variance is at least $\varepsilon$: EM maximises the
#    likelihood over this constrained set, where the maximum exists.
# 6. Adding a component can always reproduce the smaller model (one more component with zero
#    weight), so the training likelihood never drops. BIC charges for parameters; held-out
#    data punish components that model the training sample's noise.
# 7. Neither comparison is meaningful: one is a density of continuous pixel values that
#    depends on `reg_covar`, the other a probability of binary pixels. Compare models on the
#    same data, the same likelihood, and held-out images.
#
# </details>
#
# ## Summary
#
# - A Gaussian mixture is a latent-variable model: a component $z$, then a Gaussian. Its
#   log-likelihood is a log of a sum, with no closed-form maximiser.
# - EM alternates responsibilities (Bayes' rule, computed in log space with log-sum-exp) and
#   weighted maximum-likelihood updates ($\pi_k = N_k/n$, weighted means and covariances), and
#   never lowers the log-likelihood (exactly so without `reg_covar`).
# - It finds a local maximum: k-means++ or k-means starts converge in fewer iterations and
#   avoid poor optima better than random ones.
# - The likelihood is unbounded when a component collapses onto points; `reg_covar` is a floor
#   on the variances that makes the problem well posed.
# - BIC and held-out likelihood choose $K$; the training likelihood cannot.
# - On pixels, diagonal mixtures find prototypes that partly match the classes (NMI up to
#   about 0.5), but their samples are noisy: pixels are not independent given a cluster. The
#   next chapters model images through a latent space instead.

# %% [markdown]
# ## Headline figures
#
# Saved for `build/results.json` when the course runner executes this chapter.

# %%
summary = results.record(
    "01_em_gmm",
    nmi={name: {str(K): nmi[name, K] for K in K_VALUES} for name in DATASETS},
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

"""gae_course.mixture against scikit-learn and scipy, and by the laws EM obeys."""

import warnings

import numpy as np
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from gae_course import _blocks, mixture
from gae_course.mixture import ConvergenceWarning, GaussianMixture, NotFittedError

COVARIANCE_TYPES = ["full", "diag", "spherical"]


def blobs(rng, n_per=200, d=3, spread=(1.0, 0.5, 2.0), shift=4.0):
    """Three overlapping Gaussian blobs with correlated noise, shape (3 * n_per, d)."""
    parts = []
    for k, s in enumerate(spread):
        mixing = rng.normal(size=(d, d)) * s / np.sqrt(d) + np.eye(d) * s
        parts.append(rng.normal(size=(n_per, d)) @ mixing + shift * (k - 1))
    return np.vstack(parts)


def random_params(rng, K, d, covariance_type):
    weights = rng.dirichlet(np.ones(K))
    means = rng.normal(size=(K, d)) * 2
    if covariance_type == "full":
        A = rng.normal(size=(K, d, d))
        covariances = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(d)
    elif covariance_type == "diag":
        covariances = rng.uniform(0.3, 2.0, size=(K, d))
    else:
        covariances = rng.uniform(0.3, 2.0, size=K)
    return weights, means, covariances


def as_full(covariances, covariance_type, d):
    if covariance_type == "full":
        return covariances
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in covariances])
    return np.stack([np.eye(d) * c for c in covariances])


def initial_precisions(covariance_type, K, d):
    return {"full": np.stack([np.eye(d)] * K), "diag": np.ones((K, d)), "spherical": np.ones(K)}[
        covariance_type
    ]


# ---------------------------------------------------------------------------------------------
# Kernels against independent oracles
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_gaussian_density_matches_scipy(covariance_type):
    rng = np.random.default_rng(0)
    K, d = 3, 4
    _, means, covariances = random_params(rng, K, d, covariance_type)
    X = rng.normal(size=(2000, d)) * 3  # more rows than one block: exercises the blocking
    prec_chol = mixture.compute_precision_cholesky(covariances, covariance_type)
    got = mixture.log_gaussian_density(X, means, prec_chol, covariance_type)
    full = as_full(covariances, covariance_type, d)
    expected = np.stack(
        [multivariate_normal(means[k], full[k]).logpdf(X) for k in range(K)], axis=1
    )
    assert got.shape == (2000, K)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precision_cholesky_factors_the_inverse(covariance_type):
    rng = np.random.default_rng(1)
    _, _, covariances = random_params(rng, 3, 4, covariance_type)
    U = mixture.compute_precision_cholesky(covariances, covariance_type)
    if covariance_type == "full":
        np.testing.assert_allclose(U @ U.transpose(0, 2, 1), np.linalg.inv(covariances), rtol=1e-10)
        # exactly upper triangular: what lets the E-step skip the zeros (_column_groups)
        np.testing.assert_array_equal(U, np.triu(U))
    else:
        np.testing.assert_allclose(U**2, 1.0 / covariances)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_e_step_against_naive_bayes_rule(covariance_type):
    rng = np.random.default_rng(2)
    K, d = 3, 2
    weights, means, covariances = random_params(rng, K, d, covariance_type)
    X = rng.normal(size=(50, d))
    prec_chol = mixture.compute_precision_cholesky(covariances, covariance_type)
    log_resp, log_prob_norm = mixture.e_step(X, weights, means, prec_chol, covariance_type)
    full = as_full(covariances, covariance_type, d)
    joint = np.stack(
        [weights[k] * multivariate_normal(means[k], full[k]).pdf(X) for k in range(K)], axis=1
    )
    np.testing.assert_allclose(np.exp(log_resp), joint / joint.sum(1, keepdims=True), rtol=1e-9)
    np.testing.assert_allclose(log_prob_norm, np.log(joint.sum(1)), rtol=1e-10)


def test_e_step_far_points_do_not_underflow():
    """A point 1000 standard deviations away still gets finite, normalised responsibilities."""
    means = np.array([[0.0, 0.0], [3.0, 0.0]])
    prec_chol = mixture.compute_precision_cholesky(np.stack([np.eye(2)] * 2))
    X = np.array([[1000.0, 0.0], [-1000.0, 5.0]])
    log_resp, log_prob_norm = mixture.e_step(X, np.array([0.5, 0.5]), means, prec_chol)
    assert np.all(np.isfinite(log_resp)) and np.all(np.isfinite(log_prob_norm))
    np.testing.assert_allclose(np.exp(log_resp).sum(1), 1.0)
    assert np.argmax(log_resp[0]) == 1 and np.argmax(log_resp[1]) == 0


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_m_step_against_textbook_formulas(covariance_type):
    rng = np.random.default_rng(3)
    n, K, d = 300, 3, 3
    X = rng.normal(size=(n, d)) + 5.0  # offset: the centring in the kernel must not matter
    resp = rng.dirichlet(np.ones(K), size=n)
    weights, means, covariances = mixture.m_step(X, resp, reg_covar=1e-3,
                                                 covariance_type=covariance_type)
    nk = resp.sum(0)
    np.testing.assert_allclose(weights, nk / n)
    np.testing.assert_allclose(means, (resp.T @ X) / nk[:, None])
    scatter = np.stack(
        [(resp[:, k, None] * (X - means[k])).T @ (X - means[k]) / nk[k] for k in range(K)]
    )
    expected = {
        "full": scatter + 1e-3 * np.eye(d),
        "diag": np.diagonal(scatter, axis1=1, axis2=2) + 1e-3,
        "spherical": np.diagonal(scatter, axis1=1, axis2=2).mean(1) + 1e-3,
    }[covariance_type]
    np.testing.assert_allclose(covariances, expected, rtol=1e-9)


def test_log_likelihood_matches_scipy_mixture():
    rng = np.random.default_rng(4)
    weights, means, covariances = random_params(rng, 3, 2, "full")
    X = rng.normal(size=(40, 2))
    dens = sum(weights[k] * multivariate_normal(means[k], covariances[k]).pdf(X) for k in range(3))
    assert mixture.log_likelihood(X, weights, means, covariances) == pytest.approx(
        np.mean(np.log(dens)), rel=1e-10
    )


def test_logsumexp_handles_all_minus_infinity_rows():
    a = np.array([[-np.inf, -np.inf], [1000.0, 1000.0]])
    out = mixture.logsumexp(a, axis=1)
    assert out[0] == -np.inf
    assert out[1] == pytest.approx(1000.0 + np.log(2.0))


# ---------------------------------------------------------------------------------------------
# The estimator against scikit-learn, from the same initialisation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_matches_sklearn_from_same_init(covariance_type):
    rng = np.random.default_rng(5)
    X = blobs(rng)
    K, d = 3, X.shape[1]
    settings_ = dict(
        n_components=K, covariance_type=covariance_type, tol=1e-8, max_iter=1000,
        reg_covar=1e-6, weights_init=np.full(K, 1 / K), means_init=X[[0, 250, 550]],
        precisions_init=initial_precisions(covariance_type, K, d),
    )
    ours = GaussianMixture(**settings_).fit(X)
    theirs = SklearnGaussianMixture(**settings_).fit(X)
    assert ours.converged_ and theirs.converged_
    assert ours.n_iter_ == theirs.n_iter_
    assert abs(ours.score(X) - theirs.score(X)) < 1e-6
    assert abs(ours.lower_bound_ - theirs.lower_bound_) < 1e-6
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), atol=1e-6)
    np.testing.assert_allclose(ours.weights_, theirs.weights_, atol=1e-7)
    np.testing.assert_allclose(ours.means_, theirs.means_, atol=1e-7)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, atol=1e-7)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-7)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert ours.bic(X) == pytest.approx(theirs.bic(X), rel=1e-9)
    assert ours.aic(X) == pytest.approx(theirs.aic(X), rel=1e-9)


def test_full_precisions_init_matches_sklearn():
    """A general (non-diagonal) precisions_init: its lower Cholesky factor must work as well."""
    rng = np.random.default_rng(15)
    X = blobs(rng, d=6)
    K = 3
    _, means, covariances = random_params(rng, K, 6, "full")
    settings_ = dict(n_components=K, tol=0.0, max_iter=3, weights_init=np.full(K, 1 / K),
                     means_init=means, precisions_init=np.linalg.inv(covariances))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both stop at max_iter on purpose
        ours = GaussianMixture(**settings_).fit(X)
        theirs = SklearnGaussianMixture(**settings_).fit(X)
    np.testing.assert_allclose(ours.log_likelihood_history_[-1], theirs.lower_bound_, rtol=1e-10)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-8, atol=1e-10)


def test_history_ends_at_lower_bound_and_counts_iterations():
    X = blobs(np.random.default_rng(6))
    gm = GaussianMixture(3, random_state=0).fit(X)
    assert len(gm.log_likelihood_history_) == gm.n_iter_
    assert gm.log_likelihood_history_[-1] == gm.lower_bound_


@pytest.mark.parametrize("init_params", mixture.INIT_PARAMS)
def test_every_initialisation_finds_the_blobs(init_params):
    rng = np.random.default_rng(7)
    X = blobs(rng, spread=(0.5, 0.5, 0.5), shift=8.0)
    gm = GaussianMixture(3, init_params=init_params, n_init=3, random_state=0).fit(X)
    labels = gm.predict(X)
    # each true blob of 200 points maps to a single component
    for k in range(3):
        assert len(np.unique(labels[200 * k : 200 * (k + 1)])) == 1
    assert len(np.unique(labels)) == 3


def test_n_init_keeps_the_best_run():
    X = blobs(np.random.default_rng(8))
    single = [GaussianMixture(3, init_params="random", random_state=s).fit(X).lower_bound_
              for s in range(3)]
    several = GaussianMixture(3, init_params="random", n_init=5, random_state=0).fit(X)
    assert several.lower_bound_ >= min(single)
    assert np.isfinite(several.lower_bound_)


def test_same_seed_same_fit():
    X = blobs(np.random.default_rng(9))
    a = GaussianMixture(3, random_state=3).fit(X)
    b = GaussianMixture(3, random_state=3).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)


def test_kmeans_plusplus_picks_distinct_rows_one_per_blob():
    rng = np.random.default_rng(10)
    X = blobs(rng, spread=(0.3, 0.3, 0.3), shift=20.0)
    centers, indices = mixture.kmeans_plusplus(X, 3, rng)
    assert centers.shape == (3, 3) and len(set(indices.tolist())) == 3
    np.testing.assert_array_equal(centers, X[indices])
    assert sorted((indices // 200).tolist()) == [0, 1, 2]


def test_kmeans_recovers_blob_centres():
    rng = np.random.default_rng(11)
    X = blobs(rng, spread=(0.3, 0.3, 0.3), shift=10.0)
    centers, labels = mixture.kmeans(X, 3, rng)
    true = np.stack([X[200 * k : 200 * (k + 1)].mean(0) for k in range(3)])
    order = np.argsort(centers[:, 0])
    np.testing.assert_allclose(centers[order], true[np.argsort(true[:, 0])], atol=1e-8)
    assert labels.shape == (600,)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_follows_the_fitted_mixture(covariance_type):
    X = blobs(np.random.default_rng(12), spread=(0.5, 0.5, 0.5), shift=6.0)
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    draws, comp = gm.sample(30_000)
    assert draws.shape == (30_000, 3) and comp.shape == (30_000,)
    np.testing.assert_allclose(np.bincount(comp, minlength=3) / 30_000, gm.weights_, atol=0.015)
    for k in range(3):
        np.testing.assert_allclose(draws[comp == k].mean(0), gm.means_[k], atol=0.06)
    full = as_full(gm.covariances_, covariance_type, 3)
    np.testing.assert_allclose(np.cov(draws[comp == 0].T), full[0], atol=0.06)


# ---------------------------------------------------------------------------------------------
# Laws
# ---------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_components=st.integers(1, 4),
    n_features=st.integers(1, 3),
    covariance_type=st.sampled_from(COVARIANCE_TYPES),
    init_params=st.sampled_from(["random", "k-means++"]),
)
def test_em_never_lowers_the_log_likelihood(seed, n_components, n_features, covariance_type,
                                            init_params):
    """The EM law, on random data from a random mixture (scikit-learn tests it the same way).

    reg_covar=0: with a ridge on the covariances the M-step no longer maximises the expected
    complete-data log-likelihood exactly, and tiny decreases (~1e-8) are then possible.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(3, n_features))
    X = centres[rng.integers(3, size=200)] + rng.normal(size=(200, n_features)) * rng.uniform(
        0.2, 2.0, size=n_features
    )
    X *= rng.uniform(0.1, 10)
    gm = GaussianMixture(n_components, covariance_type=covariance_type, init_params=init_params,
                         tol=0.0, max_iter=30, reg_covar=0.0, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0 never stops early
        try:
            gm.fit(X)
        except ValueError as error:  # a component shrank onto < d+1 points: EM is undefined
            assert "ill-defined" in str(error)
            reject()
    history = np.array(gm.log_likelihood_history_)
    assert np.all(np.isfinite(history))
    # Each EM step is an ascent step; allow float64 rounding only.
    assert np.all(np.diff(history) >= -1e-10 * (1 + np.abs(history[1:])))


# ---------------------------------------------------------------------------------------------
# Bad input and degenerate data
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_refused(bad):
    X = np.random.default_rng(0).normal(size=(20, 2))
    X[7, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinity.*row 7"):
        GaussianMixture(2).fit(X)


def test_more_components_than_points_is_refused():
    with pytest.raises(ValueError, match="more than n_samples=4.*fewer components"):
        GaussianMixture(5).fit(np.zeros((4, 2)))


def test_one_dimensional_input_is_refused_not_reshaped():
    with pytest.raises(ValueError, match=r"2-D.*reshape\(-1, 1\)"):
        GaussianMixture(2).fit(np.arange(10.0))


def test_wrong_feature_count_at_predict_time():
    gm = GaussianMixture(2, random_state=0).fit(np.random.default_rng(0).normal(size=(50, 3)))
    for method in (gm.predict, gm.predict_proba, gm.score_samples, gm.score):
        with pytest.raises(ValueError, match="has 2 features but the mixture was fitted on 3"):
            method(np.zeros((5, 2)))


def test_using_an_unfitted_model_says_fit_first():
    with pytest.raises(NotFittedError, match=r"call fit\(X\)"):
        GaussianMixture(2).predict(np.zeros((3, 2)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(covariance_type="tied"), "covariance_type must be one of"),
        (dict(init_params="magic"), "init_params must be one of"),
        (dict(reg_covar=-1.0), "reg_covar must be >= 0"),
        (dict(max_iter=0), "max_iter must be >= 1"),
        (dict(weights_init=[0.2, 0.2]), "weights_init must be 2 non-negative numbers summing to 1"),
        (dict(means_init=np.zeros((3, 2))), r"means_init must have shape .*\(2, 2\)"),
        (dict(precisions_init=np.ones((2, 2))), r"precisions_init .* shape \(2, 2, 2\)"),
    ],
)
def test_bad_parameters_say_what_is_wrong(kwargs, message):
    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2, **kwargs).fit(X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_collapsing_component_is_held_by_reg_covar(covariance_type):
    """Twenty copies of one point: the component on them shrinks to reg_covar, never NaN."""
    rng = np.random.default_rng(13)
    X = np.vstack([np.tile([[5.0, 5.0]], (20, 1)), rng.normal(size=(80, 2))])
    gm = GaussianMixture(3, covariance_type=covariance_type, reg_covar=1e-4, random_state=0,
                         max_iter=200).fit(X)
    for value in (gm.weights_, gm.means_, gm.covariances_, gm.score_samples(X)):
        assert np.all(np.isfinite(value))
    smallest = np.min(np.linalg.eigvalsh(as_full(gm.covariances_, covariance_type, 2)))
    assert smallest >= 1e-4 * (1 - 1e-9)


def test_singular_covariance_without_reg_covar_gives_advice():
    X = np.vstack([np.tile([[1.0, 1.0]], (10, 1)), np.tile([[3.0, 3.0]], (10, 1))])
    with pytest.raises(ValueError, match="ill-defined.*increasing reg_covar"):
        GaussianMixture(2, reg_covar=0.0, random_state=0).fit(X)


def test_non_convergence_is_its_own_warning_class():
    X = blobs(np.random.default_rng(14))
    assert issubclass(ConvergenceWarning, UserWarning)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        GaussianMixture(3, max_iter=2, tol=0.0, random_state=0).fit(X)


# ---------------------------------------------------------------------------------------------
# Row blocks and threads (gae_course._blocks) change the speed, never the numbers
# ---------------------------------------------------------------------------------------------


def plain_e_step(X, weights, means, covariances, covariance_type):
    """The E-step on whole arrays, one component at a time, straight from the formulas."""
    full = as_full(covariances, covariance_type, X.shape[1])
    log_joint = np.empty((len(X), len(weights)))
    for k in range(len(weights)):
        L = np.linalg.cholesky(full[k])
        z = np.linalg.solve(L, (X - means[k]).T)  # (d, n): L^-1 (x - mu_k)
        log_joint[:, k] = (np.log(weights[k]) - 0.5 * X.shape[1] * np.log(2 * np.pi)
                           - np.sum(np.log(np.diag(L))) - 0.5 * np.sum(z**2, axis=0))
    log_prob_norm = logsumexp(log_joint, axis=1)
    return log_joint - log_prob_norm[:, None], log_prob_norm


def plain_m_step(X, resp, reg_covar, covariance_type):
    """The M-step on whole arrays, one component at a time, straight from the formulas."""
    nk = resp.sum(0) + 10 * np.finfo(float).eps
    means = resp.T @ X / nk[:, None]
    scatter = np.stack([(resp[:, k, None] * (X - means[k])).T @ (X - means[k]) / nk[k]
                        for k in range(resp.shape[1])])
    covariances = {
        "full": scatter + reg_covar * np.eye(X.shape[1]),
        "diag": np.diagonal(scatter, axis1=1, axis2=2) + reg_covar,
        "spherical": np.diagonal(scatter, axis1=1, axis2=2).mean(1) + reg_covar,
    }[covariance_type]
    return nk / nk.sum(), means, covariances


def blocked_problem(covariance_type, seed=20, d=5):
    rng = np.random.default_rng(seed)
    X = blobs(rng, n_per=700, d=d) + 3.0  # 2100 rows: many blocks of every size below
    weights, means, covariances = random_params(rng, 4, d, covariance_type)
    resp = rng.dirichlet(np.ones(4), size=len(X))
    return X, weights, means, covariances, resp


def all_kernels(X, weights, means, covariances, resp, covariance_type):
    prec_chol = mixture.compute_precision_cholesky(covariances, covariance_type)
    log_resp, log_prob_norm = mixture.e_step(X, weights, means, prec_chol, covariance_type)
    density = mixture.log_gaussian_density(X, means, prec_chol, covariance_type)
    return (log_resp, log_prob_norm, density,
            *mixture.m_step(X, resp, 1e-4, covariance_type))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("workers, block_rows", [(1, None), (2, None), (2, 37), (1, 1)])
@pytest.mark.parametrize("d", [5, 16])  # one column group; four (see _column_groups)
def test_blocked_threaded_kernels_match_the_plain_version(covariance_type, workers, block_rows,
                                                          d):
    X, weights, means, covariances, resp = blocked_problem(covariance_type, d=d)
    with _blocks.settings(workers=workers, block_rows=block_rows):
        log_resp, log_prob_norm, _, w, m, c = all_kernels(X, weights, means, covariances, resp,
                                                          covariance_type)
    plain_log_resp, plain_norm = plain_e_step(X, weights, means, covariances, covariance_type)
    np.testing.assert_allclose(log_prob_norm, plain_norm, rtol=1e-12)
    np.testing.assert_allclose(log_resp, plain_log_resp, rtol=1e-12, atol=1e-12)
    for got, expected in zip((w, m, c), plain_m_step(X, resp, 1e-4, covariance_type)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_and_two_threads_give_the_same_numbers(covariance_type):
    problem = blocked_problem(covariance_type)
    with _blocks.settings(workers=1, block_rows=50):
        one = all_kernels(*problem, covariance_type)
    with _blocks.settings(workers=2, block_rows=50):
        two = all_kernels(*problem, covariance_type)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_results_do_not_depend_on_the_block_size(covariance_type):
    problem = blocked_problem(covariance_type)
    reference = all_kernels(*problem, covariance_type)  # default blocks: one block here
    for block_rows in (1, 7, 64, 1000):
        with _blocks.settings(workers=2, block_rows=block_rows):
            for a, b in zip(all_kernels(*problem, covariance_type), reference):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_fit_on_two_threads_equals_fit_on_one():
    X = blobs(np.random.default_rng(21), n_per=500)
    with _blocks.settings(workers=1, block_rows=64):
        one = GaussianMixture(3, random_state=0).fit(X)
    with _blocks.settings(workers=2, block_rows=64):
        two = GaussianMixture(3, random_state=0).fit(X)
    assert one.n_iter_ == two.n_iter_
    np.testing.assert_allclose(one.log_likelihood_history_, two.log_likelihood_history_,
                               rtol=1e-12)
    np.testing.assert_allclose(one.covariances_, two.covariances_, rtol=1e-12, atol=1e-15)


def test_column_groups_cut_the_features_into_equal_contiguous_groups():
    for d in range(1, 100):
        groups = mixture._column_groups(d)
        widths = {stop - start for start, stop in groups}
        assert groups[0][0] == 0 and groups[-1][1] == d
        assert all(a[1] == b[0] for a, b in zip(groups, groups[1:])), "contiguous"
        assert len(widths) == 1, "equal widths: the E-step sums its squares in one pass"
        assert len(groups) <= mixture.MAX_COLUMN_GROUPS
        assert len(groups) == 1 or widths.pop() >= mixture.MIN_GROUP_COLUMNS
    assert mixture._column_groups(32) == [(0, 8), (8, 16), (16, 24), (24, 32)]
    assert len(mixture._column_groups(31)) == 1  # a prime: one group, still exact


def test_full_log_density_is_the_same_for_any_factor_of_the_precision():
    """Upper-triangular U (multiplied group by group, skipping its zeros) and the lower
    factor that precisions_init gives (multiplied whole) must both give scipy's density."""
    rng = np.random.default_rng(25)
    K, d = 3, 16  # four column groups
    _, means, covariances = random_params(rng, K, d, "full")
    X = rng.normal(size=(500, d)) * 2
    upper = mixture.compute_precision_cholesky(covariances)
    lower = np.linalg.cholesky(np.linalg.inv(covariances))
    factors = {"upper": upper, "lower": lower}
    expected = np.stack(
        [multivariate_normal(means[k], covariances[k]).logpdf(X) for k in range(K)], axis=1)
    got = {name: mixture.log_gaussian_density(X, means, factor) for name, factor in factors.items()}
    for name, density in got.items():
        np.testing.assert_allclose(density, expected, rtol=1e-10, err_msg=name)
        np.testing.assert_allclose(density, got["upper"], rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("d", [3, 12, 32])  # one, three and four column groups
def test_moments_about_a_centre_compute_one_triangle_and_mirror_it(d):
    rng = np.random.default_rng(26)
    X = rng.normal(size=(900, d)) @ rng.normal(size=(d, d)) + 2.0
    resp = rng.dirichlet(np.ones(3), size=len(X))
    center = X[::16].mean(axis=0)
    with _blocks.settings(block_rows=100):
        sums, second_moments = mixture._moments_about(X, resp, center)
    y = X - center
    np.testing.assert_allclose(sums, resp.T @ y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(second_moments, np.einsum("ik,ia,ib->kab", resp, y, y),
                               rtol=1e-12, atol=1e-12)
    # entries in two different groups: computed once, and mirrored exactly
    group = np.concatenate([[g] * (stop - start)
                            for g, (start, stop) in enumerate(mixture._column_groups(d))])
    across = group[:, None] != group[None, :]
    assert across.any() == (d >= 2 * mixture.MIN_GROUP_COLUMNS)
    np.testing.assert_array_equal(second_moments[:, across],
                                  second_moments.transpose(0, 2, 1)[:, across])


def test_full_m_step_is_exact_for_a_far_collapsed_component():
    """Second moments about the data mean would leave ~1e-10 of rounding on a component of
    zero spread 1000 away; the kernel must notice and redo that component about its mean."""
    rng = np.random.default_rng(22)
    X = np.vstack([np.tile([[1000.0, -1000.0]], (20, 1)), rng.normal(size=(80, 2))])
    resp = np.zeros((100, 2))
    resp[:20, 0] = resp[20:, 1] = 1.0
    _, means, covariances = mixture.m_step(X, resp, reg_covar=0.0)
    assert np.max(np.abs(covariances[0])) < 1e-20
    np.testing.assert_allclose(covariances[1], np.cov(X[20:].T, bias=True), rtol=1e-12)


def two_tight_clusters(distance, d=6, n_per=400, seed=23):
    """Two unit-spread clusters ``distance`` apart (plus an offset), hard responsibilities."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(n_per, d)) @ (np.eye(d) + 0.3 * rng.normal(size=(d, d))),
                   rng.normal(size=(n_per, d)) + distance]) + 7.0
    resp = np.zeros((2 * n_per, 2))
    resp[:n_per, 0] = resp[n_per:, 1] = 1.0
    return X, resp


def scale_relative_error(covariances, expected):
    """max |C - E|_ab / sqrt(E_aa E_bb): the error measured against each entry's scale."""
    scale = np.sqrt(np.diagonal(expected, axis1=1, axis2=2))
    return np.max(np.abs(covariances - expected) / (scale[:, :, None] * scale[:, None, :]))


def spy_on_exact_scatter(monkeypatch):
    """Record the responsibilities of the components the M-step recomputes exactly."""
    redone = []
    exact = mixture._weighted_scatter

    def spy(X, resp, means):
        redone.append(resp.copy())
        return exact(X, resp, means)

    monkeypatch.setattr(mixture, "_weighted_scatter", spy)
    return redone


def test_full_m_step_moments_about_the_data_mean_are_exact_to_1e_12_below_the_limit(
        monkeypatch):
    """Amplification just under MAX_AMPLIFICATION (clusters 12 spreads apart): the one-pass
    moments about the kernel's centre are used, and are within 1e-12 of the textbook
    scatter about each component's mean."""
    redone = spy_on_exact_scatter(monkeypatch)
    X, resp = two_tight_clusters(distance=12.0)
    y = X - X[::16].mean(axis=0)  # about the point the kernel uses
    nk = resp.sum(0)
    raw = resp.T @ y**2 / nk[:, None]
    amplification = raw / (raw - (resp.T @ y / nk[:, None]) ** 2)
    assert 0.5 * mixture.MAX_AMPLIFICATION < amplification.max() < mixture.MAX_AMPLIFICATION
    _, _, covariances = mixture.m_step(X, resp, reg_covar=0.0)
    _, _, expected = plain_m_step(X, resp, 0.0, "full")
    assert redone == [], "no component should need the exact pass here"
    assert scale_relative_error(covariances, expected) < 1e-12
    np.testing.assert_array_equal(covariances, covariances.transpose(0, 2, 1))


def test_full_m_step_at_benchmark_scale_is_within_1e_12_of_the_textbook(monkeypatch):
    """The rounding model measured above on 800 rows, checked at the benchmark's size
    (60 000 x 32, K = 10, data far from the origin, soft responsibilities from an E-step):
    every component on the fast path, and within 1e-12 of the scatter about its own mean."""
    redone = spy_on_exact_scatter(monkeypatch)
    rng = np.random.default_rng(27)
    n, d, K = 60_000, 32, 10
    labels = rng.integers(K, size=n)
    mixing = rng.normal(size=(K, d, d)) / np.sqrt(d)
    X = (rng.normal(scale=0.5, size=(K, d))[labels]
         + np.einsum("nd,nde->ne", rng.normal(size=(n, d)), mixing[labels]) + 10.0)
    weights, means, covariances = mixture.m_step(X, np.eye(K)[labels], 1e-6)
    log_resp, _ = mixture.e_step(X, weights, means, mixture.compute_precision_cholesky(covariances))
    resp = np.exp(log_resp)
    _, got_means, got = mixture.m_step(X, resp, reg_covar=0.0)
    assert redone == []
    _, plain_means, expected = plain_m_step(X, resp, 0.0, "full")
    np.testing.assert_allclose(got_means, plain_means, rtol=1e-12)
    assert scale_relative_error(got, expected) < 1e-12
    # soft responsibilities: the diagonal blocks of the products are symmetric only to
    # rounding, and the kernel must still return exactly symmetric covariances
    np.testing.assert_array_equal(got, got.transpose(0, 2, 1))


def test_full_m_step_redoes_components_past_the_amplification_limit(monkeypatch):
    redone = spy_on_exact_scatter(monkeypatch)
    X, resp = two_tight_clusters(distance=100.0)  # amplification about 3000 and 6000
    resp = np.hstack([resp, np.full((len(X), 1), 0.5)])  # a third, wide component
    resp /= resp.sum(1, keepdims=True)
    _, _, covariances = mixture.m_step(X, resp, reg_covar=0.0)
    _, _, expected = plain_m_step(X, resp, 0.0, "full")
    assert len(redone) == 1, "one exact pass, for the far components together"
    np.testing.assert_array_equal(redone[0], resp[:, :2])  # the two tight ones, not the wide
    assert scale_relative_error(covariances, expected) < 1e-13


def test_full_m_step_empty_component_and_constant_coordinate_need_no_exact_pass(monkeypatch):
    """0 / 0 amplification (a component with no responsibility, a coordinate that never
    varies) is exact on the fast path: no redo, and the textbook values."""
    redone = spy_on_exact_scatter(monkeypatch)
    rng = np.random.default_rng(24)
    X = np.hstack([rng.normal(size=(300, 3)), np.zeros((300, 1))])  # a dead unit
    resp = np.hstack([rng.dirichlet(np.ones(2), size=300), np.zeros((300, 1))])  # empty 3rd
    _, means, covariances = mixture.m_step(X, resp, reg_covar=0.0)
    _, plain_means, plain_covariances = plain_m_step(X, resp, 0.0, "full")
    assert redone == []
    np.testing.assert_array_equal(means[2], 0.0)  # sum gamma x / N_k, as the textbook's
    np.testing.assert_array_equal(covariances[2], 0.0)
    np.testing.assert_array_equal(covariances[:, 3, :], 0.0)
    np.testing.assert_allclose(means, plain_means, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(covariances, plain_covariances, rtol=1e-12, atol=1e-15)


def test_fit_responsibilities_below_the_floor_are_exactly_zero():
    """The E-step used by fit sets far-off responsibilities to 0 (no subnormal numbers reach
    the M-step's products) and leaves the others untouched."""
    means = np.array([[0.0, 0.0], [3.0, 0.0]])
    prec_chol = mixture.compute_precision_cholesky(np.stack([np.eye(2)] * 2))
    X = np.array([[1000.0, 0.0], [1.0, 0.5], [-500.0, 0.0]])
    weights = np.array([0.5, 0.5])
    resp_t, log_prob_norm = mixture._expectation(X, weights, means, prec_chol, "full",
                                                 exponentiate=True)
    log_resp, plain_norm = mixture.e_step(X, weights, means, prec_chol)
    assert resp_t[0, 0] == 0.0 and resp_t[1, 0] == 1.0  # exp(-2995.5) of the other
    assert resp_t[1, 2] == 0.0 and resp_t[0, 2] == 1.0  # exp(-1504.5)
    np.testing.assert_allclose(resp_t[:, 1], np.exp(log_resp[1]), rtol=1e-14)
    np.testing.assert_allclose(log_prob_norm, plain_norm, rtol=1e-14)
    assert log_resp[0, 0] < -2990, "e_step itself keeps the exact log, unfloored"


def test_threads_follow_the_blas_limit_and_settings_are_checked():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        assert _blocks.n_workers() == 1
    with _blocks.settings(workers=3):
        assert _blocks.n_workers() == 3
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        with _blocks.settings(workers=0):
            pass


def test_map_tasks_keeps_the_order_runs_each_task_on_one_thread_and_restores_blas():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    with _blocks.settings(workers=2):
        seen = _blocks.map_tasks(lambda i: (i, _blocks.n_workers(), blas_threads()), range(6))
        assert _blocks.n_workers() == 2, "the caller's thread count is back after the tasks"
    assert [i for i, _, _ in seen] == list(range(6))
    assert all(workers == 1 and set(threads) <= {1} for _, workers, threads in seen)
    assert blas_threads() == before


def test_map_tasks_waits_for_every_task_before_it_raises():
    import threading
    import time

    finished = []
    lock = threading.Lock()

    def work(i):
        if i == 0:
            raise RuntimeError("task 0 failed")
        time.sleep(0.05)
        with lock:
            finished.append(i)

    with _blocks.settings(workers=2), pytest.raises(RuntimeError, match="task 0 failed"):
        _blocks.map_tasks(work, range(4))
    assert sorted(finished) == [1, 2, 3]

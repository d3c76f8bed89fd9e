"""Tests for gae_course.checks: each check passes the solution and explains typical mistakes.

The reference functions below are the chapter 1 exercise solutions, written the way a reader
would write them: plain NumPy, full covariances, one idea per line. They are independent of
``gae_course.mixture`` (which computes the checks' expected answers), so a pass here also
confirms the verified package against a second implementation.

The wrong answers after them are the mistakes readers really make; each test asserts that the
check fails with a message naming the problem.
"""

import numpy as np
import pytest

from gae_course import checks
from gae_course.checks import CheckFailed

# --------------------------------------------------------------------------------------------
# Solutions (chapter 1 exercises)
# --------------------------------------------------------------------------------------------


def log_gaussian(X, mean, covariance):
    """log N(x_i | mean, covariance) for every row of X; shape (n_samples,)."""
    n_features = X.shape[1]
    # covariance = L L^T, so log det(covariance) = 2 sum(log diag L) and the Mahalanobis
    # distance (x - mean)^T covariance^-1 (x - mean) is |L^-1 (x - mean)|^2: no inverse needed.
    L = np.linalg.cholesky(covariance)
    diff = X - mean  # (n, d)
    z = np.linalg.solve(L, diff.T)  # (d, n)
    mahalanobis = np.sum(z**2, axis=0)  # (n,)
    log_det = 2.0 * np.sum(np.log(np.diag(L)))
    return -0.5 * (n_features * np.log(2.0 * np.pi) + log_det + mahalanobis)


def logsumexp(a, axis):
    """log(sum(exp(a), axis)) with the max trick: nothing underflows to log(0)."""
    a_max = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(a_max, axis=axis) + np.log(np.sum(np.exp(a - a_max), axis=axis))


def e_step(X, weights, means, covariances):
    """Log responsibilities (n_samples, n_components) and log p(x_i) (n_samples,)."""
    # log pi_k + log N(x_i | mu_k, Sigma_k), one column per component: (n, K)
    weighted_log_prob = np.column_stack(
        [np.log(w) + log_gaussian(X, m, c) for w, m, c in zip(weights, means, covariances)]
    )
    log_prob_norm = logsumexp(weighted_log_prob, axis=1)  # (n,)
    log_resp = weighted_log_prob - log_prob_norm[:, None]  # (n, K); exp rows sum to 1
    return log_resp, log_prob_norm


def m_step(X, resp, reg_covar):
    """Weights (K,), means (K, d) and covariances (K, d, d) from responsibilities (n, K)."""
    n_samples, n_features = X.shape
    nk = resp.sum(axis=0)  # soft counts N_k, (K,)
    weights = nk / n_samples
    means = resp.T @ X / nk[:, None]  # (K, d)
    covariances = np.empty((len(nk), n_features, n_features))
    for k in range(len(nk)):
        diff = X - means[k]  # (n, d)
        covariances[k] = (resp[:, k, None] * diff).T @ diff / nk[k]
        covariances[k] += reg_covar * np.eye(n_features)  # keeps Sigma_k invertible
    return weights, means, covariances


def log_likelihood(X, weights, means, covariances):
    """Mean log-likelihood per sample, (1/n) sum_i log p(x_i)."""
    _, log_prob_norm = e_step(X, weights, means, covariances)
    return float(np.mean(log_prob_norm))


def class_posterior(class_log_lik, log_prior):
    """log p(c | z) by Bayes' rule, normalised with log-sum-exp over the classes."""
    joint = class_log_lik + log_prior  # (n, C): log pi_c + log p(z | c)
    return joint - logsumexp(joint, axis=1)[:, None]


SOLUTIONS = {
    "class_posterior": class_posterior,
    "log_gaussian": log_gaussian,
    "e_step": e_step,
    "m_step": m_step,
    "log_likelihood": log_likelihood,
}


# --------------------------------------------------------------------------------------------
# Typical mistakes
# --------------------------------------------------------------------------------------------


def _stub(*args):
    raise NotImplementedError


# log_gaussian ------------------------------------------------------------------------------


def lg_no_log_det(X, mean, covariance):
    diff = X - mean
    mahalanobis = np.sum(diff @ np.linalg.inv(covariance) * diff, axis=1)
    return -0.5 * (X.shape[1] * np.log(2 * np.pi) + mahalanobis)


def lg_no_2pi(X, mean, covariance):
    diff = X - mean
    mahalanobis = np.sum(diff @ np.linalg.inv(covariance) * diff, axis=1)
    return -0.5 * (np.linalg.slogdet(covariance)[1] + mahalanobis)


def lg_column(X, mean, covariance):
    return log_gaussian(X, mean, covariance)[:, None]  # (n, 1) instead of (n,)


def lg_log_of_density(X, mean, covariance):
    d = X.shape[1]
    diff = X - mean
    mahalanobis = np.sum(diff @ np.linalg.inv(covariance) * diff, axis=1)
    density = np.exp(-0.5 * mahalanobis) / np.sqrt((2 * np.pi) ** d * np.linalg.det(covariance))
    return np.log(density)  # log(0.0) = -inf far from the mean


def lg_covariance_not_inverse(X, mean, covariance):
    diff = X - mean
    mahalanobis = np.sum(diff @ covariance * diff, axis=1)
    return -0.5 * (X.shape[1] * np.log(2 * np.pi) + np.linalg.slogdet(covariance)[1] + mahalanobis)


# e_step ------------------------------------------------------------------------------------


def _weighted_log_prob(X, weights, means, covariances):
    return np.column_stack(
        [np.log(w) + log_gaussian(X, m, c) for w, m, c in zip(weights, means, covariances)]
    )


def es_not_normalised(X, weights, means, covariances):
    weighted = _weighted_log_prob(X, weights, means, covariances)
    return weighted, logsumexp(weighted, axis=1)  # log_resp left unnormalised


def es_naive_logsumexp(X, weights, means, covariances):
    weighted = _weighted_log_prob(X, weights, means, covariances)
    log_prob_norm = np.log(np.sum(np.exp(weighted), axis=1))  # exp underflows to 0
    return weighted - log_prob_norm[:, None], log_prob_norm


def es_no_weights(X, weights, means, covariances):
    log_density = np.column_stack([log_gaussian(X, m, c) for m, c in zip(means, covariances)])
    log_prob_norm = logsumexp(log_density, axis=1)
    return log_density - log_prob_norm[:, None], log_prob_norm


def es_keepdims(X, weights, means, covariances):
    log_resp, log_prob_norm = e_step(X, weights, means, covariances)
    return log_resp, log_prob_norm[:, None]  # (n, 1)


def es_only_log_resp(X, weights, means, covariances):
    return e_step(X, weights, means, covariances)[0]


# m_step ------------------------------------------------------------------------------------


def ms_divide_by_n(X, resp, reg_covar):
    weights, means, _ = m_step(X, resp, reg_covar)
    n, d = X.shape
    covariances = np.stack(
        [(resp[:, k, None] * (X - means[k])).T @ (X - means[k]) / n for k in range(len(means))]
    )
    return weights, means, covariances + reg_covar * np.eye(d)


def ms_no_reg_covar(X, resp, reg_covar):
    return m_step(X, resp, 0.0)


def ms_unweighted_means(X, resp, reg_covar):
    weights, _, covariances = m_step(X, resp, reg_covar)
    means = np.tile(X.mean(axis=0), (resp.shape[1], 1))
    return weights, means, covariances


def ms_weights_are_counts(X, resp, reg_covar):
    _, means, covariances = m_step(X, resp, reg_covar)
    return resp.sum(axis=0), means, covariances


# log_likelihood ----------------------------------------------------------------------------


def ll_sum(X, weights, means, covariances):
    return float(np.sum(e_step(X, weights, means, covariances)[1]))


def ll_naive(X, weights, means, covariances):
    weighted = _weighted_log_prob(X, weights, means, covariances)
    return float(np.mean(np.log(np.sum(np.exp(weighted), axis=1))))


def ll_per_sample(X, weights, means, covariances):
    return e_step(X, weights, means, covariances)[1]


def ll_max(X, weights, means, covariances):
    return float(np.mean(np.max(_weighted_log_prob(X, weights, means, covariances), axis=1)))


# class_posterior -----------------------------------------------------------------------------


def cp_not_normalised(class_log_lik, log_prior):
    return class_log_lik + log_prior


def cp_no_prior(class_log_lik, log_prior):
    return class_log_lik - logsumexp(class_log_lik, axis=1)[:, None]


def cp_naive(class_log_lik, log_prior):
    joint = np.exp(class_log_lik + log_prior)
    return np.log(joint / joint.sum(axis=1, keepdims=True))


def cp_probabilities(class_log_lik, log_prior):
    joint = class_log_lik + log_prior
    return np.exp(joint - logsumexp(joint, axis=1)[:, None])


MISTAKES = [
    # (check, wrong function, regex the message must match)
    ("log_gaussian", lg_no_log_det, r"log-det term -1/2 log det\(covariance\) is missing"),
    ("log_gaussian", lg_no_2pi, r"-d/2 log\(2π\) is missing"),
    ("log_gaussian", lg_column, r"expected shape \(5,\), got shape \(5, 1\)(.|\n)*drop the axis"),
    ("log_gaussian", lg_log_of_density, r"underflows to 0\.0(.|\n)*log space"),
    ("log_gaussian", lg_covariance_not_inverse, r"inverse covariance"),
    ("e_step", es_not_normalised, r"normalise with log-sum-exp: subtract logsumexp over comp"),
    ("e_step", es_naive_logsumexp, r"case 4 of 4(.|\n)*max trick in log-sum-exp"),
    ("e_step", es_no_weights, r"np\.log\(weights\)"),
    ("e_step", es_keepdims, r"log_prob_norm has the wrong shape(.|\n)*drop the axis of length 1"),
    ("e_step", es_only_log_resp, r"should return 2 values, \(log_resp, log_prob_norm\)"),
    ("m_step", ms_divide_by_n, r"covariances(.|\n)*divide by N_k \(the soft counts\), not n"),
    ("m_step", ms_no_reg_covar, r"add reg_covar to the diagonal"),
    ("m_step", ms_unweighted_means, r"means are not weighted by the responsibilities"),
    ("m_step", ms_weights_are_counts, r"weights = N_k / n"),
    ("log_likelihood", ll_sum, r"return the average over samples \(np\.mean\), not the sum"),
    ("log_likelihood", ll_naive, r"case 4 of 4(.|\n)*max trick"),
    ("log_likelihood", ll_per_sample, r"expected a single number(.|\n)*return their average"),
    ("log_likelihood", ll_max, r"logsumexp over axis=1, not max"),
    ("class_posterior", cp_not_normalised, r"normalise: subtract logsumexp over the classes"),
    ("class_posterior", cp_no_prior, r"add log_prior before normalising"),
    ("class_posterior", cp_naive, r"case 4 of 4(.|\n)*max trick"),
    ("class_posterior", cp_probabilities, r"return log-probabilities, not probabilities"),
]


def _check(name):
    return getattr(checks, name)


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_check_passes_the_solution(name, capsys):
    assert _check(name)(SOLUTIONS[name]) is True
    out = capsys.readouterr().out
    assert out == f"{name}: all 4 cases pass ✓\n"


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_stub_gets_a_friendly_message(name):
    with pytest.raises(CheckFailed) as info:
        _check(name)(_stub)
    assert str(info.value) == (
        f"{name} is not implemented yet: replace the `raise NotImplementedError` with your "
        "code, then run this check again."
    )
    # no chained NotImplementedError traceback above the message
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(
    "name, wrong, match", MISTAKES, ids=[f"{name}-{wrong.__name__}" for name, wrong, _ in MISTAKES]
)
def test_check_explains_a_typical_mistake(name, wrong, match):
    with pytest.raises(CheckFailed, match=match):
        _check(name)(wrong)


def test_every_check_is_tested_on_at_least_two_mistakes():
    for name in SOLUTIONS:
        assert sum(check == name for check, _, _ in MISTAKES) >= 2


def test_message_names_quantity_expected_shape_and_first_difference():
    with pytest.raises(CheckFailed) as info:
        checks.m_step(ms_divide_by_n)
    message = str(info.value)
    assert message.startswith("m_step is wrong on case 1 of 4: two components in 2-D")
    assert "inputs: X (12, 2), resp (12, 2), reg_covar=1e-06" in message
    assert "covariances has wrong values: expected shape (2, 2, 2)" in message
    assert "First difference at covariances[0, 0, 0]: got " in message
    assert "checks.case_inputs('m_step', 1)" in message
    # one hint, the specific one ("not n"), not also the generic "off by a factor"
    assert message.count("HINT:") == 1
    assert "HINT: divide by N_k (the soft counts), not n" in message


def test_naive_logsumexp_message_reports_the_nans_and_warnings():
    with pytest.raises(CheckFailed) as info:
        checks.e_step(es_naive_logsumexp)
    message = str(info.value)
    assert "points far from every mean" in message
    # log p(x_0) underflowed to -inf, so log_resp = weighted_log_prob - (-inf) = +inf
    assert "First difference at log_resp[0, 0]: got inf, expected -0.470004" in message
    assert "NaN or infinite where a finite number is expected" in message
    assert "Your function also warned: RuntimeWarning: divide by zero encountered in log" in message


def test_compare_refuses_a_column_for_a_vector():
    # The house-style example: a broadcasting abs(a - b) < eps would let this pass.
    expected = r"x has the wrong shape: expected shape \(3,\), got shape \(3, 1\)"
    with pytest.raises(CheckFailed, match=expected):
        checks._compare("x", np.zeros((3, 1)), np.zeros(3))


def test_compare_checks_type_dtype_and_values():
    checks._compare("x", np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-9]))
    checks._compare("s", 0.5, 0.5)
    with pytest.raises(CheckFailed, match=r"x should be a NumPy array of shape \(2,\), got a list"):
        checks._compare("x", [1.0, 2.0], np.array([1.0, 2.0]))
    with pytest.raises(CheckFailed, match=r"got None \(did you forget the `return` statement\?\)"):
        checks._compare("x", None, np.array([1.0, 2.0]))
    with pytest.raises(CheckFailed, match=r"x has dtype int64, expected floating point"):
        checks._compare("x", np.array([1, 2]), np.array([1.0, 2.0]))
    with pytest.raises(CheckFailed, match=r"First difference at x\[1, 0\]: got 5, expected 3"):
        checks._compare("x", np.array([[1.0], [5.0]]), np.array([[1.0], [3.0]]))
    with pytest.raises(CheckFailed, match=r"s has the wrong value: got 1, expected 0\.5"):
        checks._compare("s", 1.0, 0.5)
    with pytest.raises(CheckFailed, match="HINT: off by two"):
        hints = [(np.array([2.0]), "off by two")]
        checks._compare("x", np.array([2.0]), np.array([1.0]), hints=hints)


def test_an_error_in_the_students_code_names_the_line():
    def broken(X, mean, covariance):
        diff = X - mean
        return diff @ np.ones(7)  # shapes do not match

    with pytest.raises(CheckFailed) as info:
        checks.log_gaussian(broken)
    message = str(info.value)
    assert message.startswith("log_gaussian raised ValueError")
    assert "on case 'standard normal in 2-D'" in message
    assert "return diff @ np.ones(7)" in message


def test_changing_an_input_in_place_is_reported():
    def in_place(X, mean, covariance):
        X -= mean
        return log_gaussian(X, np.zeros_like(mean), covariance)

    with pytest.raises(CheckFailed, match=r"changed its argument `X` in place"):
        checks.log_gaussian(in_place)


def test_passing_the_result_instead_of_the_function():
    with pytest.raises(CheckFailed, match=r"checks\.e_step\(e_step\)"):
        checks.e_step(np.zeros(3))


def test_case_inputs_are_copies_of_the_cases():
    inputs = checks.case_inputs("e_step", 4)
    assert list(inputs) == ["X", "weights", "means", "covariances"]
    inputs["X"][:] = 0.0
    assert checks.case_inputs("e_step", 4)["X"].any()
    with pytest.raises(ValueError, match="cases 1 to 4"):
        checks.case_inputs("e_step", 5)


def test_cases_are_small_and_include_an_underflowing_point():
    for name in SOLUTIONS:
        for number in range(1, 5):
            inputs = checks.case_inputs(name, number)
            first = inputs["X"] if "X" in inputs else inputs["class_log_lik"]
            n, d = first.shape
            assert n <= 50 and d <= (10 if name == "class_posterior" else 3)
    far = checks.case_inputs("e_step", 4)
    with np.errstate(under="ignore"):
        densities = np.exp(_weighted_log_prob(*far.values()))
    assert (densities.sum(axis=1) == 0.0).any()  # naive exp underflows on this case


# --------------------------------------------------------------------------------------------
# Chapter 2: the Gaussian KL, the ELBO estimate and the IWAE bound (torch)
# --------------------------------------------------------------------------------------------
# The chapter 2 cases have no X, so they get their own tests beside the ones above.

import math  # noqa: E402

import torch  # noqa: E402


def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p):
    """KL(q || p) of diagonal Gaussians, summed over the last axis; shape (B,)."""
    var_ratio = torch.exp(logvar_q - logvar_p)  # sigma_q^2 / sigma_p^2, in log space
    return 0.5 * torch.sum(
        var_ratio + (mu_q - mu_p) ** 2 / torch.exp(logvar_p) - 1.0 - logvar_q + logvar_p, dim=-1
    )


def elbo_estimate(log_lik, mu, logvar):
    """mean_k log p(x | z_k) - KL(q || N(0, I)); log_lik (K, B), mu, logvar (B, L) -> (B,)."""
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - torch.exp(logvar), dim=-1)
    return log_lik.mean(dim=0) - kl


def iwae_bound(log_weights):
    """log-mean-exp over the K samples (dim 0); (K, B) -> (B,)."""
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])


CH2_SOLUTIONS = {"gaussian_kl": gaussian_kl, "elbo_estimate": elbo_estimate, "iwae_bound": iwae_bound}


def kl_reversed(mu_q, logvar_q, mu_p, logvar_p):
    return gaussian_kl(mu_p, logvar_p, mu_q, logvar_q)


def kl_no_half(mu_q, logvar_q, mu_p, logvar_p):
    return 2 * gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)


def kl_not_summed(mu_q, logvar_q, mu_p, logvar_p):
    return 0.5 * (torch.exp(logvar_q - logvar_p) + (mu_q - mu_p) ** 2 / torch.exp(logvar_p)
                  - 1.0 - logvar_q + logvar_p)  # (B, L)


def kl_naive_ratio(mu_q, logvar_q, mu_p, logvar_p):
    var_q, var_p = torch.exp(logvar_q), torch.exp(logvar_p)  # inf for logvar = 750
    return 0.5 * torch.sum(var_q / var_p + (mu_q - mu_p) ** 2 / var_p - 1 - logvar_q + logvar_p, -1)


def kl_std_as_variance(mu_q, logvar_q, mu_p, logvar_p):
    return gaussian_kl(mu_q, 2 * logvar_q, mu_p, 2 * logvar_p)


def kl_float32(mu_q, logvar_q, mu_p, logvar_p):
    return gaussian_kl(mu_q, logvar_q, mu_p, logvar_p).float()


def ee_sum_over_samples(log_lik, mu, logvar):
    return elbo_estimate(log_lik, mu, logvar) + log_lik.sum(0) - log_lik.mean(0)


def ee_plus_kl(log_lik, mu, logvar):
    return 2 * log_lik.mean(0) - elbo_estimate(log_lik, mu, logvar)


def ee_no_kl(log_lik, mu, logvar):
    return log_lik.mean(0)


def ee_kl_not_summed(log_lik, mu, logvar):
    return log_lik.mean(0)[:, None] + 0.5 * (1 + logvar - mu**2 - torch.exp(logvar))


def iw_mean_of_logs(log_weights):
    return log_weights.mean(0)


def iw_no_log_k(log_weights):
    return torch.logsumexp(log_weights, dim=0)


def iw_naive(log_weights):
    return torch.log(torch.exp(log_weights).mean(0))


def iw_wrong_axis(log_weights):
    return torch.logsumexp(log_weights, dim=1) - math.log(log_weights.shape[1])


CH2_MISTAKES = [
    ("gaussian_kl", kl_reversed, r"this is KL\(p \|\| q\)"),
    ("gaussian_kl", kl_no_half, r"factor 1/2 in front of the sum is missing"),
    ("gaussian_kl", kl_not_summed, r"expected shape \(3,\), got shape \(3, 2\)(.|\n)*sum over the latent"),
    ("gaussian_kl", kl_naive_ratio, r"case 4 of 4(.|\n)*torch\.exp\(logvar_q - logvar_p\)"),
    ("gaussian_kl", kl_std_as_variance, r"not the standard deviation"),
    ("gaussian_kl", kl_float32, r"kl has dtype torch\.float32, expected torch\.float64"),
    ("elbo_estimate", ee_sum_over_samples, r"not sum: the ELBO is an expectation"),
    ("elbo_estimate", ee_plus_kl, r"subtract the KL"),
    ("elbo_estimate", ee_no_kl, r"KL\(q \|\| N\(0, I\)\) term is missing"),
    ("elbo_estimate", ee_kl_not_summed, r"sum the KL over the latent coordinates"),
    ("iwae_bound", iw_mean_of_logs, r"the K-sample ELBO(.|\n)*log-mean-exp"),
    ("iwae_bound", iw_no_log_k, r"subtract log K"),
    ("iwae_bound", iw_naive, r"case 4 of 4(.|\n)*underflows to 0\.0"),
    ("iwae_bound", iw_wrong_axis, r"reduce over the samples, axis 0"),
]


@pytest.mark.parametrize("name", sorted(CH2_SOLUTIONS))
def test_chapter_2_check_passes_the_solution(name, capsys):
    assert _check(name)(CH2_SOLUTIONS[name]) is True
    assert capsys.readouterr().out == f"{name}: all 4 cases pass ✓\n"


@pytest.mark.parametrize("name", sorted(CH2_SOLUTIONS))
def test_chapter_2_stub_gets_a_friendly_message(name):
    with pytest.raises(CheckFailed, match=rf"^{name} is not implemented yet: replace the"):
        _check(name)(_stub)


@pytest.mark.parametrize(
    "name, wrong, match", CH2_MISTAKES, ids=[f"{n}-{w.__name__}" for n, w, _ in CH2_MISTAKES]
)
def test_chapter_2_check_explains_a_typical_mistake(name, wrong, match):
    with pytest.raises(CheckFailed, match=match):
        _check(name)(wrong)


def test_every_chapter_2_check_is_tested_on_at_least_two_mistakes():
    for name in CH2_SOLUTIONS:
        assert sum(check == name for check, _, _ in CH2_MISTAKES) >= 2


def test_chapter_2_checks_catch_in_place_edits_and_name_the_line():
    def in_place(mu_q, logvar_q, mu_p, logvar_p):
        mu_q -= mu_p
        return gaussian_kl(mu_q, logvar_q, torch.zeros_like(mu_p), logvar_p)

    with pytest.raises(CheckFailed, match=r"changed its argument `mu_q` in place"):
        checks.gaussian_kl(in_place)

    def broken(log_weights):
        return log_weights @ torch.ones(7, dtype=log_weights.dtype)

    with pytest.raises(CheckFailed) as info:
        checks.iwae_bound(broken)
    assert "return log_weights @ torch.ones(7" in str(info.value)
    assert "with inputs log_weights (5, 3)" in str(info.value)


def test_chapter_2_cases_are_small_numpy_and_one_is_numerically_hard():
    for name in CH2_SOLUTIONS:
        for number in range(1, 5):
            inputs = checks.case_inputs(name, number)
            assert all(isinstance(v, np.ndarray) and v.size <= 60 for v in inputs.values())
    with np.errstate(over="ignore", under="ignore"):
        assert np.isinf(np.exp(checks.case_inputs("gaussian_kl", 4)["logvar_q"])).all()
        assert (np.exp(checks.case_inputs("iwae_bound", 4)["log_weights"]) == 0).all()


# --------------------------------------------------------------------------------------------
# Chapter 3: gradient estimators (torch). Solutions as a reader writes them, then mistakes.
# --------------------------------------------------------------------------------------------


def reparam_gaussian(f, mu, log_sigma, eps):
    """(value (B,), surrogate ()) for the pathwise estimator; eps (K, B, D)."""
    import torch

    z = mu + torch.exp(log_sigma) * eps  # (K, B, D)
    mean_f = f(z).mean(0)  # (B,)
    return mean_f.detach(), mean_f.sum()


def score_function_gaussian(f, mu, log_sigma, eps):
    """(value (B,), surrogate ()) for REINFORCE with the Gaussian's own samples."""
    import math

    import torch

    z = (mu + torch.exp(log_sigma) * eps).detach()  # no path from the parameters to z
    log_q = (-0.5 * ((z - mu) / torch.exp(log_sigma)) ** 2 - log_sigma
             - 0.5 * math.log(2 * math.pi)).sum(-1)  # (K, B)
    fz = f(z).detach()
    return fz.mean(0), (fz * log_q).mean(0).sum()


def leave_one_out_baseline(f_values):
    """b[k] = mean of f over the other K - 1 samples; shape (K, B)."""
    n_samples = f_values.shape[0]
    return (f_values.sum(0, keepdim=True) - f_values) / (n_samples - 1)


CH3_SOLUTIONS = {
    "reparam_gaussian": reparam_gaussian,
    "score_function_gaussian": score_function_gaussian,
    "leave_one_out_baseline": leave_one_out_baseline,
}


def rp_log_sigma_as_sigma(f, mu, log_sigma, eps):
    mean_f = f(mu + log_sigma * eps).mean(0)
    return mean_f.detach(), mean_f.sum()


def rp_log_variance(f, mu, log_sigma, eps):
    import torch

    mean_f = f(mu + torch.exp(0.5 * log_sigma) * eps).mean(0)
    return mean_f.detach(), mean_f.sum()


def rp_sum_over_samples(f, mu, log_sigma, eps):
    import torch

    total = f(mu + torch.exp(log_sigma) * eps).sum(0)
    return total.detach() / eps.shape[0], total.sum()


def rp_detached_z(f, mu, log_sigma, eps):
    import torch

    mean_f = f(mu + torch.exp(log_sigma) * eps).mean(0)
    return mean_f.detach(), mean_f.sum().detach().requires_grad_(True)


def rp_value_not_detached(f, mu, log_sigma, eps):
    import torch

    mean_f = f(mu + torch.exp(log_sigma) * eps).mean(0)
    return mean_f, mean_f.sum()


def rp_surrogate_per_problem(f, mu, log_sigma, eps):
    import torch

    mean_f = f(mu + torch.exp(log_sigma) * eps).mean(0)
    return mean_f.detach(), mean_f


def sf_z_not_detached(f, mu, log_sigma, eps):
    import math

    import torch

    z = mu + torch.exp(log_sigma) * eps
    log_q = (-0.5 * ((z.detach() - mu) / torch.exp(log_sigma)) ** 2 - log_sigma
             - 0.5 * math.log(2 * math.pi)).sum(-1)
    fz = f(z)
    return fz.mean(0).detach(), (fz + fz.detach() * log_q).mean(0).sum()


def sf_no_normaliser(f, mu, log_sigma, eps):
    import torch

    z = (mu + torch.exp(log_sigma) * eps).detach()
    log_q = (-0.5 * ((z - mu) / torch.exp(log_sigma)) ** 2).sum(-1)  # forgot -log sigma
    fz = f(z)
    return fz.mean(0), (fz * log_q).mean(0).sum()


def sf_mean_over_dimensions(f, mu, log_sigma, eps):
    import torch

    z = (mu + torch.exp(log_sigma) * eps).detach()
    log_q = (-0.5 * ((z - mu) / torch.exp(log_sigma)) ** 2 - log_sigma).mean(-1)
    fz = f(z)
    return fz.mean(0), (fz * log_q).mean(0).sum()


def sf_without_log_prob(f, mu, log_sigma, eps):
    import torch

    z = (mu + torch.exp(log_sigma) * eps).detach()
    fz = f(z)
    return fz.mean(0), fz.mean(0).sum()  # no path to the parameters at all


def sf_sum_over_samples(f, mu, log_sigma, eps):
    import torch

    z = (mu + torch.exp(log_sigma) * eps).detach()
    log_q = (-0.5 * ((z - mu) / torch.exp(log_sigma)) ** 2 - log_sigma).sum(-1)
    fz = f(z)
    return fz.mean(0), (fz * log_q).sum(0).sum()


def loo_includes_own_sample(f_values):
    return f_values.mean(0, keepdim=True).expand_as(f_values).clone()


def loo_divides_by_k(f_values):
    return (f_values.sum(0, keepdim=True) - f_values) / f_values.shape[0]


def loo_one_per_problem(f_values):
    return f_values.mean(0)


def loo_numpy(f_values):
    f = f_values.detach().numpy()
    return (f.sum(0, keepdims=True) - f) / (len(f) - 1)


CH3_MISTAKES = [
    ("reparam_gaussian", rp_log_sigma_as_sigma,
     r"value has wrong(.|\n)*sigma = exp\(log_sigma\)"),
    ("reparam_gaussian", rp_log_variance, r"not log σ² \(a log-variance\)"),
    ("reparam_gaussian", rp_sum_over_samples, r"case 2 of 4(.|\n)*average over the K samples"),
    ("reparam_gaussian", rp_detached_z, r"grad_mu has wrong values(.|\n)*gradient is zero"),
    ("reparam_gaussian", rp_value_not_detached, r"value still carries a gradient path"),
    ("reparam_gaussian", rp_surrogate_per_problem,
     r"single number \(a 0-d tensor\)(.|\n)*sum the per-problem"),
    ("score_function_gaussian", sf_z_not_detached, r"detach the samples"),
    ("score_function_gaussian", sf_no_normaliser, r"grad_log_sigma(.|\n)*-log σ term"),
    ("score_function_gaussian", sf_mean_over_dimensions, r"sum the log-density over the D"),
    ("score_function_gaussian", sf_without_log_prob, r"surrogate has no gradient path"),
    ("score_function_gaussian", sf_sum_over_samples,
     r"case 2 of 4(.|\n)*average over the K samples"),
    ("leave_one_out_baseline", loo_includes_own_sample, r"leave sample k out(.|\n)*biased"),
    ("leave_one_out_baseline", loo_divides_by_k, r"divide by K - 1"),
    ("leave_one_out_baseline", loo_one_per_problem, r"wrong shape(.|\n)*one baseline per sample"),
    ("leave_one_out_baseline", loo_numpy, r"should be a torch tensor(.|\n)*stay in torch"),
]


@pytest.mark.parametrize("name", sorted(CH3_SOLUTIONS))
def test_chapter_3_check_passes_the_solution(name, capsys):
    assert _check(name)(CH3_SOLUTIONS[name]) is True
    assert capsys.readouterr().out == f"{name}: all 4 cases pass ✓\n"


@pytest.mark.parametrize("name", sorted(CH3_SOLUTIONS))
def test_chapter_3_check_passes_the_package_version(name, capsys):
    from gae_course import estimators

    assert _check(name)(getattr(estimators, name)) is True


@pytest.mark.parametrize("name", sorted(CH3_SOLUTIONS))
def test_chapter_3_stub_gets_a_friendly_message(name):
    with pytest.raises(CheckFailed) as info:
        _check(name)(_stub)
    assert str(info.value) == (
        f"{name} is not implemented yet: replace the `raise NotImplementedError` with your "
        "code, then run this check again."
    )
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(
    "name, wrong, match", CH3_MISTAKES,
    ids=[f"{name}-{wrong.__name__}" for name, wrong, _ in CH3_MISTAKES],
)
def test_chapter_3_check_explains_a_typical_mistake(name, wrong, match):
    with pytest.raises(CheckFailed, match=match) as info:
        _check(name)(wrong)
    message = str(info.value)
    assert message.count("HINT:") <= 1
    assert f"checks.case_inputs('{name}', " in message


def test_every_chapter_3_check_is_tested_on_at_least_two_mistakes():
    for name in CH3_SOLUTIONS:
        assert sum(check == name for check, _, _ in CH3_MISTAKES) >= 2


def test_chapter_3_message_names_quantity_shape_and_first_difference():
    with pytest.raises(CheckFailed) as info:
        checks.score_function_gaussian(sf_no_normaliser)
    message = str(info.value)
    assert message.startswith("score_function_gaussian is wrong on case 1 of 4: one sample")
    assert "inputs: f=sum_d z_d², mu (1, 2), log_sigma (1, 2), eps (1, 1, 2)" in message
    assert "grad_log_sigma has wrong values: expected shape (1, 2)" in message
    assert "First difference at grad_log_sigma[0, 0]: got " in message


def test_chapter_3_case_inputs_are_fresh_leaf_tensors():
    first = checks.case_inputs("reparam_gaussian", 2)
    assert list(first) == ["f", "mu", "log_sigma", "eps"]
    assert first["mu"].requires_grad and first["mu"].is_leaf and not first["eps"].requires_grad
    value, surrogate = reparam_gaussian(*first.values())
    surrogate.backward()
    again = checks.case_inputs("reparam_gaussian", 2)
    assert again["mu"].grad is None and again["mu"] is not first["mu"]
    assert tuple(checks.case_inputs("leave_one_out_baseline", 3)["f_values"].shape) == (5, 3)


def test_chapter_3_checks_catch_in_place_edits_and_name_the_line():
    def in_place(f, mu, log_sigma, eps):
        eps *= 2.0
        return reparam_gaussian(f, mu, log_sigma, eps)

    with pytest.raises(CheckFailed, match=r"changed its argument `eps` in place"):
        checks.reparam_gaussian(in_place)

    def broken(f_values):
        return f_values.sum(0) @ f_values.sum(1)  # shapes do not match

    with pytest.raises(CheckFailed) as info:
        checks.leave_one_out_baseline(broken)
    assert info.value.args[0].startswith("leave_one_out_baseline raised RuntimeError")
    assert "return f_values.sum(0) @ f_values.sum(1)" in str(info.value)


# --------------------------------------------------------------------------------------------
# Chapter 4: the VAE's negative ELBO (torch)
# --------------------------------------------------------------------------------------------


def vae_negative_elbo(x, mu, logvar, eps, decoder):
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = decoder(z)
    recon = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - torch.exp(logvar), dim=-1)
    return recon, kl


def _vae_with(z_of, recon_of=None, kl_of=None):
    def wrong(x, mu, logvar, eps, decoder):
        logits = decoder(z_of(mu, logvar, eps))
        per_pixel = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
        recon = per_pixel.sum(-1) if recon_of is None else recon_of(per_pixel, logits, x)
        kl = -0.5 * torch.sum(1 + logvar - mu**2 - torch.exp(logvar), dim=-1)
        return recon, (kl if kl_of is None else kl_of(kl))
    return wrong


def _from_probabilities(per_pixel, logits, x):
    p = torch.sigmoid(logits)
    return -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(-1)


CH4_MISTAKES = [
    (_vae_with(lambda m, lv, e: m + torch.exp(lv) * e), r"exp\(logvar\) is the variance"),
    (_vae_with(lambda m, lv, e: m + lv * e), r"logvar is a log-variance"),
    (_vae_with(lambda m, lv, e: m), r"the noise is missing"),
    (_vae_with(lambda m, lv, e: m + torch.exp(0.5 * lv) * e, lambda pp, l, x: pp.mean(-1)),
     r"a mean divides the likelihood by D"),
    (_vae_with(lambda m, lv, e: m + torch.exp(0.5 * lv) * e, lambda pp, l, x: -pp.sum(-1)),
     r"return the \*negative\* log-likelihood"),
    (_vae_with(lambda m, lv, e: m + torch.exp(0.5 * lv) * e, _from_probabilities),
     r"case 3 of 3(.|\n)*from the logits"),
    (_vae_with(lambda m, lv, e: m + torch.exp(0.5 * lv) * e, None, lambda kl: -kl), r"a KL is never negative"),
    (_vae_with(lambda m, lv, e: m + torch.exp(0.5 * lv) * e, lambda pp, l, x: pp.sum()),
     r"one number per image"),
]


def test_chapter_4_check_passes_the_solution(capsys):
    assert checks.vae_negative_elbo(vae_negative_elbo) is True
    assert capsys.readouterr().out == "vae_negative_elbo: all 3 cases pass ✓\n"


def test_chapter_4_stub_gets_a_friendly_message():
    with pytest.raises(CheckFailed, match=r"^vae_negative_elbo is not implemented yet"):
        checks.vae_negative_elbo(_stub)


@pytest.mark.parametrize("wrong, match", CH4_MISTAKES, ids=[str(i) for i in range(len(CH4_MISTAKES))])
def test_chapter_4_check_explains_a_typical_mistake(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        checks.vae_negative_elbo(wrong)


def test_chapter_4_check_wants_two_values_and_float64():
    with pytest.raises(CheckFailed, match=r"should return 2 values, \(recon, kl\)"):
        checks.vae_negative_elbo(lambda *args: vae_negative_elbo(*args)[0])
    with pytest.raises(CheckFailed, match=r"recon has dtype torch\.float32"):
        checks.vae_negative_elbo(lambda *args: tuple(t.float() for t in vae_negative_elbo(*args)))


# --------------------------------------------------------------------------------------------
# Chapter 6: the Fréchet distance (NumPy)
# --------------------------------------------------------------------------------------------


def _psd_root(m):
    values, vectors = np.linalg.eigh(m)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu_a, cov_a, mu_b, cov_b):
    root_a = _psd_root(cov_a)
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0.0, None)).sum()
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def fd_no_mean(mu_a, cov_a, mu_b, cov_b):
    return frechet_distance(mu_a, cov_a, mu_a, cov_b)


def fd_no_two(mu_a, cov_a, mu_b, cov_b):
    full = frechet_distance(mu_a, cov_a, mu_b, cov_b)
    mean_term = np.sum((mu_a - mu_b) ** 2)
    cross = full - mean_term - np.trace(cov_a) - np.trace(cov_b)
    return float(full - cross / 2)


def fd_elementwise(mu_a, cov_a, mu_b, cov_b):
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b) - 2 * np.trace(np.sqrt(cov_a @ cov_b)))


def fd_product_of_roots(mu_a, cov_a, mu_b, cov_b):
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b)
                 - 2 * np.trace(_psd_root(cov_a) @ _psd_root(cov_b)))


def fd_not_squared(mu_a, cov_a, mu_b, cov_b):
    return float(np.sqrt(frechet_distance(mu_a, cov_a, mu_b, cov_b)))


def fd_complex(mu_a, cov_a, mu_b, cov_b):
    return complex(frechet_distance(mu_a, cov_a, mu_b, cov_b))


CH6_MISTAKES = [
    (fd_no_mean, r"add the mean term"),
    (fd_no_two, r"the factor 2\s+is missing"),
    (fd_elementwise, r"np\.sqrt is elementwise"),
    (fd_product_of_roots, r"unless the two matrices\s+commute"),
    (fd_not_squared, r"return the squared distance"),
    (fd_complex, r"the result is complex"),
]


def test_chapter_6_check_passes_the_solution(capsys):
    assert checks.frechet_distance(frechet_distance) is True
    assert capsys.readouterr().out == "frechet_distance: all 3 cases pass ✓\n"


def test_chapter_6_stub_gets_a_friendly_message():
    with pytest.raises(CheckFailed, match=r"^frechet_distance is not implemented yet"):
        checks.frechet_distance(_stub)


@pytest.mark.parametrize("wrong, match", CH6_MISTAKES, ids=[w.__name__ for w, _ in CH6_MISTAKES])
def test_chapter_6_check_explains_a_typical_mistake(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        checks.frechet_distance(wrong)

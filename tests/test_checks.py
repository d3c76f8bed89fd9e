"""Tests for gae_course.checks: every check passes its solution and explains typical mistakes.

The solutions and wrong answers live in ``tests/check_cases/`` (one module per chapter); the
first tests below run all of them from one table. The tests after them pin the machinery (the
comparison, the messages, the case registry) and what is particular to one chapter.
"""

import numpy as np
import pytest
import torch

from check_cases import MISTAKES, SOLUTIONS
from check_cases.ch01_mixture import (
    _weighted_log_prob,
    es_naive_logsumexp,
    log_gaussian,
    ms_divide_by_n,
)
from check_cases.ch02_elbo import gaussian_kl
from check_cases.ch03_estimators import reparam_gaussian, sf_no_normaliser
from check_cases.ch04_vae import vae_negative_elbo
from gae_course import checks
from gae_course.checks import CheckFailed

# Checks whose solutions also live in the package under the same name (chapter 3's estimators).
PACKAGE_VERSIONS = {"reparam_gaussian", "score_function_gaussian", "leave_one_out_baseline"}


def _stub(*args):
    raise NotImplementedError


def _check(name):
    return getattr(checks, name)


# --------------------------------------------------------------------------------------------
# Every exercise, from one table
# --------------------------------------------------------------------------------------------


def test_every_public_check_has_a_solution_and_two_mistakes():
    public = set(checks.__all__) - {"CheckFailed", "case_inputs"}
    assert public == set(SOLUTIONS)
    for name in SOLUTIONS:
        assert sum(check == name for check, _, _ in MISTAKES) >= 2, name


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_check_passes_the_solution_prints_one_line_and_returns_none(name, capsys):
    assert _check(name)(SOLUTIONS[name]) is None  # None: no `Out: True` under the exercise
    out = capsys.readouterr().out
    assert out.startswith(f"{name}: all ") and out.endswith(" cases pass ✓\n")
    assert out.count("\n") == 1


@pytest.mark.parametrize("name", sorted(PACKAGE_VERSIONS))
def test_check_passes_the_package_version(name, capsys):
    from gae_course import estimators

    assert _check(name)(getattr(estimators, name)) is None


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
    "name, wrong, match", MISTAKES, ids=[f"{name}-{i}" for i, (name, _, _) in enumerate(MISTAKES)]
)
def test_check_explains_a_typical_mistake(name, wrong, match):
    with pytest.raises(CheckFailed, match=match) as info:
        _check(name)(wrong)
    message = str(info.value)
    assert message.count("HINT:") <= 1  # one hint, the specific one
    if "is wrong on case" in message:  # a wrong value (not a crash or a wrong type): say how to debug
        assert f"checks.case_inputs('{name}', " in message


# --------------------------------------------------------------------------------------------
# The machinery: comparison, messages, case registry (chapter 1 cases as examples)
# --------------------------------------------------------------------------------------------


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
    for name in ("log_gaussian", "e_step", "m_step", "class_posterior"):
        for number in range(1, 5):
            inputs = checks.case_inputs(name, number)
            first = inputs["X"] if "X" in inputs else inputs["class_log_lik"]
            n, d = first.shape
            assert n <= 50 and d <= (10 if name == "class_posterior" else 3)
    far = checks.case_inputs("e_step", 4)
    with np.errstate(under="ignore"):
        densities = np.exp(_weighted_log_prob(*far.values()))
    assert (densities.sum(axis=1) == 0.0).any()  # naive exp underflows on this case
    high = checks.case_inputs("log_gaussian", 5)  # Cholesky enforced: det underflows to 0.0
    assert high["X"].shape[1] == 300 and np.linalg.det(high["covariance"]) == 0.0


# --------------------------------------------------------------------------------------------
# Chapter 2: torch functions on NumPy cases
# --------------------------------------------------------------------------------------------


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
    for name in ("gaussian_kl", "elbo_estimate", "iwae_bound"):
        for number in range(1, 5):
            inputs = checks.case_inputs(name, number)
            assert all(isinstance(v, np.ndarray) and v.size <= 60 for v in inputs.values())
    with np.errstate(over="ignore", under="ignore"):
        assert np.isinf(np.exp(checks.case_inputs("gaussian_kl", 4)["logvar_q"])).all()
        assert (np.exp(checks.case_inputs("iwae_bound", 4)["log_weights"]) == 0).all()


# --------------------------------------------------------------------------------------------
# Chapter 3: gradient estimators (leaf tensors, gradients compared)
# --------------------------------------------------------------------------------------------


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
# Chapter 4: the VAE's negative ELBO
# --------------------------------------------------------------------------------------------


def test_chapter_4_check_wants_two_values_and_float64():
    with pytest.raises(CheckFailed, match=r"should return 2 values, \(recon, kl\)"):
        checks.vae_negative_elbo(lambda *args: vae_negative_elbo(*args)[0])
    with pytest.raises(CheckFailed, match=r"recon has dtype torch\.float32"):
        checks.vae_negative_elbo(lambda *args: tuple(t.float() for t in vae_negative_elbo(*args)))

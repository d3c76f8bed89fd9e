"""Check functions for the exercises: run a student's function on small fixed cases.

Each check calls the reader's function on a few tiny, deterministic cases (n <= 30, d <= 3,
K <= 3), compares every returned array with the verified version in
:mod:`gae_course.mixture`, and either prints one line such as
``e_step: all 4 cases pass ✓`` (and returns ``True``) or raises :class:`CheckFailed` with a
message that says precisely what is off::

    e_step is wrong on case 4 of 4: points far from every mean (exp underflows to 0.0)
      inputs: X (5, 2), weights (3,), means (3, 2), covariances (3, 2, 2)
    log_resp has wrong values: expected shape (5, 3); 12 of 15 entries differ (...).
    First difference at log_resp[0, 0]: got inf, expected -0.470004.
    12 value(s) are NaN or infinite where a finite number is expected.
    HINT: use the max trick in log-sum-exp: ...
    Your function also warned: RuntimeWarning: divide by zero encountered in log
    To debug: inputs = checks.case_inputs('e_step', 4); e_step(*inputs.values())

The comparison follows one recipe (:func:`_compare`): the type first (a NumPy array), then
the shape and the dtype kind, then the values, with the tolerances of
``np.testing.assert_allclose``. Checking the shape first matters: a broadcasting
``abs(got - expected) < eps`` would let a (n, 1) column pass for a (n,) vector. When a wrong
answer matches a known mistake (the answer that mistake gives is computed for the same
case), the message ends with a HINT naming it.

The exercises of chapter 1 (full covariances, plain NumPy) and their checks:

=====================================================  ==========================
``log_gaussian(X, mean, covariance) -> (n,)``           :func:`log_gaussian`
``e_step(X, weights, means, covariances)``              :func:`e_step`
``m_step(X, resp, reg_covar)``                          :func:`m_step`
``log_likelihood(X, weights, means, covariances)``      :func:`log_likelihood`
=====================================================  ==========================

Equations: Bishop, *Pattern Recognition and Machine Learning* (2006), eqs. 2.43 (the
Gaussian density) and 9.23-9.28 (EM for Gaussian mixtures).
"""

from __future__ import annotations

import math
import numbers
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np

from gae_course import mixture

__all__ = [
    "CheckFailed", "log_gaussian", "e_step", "m_step", "log_likelihood", "class_posterior",
    "case_inputs",
]

# Tolerances of the value comparison. Loose enough for any correct float64 route (inverse,
# solve, Cholesky, scipy), tight enough that every mistake in the hints is caught.
RTOL = 1e-5
ATOL = 1e-8


# Marks a hint that states a symptom ("rows do not sum to 1") rather than naming a mistake:
# it is shown only when no specific mistake matches.
_FALLBACK = "fallback"


class CheckFailed(AssertionError):
    """The reader's function gave a wrong answer; the message says what and where."""


@dataclass(frozen=True)
class _Case:
    """One fixed input. ``inputs`` are passed positionally, in order."""

    name: str
    inputs: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# The shared comparison
# --------------------------------------------------------------------------------------------


def _fmt(value):
    value = float(value)
    return repr(value) if not math.isfinite(value) else f"{value:.6g}"


def _describe(obj):
    if obj is None:
        return "None (did you forget the `return` statement?)"
    if isinstance(obj, np.ndarray):
        return f"an array of shape {obj.shape}"
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of {len(obj)} items"
    return f"a {type(obj).__module__}.{type(obj).__qualname__}".replace("a builtins.", "a ")


def _quietly(test, *args):
    """Run a hint's test; a test that cannot apply (wrong shape, overflow...) is just False."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return bool(test(*args))
        except Exception:  # noqa: BLE001 - a hint that does not apply is not an error
            return False


def _same(wrong, rtol=RTOL, atol=ATOL):
    """A hint test: ``got`` equals the answer a known mistake gives (``wrong``)."""
    wrong = np.asarray(wrong, dtype=np.float64)

    def test(got):
        return got.shape == wrong.shape and np.allclose(got, wrong, rtol=rtol, atol=atol)

    return test


def _matching_hints(got, hints, rtol, atol):
    """The first known mistake that ``got`` matches; a fallback hint only if none does."""
    specific, fallback = [], []
    for test, text, *rest in hints:
        if not callable(test):
            test = _same(test, rtol, atol)
        if _quietly(test, got):
            (fallback if rest and rest[0] == _FALLBACK else specific).append(f"HINT: {text}")
    return (specific or fallback)[:1]


def _shape_hints(got, expected, rtol, atol):
    """Hints for a shape mismatch that hold for any quantity."""
    squeezed = tuple(s for s in got.shape if s != 1)
    if got.size == expected.size and _quietly(
        lambda: np.allclose(got.reshape(expected.shape), expected, rtol=rtol, atol=atol)
    ) and got.shape != expected.shape[::-1]:
        how = (
            "drop the axis of length 1 (`.ravel()`, `[:, 0]`, or leave out `keepdims=True`)"
            if squeezed == tuple(s for s in expected.shape if s != 1)
            else f"reshape it to {expected.shape}"
        )
        return [f"HINT: the values are right, only the shape is off: {how}."]
    if got.ndim > expected.ndim and squeezed == expected.shape:
        return [
            "HINT: an extra axis of length 1, as from `keepdims=True` or a (n, 1) column: "
            "a broadcasting comparison would hide it, so drop it (`.ravel()` or `[:, 0]`)."
        ]
    if got.ndim == expected.ndim == 2 and got.shape == expected.shape[::-1]:
        return ["HINT: the axes are swapped: transpose it (`.T`)."]
    return []


def _as_array(name, got, expected):
    """``got`` as an ndarray, or CheckFailed when its type cannot be right."""
    if expected.ndim == 0:  # a single number
        if isinstance(got, (bool, np.bool_)):
            raise CheckFailed(f"{name} should be a float, got the boolean {got!r}.")
        if isinstance(got, (numbers.Real, np.ndarray, np.generic)):
            return np.asarray(got)
        raise CheckFailed(f"{name} should be a single float, got {_describe(got)}.")
    if isinstance(got, np.ndarray):
        return got
    lines = [f"{name} should be a NumPy array of shape {expected.shape}, got {_describe(got)}."]
    if hasattr(got, "detach"):
        lines.append("HINT: this chapter works in NumPy: use NumPy, or `.detach().numpy()`.")
    elif isinstance(got, (list, tuple)):
        lines.append("HINT: build it with NumPy operations, or wrap the list in `np.array(...)`.")
    elif isinstance(got, (numbers.Number, np.generic)):
        lines.append("HINT: a single number came back: did you sum or average too many axes?")
    raise CheckFailed("\n".join(lines))


def _compare(name, got, expected, rtol=RTOL, atol=ATOL, hints=()):
    """Raise :class:`CheckFailed` unless ``got`` matches ``expected``: type, shape, dtype, values.

    Parameters
    ----------
    name : str
        The quantity, as the reader's code calls it (``"log_resp"``); used in the message.
    got : object
        What the reader's function returned for this quantity.
    expected : ndarray or float
        The verified answer (float64).
    rtol, atol : float
        Value tolerances, as in ``np.testing.assert_allclose``.
    hints : sequence of (test, text) or (test, text, _FALLBACK)
        Known mistakes, most specific first: ``test`` is the wrong answer that mistake gives
        (an array) or a predicate on ``got``. The first that matches adds ``text`` as a HINT;
        hints marked ``_FALLBACK`` (symptoms, such as weights not summing to 1) are used only
        when no specific one matches.
    """
    expected = np.asarray(expected, dtype=np.float64)
    got = _as_array(name, got, expected)
    shape_text = "a single number" if expected.ndim == 0 else f"shape {expected.shape}"

    if got.shape != expected.shape:
        lines = [
            f"{name} has the wrong shape: expected {shape_text}, got "
            + ("a single number." if got.ndim == 0 else f"shape {got.shape}.")
        ]
        lines += _shape_hints(got, expected, rtol, atol) if got.ndim and expected.ndim else []
        lines += _matching_hints(got, hints, rtol, atol)
        raise CheckFailed("\n".join(lines))

    if got.dtype.kind != "f":
        kind_hint = {
            "i": "integers came back: start from a float array (e.g. np.zeros(..., dtype=float)), "
            "and do not round.",
            "u": "integers came back: start from a float array.",
            "b": "booleans came back: return the numbers, not a comparison.",
            "c": "complex numbers came back: did a square root or a log see a negative number?",
            "O": "an object array came back: build it from numbers with NumPy operations.",
        }.get(got.dtype.kind, "return float64 numbers.")
        raise CheckFailed(
            f"{name} has dtype {got.dtype}, expected floating point (float64).\nHINT: {kind_hint}"
        )

    with np.errstate(all="ignore"):
        close = np.isclose(got, expected, rtol=rtol, atol=atol)
    if close.all():
        return

    wrong = ~close
    first = tuple(int(i) for i in np.argwhere(wrong)[0])
    if expected.ndim == 0:
        lines = [
            f"{name} has the wrong value: got {_fmt(got)}, expected {_fmt(expected)} "
            f"(rtol={rtol:g}, atol={atol:g})."
        ]
    else:
        index = ", ".join(map(str, first))
        lines = [
            f"{name} has wrong values: expected {shape_text}; {int(wrong.sum())} of {wrong.size} "
            f"entries differ (rtol={rtol:g}, atol={atol:g}).",
            f"First difference at {name}[{index}]: got {_fmt(got[first])}, "
            f"expected {_fmt(expected[first])}.",
        ]
    bad = ~np.isfinite(got) & np.isfinite(expected)
    if bad.any() and expected.ndim > 0:
        lines.append(
            f"{int(bad.sum())} value(s) are NaN or infinite where a finite number is expected."
        )
    lines += _matching_hints(got, hints, rtol, atol)
    raise CheckFailed("\n".join(lines))


# --------------------------------------------------------------------------------------------
# Running the reader's function
# --------------------------------------------------------------------------------------------


def _shapes(inputs):
    parts = []
    for key, value in inputs.items():
        if isinstance(value, np.ndarray):
            parts.append(f"{key} {value.shape}")
        else:
            parts.append(f"{key}={value!r}")
    return ", ".join(parts)


def _where(err, fn):
    """'line N: code' of the reader's code where ``err`` was raised, if it can be found."""
    frames = traceback.extract_tb(err.__traceback__)[1:]  # [0] is _call itself
    code = getattr(fn, "__code__", None)
    own = [f for f in frames if code is not None and f.filename == code.co_filename]
    frame = (own or frames or [None])[-1]
    if frame is None:
        return ""
    line = f": {frame.line.strip()}" if frame.line else ""
    return f"\n  raised at line {frame.lineno}{line}"


def _call(check_name, fn, case):
    """Call ``fn`` on copies of the case's inputs; return (output, warning messages)."""
    args = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in case.inputs.items()}
    # Same floating-point reporting whatever the reader (or pytest) configured, and warnings
    # recorded for the message rather than raised or printed halfway through the check.
    with warnings.catch_warnings(record=True) as caught, np.errstate(
        divide="warn", over="warn", invalid="warn", under="ignore"
    ):
        warnings.simplefilter("always")
        try:
            out = fn(*args.values())
        except NotImplementedError:
            raise CheckFailed(
                f"{check_name} is not implemented yet: replace the `raise NotImplementedError` "
                "with your code, then run this check again."
            ) from None
        except Exception as err:
            raise CheckFailed(
                f"{check_name} raised {type(err).__name__}: {err}\n"
                f"  on case {case.name!r} with inputs {_shapes(case.inputs)}"
                f"{_where(err, fn)}"
            ) from err
    for key, original in case.inputs.items():
        # array_equal is also False when the shape changed
        if isinstance(original, np.ndarray) and not np.array_equal(
            args[key], original, equal_nan=True
        ):
            raise CheckFailed(
                f"{check_name} changed its argument `{key}` in place (on case {case.name!r}).\n"
                "HINT: work on new arrays, e.g. `diff = X - mean` instead of `X -= mean`; the "
                "caller still needs the original values."
            )
    messages = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in messages:
            messages.append(text)
    return out, messages


def _unpack(check_name, out, names):
    """Split a returned tuple into its named parts, or explain what came back instead."""
    if isinstance(out, (tuple, list)) and len(out) == len(names):
        return out
    together = ", ".join(names)
    lines = [
        f"{check_name} should return {len(names)} values, ({together}); got {_describe(out)}.",
        f"HINT: end the function with `return {together}`.",
    ]
    raise CheckFailed("\n".join(lines))


def _run(check_name, fn, cases, verify):
    """Run every case through ``verify(case, output)``; print one line when all pass."""
    if not callable(fn):
        raise CheckFailed(
            f"checks.{check_name} takes your function itself, e.g. `checks.{check_name}"
            f"({check_name})` (no parentheses after it); got {_describe(fn)}."
        )
    all_warnings = []
    for number, case in enumerate(cases, start=1):
        out, caught = _call(check_name, fn, case)
        all_warnings += [w for w in caught if w not in all_warnings]
        try:
            # the answers of known mistakes may divide by zero (N_k - 1 for a lone point)
            with np.errstate(all="ignore"):
                verify(case, out)
        except CheckFailed as failure:
            lines = [
                f"{check_name} is wrong on case {number} of {len(cases)}: {case.name}",
                f"  inputs: {_shapes(case.inputs)}",
                str(failure),
            ]
            if caught:
                lines.append("Your function also warned: " + "; ".join(caught))
            lines.append(
                f"To debug: inputs = checks.case_inputs({check_name!r}, {number}); "
                f"{check_name}(*inputs.values())"
            )
            raise CheckFailed("\n".join(lines)) from None
    line = f"{check_name}: all {len(cases)} cases pass ✓"
    if all_warnings:
        line += " (but it warned: " + "; ".join(all_warnings) + ")"
    print(line)
    return True


# --------------------------------------------------------------------------------------------
# The cases: tiny, deterministic, one of them numerically hard
# --------------------------------------------------------------------------------------------


def _spd(rng, d, scale=1.0):
    """A random symmetric positive-definite (d, d) matrix, well conditioned."""
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.3 * np.eye(d))


def _softmax_rows(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _log_gaussian_cases():
    cases = []
    rng = np.random.default_rng(101)
    cases.append(
        _Case(
            "standard normal in 2-D",
            dict(X=rng.normal(size=(5, 2)), mean=np.zeros(2), covariance=np.eye(2)),
        )
    )
    rng = np.random.default_rng(102)
    covariance = _spd(rng, 3, scale=1.5)
    mean = rng.normal(size=3)
    X = mean + rng.normal(size=(10, 3)) @ np.linalg.cholesky(covariance).T
    cases.append(_Case("correlated 3-D Gaussian", dict(X=X, mean=mean, covariance=covariance)))
    cases.append(
        _Case(
            "1-D Gaussian with variance 4",
            dict(
                X=np.array([[-2.0], [0.0], [1.0], [5.0]]),
                mean=np.array([1.0]),
                covariance=np.array([[4.0]]),
            ),
        )
    )
    cases.append(
        _Case(
            "points far from the mean (their density underflows to 0.0)",
            dict(
                X=np.array([[60.0, -40.0], [-80.0, 30.0], [45.0, 90.0], [1.5, -1.0]]),
                mean=np.array([1.0, -2.0]),
                covariance=np.array([[2.0, 0.5], [0.5, 1.0]]),
            ),
        )
    )
    return cases


def _mixture_cases():
    """Inputs (X, weights, means, covariances) shared by e_step and log_likelihood."""
    cases = []
    rng = np.random.default_rng(201)
    means = np.array([[-2.0, 0.0], [2.0, 1.0]])
    covariances = np.array([[[0.5, 0.1], [0.1, 0.3]], [[0.4, -0.1], [-0.1, 0.6]]])
    X = np.vstack([means[0] + 0.6 * rng.normal(size=(4, 2)),
                   means[1] + 0.6 * rng.normal(size=(4, 2)),
                   [[0.0, 0.5], [0.3, 0.2]]])  # two points in between: soft responsibilities
    cases.append(
        _Case(
            "two clusters in 2-D",
            dict(X=X, weights=np.array([0.3, 0.7]), means=means, covariances=covariances),
        )
    )
    rng = np.random.default_rng(202)
    means = 1.5 * rng.normal(size=(3, 3))
    covariances = np.stack([_spd(rng, 3) for _ in range(3)])
    cases.append(
        _Case(
            "three overlapping components in 3-D",
            dict(
                X=2.0 * rng.normal(size=(20, 3)),
                weights=np.array([0.5, 0.2, 0.3]),
                means=means,
                covariances=covariances,
            ),
        )
    )
    rng = np.random.default_rng(203)
    cases.append(
        _Case(
            "a single component (K = 1)",
            dict(
                X=rng.normal(size=(6, 2)),
                weights=np.array([1.0]),
                means=np.array([[0.5, -0.5]]),
                covariances=np.array([[[1.0, 0.4], [0.4, 2.0]]]),
            ),
        )
    )
    cases.append(
        _Case(
            "points far from every mean (exp underflows to 0.0)",
            dict(
                # The first point is as far from component 0 as from component 1 (same
                # covariance), so its responsibilities are 5/8 and 3/8, not 0 and 1.
                X=np.array(
                    [[1.5, -100.0], [60.0, 80.0], [-70.0, 50.0], [200.0, -150.0], [0.5, 0.5]]
                ),
                weights=np.array([0.5, 0.3, 0.2]),
                means=np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]]),
                covariances=np.array(
                    [0.5 * np.eye(2), 0.5 * np.eye(2), [[0.3, 0.05], [0.05, 0.2]]]
                ),
            ),
        )
    )
    return cases


def _m_step_cases():
    cases = []
    rng = np.random.default_rng(301)
    X = np.vstack([[-2.0, 0.0] + 0.7 * rng.normal(size=(6, 2)),
                   [2.0, 1.0] + 0.7 * rng.normal(size=(6, 2))])
    resp = _softmax_rows(np.column_stack([-X[:, 0], X[:, 0]]))  # soft, by the sign of x
    cases.append(
        _Case("two components in 2-D, soft responsibilities", dict(X=X, resp=resp, reg_covar=1e-6))
    )
    rng = np.random.default_rng(302)
    X = rng.normal(size=(30, 3)) * [1.0, 2.0, 0.5]
    resp = _softmax_rows(2.0 * rng.normal(size=(30, 3)))
    cases.append(
        _Case("three components in 3-D with reg_covar = 0.1", dict(X=X, resp=resp, reg_covar=0.1))
    )
    rng = np.random.default_rng(303)
    X = rng.normal(size=(9, 2))
    labels = np.array([2, 0, 0, 0, 0, 1, 1, 1, 1])
    cases.append(
        _Case(
            "component 2 owns a single point (singular without reg_covar)",
            dict(X=X, resp=np.eye(3)[labels], reg_covar=1e-3),
        )
    )
    rng = np.random.default_rng(304)
    cases.append(
        _Case(
            "one component (K = 1): the plain mean and covariance",
            dict(X=rng.normal(size=(8, 2)) @ [[1.0, 0.5], [0.0, 1.0]], resp=np.ones((8, 1)),
                 reg_covar=1e-6),
        )
    )
    return cases


_CASES = {
    "log_gaussian": _log_gaussian_cases,
    "e_step": _mixture_cases,
    "m_step": _m_step_cases,
    "log_likelihood": _mixture_cases,
    "class_posterior": lambda: _class_posterior_cases(),
}


def case_inputs(check, number):
    """The inputs of one case, to rerun it by hand: ``fn(*case_inputs("e_step", 4).values())``.

    Parameters
    ----------
    check : {'log_gaussian', 'e_step', 'm_step', 'log_likelihood'}
    number : int
        The case number from the failure message (1-based).

    Returns
    -------
    dict
        Argument name -> value (fresh copies), in call order.
    """
    if check not in _CASES:
        raise ValueError(f"check must be one of {sorted(_CASES)}; got {check!r}.")
    cases = _CASES[check]()
    if not 1 <= number <= len(cases):
        raise ValueError(f"{check} has cases 1 to {len(cases)}; got {number}.")
    inputs = cases[number - 1].inputs
    return {k: np.copy(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}


# --------------------------------------------------------------------------------------------
# Verified answers and the answers of known mistakes
# --------------------------------------------------------------------------------------------

_NO_WEIGHTS = (
    "the mixing weights are missing: "
    "log p(x_i) = logsumexp_k [log π_k + log N(x_i | μ_k, Σ_k)]."
)
_MAX_TRICK = (
    "use the max trick in log-sum-exp: far from every mean, np.exp of the log-densities "
    "underflows to 0.0 and np.log(0.0) = -inf (then -inf - -inf = NaN). Subtract each row's "
    "maximum before np.exp and add it back after np.log (or use scipy.special.logsumexp)."
)


def _lse(a, axis):
    return mixture.logsumexp(a, axis=axis)


def _component_log_densities(X, means, covariances):
    """log N(x_i | mu_k, Sigma_k), shape (n_samples, n_components), by the verified kernel."""
    precisions_cholesky = mixture.compute_precision_cholesky(covariances)
    return mixture.log_gaussian_density(X, means, precisions_cholesky)


def _non_finite(expected):
    def test(got):
        return got.shape == np.shape(expected) and bool(
            np.any(~np.isfinite(got) & np.isfinite(expected))
        )

    return test


# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------


def log_gaussian(fn):
    """Check ``fn(X, mean, covariance)``: log N(x_i | mean, covariance) for each row of X.

    Parameters
    ----------
    fn : callable
        ``fn(X, mean, covariance) -> ndarray of shape (n_samples,)`` with
        ``X`` of shape (n_samples, n_features), ``mean`` (n_features,) and
        ``covariance`` (n_features, n_features).

    Returns
    -------
    True
        When every case passes (and a line is printed).

    Raises
    ------
    CheckFailed
        Naming the case, the quantity, the expected shape and the first wrong entry, with a
        HINT for the known mistakes: missing -d/2 log(2 pi), missing or mis-signed
        -1/2 log det(covariance), missing 1/2 on the quadratic term, the covariance instead of
        its inverse, the density instead of its log, log of an underflowed density, a (n, 1)
        column.
    """

    def verify(case, got):
        X, mean, covariance = case.inputs["X"], case.inputs["mean"], case.inputs["covariance"]
        d = X.shape[1]
        expected = _component_log_densities(X, mean[None], covariance[None])[:, 0]
        half_log_2pi = 0.5 * d * math.log(2 * math.pi)
        half_log_det = 0.5 * np.linalg.slogdet(covariance)[1]
        quadratic = -2.0 * (expected + half_log_2pi + half_log_det)  # (x-mu)^T Sigma^-1 (x-mu)
        diff = X - mean
        with_covariance = np.einsum("ni,ij,nj->n", diff, covariance, diff)
        hints = [
            (expected + half_log_2pi,
             "the constant -d/2 log(2π) is missing (d = X.shape[1], the number of features)."),
            (expected - half_log_2pi,
             "the constant is -d/2 log(2π): check the factor 1/2 (it is not -d log(2π))."),
            (expected + half_log_det,
             "the log-det term -1/2 log det(covariance) is missing "
             "(np.linalg.slogdet(covariance)[1] gives log det)."),
            (expected + 2 * half_log_det,
             "the log-det term has the wrong sign: it is -1/2 log det(covariance)."),
            (expected - half_log_det,
             "the log-det term is -1/2 log det(covariance): the factor 1/2 is missing."),
            (expected + half_log_2pi + half_log_det,
             "the normalising constant is missing: add -d/2 log(2π) - 1/2 log det(covariance)."),
            (expected - 0.5 * quadratic,
             "the quadratic term is -1/2 (x-μ)ᵀ Σ⁻¹ (x-μ): the factor 1/2 is missing."),
            (expected + quadratic,
             "the quadratic term has the wrong sign: it is -1/2 (x-μ)ᵀ Σ⁻¹ (x-μ)."),
            (expected + 0.5 * quadratic - 0.5 * with_covariance,
             "the quadratic term uses the inverse covariance: (x-μ)ᵀ Σ⁻¹ (x-μ), e.g. "
             "np.linalg.solve(covariance, diff.T), not the covariance itself."),
            (np.exp(expected),
             "these are densities: return the log density, computed in log space (no np.exp)."),
            (_non_finite(expected),
             "compute the log density directly in log space: the density of a point far from "
             "the mean underflows to 0.0, and np.log(0.0) = -inf. Never take np.log of a "
             "density (from np.exp or scipy.stats)."),
            (lambda g: g.shape == expected.shape
             and np.ptp(g - expected) < 1e-6 * (1 + np.abs(expected).max()),
             "got - expected is the same for every point: the quadratic term is right, so the "
             "normalising constant -d/2 log(2π) - 1/2 log det(covariance) is off.", _FALLBACK),
        ]
        _compare("log_density", got, expected, hints=hints)

    return _run("log_gaussian", fn, _log_gaussian_cases(), verify)


def e_step(fn):
    """Check ``fn(X, weights, means, covariances) -> (log_resp, log_prob_norm)``.

    Parameters
    ----------
    fn : callable
        Returns ``log_resp`` of shape (n_samples, n_components), the log responsibilities
        log γ_ik, and ``log_prob_norm`` of shape (n_samples,), log p(x_i). Inputs: ``X``
        (n_samples, n_features), ``weights`` (n_components,), ``means``
        (n_components, n_features), ``covariances`` (n_components, n_features, n_features).

    Returns
    -------
    True
        When every case passes (one of them has points far from every mean).

    Raises
    ------
    CheckFailed
        With a HINT for the known mistakes: no log-sum-exp normalisation (rows of
        exp(log_resp) do not sum to 1), normalising over the wrong axis, missing log(weights),
        responsibilities instead of their logs, naive log(sum(exp(...))) that underflows,
        max instead of log-sum-exp, the outputs swapped, a (n, 1) column.
    """

    def verify(case, out):
        X, weights, means, covariances = case.inputs.values()
        n, K = len(X), len(weights)
        log_resp, log_prob_norm = _unpack("e_step", out, ("log_resp", "log_prob_norm"))
        precisions_cholesky = mixture.compute_precision_cholesky(covariances)
        expected_log_resp, expected_norm = mixture.e_step(X, weights, means, precisions_cholesky)
        log_density = _component_log_densities(X, means, covariances)
        weighted = log_density + np.log(weights)
        swapped = (
            lambda g: np.shape(log_resp) == (n,) and np.shape(log_prob_norm) == (n, K),
            "the two outputs are swapped: return (log_resp, log_prob_norm) in that order.",
        )
        _compare(
            "log_resp",
            log_resp,
            expected_log_resp,
            hints=[
                swapped,
                (_non_finite(expected_log_resp), _MAX_TRICK),
                (weighted - _lse(weighted, axis=0)[None, :],
                 "normalised over the samples: subtract logsumexp over the components "
                 "(axis=1), one value per sample."),
                (lambda g: not np.allclose(np.exp(g[np.isfinite(g).all(axis=1)]).sum(axis=1), 1.0),
                 "rows of exp(log_resp) do not sum to 1: normalise with log-sum-exp: subtract "
                 "logsumexp over components, log_resp = weighted_log_prob - "
                 "logsumexp(weighted_log_prob, axis=1)[:, None].", _FALLBACK),
                (log_density - _lse(log_density, axis=1)[:, None],
                 "the mixing weights are missing: add np.log(weights) to each component's "
                 "log-density before normalising."),
                (np.exp(expected_log_resp),
                 "these are responsibilities: return their logs, log_resp (no np.exp at the end)."),
            ],
        )
        _compare(
            "log_prob_norm",
            log_prob_norm,
            expected_norm,
            hints=[
                (_non_finite(expected_norm), _MAX_TRICK),
                (lambda g: g.ndim == 0,
                 "log_prob_norm has one value per sample, log p(x_i); the average over samples "
                 "is the log-likelihood (the next exercise)."),
                (lambda g: g.shape == (K,) and K != n,
                 "one value per sample: take logsumexp over the components (axis=1), not over "
                 "the samples."),
                (_lse(log_density, axis=1), _NO_WEIGHTS),
                (weighted.max(axis=1),
                 "log p(x_i) sums over the components: use logsumexp over axis=1, not max."),
                (weighted.sum(axis=1),
                 "log p(x_i) is the log of a sum: use logsumexp over axis=1, not a sum of logs."),
                (np.exp(expected_norm), "return log p(x_i), in log space (no np.exp)."),
            ],
        )

    return _run("e_step", fn, _mixture_cases(), verify)


def m_step(fn):
    """Check ``fn(X, resp, reg_covar) -> (weights, means, covariances)``.

    Parameters
    ----------
    fn : callable
        Inputs: ``X`` (n_samples, n_features), ``resp`` (n_samples, n_components) whose rows
        sum to 1, and the float ``reg_covar``. Returns ``weights`` (n_components,), ``means``
        (n_components, n_features) and ``covariances``
        (n_components, n_features, n_features), with ``reg_covar`` added to each diagonal.

    Returns
    -------
    True
        When every case passes (one has a component owning a single point).

    Raises
    ------
    CheckFailed
        With a HINT for the known mistakes: weights not divided by n (or uniform), unweighted
        means, means divided by n or not at all, hard (argmax) assignments, covariances
        divided by n or N_k - 1 instead of N_k (or off by any per-component factor),
        reg_covar missing or added off the diagonal, data not centred, outer products not
        weighted by the responsibilities.
    """

    def verify(case, out):
        X, resp, reg_covar = case.inputs.values()
        n, d = X.shape
        K = resp.shape[1]
        weights, means, covariances = _unpack("m_step", out, ("weights", "means", "covariances"))
        expected_w, expected_means, expected_cov = mixture.m_step(X, resp, reg_covar)
        nk = resp.sum(axis=0)
        eye = np.eye(d)

        _compare(
            "weights",
            weights,
            expected_w,
            hints=[
                (lambda g: g.shape == (n,) and n != K,
                 "sum the responsibilities over the samples (axis=0): N_k = resp.sum(axis=0) "
                 "has one value per component."),
                (nk, "weights are the soft counts divided by n: weights = N_k / n."),
                (np.full(K, 1.0 / K),
                 "weights are N_k / n (N_k = resp.sum(axis=0), the soft counts), not uniform."),
                (lambda g: not np.isclose(g.sum(), 1.0),
                 "the weights must sum to 1: weights = N_k / n.", _FALLBACK),
            ],
        )

        hard = resp.argmax(axis=1)
        hints = [
            (np.tile(X.mean(axis=0), (K, 1)),
             "the means are not weighted by the responsibilities: "
             "means[k] = sum_i resp[i, k] x_i / N_k, i.e. resp.T @ X / N_k[:, None]."),
            (resp.T @ X,
             "divide the weighted sums by N_k (the soft counts): "
             "means = resp.T @ X / N_k[:, None]."),
            (resp.T @ X / n,
             "divide by N_k (the soft counts), not n: means = resp.T @ X / N_k[:, None]."),
            (lambda g: K == d and np.allclose(g, (resp.T @ X) / nk[None, :]),
             "each row k is divided by its own N_k: use N_k[:, None], not N_k (which divides "
             "the columns)."),
        ]
        if all(np.any(hard == k) for k in range(K)):
            hints.append(
                (np.stack([X[hard == k].mean(axis=0) for k in range(K)]),
                 "use the soft responsibilities as weights, not a hard assignment (argmax).")
            )
        _compare("means", means, expected_means, hints=hints)

        diff = X[None, :, :] - expected_means[:, None, :]  # (K, n, d)
        scatter = np.einsum("nk,kni,knj->kij", resp, diff, diff)  # sum_i r_ik diff diff^T
        ml = scatter / nk[:, None, None]  # maximum-likelihood covariances, no reg_covar
        hints = [
            (scatter / n + reg_covar * eye,
             "divide by N_k (the soft counts), not n: covariances[k] = scatter_k / N_k + "
             "reg_covar I."),
            (scatter / n,
             "divide by N_k (the soft counts), not n, and add reg_covar to the diagonal."),
            (ml, "add reg_covar to the diagonal: covariances[k] += reg_covar * np.eye(d). It "
                 "keeps a component that owns a single point from getting a singular covariance."),
            (ml + reg_covar,
             "add reg_covar to the diagonal only (reg_covar * np.eye(d)), not to every entry."),
            (scatter / (nk - 1)[:, None, None] + reg_covar * eye,
             "the maximum-likelihood covariance divides by N_k, not N_k - 1."),
            (np.einsum("nk,ni,nj->kij", resp, X, X) / nk[:, None, None] + reg_covar * eye,
             "centre the data with the new means first: diff = X - means[k]."),
            (np.einsum("kni,knj->kij", diff, diff) / nk[:, None, None] + reg_covar * eye,
             "weight each outer product by its responsibility resp[i, k]: "
             "(resp[:, k, None] * diff).T @ diff / N_k."),
            (lambda g: _off_by_factor(g - reg_covar * eye, ml),
             "the covariances are off by a factor per component: check the normalisation, "
             "divide the weighted scatter by N_k (the soft counts).", _FALLBACK),
            (lambda g: not np.allclose(g, g.transpose(0, 2, 1)),
             "covariance matrices are symmetric: compute (resp[:, k, None] * diff).T @ diff.",
             _FALLBACK),
        ]
        _compare("covariances", covariances, expected_cov, hints=hints)

    return _run("m_step", fn, _m_step_cases(), verify)


def _off_by_factor(got, expected):
    """True when got[k] == c_k * expected[k] for scalars c_k, not all 1."""
    flat_g = got.reshape(len(got), -1)
    flat_e = expected.reshape(len(expected), -1)
    factors = np.sum(flat_g * flat_e, axis=1) / np.sum(flat_e * flat_e, axis=1)
    return np.allclose(flat_g, factors[:, None] * flat_e, rtol=1e-6, atol=1e-9) and not np.allclose(
        factors, 1.0
    )


def log_likelihood(fn):
    """Check ``fn(X, weights, means, covariances) -> float``, the mean log-likelihood.

    Parameters
    ----------
    fn : callable
        Returns (1/n) sum_i log sum_k π_k N(x_i | μ_k, Σ_k) as one float. Inputs as for
        :func:`e_step`.

    Returns
    -------
    True
        When every case passes (one of them has points far from every mean).

    Raises
    ------
    CheckFailed
        With a HINT for the known mistakes: the sum over samples instead of the mean,
        per-sample values instead of their mean, missing log(weights), max instead of
        log-sum-exp, log of the mean likelihood, the wrong sign, naive log(sum(exp(...))) that
        underflows.
    """

    def verify(case, got):
        X, weights, means, covariances = case.inputs.values()
        n = len(X)
        expected = mixture.log_likelihood(X, weights, means, covariances)
        log_density = _component_log_densities(X, means, covariances)
        weighted = log_density + np.log(weights)
        per_sample = _lse(weighted, axis=1)
        hints = [
            (per_sample,
             "these are the per-sample log p(x_i): return their average, np.mean(...), a "
             "single number."),
            (lambda g: g.ndim > 0,
             "return a single number: the average over samples of log p(x_i).", _FALLBACK),
            (n * expected, "return the average over samples (np.mean), not the sum."),
            (np.mean(_lse(log_density, axis=1)), _NO_WEIGHTS),
            (np.mean(weighted.max(axis=1)),
             "log p(x_i) sums over the components: use logsumexp over axis=1, not max."),
            (_lse(per_sample, axis=0) - math.log(n),
             "average the log-likelihoods, not the likelihoods: the mean of log p(x_i), "
             "not the log of the mean of p(x_i)."),
            (-expected, "the sign is flipped: return the log-likelihood, not its negative."),
            (_non_finite(np.asarray(expected)), _MAX_TRICK),
        ]
        _compare("log_likelihood", got, expected, hints=hints)

    return _run("log_likelihood", fn, _mixture_cases(), verify)


# --------------------------------------------------------------------------------------------
# Chapter 5: Bayes' rule over class likelihoods
# --------------------------------------------------------------------------------------------


def _class_posterior_cases():
    rng = np.random.default_rng(5)
    balanced = np.log(np.full(3, 1 / 3))
    skewed = np.log(np.array([0.7, 0.2, 0.1]))
    return [
        _Case("3 codes, 3 classes, equal priors",
              dict(class_log_lik=rng.normal(size=(3, 3)), log_prior=balanced)),
        _Case("5 codes, unequal priors",
              dict(class_log_lik=rng.normal(size=(5, 3)) * 3, log_prior=skewed)),
        _Case("one code, ten classes",
              dict(class_log_lik=rng.normal(size=(1, 10)) * 2, log_prior=np.log(np.full(10, 0.1)))),
        _Case("log-likelihoods near -1000, as for 32-D codes (exp underflows to 0.0)",
              dict(class_log_lik=rng.normal(size=(4, 3)) * 5 - 1000.0, log_prior=skewed)),
    ]


def class_posterior(fn):
    """Check ``fn(class_log_lik, log_prior) -> log_posterior`` of shape (n, C).

    Parameters
    ----------
    fn : callable
        Given log p(z_i | c) of shape (n, C) and log pi_c of shape (C,), returns
        log p(c | z_i) = log pi_c + log p(z_i | c) - logsumexp_c'(log pi_c' + log p(z_i | c')).

    Returns
    -------
    True

    Raises
    ------
    CheckFailed
        With a HINT for: no normalisation, normalising over the wrong axis, the prior left out,
        probabilities instead of log-probabilities, naive log(sum(exp)) that underflows.
    """

    def verify(case, got):
        log_lik, log_prior = case.inputs.values()
        joint = log_lik + log_prior
        expected = joint - mixture.logsumexp(joint, axis=1)[:, None]
        hints = [
            (joint, "normalise: subtract logsumexp over the classes (axis=1) so that "
                    "exp(log_posterior) sums to one in every row."),
            (log_lik - mixture.logsumexp(log_lik, axis=1)[:, None],
             "Bayes' rule multiplies by the prior: add log_prior before normalising."),
            (joint - mixture.logsumexp(joint, axis=0)[None, :],
             "normalise over the classes (axis=1), not over the codes (axis=0)."),
            (np.exp(expected), "return log-probabilities, not probabilities."),
            (_non_finite(expected), _MAX_TRICK),
        ]
        _compare("log_posterior", got, expected, hints=hints)

    return _run("class_posterior", fn, _class_posterior_cases(), verify)


# --------------------------------------------------------------------------------------------
# Chapter 2: the Gaussian KL, the ELBO and the importance-weighted bound (torch)
# --------------------------------------------------------------------------------------------
#
# The reader writes these in torch. The cases stay NumPy float64 (so that messages show
# shapes and case_inputs returns arrays); _WithTensors hands them over as float64 tensors that
# share memory with the copies _call makes, so an in-place edit is still caught. torch is
# imported only here, when a chapter 2 check runs: chapter 1 never loads it.


class _WithTensors:
    """Calls the reader's torch function on tensors made from a case's NumPy arrays."""

    def __init__(self, fn):
        self.fn = fn
        self.__code__ = getattr(fn, "__code__", None)  # so _where still finds the reader's line

    def __call__(self, *args):
        import torch

        return self.fn(*(torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args))


def _run_torch(check_name, fn, cases, verify):
    return _run(check_name, _WithTensors(fn) if callable(fn) else fn, cases, verify)


def _from_tensor(name, got):
    """A returned tensor as a float64 NumPy array (other types go on to _compare as they are)."""
    if hasattr(got, "detach") and hasattr(got, "dtype"):
        import torch

        if got.dtype != torch.float64:
            raise CheckFailed(
                f"{name} has dtype {got.dtype}, expected torch.float64.\nHINT: the inputs are "
                "float64: keep them so (no `.float()`, and build constants with "
                "`torch.tensor(..., dtype=x.dtype)` or from the inputs, such as `torch.exp(logvar)`)."
            )
        return got.detach().cpu().numpy()
    return got


def _t(*arrays):
    import torch

    return [torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in arrays]


def _gaussian_kl_cases():
    rng = np.random.default_rng(301)
    cases = [
        _Case("q against a standard normal, 3 rows in 2-D",
              dict(mu_q=rng.normal(size=(3, 2)), logvar_q=rng.normal(size=(3, 2)),
                   mu_p=np.zeros((3, 2)), logvar_p=np.zeros((3, 2)))),
        _Case("two diagonal Gaussians, 4 rows in 3-D",
              dict(mu_q=rng.normal(size=(4, 3)), logvar_q=rng.normal(size=(4, 3)),
                   mu_p=rng.normal(size=(4, 3)), logvar_p=rng.normal(size=(4, 3)))),
    ]
    mu, logvar = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    cases.append(_Case("q = p in the first row (KL = 0), a shifted mean in the second",
                       dict(mu_q=mu, logvar_q=logvar, mu_p=mu + [[0, 0, 0], [1.0, -2.0, 0.5]],
                            logvar_p=logvar)))
    cases.append(_Case("huge variances (exp(logvar) overflows to inf)",
                       dict(mu_q=np.array([[0.0, 1.0]]), logvar_q=np.array([[750.0, 720.0]]),
                            mu_p=np.array([[0.5, 0.0]]), logvar_p=np.array([[749.0, 721.5]]))))
    return cases


def _kl_answer(mu_q, logvar_q, mu_p, logvar_p):
    """The closed form in NumPy, (B, L) per coordinate (not summed): for the hints."""
    return 0.5 * (np.exp(logvar_q - logvar_p) + (mu_q - mu_p) ** 2 * np.exp(-logvar_p)
                  - 1.0 - logvar_q + logvar_p)


def gaussian_kl(fn):
    """Check ``fn(mu_q, logvar_q, mu_p, logvar_p) -> kl`` in torch, kl of shape (B,).

    Parameters
    ----------
    fn : callable
        Inputs: four float64 tensors of shape (B, L), the means and log-variances of two
        diagonal Gaussians q and p. Returns KL(q || p) for each row, summed over the L
        coordinates: a tensor of shape (B,).

    Returns
    -------
    True
        When every case passes (one has variances whose exp overflows).

    Raises
    ------
    CheckFailed
        With a HINT for: KL(p || q) instead of KL(q || p), the factor 1/2 missing, no sum over
        the latent axis (shape (B, L)), a sum over the batch too, logvar used as a variance or a
        standard deviation, the -1 missing, the sign flipped, the variance ratio formed from
        exp(logvar_q) / exp(logvar_p) (inf / inf).
    """

    def verify(case, got):
        mu_q, lv_q, mu_p, lv_p = case.inputs.values()
        from gae_course import elbo

        expected = elbo.gaussian_kl(*_t(mu_q, lv_q, mu_p, lv_p)).numpy()
        per_coordinate = _kl_answer(mu_q, lv_q, mu_p, lv_p)
        got = _from_tensor("kl", got)
        hints = [
            (per_coordinate,
             "sum over the latent coordinates (the last axis): the KL of a diagonal Gaussian is "
             "the sum of the L one-dimensional KLs, one number per row."),
            (lambda g: np.ndim(g) == 0,
             "one KL per row (shape (B,)): sum over the last axis only (`dim=-1`), not the batch."),
            (_kl_answer(mu_p, lv_p, mu_q, lv_q).sum(-1),
             "this is KL(p || q): the KL is not symmetric. The ELBO needs KL(q || p): the "
             "expectation is under q, so q's variance sits in the numerator of the ratio."),
            (2 * expected, "the factor 1/2 in front of the sum is missing."),
            (expected + 0.5 * mu_q.shape[-1],
             "the -1 per coordinate is missing (it makes KL(q || q) = 0)."),
            (-expected, "the sign is flipped: a KL is never negative."),
            (0.5 * (lv_q / lv_p + (mu_q - mu_p) ** 2 / lv_p - 1 - np.log(np.abs(lv_q / lv_p))).sum(-1),
             "logvar is the log of the variance: the variance is exp(logvar), not logvar."),
            (_kl_answer(mu_q, 2 * lv_q, mu_p, 2 * lv_p).sum(-1),
             "exp(logvar) is the variance, not the standard deviation: do not square it "
             "(the standard deviation is exp(logvar / 2))."),
            (_non_finite(expected),
             "form the variance ratio in log space, torch.exp(logvar_q - logvar_p): with "
             "logvar = 750, torch.exp(logvar) overflows to inf and inf / inf = nan."),
        ]
        _compare("kl", got, expected, hints=hints)

    return _run_torch("gaussian_kl", fn, _gaussian_kl_cases(), verify)


def _elbo_estimate_cases():
    rng = np.random.default_rng(311)
    return [
        _Case("K = 4 samples, 3 rows, 2-D latent",
              dict(log_lik=rng.normal(size=(4, 3)) - 5.0, mu=rng.normal(size=(3, 2)),
                   logvar=rng.normal(size=(3, 2)))),
        _Case("a single sample (K = 1), 5 rows, 3-D latent",
              dict(log_lik=rng.normal(size=(1, 5)) - 2.0, mu=rng.normal(size=(5, 3)),
                   logvar=rng.normal(size=(5, 3)))),
        _Case("q is the prior (KL = 0), K = 6, 2 rows",
              dict(log_lik=rng.normal(size=(6, 2)), mu=np.zeros((2, 4)), logvar=np.zeros((2, 4)))),
        _Case("image-sized log-likelihoods (near -100), K = 10, 2 rows",
              dict(log_lik=rng.normal(size=(10, 2)) * 3 - 100.0, mu=rng.normal(size=(2, 2)),
                   logvar=rng.normal(size=(2, 2)) - 2.0)),
    ]


def elbo_estimate(fn):
    """Check ``fn(log_lik, mu, logvar) -> elbo`` in torch, elbo of shape (B,).

    Parameters
    ----------
    fn : callable
        Inputs: ``log_lik`` of shape (K, B), log p(x_b | z_kb) for K draws z_kb from q(z | x_b);
        ``mu`` and ``logvar`` of shape (B, L), the parameters of q. Returns the K-sample ELBO
        estimate mean_k log p(x_b | z_kb) - KL(q(z | x_b) || N(0, I)), shape (B,).

    Returns
    -------
    True

    Raises
    ------
    CheckFailed
        With a HINT for: a sum over the K samples instead of a mean, the KL added instead of
        subtracted, the KL left out, the KL not summed over the latent axis, a mean over the
        batch, the factor 1/2 of the KL missing.
    """

    def verify(case, got):
        log_lik, mu, logvar = case.inputs.values()
        K = log_lik.shape[0]
        kl = -0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar), axis=-1)  # (B,)
        from gae_course import elbo

        expected_t = _t(log_lik)[0].mean(0) - elbo.kl_standard_normal(*_t(mu, logvar))
        expected = expected_t.numpy()
        got = _from_tensor("elbo", got)
        hints = [
            (lambda g: np.ndim(g) == 0,
             "one ELBO per data point (shape (B,)): average over the samples (dim=0) only, "
             "not over the batch."),
            (lambda g: np.shape(g) == log_lik.shape and K > 1,
             "average the log-likelihoods over the K samples (`log_lik.mean(dim=0)`)."),
            (log_lik.mean(0)[:, None] + 0.5 * (1 + logvar - mu**2 - np.exp(logvar)),
             "sum the KL over the latent coordinates (`dim=-1`) before subtracting it."),
            (log_lik.sum(0) - kl,
             "average over the K samples (`.mean(dim=0)`), not sum: the ELBO is an expectation."),
            (log_lik.mean(0) + kl, "subtract the KL: ELBO = E_q[log p(x | z)] - KL(q || p(z))."),
            (log_lik.mean(0),
             "the KL(q || N(0, I)) term is missing: subtract "
             "-1/2 sum(1 + logvar - mu^2 - exp(logvar))."),
            (log_lik.mean(0) - 2 * kl, "the KL has a factor 1/2 in front of its sum."),
        ]
        _compare("elbo", got, expected, hints=hints)

    return _run_torch("elbo_estimate", fn, _elbo_estimate_cases(), verify)


def _iwae_bound_cases():
    rng = np.random.default_rng(321)
    return [
        _Case("K = 5 samples, 3 rows", dict(log_weights=rng.normal(size=(5, 3)))),
        _Case("a single sample (K = 1): the bound is the log-weight itself",
              dict(log_weights=rng.normal(size=(1, 4)))),
        _Case("K = 8, 2 rows, one dominant weight", dict(
            log_weights=np.vstack([rng.normal(size=(7, 2)) - 6.0, [[0.0, 1.0]]]))),
        _Case("log-weights of images, near -1000 (exp underflows to 0.0)",
              dict(log_weights=rng.normal(size=(6, 3)) * 4 - 1000.0)),
    ]


def iwae_bound(fn):
    """Check ``fn(log_weights) -> bound`` in torch: log (1/K) sum_k exp(log_weights[k]), (B,).

    Parameters
    ----------
    fn : callable
        Input: ``log_weights`` of shape (K, B). Returns the importance-weighted bound, the
        log-mean-exp over the K samples, shape (B,).

    Returns
    -------
    True
        When every case passes (one has log-weights near -1000).

    Raises
    ------
    CheckFailed
        With a HINT for: the mean of the log-weights (that is the ELBO), log-sum-exp without
        the -log K, the wrong axis, max instead of log-mean-exp, naive log(mean(exp(...)))
        that underflows.
    """

    def verify(case, got):
        (log_w,) = case.inputs.values()
        K, B = log_w.shape
        expected = _lse(log_w, axis=0) - math.log(K)
        got = _from_tensor("bound", got)
        hints = [
            (lambda g: np.shape(g) == (K,) and K != B,
             "one bound per data point (shape (B,)): reduce over the samples, axis 0 (`dim=0`)."),
            (lambda g: np.ndim(g) == 0,
             "one bound per data point (shape (B,)): reduce over the samples (`dim=0`) only."),
            (log_w.mean(0),
             "this is the mean of the log-weights, the K-sample ELBO: IWAE takes the log of "
             "the mean of the weights, log-mean-exp."),
            (expected + math.log(K),
             "log-sum-exp is the log of the sum: subtract log K to make it the log of the mean."),
            (log_w.max(0), "use log-mean-exp, not the max: every sample counts."),
            (_non_finite(expected),
             "use log-mean-exp with the max trick, torch.logsumexp(log_weights, dim=0) - "
             "math.log(K): torch.exp(-1000.0) underflows to 0.0 and log(0.0) = -inf."),
        ]
        _compare("bound", got, expected, hints=hints)

    return _run_torch("iwae_bound", fn, _iwae_bound_cases(), verify)


_CASES.update({
    "gaussian_kl": _gaussian_kl_cases,
    "elbo_estimate": _elbo_estimate_cases,
    "iwae_bound": _iwae_bound_cases,
})
__all__ += ["gaussian_kl", "elbo_estimate", "iwae_bound"]


# --------------------------------------------------------------------------------------------
# Chapter 3: gradient estimators (torch)
# --------------------------------------------------------------------------------------------
#
# The exercises of chapter 3 take and return torch tensors (float64), and the quantity that
# matters is a *gradient*: each check calls the reader's estimator on fixed noise, runs
# autograd on the returned surrogate, and compares value and gradients with
# :mod:`gae_course.estimators` through the same :func:`_compare` (on NumPy copies). Cases are
# built fresh for every call (torch imported only here: chapter 1 stays NumPy-only), so
# ``case_inputs`` hands back new leaf tensors that can be passed straight to the function.
#
# ========================================================  ==============================
# ``reparam_gaussian(f, mu, log_sigma, eps)``                :func:`reparam_gaussian`
# ``score_function_gaussian(f, mu, log_sigma, eps)``         :func:`score_function_gaussian`
# ``leave_one_out_baseline(f_values) -> (K, B)``             :func:`leave_one_out_baseline`
# ========================================================  ==============================


class _Formula:
    """A test function f: (K, B, D) -> (K, B), shown by its formula in messages."""

    def __init__(self, formula, fn):
        self.formula, self.fn = formula, fn

    def __call__(self, z):
        return self.fn(z)

    def __repr__(self):
        return self.formula


def _gaussian_estimator_cases():
    import torch

    def t(a, grad=False):
        return torch.tensor(a, dtype=torch.float64, requires_grad=grad)

    def noise(seed, shape):
        return torch.randn(shape, generator=torch.Generator().manual_seed(seed),
                           dtype=torch.float64)

    return [
        _Case("one sample (K = 1), f(z) = sum z²",
              dict(f=_Formula("sum_d z_d²", lambda z: (z**2).sum(-1)),
                   mu=t([[0.5, -1.0]], True), log_sigma=t([[0.0, 0.7]], True),
                   eps=t([[[1.0, -0.5]]]))),
        _Case("K = 3 samples of a batch of 2, f(z) = sum (z - 1)²",
              dict(f=_Formula("sum_d (z_d - 1)²", lambda z: ((z - 1.0) ** 2).sum(-1)),
                   mu=t([[0.2, -0.4, 1.0], [1.5, 0.0, -2.0]], True),
                   log_sigma=t([[0.1, -0.3, 0.5], [0.0, 0.2, -0.1]], True),
                   eps=noise(31, (3, 2, 3)))),
        _Case("K = 2, sigma < 1, f(z) = sum exp(z)",
              dict(f=_Formula("sum_d exp(z_d)", lambda z: torch.exp(z).sum(-1)),
                   mu=t([[0.3, -0.2], [-1.0, 0.8]], True),
                   log_sigma=t([[-1.0, -0.5], [-2.0, -0.7]], True),
                   eps=noise(32, (2, 2, 2)))),
        _Case("K = 4, sigma > 1, f(z) = z_0 z_1 + sin(z_2)",
              dict(f=_Formula("z_0 z_1 + sin(z_2)",
                              lambda z: z[..., 0] * z[..., 1] + torch.sin(z[..., 2])),
                   mu=t([[1.0, -2.0, 0.5], [0.0, 0.5, -1.5], [2.0, 1.0, 0.0]], True),
                   log_sigma=t([[0.5, 0.3, 0.8], [0.2, 0.9, 0.4], [0.6, 0.1, 0.7]], True),
                   eps=noise(33, (4, 3, 3)))),
    ]


def _leave_one_out_cases():
    import torch

    def f(seed, shape, scale=1.0, offset=0.0):
        g = torch.Generator().manual_seed(seed)
        return offset + scale * torch.randn(shape, generator=g, dtype=torch.float64)

    return [
        _Case("K = 2 samples of one problem", dict(f_values=f(41, (2, 1)))),
        _Case("K = 3 samples of a batch of 2", dict(f_values=f(42, (3, 2), 2.0))),
        _Case("K = 5, a batch of 3", dict(f_values=f(43, (5, 3), 0.5, 1.0))),
        _Case("K = 4, f near 1000 (a large offset the baseline must follow)",
              dict(f_values=f(44, (4, 1), 3.0, 1000.0))),
    ]


def _tensor_shapes(inputs):
    parts = []
    for key, value in inputs.items():
        shape = getattr(value, "shape", None)
        parts.append(f"{key} {tuple(shape)}" if shape is not None else f"{key}={value!r}")
    return ", ".join(parts)


def _run_estimator_check(check_name, fn, cases, verify):
    """:func:`_run` for torch exercises: fresh tensors per call, then ``verify(case, out)``."""
    import torch

    if not callable(fn):
        raise CheckFailed(
            f"checks.{check_name} takes your function itself, e.g. `checks.{check_name}"
            f"({check_name})` (no parentheses after it); got {_describe(fn)}."
        )
    all_warnings = []
    for number, case in enumerate(cases, start=1):
        originals = {k: v.detach().clone() for k, v in case.inputs.items()
                     if isinstance(v, torch.Tensor)}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out = fn(*case.inputs.values())
            except NotImplementedError:
                raise CheckFailed(
                    f"{check_name} is not implemented yet: replace the `raise "
                    "NotImplementedError` with your code, then run this check again."
                ) from None
            except Exception as err:
                raise CheckFailed(
                    f"{check_name} raised {type(err).__name__}: {err}\n"
                    f"  on case {case.name!r} with inputs {_tensor_shapes(case.inputs)}"
                    f"{_where(err, fn)}"
                ) from err
        messages = []
        for w in caught:
            text = f"{w.category.__name__}: {w.message}"
            if text not in messages and text not in all_warnings:
                messages.append(text)
        all_warnings += messages
        for key, original in originals.items():
            now = case.inputs[key].detach()
            if now.shape != original.shape or not torch.equal(now, original):
                raise CheckFailed(
                    f"{check_name} changed its argument `{key}` in place (on case "
                    f"{case.name!r}).\nHINT: build new tensors (`z = mu + sigma * eps`), never "
                    "`mu += ...`: the caller, and autograd, still need the originals."
                )
        try:
            with np.errstate(all="ignore"):
                verify(case, out)
        except CheckFailed as failure:
            lines = [
                f"{check_name} is wrong on case {number} of {len(cases)}: {case.name}",
                f"  inputs: {_tensor_shapes(case.inputs)}",
                str(failure),
            ]
            if messages:
                lines.append("Your function also warned: " + "; ".join(messages))
            lines.append(
                f"To debug: inputs = checks.case_inputs({check_name!r}, {number}); "
                f"{check_name}(*inputs.values())"
            )
            raise CheckFailed("\n".join(lines)) from None
    line = f"{check_name}: all {len(cases)} cases pass ✓"
    if all_warnings:
        line += " (but it warned: " + "; ".join(all_warnings) + ")"
    print(line)
    return True


def _estimator_tensor(name, got, shape):
    """``got`` as a float64 NumPy copy, after checking it is a torch tensor of ``shape``."""
    import torch

    if not isinstance(got, torch.Tensor):
        lines = [f"{name} should be a torch tensor of shape {tuple(shape)}, got {_describe(got)}."]
        if isinstance(got, (np.ndarray, numbers.Number, np.generic)):
            lines.append("HINT: stay in torch (torch.exp, .mean, .sum): NumPy cuts the "
                         "gradient path, and `.item()` / `float(...)` turn a tensor into a number.")
        raise CheckFailed("\n".join(lines))
    if not got.is_floating_point():
        raise CheckFailed(f"{name} has dtype {got.dtype}, expected floating point (float64).")
    return got.detach().to(torch.float64).numpy().copy()


def _estimator_grads(surrogate, params):
    """Gradients of ``surrogate`` w.r.t. ``params`` as NumPy arrays (zeros where unused)."""
    import torch

    grads = torch.autograd.grad(surrogate, params, allow_unused=True)
    return [np.zeros(tuple(p.shape)) if g is None else g.detach().numpy().copy()
            for g, p in zip(grads, params)]


def _gaussian_variant(f, mu, log_sigma, eps, *, scale="exp", pathwise=True, score=False,
                      log_prob="full", reduce="mean"):
    """[grad mu, grad log_sigma] of a (possibly wrong) Gaussian estimator, for the hints.

    scale: how sigma is made from log_sigma ("exp", "half" = exp(log_sigma / 2), "raw");
    pathwise / score: which gradient terms are present; log_prob: "full", "no_log_sigma"
    (normaliser forgotten) or "mean_d" (averaged over D); reduce: "mean" or "sum" over K.
    """
    import torch

    mu = mu.detach().clone().requires_grad_(True)
    log_sigma = log_sigma.detach().clone().requires_grad_(True)
    sigma = {"exp": torch.exp(log_sigma), "half": torch.exp(0.5 * log_sigma),
             "raw": log_sigma}[scale]
    z = mu + sigma * eps
    if not pathwise:
        z = z.detach()
    fz = f(z)  # (K, B)
    terms = fz if pathwise else torch.zeros_like(fz)
    if score:
        standardised = (z.detach() - mu) / sigma
        per_dim = -0.5 * standardised**2
        if log_prob != "no_log_sigma":
            per_dim = per_dim - torch.log(sigma)
        lq = per_dim.mean(-1) if log_prob == "mean_d" else per_dim.sum(-1)
        terms = terms + fz.detach() * lq
    total = terms.mean(0) if reduce == "mean" else terms.sum(0)
    grads = _estimator_grads(total.sum(), [mu, log_sigma])
    return grads


def _check_estimate(check_name, case, out, estimator, hints_for):
    """Shared verification of (value, surrogate) for the Gaussian estimator exercises."""
    import torch

    f, mu, log_sigma, eps = case.inputs.values()
    value, surrogate = _unpack(check_name, out, ("value", "surrogate"))
    ref_leaves = [mu.detach().clone().requires_grad_(True),
                  log_sigma.detach().clone().requires_grad_(True)]
    ref = estimator(f, *ref_leaves, eps)
    expected_value = ref.value.numpy()
    n_samples, batch = eps.shape[:2]

    if isinstance(value, torch.Tensor) and value.requires_grad:
        raise CheckFailed(
            "value still carries a gradient path.\nHINT: return the Monte Carlo mean "
            "detached, `mean_f.detach()`: the gradient belongs to the surrogate only."
        )
    got_value = _estimator_tensor("value", value, expected_value.shape)
    fz = f((mu + torch.exp(log_sigma) * eps).detach()).detach().numpy()  # (K, B)
    value_hints = [(fz.sum(0), "value is the mean of f over the K samples (`.mean(0)`), "
                               "not the sum."),
                   (f((mu + log_sigma * eps).detach()).detach().numpy().mean(0),
                    "sigma = exp(log_sigma): log_sigma is a logarithm, not the standard "
                    "deviation."),
                   (f((mu + torch.exp(0.5 * log_sigma) * eps).detach()).detach().numpy().mean(0),
                    "log_sigma is log σ, not log σ² (a log-variance): σ = exp(log_sigma), "
                    "not exp(log_sigma / 2).")]
    if batch > 1:
        value_hints.append((np.asarray(fz.mean()), "average over the samples only (axis 0): "
                                                   "value has one entry per problem, (B,)."))
    _compare("value", got_value, expected_value, hints=value_hints)

    if not isinstance(surrogate, torch.Tensor):
        _estimator_tensor("surrogate", surrogate, ())
    if surrogate.shape != ():
        lines = [f"surrogate should be a single number (a 0-d tensor), got shape "
                 f"{tuple(surrogate.shape)}."]
        if tuple(surrogate.shape) == (batch,):
            lines.append("HINT: sum the per-problem surrogates over the batch (`.sum()`): each "
                         "problem's parameters still get their own gradient.")
        raise CheckFailed("\n".join(lines))
    if not surrogate.requires_grad:
        raise CheckFailed(
            "surrogate has no gradient path to mu and log_sigma.\nHINT: build it from tensors "
            "that depend on mu and log_sigma, and do not detach it (or call `.item()`)."
        )
    got_grads = _estimator_grads(surrogate, [mu, log_sigma])
    expected_grads = _estimator_grads(ref.surrogate, ref_leaves)
    hints = hints_for(f, mu, log_sigma, eps, n_samples)
    for index, name in enumerate(("grad_mu", "grad_log_sigma")):
        _compare(name, got_grads[index], expected_grads[index],
                 hints=[(wrong[index], *rest) for wrong, *rest in hints])


def reparam_gaussian(fn):
    """Check ``fn(f, mu, log_sigma, eps) -> (value, surrogate)``, the pathwise estimator.

    Parameters
    ----------
    fn : callable
        ``f`` maps z of shape (K, B, D) to (K, B); ``mu`` and ``log_sigma`` (B, D) are leaf
        tensors with ``requires_grad=True``; ``eps`` (K, B, D) is fixed standard normal noise.
        Returns ``value`` (B,), the mean of f over the K samples (detached), and a 0-d
        ``surrogate`` whose gradient is (1/K) sum_k ∇ f(mu + exp(log_sigma) eps_k), summed
        over the batch.

    Raises
    ------
    CheckFailed
        With a HINT for: log_sigma used as sigma, or as a log-variance; z detached (no
        gradient); a sum over the samples instead of the mean; a surrogate per problem; a
        value that is not detached.
    """
    from gae_course import estimators

    def hints_for(f, mu, log_sigma, eps, n_samples):
        hints = [
            (_gaussian_variant(f, mu, log_sigma, eps, scale="raw"),
             "sigma = exp(log_sigma): log_sigma is a logarithm, not the standard deviation."),
            (_gaussian_variant(f, mu, log_sigma, eps, scale="half"),
             "log_sigma is log σ, not log σ² (a log-variance): σ = exp(log_sigma), "
             "not exp(log_sigma / 2)."),
            (_gaussian_variant(f, mu, log_sigma, eps, score=True),
             "this adds a score-function term: the reparameterised estimate is the gradient "
             "of mean_k f(mu + σ eps_k) only."),
        ]
        if n_samples > 1:
            hints.append((_gaussian_variant(f, mu, log_sigma, eps, reduce="sum"),
                          "average over the K samples (`.mean(0)`), do not sum them."))
        hints.append(((lambda g: not np.any(g), lambda g: not np.any(g)),
                      "the gradient is zero: z must be computed from mu and log_sigma "
                      "(z = mu + exp(log_sigma) * eps), not detached or rebuilt from numbers."))
        return hints

    def verify(case, out):
        _check_estimate("reparam_gaussian", case, out,
                        estimators.reparam_gaussian, hints_for)

    return _run_estimator_check("reparam_gaussian", fn, _gaussian_estimator_cases(), verify)


def score_function_gaussian(fn):
    """Check ``fn(f, mu, log_sigma, eps) -> (value, surrogate)``, REINFORCE on a Gaussian.

    Parameters
    ----------
    fn : callable
        Inputs as for :func:`reparam_gaussian`. The samples z = mu + exp(log_sigma) eps are
        *detached*; the surrogate's gradient is (1/K) sum_k f(z_k) ∇ log N(z_k | mu, σ²),
        with log N summed over the D dimensions, summed over the batch.

    Raises
    ------
    CheckFailed
        With a HINT for: z not detached (a pathwise term added), the -log σ normaliser left
        out of log N, log N averaged instead of summed over D, a sum over the samples
        instead of the mean, log_sigma used as sigma, f without the log-density.
    """
    from gae_course import estimators

    def hints_for(f, mu, log_sigma, eps, n_samples):
        hints = [
            (_gaussian_variant(f, mu, log_sigma, eps, score=True),
             "detach the samples (z = (mu + sigma * eps).detach()): with a path from mu to z "
             "you add the reparameterisation gradient to the score-function one."),
            (_gaussian_variant(f, mu, log_sigma, eps, pathwise=False, score=True,
                               log_prob="no_log_sigma"),
             "log N(z | mu, σ²) has a -log σ term in every dimension: without it the gradient "
             "with respect to log_sigma is off by -f(z) per dimension."),
            (_gaussian_variant(f, mu, log_sigma, eps, pathwise=False, score=True,
                               log_prob="mean_d"),
             "sum the log-density over the D dimensions (`.sum(-1)`), do not average it: "
             "the dimensions are independent, so their log-densities add."),
            (_gaussian_variant(f, mu, log_sigma, eps, scale="raw", pathwise=False, score=True),
             "sigma = exp(log_sigma): log_sigma is a logarithm, not the standard deviation."),
        ]
        if n_samples > 1:
            hints.append((_gaussian_variant(f, mu, log_sigma, eps, pathwise=False, score=True,
                                   reduce="sum"),
                          "average over the K samples (`.mean(0)`), do not sum them."))
        hints.append(((lambda g: not np.any(g), lambda g: not np.any(g)),
                      "the gradient is zero: multiply f(z) (detached) by log N(z | mu, σ²), "
                      "which must depend on mu and log_sigma."))
        return hints

    def verify(case, out):
        _check_estimate("score_function_gaussian", case, out,
                        estimators.score_function_gaussian, hints_for)

    return _run_estimator_check("score_function_gaussian", fn, _gaussian_estimator_cases(), verify)


def leave_one_out_baseline(fn):
    """Check ``fn(f_values) -> baseline`` of shape (K, B): the mean of the *other* samples.

    Raises
    ------
    CheckFailed
        With a HINT for: the mean of all K samples (the sample's own f included, which
        biases the estimator), a division by K instead of K - 1, one value per problem (B,)
        instead of one per sample, the mean over the batch axis.
    """
    from gae_course import estimators

    def verify(case, got):
        f_values = case.inputs["f_values"].detach()
        K = f_values.shape[0]
        expected = estimators.leave_one_out_baseline(f_values).numpy()
        f = f_values.numpy()
        others = f.sum(0, keepdims=True) - f
        hints = [
            (np.broadcast_to(f.mean(0, keepdims=True), f.shape),
             "leave sample k out: b_k = (sum_j f_j - f_k) / (K - 1). With f_k inside its own "
             "baseline, b depends on z_k and the estimator is biased."),
            (others / K, "divide by K - 1, the number of *other* samples, not by K."),
            (f.mean(0), "one baseline per sample: return shape (K, B), b[k] excludes f[k]."),
            ((f.sum(1, keepdims=True) - f) / max(f.shape[1] - 1, 1),
             "leave out the other *samples* of the same problem: sum over axis 0 (K), "
             "not over the batch axis."),
        ]
        got_array = _estimator_tensor("baseline", got, expected.shape)
        _compare("baseline", got_array, expected, hints=hints)

    return _run_estimator_check("leave_one_out_baseline", fn, _leave_one_out_cases(), verify)


_CASES.update({
    "reparam_gaussian": _gaussian_estimator_cases,
    "score_function_gaussian": _gaussian_estimator_cases,
    "leave_one_out_baseline": _leave_one_out_cases,
})
__all__ += ["reparam_gaussian", "score_function_gaussian", "leave_one_out_baseline"]


# ============================================================================================
# Chapter 4: the VAE's negative ELBO
# ============================================================================================
#
# ========================================================================  =====================
# ``vae_negative_elbo(x, mu, logvar, eps, decoder) -> (recon, kl)``          :func:`vae_negative_elbo`
# ========================================================================  =====================


class _LinearDecoder:
    """A fixed decoder for the checks: logits = z @ W + b, shown by its shape in messages."""

    def __init__(self, W, b):
        self.W, self.b = W, b

    def __call__(self, z):
        import torch

        return z @ torch.from_numpy(self.W) + torch.from_numpy(self.b)

    def numpy(self, z):
        return z @ self.W + self.b

    def __repr__(self):
        return f"<a linear decoder: z ({self.W.shape[0]},) -> {self.W.shape[1]} logits>"


def _vae_cases():
    rng = np.random.default_rng(401)

    def case(name, B, L, D, logit_scale=1.0, logvar_shift=0.0):
        W = rng.normal(size=(L, D)) * logit_scale
        b = rng.normal(size=D)
        return _Case(name, dict(
            x=(rng.random((B, D)) < 0.3).astype(np.float64),
            mu=rng.normal(size=(B, L)), logvar=rng.normal(size=(B, L)) + logvar_shift,
            eps=rng.normal(size=(B, L)), decoder=_LinearDecoder(W, b),
        ))

    return [
        case("3 images of 6 pixels, 2-D latent", 3, 2, 6),
        case("5 images of 10 pixels, 4-D latent, small variances", 5, 4, 10, logvar_shift=-3.0),
        case("2 images, saturated logits (sigmoid rounds to 0 or 1)", 2, 3, 8, logit_scale=60.0),
    ]


def _bernoulli_nll(x, logits):
    """-log p(x | logits) per image, from the logits (stable): sum softplus(l) - x l."""
    return (np.logaddexp(0.0, logits) - x * logits).sum(-1)


def vae_negative_elbo(fn):
    """Check ``fn(x, mu, logvar, eps, decoder) -> (recon, kl)`` in torch, each of shape (B,).

    Parameters
    ----------
    fn : callable
        Inputs: ``x`` (B, D) binary pixels, ``mu`` and ``logvar`` (B, L) the encoder's output,
        ``eps`` (B, L) standard normal noise, and ``decoder``, a function from codes (B, L) to
        pixel logits (B, D). Returns ``recon`` = -log p(x | z) with the reparameterised code
        z = mu + exp(logvar / 2) * eps, and ``kl`` = KL(N(mu, diag exp(logvar)) || N(0, I)),
        one number per image each (nats).

    Raises
    ------
    CheckFailed
        With a HINT for: exp(logvar) or logvar used as the standard deviation, the noise
        left out (z = mu), a mean over pixels instead of a sum, log p(x | z) returned instead of
        its negative, the cross-entropy computed from probabilities (log 0 on saturated
        pixels), a mean over the batch, the KL's sign or factor 1/2.
    """

    def verify(case, out):
        x, mu, logvar, eps, decoder = case.inputs.values()
        recon, kl = _unpack("vae_negative_elbo", out, ["recon", "kl"])
        recon, kl = _from_tensor("recon", recon), _from_tensor("kl", kl)

        def nll(z):
            return _bernoulli_nll(x, decoder.numpy(z))

        expected_recon = nll(mu + np.exp(0.5 * logvar) * eps)
        expected_kl = -0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar), axis=-1)
        probs = 1.0 / (1.0 + np.exp(-decoder.numpy(mu + np.exp(0.5 * logvar) * eps)))
        with np.errstate(all="ignore"):
            from_probs = -(x * np.log(probs) + (1 - x) * np.log(1 - probs)).sum(-1)
        recon_hints = [
            (lambda g: np.ndim(g) == 0,
             "one number per image (shape (B,)): sum over the pixels (`dim=-1`), not the batch."),
            (nll(mu + np.exp(logvar) * eps),
             "the standard deviation is exp(logvar / 2): exp(logvar) is the variance."),
            (nll(mu + logvar * eps),
             "logvar is a log-variance: the standard deviation is torch.exp(0.5 * logvar)."),
            (nll(mu), "the code must be sampled: z = mu + sigma * eps (the noise is missing)."),
            (expected_recon / x.shape[-1],
             "sum the per-pixel terms over the pixels; a mean divides the likelihood by D."),
            (-expected_recon, "return the *negative* log-likelihood (a loss, >= 0)."),
        ]
        if not np.isfinite(from_probs).all():
            recon_hints.append((
                _non_finite(expected_recon),
                "compute the cross-entropy from the logits "
                "(`F.binary_cross_entropy_with_logits(logits, x, reduction='none')`): "
                "sigmoid rounds to exactly 0 or 1 for large logits and log(0) = -inf."))
        _compare("recon", recon, expected_recon, hints=recon_hints)
        _compare("kl", kl, expected_kl, hints=[
            (lambda g: np.ndim(g) == 0,
             "one KL per image (shape (B,)): sum over the latent axis only."),
            (-expected_kl, "the sign is flipped: a KL is never negative."),
            (2 * expected_kl, "the KL has a factor 1/2 in front of its sum."),
            (-0.5 * (1 + logvar - mu**2 - np.exp(logvar)),
             "sum the KL over the latent coordinates (`dim=-1`)."),
        ])

    return _run_torch("vae_negative_elbo", fn, _vae_cases(), verify)


_CASES.update({"vae_negative_elbo": _vae_cases})
__all__ += ["vae_negative_elbo"]


# ============================================================================================
# Chapter 6: the Fréchet distance between two Gaussians
# ============================================================================================
#
# ========================================================================  ======================
# ``frechet_distance(mu_a, cov_a, mu_b, cov_b) -> float``                    :func:`frechet_distance`
# ========================================================================  ======================


def _frechet_cases():
    rng = np.random.default_rng(601)
    cases = [
        _Case("two Gaussians in 3-D", dict(mu_a=rng.normal(size=3), cov_a=_spd(rng, 3),
                                           mu_b=rng.normal(size=3), cov_b=_spd(rng, 3, 2.0))),
        _Case("the same covariance, shifted means (2-D)",
              dict(mu_a=np.zeros(2), cov_a=np.array([[2.0, 0.5], [0.5, 1.0]]),
                   mu_b=np.array([3.0, -1.0]), cov_b=np.array([[2.0, 0.5], [0.5, 1.0]]))),
    ]
    v = rng.normal(size=(4, 1))
    cases.append(_Case("a singular (rank-1) covariance against a full one, 4-D",
                       dict(mu_a=rng.normal(size=4), cov_a=v @ v.T,
                            mu_b=rng.normal(size=4), cov_b=_spd(rng, 4))))
    return cases


def _sqrtm_psd(matrix):
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(fn):
    """Check ``fn(mu_a, cov_a, mu_b, cov_b) -> float``, the squared Fréchet distance.

    Parameters
    ----------
    fn : callable
        Inputs: means (d,) and covariances (d, d) of two Gaussians, float64 NumPy arrays.
        Returns ``||mu_a - mu_b||^2 + tr(cov_a + cov_b - 2 (cov_a cov_b)^{1/2})`` as one number.

    Raises
    ------
    CheckFailed
        With a HINT for: the mean term missing, the factor 2 missing, an elementwise square root
        instead of a matrix square root, the product of the two square roots instead of the
        root of the product, the distance instead of its square, a complex result.
    """
    from gae_course import judge

    def verify(case, got):
        mu_a, cov_a, mu_b, cov_b = case.inputs.values()
        expected = judge.frechet_distance(mu_a, cov_a, mu_b, cov_b)
        if np.iscomplexobj(got):
            raise CheckFailed(
                "the result is complex.\nHINT: a matrix square root from scipy.linalg.sqrtm can "
                "carry tiny imaginary parts: keep the real part (`.real`), or take the root from "
                "the eigenvalues of a symmetric matrix (np.linalg.eigh).")
        mean_term = float(np.sum((mu_a - mu_b) ** 2))
        cross = expected - mean_term - np.trace(cov_a) - np.trace(cov_b)  # -2 tr sqrt(...)
        with np.errstate(all="ignore"):
            elementwise = np.trace(np.sqrt(cov_a @ cov_b))
            product_of_roots = np.trace(_sqrtm_psd(cov_a) @ _sqrtm_psd(cov_b))
        hints = [
            (expected - mean_term, "add the mean term ||mu_a - mu_b||^2."),
            (expected - cross / 2, "the cross term is -2 tr((cov_a cov_b)^(1/2)): the factor 2 "
                                   "is missing."),
            (mean_term + np.trace(cov_a + cov_b) - 2 * elementwise,
             "np.sqrt is elementwise: (cov_a cov_b)^(1/2) is a matrix square root (the sum of the "
             "square roots of the eigenvalues of cov_a cov_b gives its trace)."),
            (mean_term + np.trace(cov_a + cov_b) - 2 * product_of_roots,
             "(cov_a cov_b)^(1/2) is not cov_a^(1/2) cov_b^(1/2) unless the two matrices "
             "commute: take the root of the product."),
            (math.sqrt(max(expected, 0.0)),
             "return the squared distance d^2 (the FID convention), not d."),
        ]
        _compare("frechet_distance", got, expected, rtol=1e-6, atol=1e-8, hints=hints)

    return _run("frechet_distance", fn, _frechet_cases(), verify)


_CASES.update({"frechet_distance": _frechet_cases})
__all__ += ["frechet_distance"]

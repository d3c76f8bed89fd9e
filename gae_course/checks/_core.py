"""The machinery shared by every check: cases, the comparison, the runner, the case registry.

A check (one per exercise, in the chapter modules) builds a few tiny, deterministic
:class:`_Case` objects, registers them with :func:`_register` so that :func:`case_inputs` can
hand them back, and calls :func:`_run` with a ``verify(case, output)`` function that compares
each returned quantity through :func:`_compare`.

The comparison follows one recipe: the type first (a NumPy array), then the shape and the
dtype kind, then the values, with the tolerances of ``np.testing.assert_allclose``. Checking
the shape first matters: a broadcasting ``abs(got - expected) < eps`` would let a (n, 1)
column pass for a (n,) vector. When a wrong answer matches a known mistake (the answer that
mistake gives is computed for the same case), the message ends with a HINT naming it.

torch is imported lazily, inside the functions that need it: the NumPy chapters never load it.
"""

from __future__ import annotations

import math
import numbers
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np

from gae_course import mixture


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
    """'X (5, 2), reg_covar=0.001': arrays and tensors by their shape, anything else by repr."""
    parts = []
    for key, value in inputs.items():
        shape = getattr(value, "shape", None)
        parts.append(f"{key} {tuple(shape)}" if shape is not None else f"{key}={value!r}")
    return ", ".join(parts)


def _where(err, fn):
    """'line N: code' of the reader's code where ``err`` was raised, if it can be found."""
    frames = traceback.extract_tb(err.__traceback__)[1:]  # [0] is _invoke itself
    code = getattr(fn, "__code__", None)
    own = [f for f in frames if code is not None and f.filename == code.co_filename]
    frame = (own or frames or [None])[-1]
    if frame is None:
        return ""
    line = f": {frame.line.strip()}" if frame.line else ""
    return f"\n  raised at line {frame.lineno}{line}"


def _invoke(check_name, fn, case, args):
    """``fn(*args.values())``; return (output, its distinct warning messages, in order).

    Warnings are recorded for the message rather than raised or printed halfway through the
    check; an exception becomes a :class:`CheckFailed` that names the case and the line.
    """
    with warnings.catch_warnings(record=True) as caught:
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
    messages = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in messages:
            messages.append(text)
    return out, messages


def _check_unchanged(check_name, case, before_after, same, hint):
    """Raise CheckFailed naming the first argument whose ``(before, after)`` are not ``same``."""
    for key, before, after in before_after:
        if not same(before, after):
            raise CheckFailed(
                f"{check_name} changed its argument `{key}` in place (on case {case.name!r}).\n"
                f"HINT: {hint}"
            )


def _call(check_name, fn, case):
    """Call ``fn`` on copies of the case's NumPy inputs; return (output, warning messages)."""
    args = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in case.inputs.items()}
    # Same floating-point reporting whatever the reader (or pytest) configured.
    with np.errstate(divide="warn", over="warn", invalid="warn", under="ignore"):
        out, messages = _invoke(check_name, fn, case, args)
    _check_unchanged(
        check_name, case,
        [(k, v, args[k]) for k, v in case.inputs.items() if isinstance(v, np.ndarray)],
        # array_equal is also False when the shape changed
        lambda before, after: np.array_equal(after, before, equal_nan=True),
        "work on new arrays, e.g. `diff = X - mean` instead of `X -= mean`; the "
        "caller still needs the original values.",
    )
    return out, messages


def _call_on_tensors(check_name, fn, case):
    """Call ``fn`` on the case's own torch inputs (leaf tensors autograd must see); as _call."""
    import torch

    originals = {k: v.detach().clone() for k, v in case.inputs.items()
                 if isinstance(v, torch.Tensor)}
    out, messages = _invoke(check_name, fn, case, case.inputs)
    _check_unchanged(
        check_name, case,
        [(k, v, case.inputs[k].detach()) for k, v in originals.items()],
        lambda before, after: after.shape == before.shape and torch.equal(after, before),
        "build new tensors (`z = mu + sigma * eps`), never `mu += ...`: the caller, "
        "and autograd, still need the originals.",
    )
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


def _run(check_name, fn, cases, verify, *, call=_call, repeat_warnings=True):
    """Run every case through ``verify(case, output)``; print one line when all pass.

    Parameters
    ----------
    call : callable
        How the reader's function is called on a case: :func:`_call` (NumPy copies) or
        :func:`_call_on_tensors` (the case's torch tensors themselves).
    repeat_warnings : bool
        Whether a failing case's message repeats warnings an earlier case already gave
        (True for the NumPy checks, False for the chapter 3 estimator checks).
    """
    if not callable(fn):
        raise CheckFailed(
            f"checks.{check_name} takes your function itself, e.g. `checks.{check_name}"
            f"({check_name})` (no parentheses after it); got {_describe(fn)}."
        )
    all_warnings = []
    for number, case in enumerate(cases, start=1):
        out, caught = call(check_name, fn, case)
        new = [w for w in caught if w not in all_warnings]
        all_warnings += new
        shown = caught if repeat_warnings else new
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
            if shown:
                lines.append("Your function also warned: " + "; ".join(shown))
            lines.append(
                f"To debug: inputs = checks.case_inputs({check_name!r}, {number}); "
                f"{check_name}(*inputs.values())"
            )
            raise CheckFailed("\n".join(lines)) from None
    line = f"{check_name}: all {len(cases)} cases pass ✓"
    if all_warnings:
        line += " (but it warned: " + "; ".join(all_warnings) + ")"
    print(line)
    # None, not True: a notebook then shows no `Out: True` under every exercise, and nbgrader
    # counts a cell without output as full credit (it warns on a True it cannot read as a score).


# --------------------------------------------------------------------------------------------
# Torch exercises on NumPy cases (chapters 2 and 4)
# --------------------------------------------------------------------------------------------
#
# The reader writes these in torch. The cases stay NumPy float64 (so that messages show
# shapes and case_inputs returns arrays); _WithTensors hands them over as float64 tensors that
# share memory with the copies _call makes, so an in-place edit is still caught.


class _WithTensors:
    """Calls the reader's torch function on tensors made from a case's NumPy arrays."""

    def __init__(self, fn):
        self.fn = fn
        self.__code__ = getattr(fn, "__code__", None)  # so _where still finds the reader's line

    def __call__(self, *args):
        import torch

        return self.fn(*(torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args))


def _run_torch(check_name, fn, cases, verify):
    """:func:`_run` for a torch function on NumPy cases."""
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


# --------------------------------------------------------------------------------------------
# The case registry, behind case_inputs
# --------------------------------------------------------------------------------------------

# check name -> a function building its cases afresh; each chapter module registers its own.
_CASES = {}


def _register(**builders):
    """Make ``case_inputs(name, number)`` find the cases of the checks named here."""
    _CASES.update(builders)


def case_inputs(check, number):
    """The inputs of one case, to rerun it by hand: ``fn(*case_inputs("e_step", 4).values())``.

    Parameters
    ----------
    check : str
        The name of a check, as in the failure message (``'e_step'``).
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
# Helpers for cases and hints used by several chapters
# --------------------------------------------------------------------------------------------


def _spd(rng, d, scale=1.0):
    """A random symmetric positive-definite (d, d) matrix, well conditioned."""
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.3 * np.eye(d))


def _lse(a, axis):
    return mixture.logsumexp(a, axis=axis)


def _non_finite(expected):
    """A hint test: ``got`` has NaN or inf where ``expected`` is finite."""

    def test(got):
        return got.shape == np.shape(expected) and bool(
            np.any(~np.isfinite(got) & np.isfinite(expected))
        )

    return test


_MAX_TRICK = (
    "use the max trick in log-sum-exp: far from every mean, np.exp of the log-densities "
    "underflows to 0.0 and np.log(0.0) = -inf (then -inf - -inf = NaN). Subtract each row's "
    "maximum before np.exp and add it back after np.log (or use scipy.special.logsumexp)."
)

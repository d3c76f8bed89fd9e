"""Checks for chapter 3: gradient estimators (torch).

The exercises of chapter 3 take and return torch tensors (float64), and the quantity that
matters is a *gradient*: each check calls the reader's estimator on fixed noise, runs
autograd on the returned surrogate, and compares value and gradients with
:mod:`gae_course.estimators` through the same :func:`~gae_course.checks._core._compare` (on
NumPy copies). Cases are built fresh for every call (torch imported only here: chapter 1
stays NumPy-only), so ``case_inputs`` hands back new leaf tensors that can be passed straight
to the function.
"""

from __future__ import annotations

import numbers

import numpy as np

from gae_course.checks._core import (
    _Case,
    CheckFailed,
    _call_on_tensors,
    _compare,
    _describe,
    _register,
    _run,
    _unpack,
)


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



def _run_estimator_check(check_name, fn, cases, verify):
    """:func:`_run` for torch exercises: the case's own tensors, then ``verify(case, out)``."""
    return _run(check_name, fn, cases, verify, call=_call_on_tensors, repeat_warnings=False)


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


def _run_gaussian_estimator_check(check_name, fn, estimator, hints_for):
    """Run a (value, surrogate) Gaussian estimator exercise against ``estimator``."""

    def verify(case, out):
        _check_estimate(check_name, case, out, estimator, hints_for)

    return _run_estimator_check(check_name, fn, _gaussian_estimator_cases(), verify)


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

    return _run_gaussian_estimator_check(
        "reparam_gaussian", fn, estimators.reparam_gaussian, hints_for
    )


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
        With a HINT for: z not detached, with f attached (a pathwise term added) or with f
        detached (the estimate becomes (0, -f)), the -log σ normaliser left
        out of log N, log N averaged instead of summed over D, a sum over the samples
        instead of the mean, log_sigma used as sigma, f without the log-density.
    """
    from gae_course import estimators

    def hints_for(f, mu, log_sigma, eps, n_samples):
        import torch

        fz = f((mu + torch.exp(log_sigma) * eps).detach()).detach().numpy()  # (K, B)
        # f(z).detach() * log q(z) with z NOT detached: in the graph (z - mu) / sigma is eps,
        # so log q depends on the parameters only through -log sigma: the estimate is (0, -f).
        detached_f_attached_z = (np.zeros(tuple(mu.shape)),
                                 np.broadcast_to(-fz.mean(0)[:, None], tuple(mu.shape)))
        hints = [
            (detached_f_attached_z,
             "the gradient is (0, -f): log N was evaluated at a z that still depends on mu and "
             "log_sigma, so (z - mu) / σ is just eps in the graph and only the -log σ term "
             "moves. Detach the samples *before* computing log N(z | mu, σ²): "
             "z = (mu + sigma * eps).detach()."),
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

    return _run_gaussian_estimator_check(
        "score_function_gaussian", fn, estimators.score_function_gaussian, hints_for
    )


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


_register(
    reparam_gaussian=_gaussian_estimator_cases,
    score_function_gaussian=_gaussian_estimator_cases,
    leave_one_out_baseline=_leave_one_out_cases,
)

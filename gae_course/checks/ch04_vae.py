"""Checks for chapter 4: the VAE's negative ELBO, its importance-weighted bound, and the
score-function surrogate of a binary VAE with its baseline (torch).

The cases are NumPy float64 with a fixed linear decoder; the reader's function gets them as
float64 tensors. The expected answers are computed in NumPy, from the logits.

Equations: Kingma & Welling, *Auto-Encoding Variational Bayes* (2014), eq. 10 and Appendix B;
Burda, Grosse & Salakhutdinov, *Importance Weighted Autoencoders* (2016), eq. 8;
Mnih & Gregor, *Neural Variational Inference and Learning in Belief Networks* (2014), sec. 3.
"""

from __future__ import annotations

import math

import numpy as np

from gae_course.checks._core import (
    CheckFailed,
    _call_on_tensors,
    _Case,
    _compare,
    _describe,
    _run,
    _from_tensor,
    _lse,
    _non_finite,
    _register,
    _run_torch,
    _unpack,
)


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


def _iwae_cases():
    rng = np.random.default_rng(402)

    def case(name, K, B, L, D, logit_scale=1.0, logvar_shift=0.0):
        W = rng.normal(size=(L, D)) * logit_scale
        b = rng.normal(size=D)
        return _Case(name, dict(
            x=(rng.random((B, D)) < 0.3).astype(np.float64),
            mu=rng.normal(size=(B, L)), logvar=rng.normal(size=(B, L)) * 0.5 + logvar_shift,
            eps=rng.normal(size=(K, B, L)), decoder=_LinearDecoder(W, b),
        ))

    return [
        case("K = 5 codes for each of 3 images of 6 pixels, 2-D latent", 5, 3, 2, 6),
        case("K = 1: the bound is a one-sample ELBO", 1, 4, 3, 8),
        case("K = 7, 2 images of 300 pixels, saturated logits: log-weights of -1000s "
             "(exp underflows to 0.0)", 7, 2, 3, 300, logit_scale=30.0),
    ]


def _iwae_log_weights(x, mu, logvar, eps, decoder):
    """log p(z) + log p(x | z) - log q(z | x) for the K codes z = mu + sigma * eps: (K, B)."""
    std = np.exp(0.5 * logvar)
    z = mu + std * eps  # (K, B, L)
    log_lik = -_bernoulli_nll(x, decoder.numpy(z))  # (K, B)
    log_2pi = math.log(2 * math.pi)
    log_prior = -0.5 * (z**2 + log_2pi).sum(-1)
    log_q = -0.5 * (eps**2 + logvar + log_2pi).sum(-1)
    return log_lik, log_prior, log_q


def vae_iwae_bound(fn):
    """Check ``fn(x, mu, logvar, eps, decoder) -> bound`` in torch: L_K per image, shape (B,).

    Parameters
    ----------
    fn : callable
        Inputs: ``x`` (B, D) binary pixels, ``mu`` and ``logvar`` (B, L), ``eps`` (K, B, L)
        standard normal noise, ``decoder`` from codes (N, L) (or (K, B, L)) to logits. Returns
        log (1/K) sum_k exp(w_k) with the log-weights w_k = log p(z_k) + log p(x | z_k)
        - log q(z_k | x) of the codes z_k = mu + exp(logvar / 2) * eps_k, one number per image.

    Raises
    ------
    CheckFailed
        With a HINT for: the mean of the log-weights (the ELBO), log-sum-exp without the
        -log K, the wrong axis, a naive log(mean(exp(...))) that underflows, the prior or the
        proposal left out of the weights.
    """

    def verify(case, got):
        x, mu, logvar, eps, decoder = case.inputs.values()
        K, B = eps.shape[:2]
        log_lik, log_prior, log_q = _iwae_log_weights(x, mu, logvar, eps, decoder)
        log_w = log_lik + log_prior - log_q
        expected = _lse(log_w, axis=0) - math.log(K)
        got = _from_tensor("bound", got)
        hints = [
            (lambda g: np.shape(g) == (K,) and K != B,
             "one bound per image (shape (B,)): reduce over the K samples, axis 0 (`dim=0`)."),
            (lambda g: np.ndim(g) == 0,
             "one bound per image (shape (B,)): reduce over the samples (`dim=0`) only, not the batch."),
            (log_w.mean(0),
             "this is the mean of the log-weights, a K-sample ELBO: L_K is the log of the mean "
             "of the weights, a log-mean-exp over the samples."),
            (expected + math.log(K),
             "log-sum-exp is the log of the sum: subtract log K (`math.log(K)`) to make it the "
             "log of the mean."),
            (_lse(log_lik + log_prior, axis=0) - math.log(K),
             "the weights are p(z) p(x | z) / q(z | x): subtract log q(z | x), the proposal's "
             "log-density of each code."),
            (_lse(log_lik - log_q, axis=0) - math.log(K),
             "the weights are p(z) p(x | z) / q(z | x): add the prior's log-density log N(z | 0, I)."),
            (_non_finite(expected),
             "use the max trick: torch.logsumexp(log_w, dim=0) - math.log(K). The log-weights of "
             "images are about a hundred nats below zero or lower; float32's exp underflows to 0.0 "
             "below about -104, and log(mean(exp(...))) is then -inf."),
        ]
        _compare("bound", got, expected, hints=hints)

    return _run_torch("vae_iwae_bound", fn, _iwae_cases(), verify)


def _surrogate_cases():
    import torch

    def t(values):
        return torch.tensor(values, dtype=torch.float64, requires_grad=True)

    return [
        _Case("3 images: log p(x | z) near -100, a baseline near it", dict(
            log_lik=t([-103.0, -96.5, -110.2]), log_q=t([-20.1, -18.4, -25.0]),
            baseline=t([-100.0, -99.0, -104.0]))),
        _Case("a single image (B = 1)", dict(
            log_lik=t([-88.0]), log_q=t([-11.0]), baseline=t([-90.5]))),
        _Case("5 images, one whose baseline is exactly right (no learning signal)", dict(
            log_lik=t([-95.0, -120.0, -101.0, -87.5, -99.0]),
            log_q=t([-30.0, -28.5, -33.0, -26.0, -31.5]),
            baseline=t([-95.0, -112.0, -104.0, -90.0, -97.0]))),
    ]


def score_function_surrogate(fn):
    """Check ``fn(log_lik, log_q, baseline) -> surrogate``, a scalar to minimise, by its gradients.

    Parameters
    ----------
    fn : callable
        Inputs, each of shape (B,) with ``requires_grad=True``: ``log_lik`` = log p(x | z) at a
        sample z ~ q (its gradient path is the decoder's), ``log_q`` = log q(z | x) (the
        encoder's), ``baseline`` = b(x), a learned network's output. The gradient of the
        returned scalar must be minus the batch mean of grad log p(x | z) + (log p(x | z) -
        b(x)) grad log q(z | x): with respect to log_lik -1/B, to log_q -(log_lik - b) / B, and
        none to the baseline, which learns by its own loss.

    Raises
    ------
    CheckFailed
        With a HINT for: the learning signal not detached (the decoder then also learns from
        log q), the baseline not detached, the baseline left out, the decoder's own term left
        out, the sign (a surrogate to maximise), a sum over the batch instead of a mean.
    """
    import torch

    def verify(case, out):
        log_lik, log_q, baseline = case.inputs.values()
        if not isinstance(out, torch.Tensor) or out.ndim != 0:
            raise CheckFailed(f"surrogate should be a scalar torch tensor (shape ()), got {_describe(out)}."
                              "\nHINT: average over the batch (`.mean()`) and stay in torch.")
        if not out.requires_grad:
            raise CheckFailed("surrogate has no gradient path to log_lik and log_q.\nHINT: build it "
                              "from log_lik and log_q themselves; detach only the learning signal.")
        grads = dict(zip(("grad_log_lik", "grad_log_q", "grad_baseline"),
                         _estimator_grads(out, [log_lik, log_q, baseline])))
        f, lq, b = (v.detach().numpy() for v in (log_lik, log_q, baseline))
        B = len(f)
        _compare("grad_log_q", grads["grad_log_q"], -(f - b) / B, hints=[
            (-f / B, "subtract the baseline from the learning signal: (log_lik - baseline) * log_q."),
            ((f - b) / B, "the surrogate is minimised: return minus the mean of "
                          "log_lik + (log_lik - b) * log_q."),
            (-(f - b), "average over the batch (`.mean()`), not a sum."),
        ])
        _compare("grad_log_lik", grads["grad_log_lik"], np.full(B, -1.0 / B), hints=[
            (-(1 + lq) / B, "detach the learning signal, (log_lik.detach() - baseline) * log_q: "
                            "otherwise the decoder also learns from log q(z | x)."),
            (np.zeros(B), "keep log_lik itself in the surrogate: its own gradient is the "
                          "decoder's exact gradient given z."),
        ])
        _compare("grad_baseline", grads["grad_baseline"], np.zeros(B), hints=[
            (lq / B, "detach the baseline (`baseline.detach()`): it must get no gradient from "
                     "this surrogate; it learns by its own squared-error loss."),
            (lambda g: np.any(g != 0), "the baseline must get no gradient here: detach it."),
        ])

    return _run("score_function_surrogate", fn, _surrogate_cases(), verify,
                call=_call_on_tensors, repeat_warnings=False)


def _estimator_grads(surrogate, params):
    """Gradients of ``surrogate`` w.r.t. ``params`` as NumPy arrays (zeros where unused)."""
    import torch

    grads = torch.autograd.grad(surrogate, params, allow_unused=True)
    return [np.zeros(tuple(p.shape)) if g is None else g.detach().numpy().copy()
            for g, p in zip(grads, params)]


_register(vae_negative_elbo=_vae_cases, vae_iwae_bound=_iwae_cases,
          score_function_surrogate=_surrogate_cases)

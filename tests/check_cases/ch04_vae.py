"""Chapter 4 exercises (the VAE's negative ELBO with a reparameterised code, and its
importance-weighted bound; torch).
"""

import math

import torch


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


MISTAKES = [
    ("vae_negative_elbo", _vae_with(lambda m, lv, e: m + torch.exp(lv) * e), r"exp\(logvar\) is the variance"),
    ("vae_negative_elbo", _vae_with(lambda m, lv, e: m + lv * e), r"logvar is a log-variance"),
    ("vae_negative_elbo", _vae_with(lambda m, lv, e: m), r"the noise is missing"),
    ("vae_negative_elbo", _vae_with(lambda m, lv, e: m + torch.exp(0.5 * lv) * e, lambda pp, l, x: pp.mean(-1)),
     r"a mean divides the likelihood by D"),
    ("vae_negative_elbo", _vae_with(lambda m, lv, e: m + torch.exp(0.5 * lv) * e, lambda pp, l, x: -pp.sum(-1)),
     r"return the \*negative\* log-likelihood"),
    ("vae_negative_elbo", _vae_with(lambda m, lv, e: m + torch.exp(0.5 * lv) * e, _from_probabilities),
     r"case 3 of 3(.|\n)*from the logits"),
    ("vae_negative_elbo", _vae_with(lambda m, lv, e: m + torch.exp(0.5 * lv) * e, None, lambda kl: -kl), r"a KL is never negative"),
    ("vae_negative_elbo", _vae_with(lambda m, lv, e: m + torch.exp(0.5 * lv) * e, lambda pp, l, x: pp.sum()),
     r"one number per image"),
]


def vae_iwae_bound(x, mu, logvar, eps, decoder):
    return torch.logsumexp(_iwae_log_weights(x, mu, logvar, eps, decoder), dim=0) - math.log(eps.shape[0])


def _iwae_terms(x, mu, logvar, eps, decoder):
    z = mu + torch.exp(0.5 * logvar) * eps  # (K, B, L)
    log_lik = -torch.nn.functional.binary_cross_entropy_with_logits(
        decoder(z), x.expand(eps.shape[0], *x.shape), reduction="none").sum(-1)
    log_2pi = math.log(2 * math.pi)
    log_prior = -0.5 * (z**2 + log_2pi).sum(-1)
    log_q = -0.5 * (eps**2 + logvar + log_2pi).sum(-1)
    return log_lik, log_prior, log_q


def _iwae_log_weights(*args):
    log_lik, log_prior, log_q = _iwae_terms(*args)
    return log_lik + log_prior - log_q


def iwae_mean_of_log_weights(*args):
    return _iwae_log_weights(*args).mean(0)


def iwae_no_log_k(*args):
    return torch.logsumexp(_iwae_log_weights(*args), dim=0)


def iwae_naive(*args):
    return torch.log(torch.exp(_iwae_log_weights(*args)).mean(0))


def iwae_wrong_axis(*args):
    return torch.logsumexp(_iwae_log_weights(*args), dim=-1) - math.log(args[3].shape[0])


def iwae_no_proposal(*args):
    log_lik, log_prior, _ = _iwae_terms(*args)
    return torch.logsumexp(log_lik + log_prior, dim=0) - math.log(args[3].shape[0])


def iwae_no_prior(*args):
    log_lik, _, log_q = _iwae_terms(*args)
    return torch.logsumexp(log_lik - log_q, dim=0) - math.log(args[3].shape[0])


MISTAKES += [
    ("vae_iwae_bound", iwae_mean_of_log_weights, r"mean of the log-weights, a K-sample ELBO"),
    ("vae_iwae_bound", iwae_no_log_k, r"subtract log K"),
    ("vae_iwae_bound", iwae_naive, r"case 3 of 3(.|\n)*max trick"),
    ("vae_iwae_bound", iwae_wrong_axis, r"reduce over the K samples, axis 0"),
    ("vae_iwae_bound", iwae_no_proposal, r"subtract log q\(z \| x\)"),
    ("vae_iwae_bound", iwae_no_prior, r"add the prior's log-density"),
]


def score_function_surrogate(log_lik, log_q, baseline):
    signal = log_lik.detach() - baseline.detach()
    return -(log_lik + signal * log_q).mean()


MISTAKES += [
    ("score_function_surrogate", lambda f, q, b: -(f + (f - b.detach()) * q).mean(),
     r"detach the learning signal"),
    ("score_function_surrogate", lambda f, q, b: -(f + (f.detach() - b) * q).mean(),
     r"detach the baseline"),
    ("score_function_surrogate", lambda f, q, b: -(f + f.detach() * q).mean(),
     r"subtract the baseline"),
    ("score_function_surrogate", lambda f, q, b: -((f.detach() - b.detach()) * q).mean(),
     r"keep log_lik itself"),
    ("score_function_surrogate", lambda f, q, b: (f + (f.detach() - b.detach()) * q).mean(),
     r"the surrogate is minimised"),
    ("score_function_surrogate", lambda f, q, b: -(f + (f.detach() - b.detach()) * q).sum(),
     r"case 1 of 3(.|\n)*not a sum"),
]


SOLUTIONS = {"vae_negative_elbo": vae_negative_elbo, "vae_iwae_bound": vae_iwae_bound,
             "score_function_surrogate": score_function_surrogate}

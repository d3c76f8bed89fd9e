"""Chapter 4 exercise (the VAE's negative ELBO with a reparameterised code; torch).
"""

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


SOLUTIONS = {"vae_negative_elbo": vae_negative_elbo}

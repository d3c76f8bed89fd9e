"""Chapter 2 exercises (the Gaussian KL, the ELBO estimate, the IWAE bound, the
linear-Gaussian ELBO in closed form; torch).
"""

import math

import torch


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


def linear_gaussian_elbo(x, W, b, sigma, mu, logvar):
    """Closed-form ELBO of N(mu, diag exp(logvar)) under p(z) = N(0, I), p(x | z) = N(Wz + b, sigma^2 I)."""
    D = x.shape[-1]
    squared = ((x - mu @ W.T - b) ** 2).sum(-1) + (torch.exp(logvar) * (W**2).sum(0)).sum(-1)
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - torch.exp(logvar), dim=-1)
    return -0.5 * D * math.log(2 * math.pi * sigma**2) - squared / (2 * sigma**2) - kl


SOLUTIONS = {"gaussian_kl": gaussian_kl, "elbo_estimate": elbo_estimate, "iwae_bound": iwae_bound,
             "linear_gaussian_elbo": linear_gaussian_elbo}


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


def lg_no_spread(x, W, b, sigma, mu, logvar):
    D = x.shape[-1]
    squared = ((x - mu @ W.T - b) ** 2).sum(-1)  # forgot the variance of z under q
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - torch.exp(logvar), dim=-1)
    return -0.5 * D * math.log(2 * math.pi * sigma**2) - squared / (2 * sigma**2) - kl


def lg_std_in_spread(x, W, b, sigma, mu, logvar):
    D = x.shape[-1]
    squared = ((x - mu @ W.T - b) ** 2).sum(-1) + (torch.exp(0.5 * logvar) * (W**2).sum(0)).sum(-1)
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - torch.exp(logvar), dim=-1)
    return -0.5 * D * math.log(2 * math.pi * sigma**2) - squared / (2 * sigma**2) - kl


def lg_no_constant(x, W, b, sigma, mu, logvar):
    D = x.shape[-1]
    return linear_gaussian_elbo(x, W, b, sigma, mu, logvar) + 0.5 * D * math.log(2 * math.pi * sigma**2)


def lg_divide_by_sigma(x, W, b, sigma, mu, logvar):
    D = x.shape[-1]
    squared = ((x - mu @ W.T - b) ** 2).sum(-1) + (torch.exp(logvar) * (W**2).sum(0)).sum(-1)
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - torch.exp(logvar), dim=-1)
    return -0.5 * D * math.log(2 * math.pi * sigma**2) - squared / (2 * sigma) - kl


def lg_plus_kl(x, W, b, sigma, mu, logvar):
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - torch.exp(logvar), dim=-1)
    return linear_gaussian_elbo(x, W, b, sigma, mu, logvar) + 2 * kl


MISTAKES = [
    ("linear_gaussian_elbo", lg_no_spread, r"case 1 of 4(.|\n)*the spread of q is missing"),
    ("linear_gaussian_elbo", lg_std_in_spread, r"variances s_j = exp\(logvar_j\)"),
    ("linear_gaussian_elbo", lg_no_constant, r"normalising constant"),
    ("linear_gaussian_elbo", lg_divide_by_sigma, r"not by 2 sigma"),
    ("linear_gaussian_elbo", lg_plus_kl, r"subtract the KL"),
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

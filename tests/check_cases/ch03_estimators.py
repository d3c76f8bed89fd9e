"""Chapter 3 exercises (reparameterisation, the score function, leave-one-out; torch).
"""

import math

import torch


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


SOLUTIONS = {
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


def sf_log_q_at_attached_z(f, mu, log_sigma, eps):
    import math

    import torch

    z = mu + torch.exp(log_sigma) * eps  # not detached: (z - mu) / sigma is eps in the graph
    log_q = (-0.5 * ((z - mu) / torch.exp(log_sigma)) ** 2 - log_sigma
             - 0.5 * math.log(2 * math.pi)).sum(-1)
    fz = f(z).detach()
    return fz.mean(0), (fz * log_q).mean(0).sum()


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


MISTAKES = [
    ("reparam_gaussian", rp_log_sigma_as_sigma,
     r"value has wrong(.|\n)*sigma = exp\(log_sigma\)"),
    ("reparam_gaussian", rp_log_variance, r"not log σ² \(a log-variance\)"),
    ("reparam_gaussian", rp_sum_over_samples, r"case 2 of 4(.|\n)*average over the K samples"),
    ("reparam_gaussian", rp_detached_z, r"grad_mu has wrong values(.|\n)*gradient is zero"),
    ("reparam_gaussian", rp_value_not_detached, r"value still carries a gradient path"),
    ("reparam_gaussian", rp_surrogate_per_problem,
     r"single number \(a 0-d tensor\)(.|\n)*sum the per-problem"),
    ("score_function_gaussian", sf_z_not_detached, r"detach the samples"),
    ("score_function_gaussian", sf_log_q_at_attached_z,
     r"grad_mu has wrong values(.|\n)*the gradient is \(0, -f\)"),
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



"""Write the README's results tables from ``build/results.json`` (what ``make course`` wrote).

    .venv/bin/python tools/readme_results.py            # print the tables
    .venv/bin/python tools/readme_results.py --write    # replace them in README.md

The tables go between the lines ``<!-- results: begin -->`` and ``<!-- results: end -->`` of
README.md, so every number there is one that a ``make course`` run wrote, and re-running this
after the next run keeps them in step. A key the run did not write is shown as "–".
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results: begin -->", "<!-- results: end -->"
DATASETS = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


def get(tree, path, default=None):
    """``tree[a][b]...`` for the dotted ``path`` (keys may contain spaces), or ``default``."""
    for key in path.split("|"):
        if not isinstance(tree, dict) or key not in tree:
            return default
        tree = tree[key]
    return tree


def fmt(value, spec=".4f"):
    return "–" if value is None else format(value, spec)


def minutes(seconds):
    if seconds is None:
        return "–"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def chapter_times(results):
    rows = [f"| {stem} | {get(entry, 'mode', '–')} | {minutes(get(entry, 'runtime_s'))} |"
            for stem, entry in results.items() if isinstance(entry, dict) and "runtime_s" in entry]
    total = sum(get(e, "runtime_s", 0) for e in results.values() if isinstance(e, dict))
    return "\n".join(["| chapter | mode | time of this run |", "|---|---|---|", *rows,
                      f"| all | | {minutes(total)} |"])


def chapter5(r):
    c5 = r.get("05_gaussian_auto_embeddings", {})
    lines = ["| | MNIST train | MNIST test | Fashion-MNIST train | Fashion-MNIST test |", "|---|---|---|---|---|",
             "| published GAE | 0.9816 | 0.9766 | 0.8776 | 0.8538 |"]
    for label, key in [("original configuration (6 components per class, `reg_covar` 0.01), seed 0", "original_config"),
                       ("tuned on validation ({settings}), seed 0", "tuned_config")]:
        settings = "; ".join(f"{name} {get(c5, f'{d}|{key}|n_components')} components per class, `reg_covar` "
                             f"{get(c5, f'{d}|{key}|reg_covar')}" for d, name in DATASETS.items())
        cells = []
        for d in DATASETS:
            if key == "tuned_config":
                cells += [fmt(get(c5, f"{d}|train_accuracy")), f"**{fmt(get(c5, f'{d}|test_accuracy'))}**"]
            else:
                cells += [fmt(get(c5, f"{d}|{key}|train")), fmt(get(c5, f"{d}|{key}|test"))]
        lines.append(f"| this course, {label.format(settings=settings)} | " + " | ".join(cells) + " |")
    seeds = []
    for d in DATASETS:
        acc = get(c5, f"{d}|test_accuracy_seeds") or []
        seeds.append(", ".join(fmt(a) for a in acc) if acc else "–")
    lines.append(f"| tuned, test accuracy for mixture seeds {get(c5, 'mnist|mixture_seeds', '–')} | | "
                 f"{seeds[0]} | | {seeds[1]} |")
    also = ["| chapter 5, also measured (tuned model) | MNIST model | Fashion-MNIST model |", "|---|---|---|"]
    rows = [
        ("out-of-distribution AUROC (shown the other dataset's test images)", "ood_auroc", ".4f"),
        ("\"none of these\" rejects: own test images", "ood_rejected_inside", ".1%"),
        ("\"none of these\" rejects: the other dataset's test images", "ood_rejected_outside", ".2%"),
        ("expected calibration error of `predict_proba` (test)", "expected_calibration_error", ".3f"),
        ("Spearman rank correlation of closeness (KL) with confusions, 45 pairs", "kl_vs_confusion_spearman", ".2f"),
        ("its permutation (Mantel) p-value", "kl_vs_confusion_mantel_pvalue", ".3f"),
        ("uniform codes from the training box rejected", "uniform_box_rejected", ".0%"),
    ]
    for label, key, spec in rows:
        also.append(f"| {label} | " + " | ".join(fmt(get(c5, f"{d}|{key}"), spec) for d in DATASETS) + " |")
    also.append(f"| per-class mixture test accuracy with a 2-D code (AE(2): the 2-D VAE's networks, no KL) | "
                f"{fmt(get(c5, 'mnist_2d_test_accuracy'), '.3f')} | – |")
    return "\n".join(lines) + "\n\n" + "\n".join(also)


def chapter4(r):
    c4 = r.get("04_vae", {})
    n, K = get(c4, "n_test_images"), get(c4, "iwae_k")
    lines = ["| | nats |", "|---|---|",
             f"| published VAE, one stochastic layer, after 3280 passes, L_5000 on all 10 000 test images "
             f"(Burda et al., 2016, Table 1) | {fmt(get(c4, 'published_nll_nats'), '.2f')} |",
             f"| this course: MLP 784-512-256-32, {get(c4, 'training_epochs', '–')} epochs, -L_{K} on {n} test images "
             f"| **{fmt(get(c4, 'test_nll_nats'), '.2f')} ± {fmt(get(c4, 'test_nll_std_error'), '.2f')}** |",
             f"| the same model, -ELBO on the same {n} test images | {fmt(get(c4, 'test_neg_elbo_nats'), '.2f')} |",
             f"| the same model, -ELBO on the {get(c4, 'n_validation_images', '–')} validation images "
             f"| {fmt(get(c4, 'validation_neg_elbo_nats'), '.2f')} |"]
    betas = list((get(c4, "beta_sweep") or {}).keys())
    sweep = ["| beta (16 latent units, 5 epochs; validation images) | " + " | ".join(betas) + " |",
             "|---" * (len(betas) + 1) + "|"]
    for label, key, spec in [("reconstruction (nats)", "recon", ".1f"), ("KL (nats)", "kl", ".1f"),
                             ("negative ELBO (nats)", "neg_elbo", ".1f"), ("active units", "active_units", "d")]:
        sweep.append(f"| {label} | " + " | ".join(fmt(get(c4, f"beta_sweep|{b}|{key}"), spec) for b in betas) + " |")
    judge_n = get(c4, "beta_sweep_judge|n")
    sweep.append(f"| Fréchet distance of {judge_n or '–'} prior samples (judge features) | "
                 + " | ".join(fmt(get(c4, f"beta_sweep_judge|beta={b}|frechet"), ".1f") for b in betas) + " |")
    sweep.append("| judge's mean confidence on them | "
                 + " | ".join(fmt(get(c4, f"beta_sweep_judge|beta={b}|confidence"), ".3f") for b in betas) + " |")
    real = get(c4, "beta_sweep_judge|real held-out images|frechet")
    verdict = get(c4, "beta_sweep_judge|verdict", "–")
    corners = get(c4, "binary_vs_gaussian_nll") or {}
    small = ["| small VAE (one hidden layer of 400, 5 epochs) | -L_K, 500 validation images (nats) |", "|---|---|"]
    small += [f"| {label} | {fmt(v, '.2f')} |" for label, v in corners.items()]
    return ("\n".join(lines) + "\n\n" + "\n".join(sweep)
            + f"\n\nReal held-out images against real, same n: Fréchet {fmt(real, '.2f')}. "
            f"Verdict printed by the chapter on \"lower beta generates better\": {verdict}.\n\n"
            + "\n".join(small)
            + f"\n\nThe NVIL baseline cuts the total variance of the binary VAE's encoder gradient "
            f"**{fmt(get(c4, 'baseline_variance_reduction'), '.0f')}×** "
            f"({fmt(get(c4, 'gradient_variance|no_baseline'), '.3g')} → "
            f"{fmt(get(c4, 'gradient_variance|baseline'), '.3g')}, {get(c4, 'gradient_variance|n_repeats', '–')} "
            f"estimates each on {get(c4, 'gradient_variance|n_images', '–')} validation images).")


def chapter6(r):
    c6 = r.get("06_comparison", {})
    models = list((get(c6, "mnist|samples") or {}).keys())
    n = get(c6, "n_frechet") or get(c6, "mnist|n_frechet")
    lines = [f"| samples of the requested class (Fréchet at n = {n if n else '–'}) | MNIST consistency | MNIST Fréchet "
             "| Fashion consistency | Fashion Fréchet |", "|---|---|---|---|---|"]
    for m in models:
        cells = []
        for d in DATASETS:
            cells += [fmt(get(c6, f"{d}|samples|{m}|consistency"), ".3f"), fmt(get(c6, f"{d}|samples|{m}|frechet"), ".1f")]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    classifiers = list((get(c6, "mnist|classification") or {}).keys())
    cls = ["| test accuracy (parameters) | MNIST | Fashion-MNIST |", "|---|---|---|"]
    for c in classifiers:
        cells = [f"{fmt(get(c6, f'{d}|classification|{c}|test_accuracy'))} "
                 f"({get(c6, f'{d}|classification|{c}|parameters', '–'):,})" for d in DATASETS]
        cls.append(f"| {c} | " + " | ".join(cells) + " |")
    ood = get(c6, "ood_auroc") or {}
    auroc = ["| out-of-distribution AUROC, trained on (shown the other's test images) | MNIST | Fashion-MNIST |",
             "|---|---|---|"]
    for m, by_dataset in ood.items():
        if isinstance(by_dataset, dict):
            auroc.append(f"| {m} | " + " | ".join(fmt(by_dataset.get(d)) for d in DATASETS) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(cls) + "\n\n" + "\n".join(auroc)


def chapters123(r):
    c1, c2, c3 = r.get("01_em_gmm", {}), r.get("02_elbo", {}), r.get("03_gradient_estimators", {})
    ks = ["5", "10", "15"]
    nmi = ["| components | " + " | ".join(ks) + " |", "|---|---|---|---|"]
    for d, name in DATASETS.items():
        nmi.append(f"| NMI, {name} | " + " | ".join(fmt(get(c1, f"nmi|{d}|{k}"), ".3f") for k in ks) + " |")
    gaps = get(c2, "iwae_gap") or {}
    table = get(c3, "variance_table") or {}
    var = ["| baseline | total gradient variance | reduction |", "|---|---|---|"]
    var += [f"| {b} | {fmt(row.get('total_variance'), '.4g')} | {fmt(row.get('reduction'), '.0f')}× |"
            for b, row in table.items()]
    return ("**Chapter 1: EM on pixels** (diagonal covariances, "
            f"{get(c1, 'n_pixel_train', '–')} training images; NMI between components and labels on "
            f"the {get(c1, 'n_pixel_test', '–')} test images):\n\n" + "\n".join(nmi)
            + "\n\n**Chapter 2: the ELBO**: the identity log p(x) = ELBO + KL holds to "
            f"{fmt(get(c2, 'identity_max_error'), '.1e')} on the linear-Gaussian model; during EM on a 2-D "
            f"mixture the gap is at most {fmt(get(c2, 'em_gap_after_e_step_max'), '.1e')} after every E-step; the "
            "IWAE gap to log p(x) is " + ", ".join(f"{fmt(v, '.3g')} (K = {k})" for k, v in gaps.items())
            + f" nats; the amortised encoder's gap is {fmt(get(c2, 'amortisation_gap'), '.3f')} nats per point.\n\n"
            f"**Chapter 3: baselines for the score-function estimator** "
            f"({get(c3, 'baseline_setup|n_inputs', '–')} inputs × {get(c3, 'baseline_setup|n_bits', '–')} Bernoulli "
            f"bits, K = {get(c3, 'baseline_setup|k', '–')} samples, {get(c3, 'baseline_setup|n_repeats', '–')} "
            "repeats):\n\n" + "\n".join(var))


def render(results: dict) -> str:
    return "\n\n".join([
        "Chapter times of the run these tables come from:\n\n" + chapter_times(results),
        "**Chapter 5: Gaussian Auto Embeddings** (likelihood classifier; settings chosen on a validation "
        f"split of {get(results, '04_vae|n_validation_images', '–')} training images, test set used once):\n\n"
        + chapter5(results),
        "**Chapter 4: variational autoencoders** (dynamically binarised MNIST; test images binarised "
        "once with a fixed seed):\n\n" + chapter4(results),
        "**Chapter 6: comparing the generative stories** (judged by a CNN trained on the training "
        "part of each dataset; held-out real images as the reference):\n\n" + chapter6(results),
        chapters123(results),
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(ROOT / "build" / "results.json"))
    parser.add_argument("--write", action="store_true", help="replace the tables in README.md")
    args = parser.parse_args()
    text = render(json.loads(Path(args.results).read_text(encoding="utf-8")))
    if not args.write:
        print(text)
        return
    readme = ROOT / "README.md"
    old = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(old):
        raise SystemExit(f"README.md has no {BEGIN} ... {END} block: add the two lines where the tables go.")
    readme.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", old), encoding="utf-8")
    print(f"README.md: results tables rewritten from {args.results}")


if __name__ == "__main__":
    main()

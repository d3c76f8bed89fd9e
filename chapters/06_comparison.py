# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Comparing the generative stories: AE + GMM against the VAE
#
# Two ways to get a generative model with a code space have been built in this course.
# Chapter 4's **VAE** shapes its code space *during* training: the KL term pulls every code
# towards the prior, so prior draws decode to images. Chapter 5's **Gaussian Auto Embeddings**
# train a plain autoencoder first and *describe* its codes afterwards, with one Gaussian
# mixture per class. This chapter puts them side by side on MNIST and Fashion-MNIST, with a
# third option in between: a VAE whose codes are described by per-class mixtures, the GAE
# recipe applied to a VAE's code space.
#
# **What you'll do**
#
# - train an independent judge, a small CNN on pixels, and use it to measure samples: how often
#   it recognises the class a sample was drawn for, and a Fréchet distance between real and
#   generated images in its features (the FID recipe, with this judge instead of Inception);
# - write the Fréchet distance between two Gaussians yourself (checked);
# - draw per-class samples from AE + GMM, a conditional VAE and VAE + GMM, and measure them;
# - classify from codes: the mixtures' likelihood classifier against a small MLP on the same
#   codes and against the judge on pixels, with accuracy and parameter counts;
# - probe each code space: uniform samples from its bounding box, the middle of interpolations,
#   and the class pairs that are hardest to morph.
#
# **What you'll learn**
#
# - how to compare generative models without a shared likelihood, and what the measurements
#   can and cannot see;
# - what a KL term during training buys (a code space you can sample anywhere) and what it
#   costs (blur, weaker codes for classification);
# - where describing a code space after the fact breaks: outside the clouds.
#
# **What you'll need**
#
# - chapters 4 and 5; the models they trained are reused from the cache (run them first, or
#   this chapter trains what is missing: about 6 extra minutes);
# - about 1.5 minutes of CPU for a full run once everything is cached; the first run trains two
#   judges, three VAEs and four small MLPs (about 5 minutes more); under a minute with
#   `GAE_COURSE_QUICK=1`.

# %% [markdown]
# ## Setup
#
# Every size and every model's settings are here. The shared models come from
# `gae_course.presets`, so they are the same checkpoints by construction: the autoencoders are
# chapter 5's, the conditional VAE is chapter 4's (trained here on Fashion-MNIST too); the VAE for VAE + GMM has the same size as
# the conditional one without the label. All per-class mixtures use chapter 5's original
# setting (6 components, `reg_covar` 0.01), on every code space, so that the code spaces are
# compared and not the tuning.

# %%
import itertools
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.metrics import accuracy_score

from gae_course import cache, checks, config, data, gae, judge, models, plotting, presets, results, train, vae

chapter_start = time.perf_counter()
rng = config.seed_everything(0)
config.limit_blas_threads()

DATASETS = ["mnist", "fashion-mnist"]
N_VALIDATION = presets.N_VALIDATION  # chapter 5's validation split (gae_course.presets)
AE_CONFIGS = presets.autoencoder_configs()  # chapter 5's autoencoders
AE_TRAINING = presets.autoencoder_training()
VAE_CONFIG = presets.small_vae_configs()["plain"]  # VAE + GMM
CVAE_CONFIG = presets.small_vae_configs()["conditional"]  # chapter 4's conditional VAE
VAE_TRAINING = presets.small_vae_training()
GMM = dict(n_components=6, reg_covar=0.01)  # per class, on every code space
JUDGE_TRAINING = presets.judge_training()
MLP_HIDDEN = 128  # the code MLP's hidden width
MLP_TRAINING = train.TrainConfig(epochs=config.pick(full=20, quick=3), batch_size=256)
N_PER_CLASS = config.pick(full=500, quick=50)  # generated images per class for the measurements
N_PATHS = config.pick(full=20, quick=4)  # interpolations per class pair
N_UNIFORM = config.pick(full=2_000, quick=200)  # uniform box samples
CLASS_NAMES = {name: data.CLASS_NAMES[name] for name in DATASETS}

print(f"mode: {config.mode()}; torch threads: {torch.get_num_threads()}")
for name in ["N_VALIDATION", "AE_CONFIGS", "AE_TRAINING", "VAE_CONFIG", "CVAE_CONFIG",
             "VAE_TRAINING", "GMM", "JUDGE_TRAINING", "MLP_HIDDEN", "MLP_TRAINING",
             "N_PER_CLASS", "N_PATHS", "N_UNIFORM"]:
    print(f"  {name:17s} = {globals()[name]}")
if config.is_quick():
    print(f"  quick mode: the models train on {presets.N_TRAIN_QUICK} of the training images")

# %% [markdown]
# ## Data and models
#
# Chapter 5's split: a stratified validation part carved from the training images. Every
# network here (autoencoders, VAEs, the judge) trains on the rest, so the validation images are
# new to all of them. Every model is loaded from the cache when it is there; the cell reports which were
# trained now.

# %%
splits, models_by_dataset = {}, {}
for name in DATASETS:
    split = presets.validation_split(name)  # chapter 5's split, the same indices
    test_images, test_labels = data.load_dataset(name, "test")
    # The mixtures are fitted on the codes of the training and validation images, in chapter
    # 5's order (k-means++ depends on the order of the points).
    splits[name] = dict(all_images=np.concatenate([split.images("train"), split.images("validation")]),
                        all_labels=np.concatenate([split.labels("train"), split.labels("validation")]),
                        val_images=split.images("validation"), val_labels=split.labels("validation"),
                        test_images=test_images, test_labels=test_labels)
    models_by_dataset[name] = {
        "ae": presets.autoencoder(name),  # chapter 5's checkpoint
        "cvae": presets.small_vae("conditional", name),  # chapter 4's checkpoint for MNIST
        "vae": presets.small_vae("plain", name),
        "judge": presets.judge(name),
    }

# %% [markdown]
# ## The judge
#
# A small CNN (two convolution + pooling layers, a 128-unit hidden layer, 10 outputs) trained
# on real grey-level training images with the cross-entropy. It never sees a generated image
# while training, so it can referee all three models. Its 128 hidden units are the feature space
# of the Fréchet distance.

# %%
judges = {name: m["judge"].model for name, m in models_by_dataset.items()}
judge_accuracy = {}
for name in DATASETS:
    s = splits[name]
    proba = judge.predict_proba(judges[name], s["test_images"])
    judge_accuracy[name] = accuracy_score(s["test_labels"], proba.argmax(1))
    print(f"{name}: judge test accuracy {judge_accuracy[name]:.4f} "
          f"({models.count_parameters(judges[name]):,} parameters, "
          f"{sum(models_by_dataset[name]['judge'].history['seconds']):.0f} s of training)")

# %% [markdown]
# ## Three ways to draw an image of class $c$
#
# - **AE + GMM** (chapter 5): $z \sim p(z \mid c)$, the class's mixture on the autoencoder's
#   codes; decode.
# - **Conditional VAE** (chapter 4): $z \sim \mathcal N(0, I)$, decode with the label $c$.
# - **VAE + GMM**: fit the same per-class mixtures on a VAE's posterior means; draw and decode.
#
# The mixtures are fitted on the codes of the training images with their labels.

# %%
samplers = {name: {} for name in DATASETS}
codes = {name: {} for name in DATASETS}
fit_seconds = {name: {} for name in DATASETS}
for name in DATASETS:
    s, m = splits[name], models_by_dataset[name]
    start = time.perf_counter()
    codes[name]["ae"] = {"train": train.encode_dataset(m["ae"].model, s["all_images"]),
                         "test": train.encode_dataset(m["ae"].model, s["test_images"])}
    codes[name]["vae"] = {"train": train.encode_dataset(m["vae"].model, s["all_images"]),
                          "test": train.encode_dataset(m["vae"].model, s["test_images"])}
    for space, labels in (("ae", s["all_labels"]), ("vae", s["all_labels"])):
        start = time.perf_counter()
        samplers[name][space] = gae.ClassConditionalGMM(**GMM, random_state=0).fit(
            codes[name][space]["train"], labels)
        fit_seconds[name][space] = time.perf_counter() - start


def draw(name, model_name, label, n, seed):
    """n images (n, 28, 28) of class `label` from one of the three models."""
    m, generator = models_by_dataset[name], np.random.default_rng(seed)
    if model_name == "AE + GMM":
        z = samplers[name]["ae"].sample_codes(label, n, generator)
        return train.decode_latents(m["ae"].model, z)
    if model_name == "VAE + GMM":
        z = samplers[name]["vae"].sample_codes(label, n, generator)
        return train.decode_latents(m["vae"].model, z)
    z = torch.randn(n, CVAE_CONFIG.latent_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return m["cvae"].model.decode(z, torch.full((n,), int(label)))[:, 0].numpy()


MODEL_NAMES = ["AE + GMM", "conditional VAE", "VAE + GMM"]
for name in DATASETS:
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.5))
    for ax, model_name in zip(axes, MODEL_NAMES):
        grid = np.concatenate([draw(name, model_name, c, 6, seed=c) for c in range(10)])
        plotting.image_grid(grid, n_cols=6, ax=ax, row_labels=CLASS_NAMES[name],
                            title=f"{name}: {model_name}", xlabel="sample", ylabel="class asked for")
    fig.tight_layout()
    plt.show()

# %% [markdown]
# Side by side, the autoencoder's samples are the sharpest: its decoder was trained to
# reconstruct, with no KL pulling codes together, and the mixtures put samples where codes of
# the class really are. The VAEs' samples are smoother and blurrier (their decoders average
# over the spread of $q$), and a few conditional-VAE draws are the wrong class or none at all.
#
# ## Measured: class consistency and Fréchet distance
#
# For every model, `N_PER_CLASS` samples per class are drawn; the judge says which class it
# sees (consistency: the fraction that matches the class asked for) and the Fréchet distance
# between the judge's features of the samples and of the real test images is computed. Two
# reference rows calibrate the scale: real held-out images (validation images, which no network
# here trained on: the best a model can do) and uniform noise.
#
# ### Exercise: the Fréchet distance between two Gaussians
#
# Fit a Gaussian to each set of feature vectors (mean $\mu$, covariance $\Sigma$) and measure
# how far apart the two Gaussians are with the squared Fréchet (2-Wasserstein) distance
#
# $$
# d^2 = \lVert \mu_a - \mu_b \rVert^2 + \operatorname{tr}\big(\Sigma_a + \Sigma_b
#       - 2\, (\Sigma_a \Sigma_b)^{1/2}\big).
# $$
#
# $(\Sigma_a \Sigma_b)^{1/2}$ is a *matrix* square root, and only its trace is needed: it is
# the sum of the square roots of the eigenvalues of $\Sigma_a \Sigma_b$. Those are also the
# eigenvalues of the symmetric matrix $\Sigma_a^{1/2} \Sigma_b \Sigma_a^{1/2}$, so two calls to
# `np.linalg.eigh` / `eigvalsh` do it without complex numbers (clip tiny negative eigenvalues
# from rounding to 0). With Inception-v3 features this is the FID; here the features are the
# judge's 128 hidden units.

# %%
def frechet_distance(mu_a, cov_a, mu_b, cov_b):
    """Squared Fréchet distance between N(mu_a, cov_a) and N(mu_b, cov_b): means (d,), covariances (d, d)."""
    ### BEGIN SOLUTION
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T  # cov_a^(1/2)
    middle = root_a @ cov_b @ root_a  # symmetric, with the eigenvalues of cov_a @ cov_b
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum()
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)
    ### END SOLUTION


checks.frechet_distance(frechet_distance)

# %% [markdown]
# From here on, `judge.frechet_distance_between(judge, images_a, images_b)` computes the
# features, fits the two Gaussians and calls the package's verified version.

# %%
comparison = {name: {} for name in DATASETS}
generated = {name: {} for name in DATASETS}
for name in DATASETS:
    s, referee = splits[name], judges[name]
    requested = np.repeat(np.arange(10), N_PER_CLASS)
    candidates = {model_name: np.concatenate([draw(name, model_name, c, N_PER_CLASS, seed=100 + c)
                                              for c in range(10)]) for model_name in MODEL_NAMES}
    for model_name, images in candidates.items():
        generated[name][model_name] = images
        comparison[name][model_name] = {
            "consistency": judge.class_consistency(referee, images, requested)["overall"],
            "frechet": judge.frechet_distance_between(referee, images, s["test_images"]),
        }
    idx = rng.choice(len(s["val_images"]), 10 * N_PER_CLASS, replace=False)
    comparison[name]["real held-out images"] = {
        "consistency": judge.class_consistency(referee, s["val_images"][idx], s["val_labels"][idx])["overall"],
        "frechet": judge.frechet_distance_between(referee, s["val_images"][idx], s["test_images"]),
    }
    noise = rng.random((10 * N_PER_CLASS, 28, 28)).astype(np.float32)
    comparison[name]["uniform noise"] = {
        "consistency": judge.class_consistency(referee, noise, requested)["overall"],
        "frechet": judge.frechet_distance_between(referee, noise, s["test_images"]),
    }

cost = {name: {
    "AE + GMM": sum(models_by_dataset[name]["ae"].history["seconds"]) + fit_seconds[name]["ae"],
    "conditional VAE": sum(models_by_dataset[name]["cvae"].history["seconds"]),
    "VAE + GMM": sum(models_by_dataset[name]["vae"].history["seconds"]) + fit_seconds[name]["vae"],
} for name in DATASETS}
print("training (s): wall-clock seconds recorded when each cached model was trained (another "
      "process on the machine at that time slows it), plus the mixtures' EM")
for name in DATASETS:
    print(f"\n{name}: {N_PER_CLASS} samples per class")
    print(f"{'':22} {'consistency':>11} {'Fréchet':>9} {'training (s)':>13}")
    for row, figures in comparison[name].items():
        seconds = f"{cost[name][row]:>13.0f}" if row in cost[name] else f"{'':>13}"
        print(f"{row:22} {figures['consistency']:>11.3f} {figures['frechet']:>9.2f} {seconds}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
width = 0.38
rows = MODEL_NAMES + ["real held-out images"]
for i, name in enumerate(DATASETS):
    x = np.arange(len(rows)) + (i - 0.5) * width
    axes[0].bar(x, [comparison[name][r]["consistency"] for r in rows], width, label=name)
    axes[1].bar(x, [comparison[name][r]["frechet"] for r in rows], width, label=name)
for ax, title, ylabel, corner in [
        (axes[0], "How often the judge names the class asked for", "class consistency", "lower left"),
        (axes[1], "Fréchet distance to the real test images", "distance (judge features)", "upper right")]:
    ax.set_xticks(np.arange(len(rows)), rows, rotation=15)
    ax.set(title=title, xlabel="source of the images", ylabel=ylabel)
    ax.legend(loc=corner)
fig.tight_layout()
plt.show()

# %% [markdown]
# Higher consistency and lower distance are better; real images mark the ceiling and the floor
# (their distance is not zero: two finite samples differ). The numbers above, not these
# sentences, are the result: read which model is closest to the real rows on each dataset.
# Consistency says whether samples carry their class; the Fréchet distance also penalises
# blur and a lack of variety (a model that drew one perfect image per class would score full
# consistency and a large distance). Both are measured by one small CNN: a model could fool it
# with images a person would not accept, which is why the samples are shown as well.
#
# ## Classifying from codes
#
# The per-class mixtures are also a classifier (Bayes' rule on their likelihoods, chapter 5).
# How good is it against a discriminative classifier on the *same* codes, a small MLP
# (one hidden layer of 128), and against the judge, a CNN on pixels? Parameters are counted for
# the classifier alone (the mixtures: weights, means and full covariances of 6 components per
# class; the encoder that makes the codes is not counted for either code classifier).

# %%
def mixture_parameters(sampler):
    d = sampler.n_features_in_
    return len(sampler.gmms_) * sampler.n_components * (1 + d + d * (d + 1) // 2)


classification = {name: {} for name in DATASETS}
for name in DATASETS:
    s = splits[name]
    for space, labels in (("ae", s["all_labels"]), ("vae", s["all_labels"])):
        c = codes[name][space]
        label = "autoencoder" if space == "ae" else "VAE"
        gmm_accuracy = accuracy_score(s["test_labels"], samplers[name][space].predict(c["test"]))
        classification[name][f"GMM likelihood, {label} codes"] = (gmm_accuracy, mixture_parameters(samplers[name][space]))
        standardizer = samplers[name][space].standardizer_  # the mixtures' own standardisation
        mlp_config = judge.CodeClassifierConfig(latent_dim=c["train"].shape[1], hidden=MLP_HIDDEN)
        fitted_mlp = cache.cached_fit(
            f"mlp-{space}-{name}", judge.CodeClassifier, mlp_config, judge.classifier_loss,
            (standardizer.transform(c["train"]).astype(np.float32), labels.astype(np.int64)),
            MLP_TRAINING,
        )
        logits = train.evaluate(fitted_mlp.model, fitted_mlp.model,
                                standardizer.transform(c["test"]).astype(np.float32))
        classification[name][f"MLP, {label} codes"] = (
            accuracy_score(s["test_labels"], logits.argmax(1).numpy()),
            models.count_parameters(fitted_mlp.model))
    classification[name]["CNN on pixels (the judge)"] = (judge_accuracy[name], models.count_parameters(judges[name]))

for name in DATASETS:
    print(f"\n{name}: test accuracy")
    print(f"{'classifier':<34} {'accuracy':>9} {'parameters':>11}")
    for row, (acc, n_params) in classification[name].items():
        print(f"{row:<34} {acc:>9.4f} {n_params:>11,}")

# %% [markdown]
# Read the rows in pairs. On the same codes, the mixtures and the MLP are close: the codes,
# not the classifier on top, set the accuracy. The autoencoder's codes classify better than the
# VAE's (8 numbers squeezed towards the prior). The seed report found the latent MLP cheaper but
# worse than the pixel CNN; the lines below test that claim on these models (the MLP's count
# leaves out the encoder that makes its codes, and our pixel CNN is small and trained for only
# a few epochs, so "worse" depends on how much is spent on the CNN):

# %%
for name in DATASETS:
    mlp_accuracy, mlp_params = classification[name]["MLP, autoencoder codes"]
    cnn_accuracy, cnn_params = classification[name]["CNN on pixels (the judge)"]
    verdict = "worse" if mlp_accuracy < cnn_accuracy else "not worse"
    print(f"{name}: latent MLP {mlp_accuracy:.4f} with {mlp_params:,} parameters, pixel CNN "
          f"{cnn_accuracy:.4f} with {cnn_params:,}: the MLP is {cnn_params / mlp_params:.0f}x "
          f"cheaper and {verdict} ({mlp_accuracy - cnn_accuracy:+.4f})")

# %% [markdown]
# ## What each code space is good and bad at
#
# Three probes, each measured against the real test images with the judge:
#
# 1. **Uniform samples** from the bounding box of the training codes (and, for the VAE, draws
#    from its prior): does the whole box decode to images, or only the places where codes are?
#    Measured by the Fréchet distance to the test images.
# 2. **Interpolation midpoints**: the middle image on a straight line between samples of two
#    classes, for every pair of classes: does the path stay on images? Fréchet distance of all
#    midpoints together.
# 3. **Hard class pairs**: at the midpoint of a path from class $a$ to class $b$, how much
#    probability does the judge give to $a$ or $b$? A path that passes through a third class or
#    through gibberish scores low; the three lowest pairs are the hardest to morph.
#
# The judge's mean confidence (its top probability) is printed too, as a warning: a CNN is
# confident about many images that are not digits or clothes at all.

# %%
probes = {name: {} for name in DATASETS}
for name in DATASETS:
    m, test = models_by_dataset[name], splits[name]["test_images"]
    decoders = {"AE + GMM": (m["ae"].model, samplers[name]["ae"]),
                "VAE + GMM": (m["vae"].model, samplers[name]["vae"])}
    for model_name, (network, sampler) in decoders.items():
        space = "ae" if model_name == "AE + GMM" else "vae"
        box = train.decode_latents(network, gae.uniform_box_codes(codes[name][space]["train"], N_UNIFORM, rng))
        on_path = np.full((10, 10), np.nan)  # judge's p(a) + p(b) at the midpoints
        all_mids = []
        for a, b in itertools.combinations(range(10), 2):
            mids = np.stack([sampler.interpolate_codes(a, b, 3, rng)[1] for _ in range(N_PATHS)])
            images = train.decode_latents(network, mids)
            proba = judge.predict_proba(judges[name], images)
            on_path[a, b] = on_path[b, a] = (proba[:, a] + proba[:, b]).mean()
            all_mids.append(images)
        pairs = sorted((on_path[a, b], a, b) for a, b in itertools.combinations(range(10), 2))
        probes[name][model_name] = {
            "uniform_frechet": judge.frechet_distance_between(judges[name], box, test),
            "uniform_confidence": float(judge.predict_proba(judges[name], box).max(1).mean()),
            "midpoint_frechet": judge.frechet_distance_between(judges[name], np.concatenate(all_mids), test),
            "midpoint_on_path": float(np.nanmean(on_path)),
            "hardest_pairs": [(CLASS_NAMES[name][a], CLASS_NAMES[name][b], round(float(v), 3))
                              for v, a, b in pairs[:3]],
            "on_path": on_path,
            "box_examples": box[:10],
        }
    with torch.no_grad():
        prior = m["vae"].model.sample(N_UNIFORM, generator=torch.Generator().manual_seed(7))[:, 0].numpy()
    probes[name]["VAE prior draws"] = {
        "uniform_frechet": judge.frechet_distance_between(judges[name], prior, test),
        "uniform_confidence": float(judge.predict_proba(judges[name], prior).max(1).mean()),
    }

for name in DATASETS:
    print(f"\n{name}: Fréchet distance to the test images (real held-out images: "
          f"{comparison[name]['real held-out images']['frechet']:.2f}) and the judge's confidence")
    print(f"{'':16} {'box FD':>8} {'box conf.':>9} {'midpoint FD':>12} {'p(a or b)':>10}   hardest pairs to morph")
    for model_name, p in probes[name].items():
        mid = (f"{p['midpoint_frechet']:>12.2f} {p['midpoint_on_path']:>10.3f}"
               if "midpoint_frechet" in p else f"{'':>12} {'':>10}")
        pairs = "; ".join(f"{a} / {b} ({v})" for a, b, v in p.get("hardest_pairs", []))
        print(f"{model_name:16} {p['uniform_frechet']:>8.2f} {p['uniform_confidence']:>9.3f} {mid}   {pairs}")
print("(for 'VAE prior draws' the box columns hold draws from N(0, I) instead)")

# %%
fig, axes = plt.subplots(2, 2, figsize=(12, 10))
for row, name in enumerate(DATASETS):
    for col, model_name in enumerate(["AE + GMM", "VAE + GMM"]):
        ax = axes[row, col]
        shown = ax.imshow(probes[name][model_name]["on_path"], vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(10), CLASS_NAMES[name], rotation=90)
        ax.set_yticks(range(10), CLASS_NAMES[name])
        ax.set(title=f"{name}, {model_name}: p(a or b) at midpoints", xlabel="class b", ylabel="class a")
        fig.colorbar(shown, ax=ax, label="judge's probability of a or b")
fig.tight_layout()
plt.show()

# %% [markdown]
# Bright cells are pairs whose halfway image is still one of the two classes (a blend the judge
# reads as $a$ or $b$); dark cells are pairs whose path passes through a third class or through
# images the judge cannot place. The diagonal is empty (no path from a class to itself).
# Images of uniform box codes:

# %%
fig, axes = plt.subplots(2, 1, figsize=(10, 4.5))
for ax, name in zip(axes, DATASETS):
    plotting.image_grid(np.concatenate([probes[name][m]["box_examples"] for m in ["AE + GMM", "VAE + GMM"]]),
                        n_cols=10, ax=ax, row_labels=["AE", "VAE"],
                        title=f"{name}: decoded uniform codes from the bounding box",
                        xlabel="sample", ylabel="code space")
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the table with the images. The autoencoder's box is mostly empty: uniform codes decode
# to blots, far from real images by the Fréchet distance, while the judge's confidence stays high
# (it is fooled by blots: never trust a classifier's confidence on images unlike its training
# set). The VAE's KL pulls its codes into a ball, so its box decodes to images. Its prior draws
# are further from real images than its box draws, though: the prior is only as good as its match
# with where the codes really are. Between classes, the verdicts below say which code space gives
# the more image-like midpoints; they are computed from the table, per dataset.

# %%
verdicts = {}
for name in DATASETS:
    ae, va = probes[name]["AE + GMM"], probes[name]["VAE + GMM"]
    shared = sorted({(a, b) for a, b, _ in ae["hardest_pairs"]} & {(a, b) for a, b, _ in va["hardest_pairs"]})
    verdicts[name] = {
        "uniform_box": "VAE" if va["uniform_frechet"] < ae["uniform_frechet"] else "AE",
        "midpoints_frechet": "VAE" if va["midpoint_frechet"] < ae["midpoint_frechet"] else "AE",
        "midpoints_on_path": "VAE" if va["midpoint_on_path"] > ae["midpoint_on_path"] else "AE",
        "hard_for_both": shared,
    }
    v = verdicts[name]
    print(f"{name}: uniform box decodes closer to real images with the {v['uniform_box']} codes; "
          f"midpoints closer to real images with the {v['midpoints_frechet']} codes, and more often "
          f"read as one of the two end classes with the {v['midpoints_on_path']} codes; among the "
          f"three hardest pairs of both: {shared if shared else 'none in common'}")

# %% [markdown]
# So the VAE's KL buys a code space that decodes to images almost anywhere in its box, at the
# price of blur, of weaker codes for classification, and (where the verdicts say so) of
# midpoints that are blends of the two end images rather than images of either. The GAE keeps
# sharp decodes and class structure but can be sampled only through its mixtures: outside the
# clouds its decoder has never been trained. Pairs that are hard for both (if any are printed)
# are hard in any code space: no image lies halfway between them.
#
# ## Check yourself
#
# 1. Why must the judge be trained separately from every model it judges?
# 2. A model draws the same perfect image for every request of class $c$. What are its
#    consistency and its Fréchet distance like?
# 3. The mixtures and the MLP on the same codes reach similar accuracies. What does that say
#    about where the accuracy comes from?
# 4. Why do uniform codes decode better for a VAE than for an autoencoder?
# 5. Name one change to the autoencoder's training that would make its box less empty, and what
#    it would cost.
#
# ## Summary
#
# - With no shared likelihood, samples are compared by an independent judge: how often it
#   recognises the requested class, and a Fréchet distance in its features.
# - AE + GMM draws sharp samples of the requested class; a VAE's code space can be sampled
#   anywhere, with blurrier results; per-class mixtures on a VAE's codes sit in between.
# - On the same codes, a generative (mixture) and a discriminative (MLP) classifier are close;
#   a CNN on pixels is the reference.
# - The GAE recipe breaks where its code space is empty (uniform codes decode to blots); the
#   VAE's box decodes to images, and its paths between classes pass through blends.

# %%
summary = results.record(
    "06_comparison",
    **{name: {
        "samples": {row: figures for row, figures in comparison[name].items()},
        "training_seconds": cost[name],
        "classification": {row: {"test_accuracy": acc, "parameters": n}
                           for row, (acc, n) in classification[name].items()},
        "judge_test_accuracy": judge_accuracy[name],
        "probes": {m: {k: v for k, v in p.items() if k not in ("on_path", "box_examples")}
                   for m, p in probes[name].items()},
        "verdicts": verdicts[name],
    } for name in DATASETS},
    n_per_class=N_PER_CLASS,
    chapter_seconds=time.perf_counter() - chapter_start,
)
summary

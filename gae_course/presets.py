"""The models and data splits that several chapters share, defined once.

Chapter 5 trains the autoencoders and chapter 6 reuses them; chapters 4 and 6 share the
conditional VAE; chapter 6's judge referees samples of every chapter. Each function here
trains through :func:`gae_course.cache.cached_fit`, whose key is derived from the recipe, so
a second chapter that asks for the same model gets the same checkpoint by construction.

Splits
------
:func:`validation_split` carves a stratified validation set (``N_VALIDATION`` images, seed 0)
out of the 60 000 training images; every design choice of chapters 4-6 is made on it and the
test set is used once. In quick mode the part that models train on is further cut to a fixed
random subset (``N_TRAIN_QUICK`` images, its own seed), the same in every chapter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gae_course import config, data

DATASETS = ("mnist", "fashion-mnist")
N_VALIDATION = config.pick(full=6_000, quick=1_000)  # images held out of training, per data set
N_TRAIN_QUICK = 4_000  # quick mode: training images actually used (of the rest)
SUBSET_SEED = 0  # the seed of the quick-mode subset
VALIDATION_SEED = 0  # the seed of the stratified validation split


@dataclass(frozen=True)
class Split:
    """Indices into a data set's 60 000 training images."""

    dataset: str
    train: np.ndarray  # (n_train,) what the models train on, sorted
    validation: np.ndarray  # (N_VALIDATION,) held out for choosing settings, sorted

    def images(self, part: str) -> np.ndarray:
        """Grey-level images (n, 28, 28) of ``part`` ("train" or "validation")."""
        return data.load_dataset(self.dataset, "train")[0][self._indices(part)]

    def labels(self, part: str) -> np.ndarray:
        """Labels (n,) of ``part`` ("train" or "validation")."""
        return data.load_dataset(self.dataset, "train")[1][self._indices(part)]

    def _indices(self, part: str) -> np.ndarray:
        if part not in ("train", "validation"):
            raise ValueError(f"part must be 'train' or 'validation'; got {part!r}.")
        return self.train if part == "train" else self.validation


def validation_split(dataset: str) -> Split:
    """The course's validation split of ``dataset``'s training images (see the module docstring)."""
    _check_dataset(dataset)
    labels = data.load_dataset(dataset, "train")[1]
    train_idx, val_idx = data.train_validation_split(labels, N_VALIDATION, seed=VALIDATION_SEED)
    if config.is_quick():
        train_idx = np.random.default_rng(SUBSET_SEED).choice(train_idx, N_TRAIN_QUICK, replace=False)
    return Split(dataset, np.sort(train_idx), np.sort(val_idx))


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}; got {dataset!r}.")


# --------------------------------------------------------------------------------------------
# Autoencoders (chapters 5 and 6)
# --------------------------------------------------------------------------------------------


def autoencoder_configs():
    """Chapter 5's autoencoders: code size chosen on the validation split (tools/tune_gae.py)."""
    from gae_course import models

    # 64 numbers help clothes (texture), not digits. Fashion-MNIST: channels (24, 48), not
    # models' default (32, 64): as good on validation and 1.7x faster to train. MNIST keeps
    # (32, 64), ahead on validation on the 54 000-image training part (see README, "How the
    # chapter 5 settings were chosen").
    return {
        "mnist": models.AutoencoderConfig(kind="conv", latent_dim=32),
        "fashion-mnist": models.AutoencoderConfig(kind="conv", latent_dim=64, channels=(24, 48)),
    }


def autoencoder_training():
    """How chapter 5's autoencoders are trained."""
    from gae_course import train

    return train.TrainConfig(epochs=config.pick(full=10, quick=2))


def train_autoencoder(dataset: str, model_config, train_config, *, progress: bool = True):
    """An autoencoder trained without labels on the training part of :func:`validation_split`.

    Returns a :class:`gae_course.cache.FitResult`; loaded from the cache when it is there, else
    trained (on one thread, as :func:`gae_course.cache.cached_fit` trains every network).
    """
    from gae_course import cache, models

    images = validation_split(dataset).images("train")
    name = f"ae-{dataset}-{model_config.kind}{model_config.latent_dim}"
    return cache.cached_fit(name, models.Autoencoder, model_config, models.autoencoder_loss,
                            images, train_config, progress=progress)


def autoencoder(dataset: str, *, progress: bool = True):
    """Chapter 5's autoencoder for ``dataset`` (the one chapter 6 compares)."""
    return train_autoencoder(dataset, autoencoder_configs()[dataset], autoencoder_training(),
                             progress=progress)


# --------------------------------------------------------------------------------------------
# Small VAEs (chapters 4 and 6) and the judge (chapter 6)
# --------------------------------------------------------------------------------------------


def small_vae_configs():
    """The 8-number VAEs: conditional (draws a chosen class) and plain (VAE + GMM)."""
    from gae_course import vae

    return {
        "conditional": vae.VAEConfig(latent_dim=8, hidden=(400,), n_classes=10),
        "plain": vae.VAEConfig(latent_dim=8, hidden=(400,)),
    }


def small_vae_training():
    from gae_course import train

    return train.TrainConfig(epochs=config.pick(full=10, quick=1), batch_size=128)


def small_vae(kind: str, dataset: str, *, progress: bool = True):
    """The 8-number VAE of ``kind`` ("conditional" or "plain"), trained on the training part."""
    from gae_course import vae

    configs = small_vae_configs()
    if kind not in configs:
        raise ValueError(f"kind must be one of {sorted(configs)}; got {kind!r}.")
    split = validation_split(dataset)
    prefix = "cvae8" if kind == "conditional" else "vae8"
    return vae.cached_vae(f"{prefix}-{dataset}", configs[kind], small_vae_training(),
                          split.images("train"), labels=split.labels("train"), progress=progress)


def small_autoencoder_config():
    """AE(8): the plain small VAE's networks (MLP, same hidden widths, an 8-number code), no KL."""
    from gae_course import models

    plain = small_vae_configs()["plain"]
    return models.AutoencoderConfig(kind="mlp", hidden=plain.hidden, latent_dim=plain.latent_dim)


def small_autoencoder(dataset: str, *, progress: bool = True):
    """AE(8) for ``dataset``, trained like the small VAEs: the same images, epochs, batch size
    and dynamic binarisation, so that it differs from the plain small VAE by the KL term (and
    the posterior noise that comes with it) alone."""
    return _autoencoder_trained_like_a_vae(f"ae8-{dataset}", dataset, small_autoencoder_config(),
                                           small_vae_training(), progress)


def _autoencoder_trained_like_a_vae(name, dataset, model_config, train_config, progress):
    """An autoencoder trained as the VAEs are: on the training part, dynamically binarised."""
    from gae_course import cache, models, vae

    images = validation_split(dataset).images("train")
    return cache.cached_fit(name, models.Autoencoder, model_config, models.autoencoder_loss,
                            images, train_config, transform=vae.binarize, progress=progress)


def plane_vae_config():
    """Chapter 4's 2-D VAE: a code you can draw, on the small VAEs' network (784-400-2)."""
    from gae_course import vae

    return vae.VAEConfig(latent_dim=2, hidden=small_vae_configs()["plain"].hidden)


def plane_training():
    """How the 2-D VAE and the 2-D autoencoder beside it are trained."""
    from gae_course import train

    return train.TrainConfig(epochs=config.pick(full=10, quick=1), batch_size=128)


def plane_vae(*, progress: bool = True):
    """Chapter 4's 2-D VAE of MNIST, trained on the training part (chapter 5 draws beside it)."""
    from gae_course import vae

    images = validation_split("mnist").images("train")
    return vae.cached_vae("vae-mnist-2d", plane_vae_config(), plane_training(), images,
                          progress=progress)


def plane_autoencoder_config():
    """AE(2): the 2-D VAE's networks (MLP 784-400-2), no KL."""
    from gae_course import models

    plane = plane_vae_config()
    return models.AutoencoderConfig(kind="mlp", hidden=plane.hidden, latent_dim=plane.latent_dim)


def plane_autoencoder(*, progress: bool = True):
    """AE(2) of MNIST (chapter 5), trained like :func:`plane_vae`: the same images, epochs,
    batch size and dynamic binarisation, so that the two differ by the KL term alone."""
    return _autoencoder_trained_like_a_vae("ae2-mnist", "mnist", plane_autoencoder_config(),
                                           plane_training(), progress)


def judge_training():
    from gae_course import train

    return train.TrainConfig(epochs=config.pick(full=3, quick=1), batch_size=128)


def judge(dataset: str, *, progress: bool = True):
    """Chapter 6's judge: a CNN trained on the real images of the training part."""
    from gae_course import judge as judge_lib

    split = validation_split(dataset)
    return judge_lib.cached_judge(f"judge-{dataset}", split.images("train"), split.labels("train"),
                                  judge_training(), progress=progress)

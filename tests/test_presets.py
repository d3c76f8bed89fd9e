"""gae_course.presets: one split and one recipe per shared model, whoever asks for it."""

import ast
from pathlib import Path

import numpy as np
import pytest

from gae_course import cache, config, models, presets, train

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_split_is_stratified_disjoint_and_repeatable():
    split = presets.validation_split("mnist")
    again = presets.validation_split("mnist")
    np.testing.assert_array_equal(split.train, again.train)
    np.testing.assert_array_equal(split.validation, again.validation)
    assert abs(len(split.validation) - presets.N_VALIDATION) <= 10  # shared in proportion, rounded
    assert not set(split.train) & set(split.validation)
    counts = np.bincount(split.labels("validation"), minlength=10) / presets.N_VALIDATION
    assert np.all(np.abs(counts - 0.1) < 0.02)  # every class in proportion
    assert split.images("train").shape == (len(split.train), 28, 28)
    with pytest.raises(ValueError, match="part"):
        split.images("test")
    with pytest.raises(ValueError, match="dataset"):
        presets.validation_split("cifar")


def test_quick_mode_draws_another_subset_and_so_another_key(monkeypatch):
    monkeypatch.setenv("GAE_COURSE_QUICK", "1")
    quick = presets.validation_split("mnist")
    assert len(quick.train) == presets.N_TRAIN_QUICK
    monkeypatch.setenv("GAE_COURSE_QUICK", "0")
    full = presets.validation_split("mnist")
    assert set(quick.train) < set(full.train) and len(full.train) == 60_000 - len(full.validation)

    def key(split):  # the key of an autoencoder trained on the first 50 images of the split
        images = split.images("train")[:50]
        return cache.model_key(cache.Recipe(models.Autoencoder, models.AutoencoderConfig(),
                                            models.autoencoder_loss, images, train.TrainConfig()))

    assert key(quick) != key(full)


def test_two_callers_of_a_shared_model_get_the_same_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GAE_COURSE_CACHE", str(tmp_path))
    monkeypatch.setenv("GAE_COURSE_QUICK", "1")
    # No epochs: the recipe and the file are what is tested, not the training.
    monkeypatch.setattr(presets, "autoencoder_training", lambda: train.TrainConfig(epochs=0))
    first = presets.autoencoder("mnist", progress=False)
    second = presets.autoencoder("mnist", progress=False)
    assert not first.loaded and second.loaded and first.path == second.path
    tuned = presets.train_autoencoder("mnist", presets.autoencoder_configs()["mnist"],
                                      train.TrainConfig(epochs=0), progress=False)
    assert tuned.path == first.path  # tools/tune_gae.py's 10-epoch run is chapter 5's model


def _calls(path: Path) -> set[str]:
    """Dotted names of every function a chapter's code calls (``presets.autoencoder``, ...)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name):
            names.add(f"{node.func.value.id}.{node.func.attr}")
    return names


def test_chapters_5_and_6_and_the_tuner_take_the_shared_models_from_presets():
    ch5 = _calls(REPO / "chapters" / "05_gaussian_auto_embeddings.py")
    ch6 = _calls(REPO / "chapters" / "06_comparison.py")
    ch4 = _calls(REPO / "chapters" / "04_vae.py")
    tuner = _calls(REPO / "tools" / "tune_gae.py")
    assert {"presets.autoencoder", "presets.validation_split"} <= ch5 & ch6
    assert "presets.small_vae" in ch4 & ch6
    assert "presets.validation_split" in ch4 & tuner
    # Nobody splits the data or trains a shared model by hand.
    for calls in (ch4, ch5, ch6, tuner):
        assert "data.train_validation_split" not in calls
        assert not {"train.cached_fit", "train.cached_autoencoder"} & calls


def test_presets_do_not_depend_on_quick_mode_at_import():
    assert presets.N_VALIDATION == config.pick(full=6_000, quick=1_000)


def test_the_small_autoencoder_has_the_plain_vaes_networks_and_one_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("GAE_COURSE_CACHE", str(tmp_path))
    monkeypatch.setenv("GAE_COURSE_QUICK", "1")
    monkeypatch.setattr(presets, "small_vae_training", lambda: train.TrainConfig(epochs=0, batch_size=128))
    plain = presets.small_vae_configs()["plain"]
    ae8 = presets.small_autoencoder_config()
    assert (ae8.kind, ae8.hidden, ae8.latent_dim) == ("mlp", plain.hidden, plain.latent_dim)
    first = presets.small_autoencoder("mnist", progress=False)
    second = presets.small_autoencoder("mnist", progress=False)
    assert not first.loaded and second.loaded and first.path == second.path
    assert presets.small_autoencoder("fashion-mnist", progress=False).path != first.path
    # the same networks as the VAE's, but for the logvar half of the encoder's last layer
    from gae_course import vae
    vae_model = vae.VAE(plain)
    assert models.count_parameters(first.model) == models.count_parameters(vae_model) \
        - (plain.hidden[-1] + 1) * plain.latent_dim


def test_the_2d_autoencoder_has_the_2d_vaes_networks_and_training(tmp_path, monkeypatch):
    monkeypatch.setenv("GAE_COURSE_CACHE", str(tmp_path))
    monkeypatch.setenv("GAE_COURSE_QUICK", "1")
    monkeypatch.setattr(presets, "plane_training", lambda: train.TrainConfig(epochs=0, batch_size=128))
    from gae_course import vae

    plane = presets.plane_vae_config()
    ae2 = presets.plane_autoencoder_config()
    assert plane.latent_dim == 2 and plane.hidden == presets.small_vae_configs()["plain"].hidden
    assert (ae2.kind, ae2.hidden, ae2.latent_dim) == ("mlp", plane.hidden, 2)
    vae_fit, ae_fit = presets.plane_vae(progress=False), presets.plane_autoencoder(progress=False)
    assert vae_fit.path != ae_fit.path and presets.plane_autoencoder(progress=False).loaded
    # the same networks, but for the logvar half of the VAE encoder's last layer
    assert models.count_parameters(ae_fit.model) == models.count_parameters(vae.VAE(plane)) \
        - (plane.hidden[-1] + 1) * plane.latent_dim

"""gae_course.train: the training loop, the model cache and batched evaluation."""

import os

import numpy as np
import pytest
import torch

from gae_course import train
from gae_course.models import Autoencoder, AutoencoderConfig, autoencoder_loss
from gae_course.train import TrainConfig, cached_fit, fit

TINY = AutoencoderConfig(kind="mlp", latent_dim=4, hidden=(32,))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GAE_COURSE_CACHE", str(tmp_path))
    return tmp_path / "models"


def tiny_images(n=256, seed=0):
    """Blurry random blobs in [0, 1]: structured enough for an autoencoder to learn."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    centres = rng.uniform(6, 22, size=(n, 2, 1, 1))
    return np.exp(-((yy - centres[:, 0]) ** 2 + (xx - centres[:, 1]) ** 2) / 18.0).astype(np.float32)


def train_tiny(config=TrainConfig(epochs=3, batch_size=16), **kwargs):
    torch.manual_seed(0)
    model = Autoencoder(TINY)
    history = fit(model, autoencoder_loss, tiny_images(), config, device="cpu", progress=False, **kwargs)
    return model, history


def test_fit_lowers_the_loss():
    _, history = train_tiny()
    assert len(history["loss"]) == 3 and len(history["seconds"]) == 3
    assert history["loss"][0] > history["loss"][1] > history["loss"][2]
    assert history["loss"][-1] < 0.8 * history["loss"][0]


def test_same_seed_same_history_and_weights():
    model_a, history_a = train_tiny()
    model_b, history_b = train_tiny()
    assert history_a["loss"] == history_b["loss"]
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    _, history_c = train_tiny(TrainConfig(epochs=3, batch_size=16, seed=1))
    assert history_c["loss"] != history_a["loss"]


def test_terms_transform_and_epoch_hook_are_logged():
    seen = []

    def loss_with_terms(model, batch):
        images, labels = batch
        loss = autoencoder_loss(model, images)
        return loss, {"recon": loss.detach(), "label_mean": float(labels.float().mean())}

    def binarise(batch, generator):
        images, labels = batch
        seen.append(generator is not None)
        return torch.bernoulli(images, generator=generator), labels

    torch.manual_seed(0)
    images = torch.from_numpy(tiny_images(64))
    history = fit(
        Autoencoder(TINY), loss_with_terms, (images, torch.ones(64, dtype=torch.long)),
        TrainConfig(epochs=2, batch_size=16, schedule="cosine"), device="cpu", progress=False,
        transform=binarise, on_epoch_end=lambda epoch, model: {"val": 10.0 * epoch},
    )
    assert all(seen) and len(seen) == 8
    np.testing.assert_allclose(history["recon"], history["loss"], rtol=1e-6)
    assert history["label_mean"] == [1.0, 1.0] and history["val"] == [0.0, 10.0]


def test_fit_accepts_read_only_arrays_without_warnings():
    images = tiny_images(32)
    images.flags.writeable = False  # as gae_course.data returns them
    history = fit(Autoencoder(TINY), autoencoder_loss, images, TrainConfig(epochs=1), device="cpu", progress=False)
    assert len(history["loss"]) == 1
    assert train.encode_dataset(Autoencoder(TINY), images).shape == (32, 4)


def test_fit_stops_on_a_non_finite_loss():
    with pytest.raises(FloatingPointError, match="lr"):
        fit(Autoencoder(TINY), lambda m, b: m(b).sum() * float("nan"), tiny_images(32),
            TrainConfig(epochs=1), device="cpu", progress=False)


def test_encode_and_decode_datasets_in_batches():
    torch.manual_seed(0)
    model = Autoencoder(TINY).train()
    images = tiny_images(10)
    codes = train.encode_dataset(model, images, batch_size=3)
    assert codes.shape == (10, 4) and codes.dtype == np.float32
    with torch.no_grad():
        np.testing.assert_allclose(codes, model.eval().encode(torch.from_numpy(images)).numpy(), rtol=1e-5, atol=1e-6)
    model.train()
    decoded = train.decode_latents(model, codes, batch_size=4)
    assert decoded.shape == (10, 28, 28) and decoded.min() >= 0 and decoded.max() <= 1
    assert model.training  # the helpers restore the mode they found


# --------------------------------------------------------------------------------------------
# Caching
# --------------------------------------------------------------------------------------------

KEY = {"model": TINY, "data": {"dataset": "blobs", "n": 64, "seed": 0}, "train": TrainConfig(epochs=1, batch_size=32)}


def run_cached(key_parts=KEY, config=TINY, calls=None, name="tiny"):
    def train_fn(model):
        if calls is not None:
            calls.append(1)
        return fit(model, autoencoder_loss, tiny_images(64), key_parts["train"], device="cpu", progress=False)

    return cached_fit(name, lambda: Autoencoder(config), train_fn, key_parts, device="cpu")


def test_second_call_loads_the_same_model(cache, capsys):
    calls = []
    first = run_cached(calls=calls)
    assert not first.loaded and first.path.parent == cache and first.path.exists()
    assert first.path.name.startswith("tiny-") and len(first.path.stem) == len("tiny-") + 16
    assert "cache: trained tiny" in capsys.readouterr().out
    second = run_cached(calls=calls)
    out = capsys.readouterr().out
    assert second.loaded and calls == [1]
    assert out.startswith(f"cache: loaded tiny from {first.path} (trained ")
    assert second.history == first.history
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not second.model.training
    assert [p.name for p in cache.iterdir()] == [first.path.name]  # no temporary left behind


def test_every_key_part_changes_the_key(cache):
    base = train.cache_key(KEY)
    variants = [
        {**KEY, "model": AutoencoderConfig(kind="mlp", latent_dim=5, hidden=(32,))},
        {**KEY, "data": {**KEY["data"], "dataset": "other"}},
        {**KEY, "data": {**KEY["data"], "n": 65}},
        {**KEY, "data": {**KEY["data"], "seed": 1}},
        {**KEY, "train": TrainConfig(epochs=2, batch_size=32)},
        {**KEY, "train": TrainConfig(epochs=1, batch_size=32, lr=2e-3)},
        {**KEY, "train": TrainConfig(epochs=1, batch_size=32, seed=1)},
        {**KEY, "extra": np.arange(3)},
    ]
    keys = {train.cache_key(parts) for parts in variants} | {train.cache_key(KEY, seed=1)}
    assert base not in keys and len(keys) == len(variants) + 1
    # Equal content gives an equal key, whatever the dict order or container type.
    reordered = {"train": KEY["train"], "data": dict(reversed(list(KEY["data"].items()))), "model": TINY}
    assert train.cache_key(reordered) == base


def test_a_code_change_changes_the_key(monkeypatch):
    base = train.cache_key(KEY)
    monkeypatch.setattr(train, "CODE_VERSION", train.CODE_VERSION + 1)
    assert train.cache_key(KEY) != base


def test_changed_settings_retrain(cache):
    calls = []
    run_cached(calls=calls)
    other = {**KEY, "train": TrainConfig(epochs=2, batch_size=32)}
    result = run_cached(other, calls=calls)
    assert not result.loaded and calls == [1, 1] and len(result.history["loss"]) == 2
    assert len(list(cache.glob("tiny-*.pt"))) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_corrupt_checkpoint_is_reported_and_retrained(cache, capsys, damage):
    path = run_cached().path
    data = path.read_bytes()
    path.write_bytes({"garbage": b"not a checkpoint" * 50, "truncated": data[: len(data) // 2], "empty": b""}[damage])
    capsys.readouterr()
    calls = []
    result = run_cached(calls=calls)
    out = capsys.readouterr().out
    assert not result.loaded and calls == [1]
    assert out.splitlines()[0].startswith(f"cache: {path} is unreadable (") and out.splitlines()[0].endswith("); retraining")
    assert run_cached().loaded  # the retrained file replaced the broken one


def test_mismatched_weights_are_retrained_not_half_loaded(cache, capsys):
    path = run_cached().path
    # Same file name, but weights of another architecture: shapes cannot fit.
    wrong = Autoencoder(AutoencoderConfig(kind="mlp", latent_dim=4, hidden=(16,)))
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = wrong.state_dict()
    torch.save(payload, path)
    capsys.readouterr()
    result = run_cached()
    assert not result.loaded
    assert "is unreadable (weight encoder.net.1.weight has shape" in capsys.readouterr().out
    # Another checkpoint's settings under this name are refused as well.
    payload = torch.load(path, weights_only=True)
    payload["key_parts"] = {"something": "else"}
    torch.save(payload, path)
    assert not run_cached().loaded
    assert "trained with other settings" in capsys.readouterr().out


def test_no_file_is_left_when_training_fails(cache):
    def explode(model):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cached_fit("tiny", lambda: Autoencoder(TINY), explode, KEY, device="cpu")
    assert not cache.exists() or list(cache.iterdir()) == []


def test_no_partial_file_is_left_when_saving_fails(cache, monkeypatch):
    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(train.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        run_cached()
    assert list(cache.iterdir()) == []


def test_key_parts_must_be_plain():
    with pytest.raises(TypeError, match="cache key"):
        train.cache_key({"model": object()})
    with pytest.raises(ValueError, match="name"):
        train.cache_path("../escape", KEY)


def test_checkpoint_loads_with_weights_only(cache):
    path = run_cached().path
    payload = torch.load(path, weights_only=True)
    assert set(payload) >= {"state_dict", "history", "key_parts"}
    assert os.path.getsize(path) > 0


def test_cached_autoencoder_trains_once_then_loads(cache, capsys):
    images = tiny_images(64)
    config = AutoencoderConfig(kind="mlp", latent_dim=2, hidden=(16,))
    settings = TrainConfig(epochs=1, batch_size=16)
    description = {"dataset": "random", "n": 64}
    first = train.cached_autoencoder("ae-tiny", images, config, settings, description,
                                     progress=False)
    second = train.cached_autoencoder("ae-tiny", images, config, settings, description,
                                      progress=False)
    assert not first.loaded and second.loaded
    assert "cache: loaded ae-tiny" in capsys.readouterr().out
    other = train.cached_autoencoder("ae-tiny", images, config, settings, {**description, "n": 63},
                                     progress=False)
    assert not other.loaded and other.path != first.path

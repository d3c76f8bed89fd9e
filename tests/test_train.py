"""gae_course.train: the training loop and batched evaluation (the cache: tests/test_cache.py)."""

import os

import numpy as np
import pytest
import torch

from gae_course import train
from gae_course.models import Autoencoder, AutoencoderConfig, autoencoder_loss
from gae_course.train import TrainConfig, fit

TINY = AutoencoderConfig(kind="mlp", latent_dim=4, hidden=(32,))


pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_evaluate_restores_the_mode_refuses_ragged_inputs_and_handles_empty():
    model = Autoencoder(TINY).train()
    out = train.evaluate(lambda x: x.sum(dim=(1, 2))[:, None] * torch.ones(1, 2), model,
                         tiny_images(7), batch_size=3)
    assert out.shape == (7, 2) and model.training
    with pytest.raises(ValueError, match="first dimension"):
        train.evaluate(lambda x, y: x, model, np.zeros((3, 2)), np.zeros(4))
    assert train.evaluate(model.encode, model, np.zeros((0, 28, 28), np.float32)).shape == (0,)

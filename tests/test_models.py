"""gae_course.models: shapes, ranges and configs of the autoencoders."""

import json
from dataclasses import FrozenInstanceError

import pytest
import torch

from gae_course.models import (
    Autoencoder,
    AutoencoderConfig,
    Decoder,
    Encoder,
    autoencoder_loss,
    count_parameters,
    reconstruction_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")


SMALL = {
    "mlp": dict(kind="mlp", hidden=(64, 32)),
    "conv": dict(kind="conv", channels=(8, 16)),
    "conv-deep": dict(kind="conv", channels=(8, 16, 16)),
    "conv-bn": dict(kind="conv", channels=(8, 16), batch_norm=True),
    "mlp-bn": dict(kind="mlp", hidden=(32,), batch_norm=True),
}


@pytest.mark.parametrize("arch", sorted(SMALL))
@pytest.mark.parametrize("latent_dim", [2, 16])
def test_shapes_and_ranges(arch, latent_dim):
    torch.manual_seed(0)
    model = Autoencoder(AutoencoderConfig(latent_dim=latent_dim, **SMALL[arch])).eval()
    x = torch.rand(5, 1, 28, 28)
    z = model.encode(x)
    assert z.shape == (5, latent_dim)
    assert model.encode(x[:, 0]).shape == (5, latent_dim)  # (B, H, W) works too
    assert model.decode_logits(z).shape == (5, 1, 28, 28)
    assert model(x).shape == (5, 1, 28, 28)
    probabilities = model.decode(10 * torch.randn(7, latent_dim))
    assert probabilities.shape == (7, 1, 28, 28)
    assert probabilities.min() >= 0.0 and probabilities.max() <= 1.0
    assert count_parameters(model) > 0


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_encoder_out_dim_for_vaes(kind):
    config = AutoencoderConfig(kind=kind, latent_dim=4, hidden=(16,), channels=(4, 8))
    assert Encoder(config, out_dim=2 * config.latent_dim)(torch.rand(3, 1, 28, 28)).shape == (3, 8)
    assert Decoder(config)(torch.randn(3, 4)).shape == (3, 1, 28, 28)


def test_config_is_hashable_frozen_and_json_round_trips():
    config = AutoencoderConfig(kind="mlp", latent_dim=8, hidden=[64, 32])  # lists become tuples
    assert config.hidden == (64, 32)
    assert hash(config) == hash(AutoencoderConfig(kind="mlp", latent_dim=8, hidden=(64, 32)))
    assert AutoencoderConfig(**json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(FrozenInstanceError):
        config.latent_dim = 3


def test_config_refuses_bad_settings():
    with pytest.raises(ValueError, match="kind"):
        AutoencoderConfig(kind="rnn")
    with pytest.raises(ValueError, match="divisible"):
        AutoencoderConfig(kind="conv", channels=(4, 8, 8), n_strided=3)


def test_reconstruction_loss_is_summed_bce_averaged_over_batch():
    torch.manual_seed(0)
    logits, x = torch.randn(4, 1, 28, 28), torch.rand(4, 28, 28)
    p = torch.sigmoid(logits)[:, 0]
    naive = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum() / 4
    torch.testing.assert_close(reconstruction_loss(logits, x), naive, rtol=1e-5, atol=1e-3)
    model = Autoencoder(AutoencoderConfig(kind="mlp", latent_dim=2, hidden=(8,)))
    assert autoencoder_loss(model, (x, torch.zeros(4))).shape == ()


def test_conv_layout_is_channels_last_and_computes_the_same_function(monkeypatch):
    """The channels_last speed-up (models.CHANNELS_LAST) changes memory layout, not the model."""
    import gae_course.models as models_module

    config = AutoencoderConfig(kind="conv", latent_dim=4)
    torch.manual_seed(0)
    fast = Autoencoder(config)
    conv_weights = [m.weight for m in fast.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert conv_weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights)
    assert not all(w.is_contiguous() for w in conv_weights)  # really another layout (C > 1 somewhere)

    monkeypatch.setattr(models_module, "CHANNELS_LAST", False)
    plain = Autoencoder(config)
    plain.load_state_dict(fast.state_dict())
    assert all(w.is_contiguous() for w in plain.parameters())
    x = torch.rand(5, 28, 28, generator=torch.Generator().manual_seed(1))
    # the encoder reads CHANNELS_LAST at call time: switch it back for the fast model's pass
    plain_out = plain(x)
    monkeypatch.setattr(models_module, "CHANNELS_LAST", True)
    torch.testing.assert_close(fast(x), plain_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.encoder(x), plain.encoder(x), rtol=1e-5, atol=1e-5)

r"""Autoencoders for 28x28 images: an encoder, a decoder and the reconstruction loss.

A deterministic autoencoder is a pair of networks, an encoder :math:`z = f_\phi(x)` and a
decoder :math:`\hat x = \sigma(g_\theta(z))`, trained to reproduce their input. Pixels lie in
[0, 1], so the decoder's output is read as the mean of one Bernoulli per pixel and the loss is
the Bernoulli negative log-likelihood, the binary cross-entropy (Kingma & Welling, 2014,
Appendix C.1):

.. math::

    \mathcal L(x) = -\sum_{j=1}^{D} \big[x_j \log \hat x_j + (1 - x_j) \log(1 - \hat x_j)\big],

summed over the :math:`D = 784` pixels and averaged over the mini-batch. It is computed from
the logits :math:`g_\theta(z)` (``binary_cross_entropy_with_logits``), never from
probabilities, so that a saturated sigmoid does not give ``log(0)``.

Two architectures, chosen by :class:`AutoencoderConfig`:

* ``"mlp"``: flatten, fully connected layers with ReLU, a linear layer to the code; the
  decoder mirrors it. The simplest network, and the fastest on a CPU.
* ``"conv"``: strided 4x4 convolutions halve the image twice (28 -> 14 -> 7), optional
  stride-1 3x3 convolutions add depth at 7x7, then one linear layer to the code; the decoder
  mirrors it with transposed convolutions. Better codes for the same number of epochs.

No batch normalisation by default: a code then depends on its own image only (the same in
training and evaluation mode, and the same whatever batch it sits in), which is what the
Gaussian mixtures fitted on the codes assume; at this depth Adam trains the networks well
without it. ``batch_norm=True`` is there for experiments.

:class:`Encoder` takes an ``out_dim`` so that a VAE can ask it for ``2 * latent_dim`` numbers
(``mu`` and ``logvar``); :class:`Decoder` always returns logits of shape (B, C, H, W).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("mlp", "conv")
# Convolutional encoders and decoders keep their weights, and the encoder its input, in the
# channels_last (N, H, W, C) layout: the same function, but oneDNN's CPU convolutions run a
# training step of chapter 5's autoencoder about 20% faster (benchmarks/bench_training.py
# sets this to False to compare). Read when a model is built.
CHANNELS_LAST = True


@dataclass(frozen=True)
class AutoencoderConfig:
    """Sizes of an autoencoder. Frozen, so it is hashable and can key the model cache."""

    kind: str = "conv"  # "conv" gives better codes per epoch; "mlp" is simplest and fastest
    latent_dim: int = 32  # size of the code z: the Gaussian mixtures live in this space
    hidden: tuple[int, ...] = (512, 256)  # mlp: widths of the encoder's hidden layers; decoder reverses them
    channels: tuple[int, ...] = (32, 64)  # conv: channels per convolution; the first `n_strided` halve H, W
    n_strided: int = 2  # conv: stride-2 layers; two take 28x28 to 7x7, small enough for one linear layer
    batch_norm: bool = False  # off: a code depends on its own image only (see module docstring)
    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) of MNIST and Fashion-MNIST
    n_conditions: int = 0  # mlp: extra inputs (a one-hot label) beside the image and the code

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}.")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1; got {self.latent_dim}.")
        # Lists (from JSON, say) become tuples so that the config stays hashable.
        for name in ("hidden", "channels", "image_shape"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W); got {self.image_shape}.")
        if self.n_conditions < 0 or (self.n_conditions and self.kind != "mlp"):
            raise ValueError(f"n_conditions (a label input, for a conditional VAE) needs kind='mlp' "
                             f"and must be >= 0; got {self.n_conditions} with kind={self.kind!r}.")
        if self.kind == "conv":
            _, height, width = self.image_shape
            factor = 2**self.n_strided
            if not 0 <= self.n_strided <= len(self.channels):
                raise ValueError(
                    f"n_strided={self.n_strided} must lie between 0 and len(channels)="
                    f"{len(self.channels)}."
                )
            if height % factor or width % factor:
                raise ValueError(
                    f"{self.n_strided} stride-2 convolutions need H and W divisible by {factor}; "
                    f"got image_shape {self.image_shape}. Use n_strided=2 for 28x28 images."
                )

    @property
    def n_pixels(self) -> int:
        """C * H * W, the length of a flattened image."""
        return math.prod(self.image_shape)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (tuples become lists); ``AutoencoderConfig(**d)`` inverts it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _conv_grid(config: AutoencoderConfig) -> tuple[int, int, int]:
    """(C, H, W) of the last feature map of the convolutional encoder."""
    _, height, width = config.image_shape
    factor = 2**config.n_strided
    return config.channels[-1], height // factor, width // factor


def _norm(kind: str, size: int, on: bool) -> nn.Module:
    if not on:
        return nn.Identity()
    return nn.BatchNorm2d(size) if kind == "2d" else nn.BatchNorm1d(size)


class Encoder(nn.Module):
    """Images (B, C, H, W), or (B, H, W) for one channel, to vectors (B, out_dim).

    Parameters
    ----------
    config : AutoencoderConfig
    out_dim : int, optional
        Length of the output; ``config.latent_dim`` by default. A VAE asks for
        ``2 * latent_dim`` and splits the result into ``mu`` and ``logvar``.
    """

    def __init__(self, config: AutoencoderConfig, out_dim: int | None = None):
        super().__init__()
        self.config = config
        self.out_dim = config.latent_dim if out_dim is None else int(out_dim)
        bn = config.batch_norm
        layers: list[nn.Module] = []
        if config.kind == "mlp":
            layers.append(nn.Flatten())
            width = config.n_pixels + config.n_conditions
            for size in config.hidden:
                layers += [nn.Linear(width, size, bias=not bn), _norm("1d", size, bn), nn.ReLU()]
                width = size
            layers.append(nn.Linear(width, self.out_dim))
        else:
            in_channels = config.image_shape[0]
            for i, size in enumerate(config.channels):
                if i < config.n_strided:  # a 4x4 kernel with stride 2 and padding 1 halves H, W exactly
                    conv = nn.Conv2d(in_channels, size, 4, stride=2, padding=1, bias=not bn)
                else:
                    conv = nn.Conv2d(in_channels, size, 3, stride=1, padding=1, bias=not bn)
                layers += [conv, _norm("2d", size, bn), nn.ReLU()]
                in_channels = size
            layers += [nn.Flatten(), nn.Linear(math.prod(_conv_grid(config)), self.out_dim)]
        self.net = nn.Sequential(*layers)
        if config.kind == "conv" and CHANNELS_LAST:
            self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """``condition`` (B, n_conditions): a conditional model's extra input, else None."""
        B = x.shape[0]
        x = x.reshape(B, *self.config.image_shape)  # (B, C, H, W); a (B, H, W) batch gains C = 1
        if self.config.kind == "conv" and CHANNELS_LAST:  # the layout the weights are in
            x = x.contiguous(memory_format=torch.channels_last)
        if not self.config.n_conditions:
            if condition is not None:
                raise ValueError("this encoder takes no condition (n_conditions=0).")
            return self.net(x)  # (B, out_dim)
        flat = torch.cat([self.net[0](x), _condition(condition, B, self.config)], dim=1)  # (B, D + n_cond)
        return self.net[1:](flat)  # (B, out_dim)


class Decoder(nn.Module):
    """Codes (B, latent_dim) to pixel logits (B, C, H, W); ``sigmoid`` gives probabilities."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        bn = config.batch_norm
        layers: list[nn.Module] = []
        if config.kind == "mlp":
            width = config.latent_dim + config.n_conditions
            for size in reversed(config.hidden):
                layers += [nn.Linear(width, size, bias=not bn), _norm("1d", size, bn), nn.ReLU()]
                width = size
            layers += [nn.Linear(width, config.n_pixels), nn.Unflatten(1, config.image_shape)]
        else:
            grid = _conv_grid(config)
            layers += [
                nn.Linear(config.latent_dim, math.prod(grid), bias=not bn),
                _norm("1d", math.prod(grid), bn),
                nn.ReLU(),
                nn.Unflatten(1, grid),  # (B, C_last, H / 2^s, W / 2^s)
            ]
            # Mirror the encoder: channels in reverse order, stride-1 layers first, and the
            # last layer maps to the image's channels with no activation (these are logits).
            out_sizes = list(reversed(config.channels[:-1])) + [config.image_shape[0]]
            in_channels = config.channels[-1]
            n_layers = len(config.channels)
            for i, size in enumerate(out_sizes):
                strided = i >= n_layers - config.n_strided
                if strided:
                    conv = nn.ConvTranspose2d(in_channels, size, 4, stride=2, padding=1)
                else:
                    conv = nn.Conv2d(in_channels, size, 3, stride=1, padding=1)
                layers.append(conv)
                if i < n_layers - 1:
                    layers += [_norm("2d", size, bn), nn.ReLU()]
                in_channels = size
        self.net = nn.Sequential(*layers)
        if config.kind == "conv" and CHANNELS_LAST:
            self.to(memory_format=torch.channels_last)

    def forward(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, C, H, W) of codes (B, latent_dim); ``condition`` as in :class:`Encoder`."""
        if self.config.n_conditions:
            z = torch.cat([z, _condition(condition, z.shape[0], self.config)], dim=1)
        elif condition is not None:
            raise ValueError("this decoder takes no condition (n_conditions=0).")
        return self.net(z)  # (B, C, H, W) logits


def _condition(condition, batch: int, config: AutoencoderConfig) -> torch.Tensor:
    if condition is None or tuple(condition.shape) != (batch, config.n_conditions):
        got = None if condition is None else tuple(condition.shape)
        raise ValueError(f"this network is conditional: pass condition of shape ({batch}, "
                         f"{config.n_conditions}); got {got}.")
    return condition


class Autoencoder(nn.Module):
    """A deterministic autoencoder: ``encode`` to codes, ``decode`` to pixel probabilities.

    Parameters
    ----------
    config : AutoencoderConfig, optional
        Default: ``AutoencoderConfig()`` (convolutional, 32-dimensional codes).
    """

    def __init__(self, config: AutoencoderConfig | None = None):
        super().__init__()
        self.config = AutoencoderConfig() if config is None else config
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) or (B, H, W) in [0, 1] to codes (B, latent_dim)."""
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, latent_dim) to pixel logits (B, C, H, W)."""
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, latent_dim) to pixel probabilities (B, C, H, W) in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction logits (B, C, H, W) of the images ``x``."""
        return self.decoder(self.encoder(x))


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over pixels, averaged over the batch (nats per image).

    Parameters
    ----------
    logits : Tensor of shape (B, C, H, W)
        Decoder output before the sigmoid.
    x : Tensor of shape (B, C, H, W) or (B, H, W)
        Targets in [0, 1] (grey levels or binarised pixels).

    Returns
    -------
    Tensor of shape ()
    """
    B = logits.shape[0]
    x = x.reshape(logits.shape)  # (B, C, H, W)
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / B


def autoencoder_loss(model: Autoencoder, batch) -> torch.Tensor:
    """``loss_fn`` for :func:`gae_course.train.fit`: the reconstruction loss of a batch.

    ``batch`` is an image tensor, or a tuple whose first entry is one (labels are ignored:
    the autoencoder is trained without them).
    """
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    return reconstruction_loss(model(x), x)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) scalar parameters in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)

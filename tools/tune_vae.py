"""Choose chapter 4's training length on the validation split (never on the test set).

The main VAE of chapter 4 (32 latent units, widths 512-256, Adam on batches of 128 with a
cosine schedule) is trained on the course's training part of MNIST (``gae_course.presets``:
54 000 images, stratified, seed 0) for each number of epochs in ``--epochs`` (the cosine
schedule anneals to zero over each run, so every length is its own training run). Each is
scored on the 6 000 validation images, binarised once with chapter 4's seed: the negative
ELBO on all of them and the importance-weighted bound -L_K on the first ``--iwae-images``.
The lengths train side by side (``gae_course.side_by_side``), and the checkpoints go to the
model cache under chapter 4's name, so the length chosen here is the checkpoint chapter 4
loads. Run:

    .venv/bin/python tools/tune_vae.py --epochs 10 20 30 --out build/tune_vae.json

It prints one JSON line per training length.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from gae_course import config, presets, side_by_side, train, vae

VALIDATION_BINARISATION_SEED = 2015  # chapter 4's: the same binary validation images


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[10, 20, 30])
    parser.add_argument("--iwae-images", type=int, default=500)
    parser.add_argument("--iwae-k", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    split = presets.validation_split("mnist")
    validation_binary = torch.bernoulli(
        torch.from_numpy(split.images("validation").copy()),
        generator=torch.Generator().manual_seed(VALIDATION_BINARISATION_SEED))
    model_config = vae.VAEConfig(latent_dim=32, hidden=(512, 256))
    trainings = {epochs: train.TrainConfig(epochs=epochs, batch_size=128, schedule="cosine")
                 for epochs in args.epochs}
    # the lengths are independent trainings: two at a time, one thread each, longest first
    jobs = [side_by_side.Job(f"{epochs} epochs", vae.cached_vae,
                             ("vae-mnist", model_config, trainings[epochs], split.images("train")))
            for epochs in sorted(args.epochs, reverse=True)]
    side_by_side.train_missing(jobs)
    rows = []
    for epochs in args.epochs:
        fitted = vae.cached_vae("vae-mnist", model_config, trainings[epochs], split.images("train"),
                                progress=False)
        terms = vae.elbo_terms(fitted.model, validation_binary, generator=torch.Generator().manual_seed(2))
        log_px = vae.iwae_log_likelihood(fitted.model, validation_binary[: args.iwae_images], args.iwae_k,
                                         generator=torch.Generator().manual_seed(3))
        row = dict(epochs=epochs, train_seconds=round(float(sum(fitted.history["seconds"])), 1),
                   n_validation_images=len(validation_binary),
                   validation_neg_elbo=round(terms["neg_elbo"], 3),
                   validation_recon=round(terms["recon"], 3), validation_kl=round(terms["kl"], 3),
                   iwae_k=args.iwae_k, iwae_images=args.iwae_images,
                   validation_nll=round(float(-log_px.mean()), 3),
                   validation_nll_std_error=round(float(log_px.std() / np.sqrt(len(log_px))), 3),
                   final_train_neg_elbo=round(fitted.history["neg_elbo"][-1], 3))
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(dict(mode=config.mode(), rows=rows), indent=1))


if __name__ == "__main__":
    main()

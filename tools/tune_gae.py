"""Choose chapter 5's settings on a validation split (never on the test set).

For each dataset the training set is split as in the chapters (``gae_course.presets``: 54000
images to train on and 6000 to validate on, stratified, seed 0). Each autoencoder in AE_CONFIGS
is trained (or loaded from the model cache: the 10-epoch ones are chapter 5's, the same
checkpoints) on the 54000, and each mixture setting in GMM_GRID is fitted on their codes and
scored by validation accuracy of the likelihood classifier. Run:

    .venv/bin/python tools/tune_gae.py --datasets mnist fashion-mnist --out build/tune_gae.json

It prints one line per (dataset, autoencoder, mixture) with validation accuracy and times.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from gae_course import config, gae, models, presets, train

AE_CONFIGS = {
    "conv32-e10": (models.AutoencoderConfig(kind="conv", latent_dim=32), train.TrainConfig(epochs=10)),
    "conv32-e20": (models.AutoencoderConfig(kind="conv", latent_dim=32), train.TrainConfig(epochs=20)),
    "conv64-e10": (models.AutoencoderConfig(kind="conv", latent_dim=64), train.TrainConfig(epochs=10)),
    # half the channels: a cheaper network per epoch (tried for chapter 5's time budget)
    "conv32-c16-e10": (models.AutoencoderConfig(kind="conv", latent_dim=32, channels=(16, 32)),
                       train.TrainConfig(epochs=10)),
    "conv64-c16-e10": (models.AutoencoderConfig(kind="conv", latent_dim=64, channels=(16, 32)),
                       train.TrainConfig(epochs=10)),
    "conv32-c24-e10": (models.AutoencoderConfig(kind="conv", latent_dim=32, channels=(24, 48)),
                       train.TrainConfig(epochs=10)),
    "conv64-c24-e10": (models.AutoencoderConfig(kind="conv", latent_dim=64, channels=(24, 48)),
                       train.TrainConfig(epochs=10)),
    # the same 10 epochs with the learning rate annealed to 0 (a cosine schedule): no extra cost
    "conv32-c24-cos-e10": (models.AutoencoderConfig(kind="conv", latent_dim=32, channels=(24, 48)),
                           train.TrainConfig(epochs=10, schedule="cosine")),
    "conv64-c24-cos-e10": (models.AutoencoderConfig(kind="conv", latent_dim=64, channels=(24, 48)),
                           train.TrainConfig(epochs=10, schedule="cosine")),
}

GMM_GRID = dict(n_components=[6, 10, 20], reg_covar=[0.01, 0.03, 0.1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    parser.add_argument("--ae", nargs="+", default=list(AE_CONFIGS))
    parser.add_argument("--components", type=int, nargs="+", default=GMM_GRID["n_components"])
    parser.add_argument("--reg", type=float, nargs="+", default=GMM_GRID["reg_covar"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for dataset in args.datasets:
        split = presets.validation_split(dataset)
        train_labels, val_labels = split.labels("train"), split.labels("validation")
        for ae_name in args.ae:
            ae_config, train_config = AE_CONFIGS[ae_name]
            config.seed_everything(0)
            result = presets.train_autoencoder(dataset, ae_config, train_config, progress=False)
            z_train = train.encode_dataset(result.model, split.images("train"))
            z_val = train.encode_dataset(result.model, split.images("validation"))
            for K, reg in itertools.product(args.components, args.reg):
                start = time.perf_counter()
                model = gae.ClassConditionalGMM(K, reg_covar=reg, random_state=0)
                model.fit(z_train, train_labels)
                acc = float(np.mean(model.predict(z_val) == val_labels))
                row = dict(dataset=dataset, ae=ae_name, n_components=K, reg_covar=reg,
                           val_accuracy=acc, gmm_seconds=time.perf_counter() - start,
                           ae_seconds=result.history.get("seconds", [None])[-1] if result.history else None,
                           loaded=result.loaded, recon_loss=result.history["loss"][-1])
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

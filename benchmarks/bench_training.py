"""Benchmark: one training step of the course's networks, and what two settings buy.

Run with ``.venv/bin/python benchmarks/bench_training.py`` (about a minute on 2 cores), alone
on the machine: a second process on the two cores changes every figure.

For each network that chapters 4-6 train (chapter 4's main VAE, the small VAEs of chapters 4
and 6, chapter 5's convolutional autoencoder) it times an Adam step (forward, backward,
update) on a batch of 128 random binary images, the course's batch size, in four variants:
Adam's default loop or its fused kernel (``fused=True``, what ``gae_course.train.fit`` uses),
and, for convolutional models, contiguous (NCHW) or channels_last weights and inputs (what
``gae_course.models`` uses). Each figure is the best of ``--repeats`` runs of ``--steps``
steps, in milliseconds per step, with the seconds an epoch of 54 000 images would take.

``--side-by-side`` instead times each network's step in one process on 2 threads, on 1
thread, and in two processes at once on 1 thread each, and prints how many more steps per
second the pair gets through (what ``gae_course.side_by_side`` relies on).
"""

from __future__ import annotations

import argparse
import time

import torch

from gae_course import models, vae


def networks():
    """(name, build(), loss_fn) for each network the chapters train."""
    return [
        ("VAE 784-512-256-32 (ch4 main)", lambda: vae.VAE(vae.VAEConfig(latent_dim=32, hidden=(512, 256))),
         vae.VAELoss()),
        ("VAE 784-400-8 (ch4, ch6)", lambda: vae.VAE(vae.VAEConfig(latent_dim=8, hidden=(400,))), vae.VAELoss()),
        ("conv autoencoder, code 32 (ch5)",
         lambda: models.Autoencoder(models.AutoencoderConfig(kind="conv", latent_dim=32)), models.autoencoder_loss),
    ]


def time_steps(model, loss_fn, batch, *, fused: bool, steps: int, repeats: int) -> float:
    """Best mean seconds per Adam step over ``repeats`` runs of ``steps`` steps."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)

    def step():
        optimizer.zero_grad()
        out = loss_fn(model, batch)
        (out[0] if isinstance(out, tuple) else out).backward()
        optimizer.step()

    for _ in range(5):  # warm-up: oneDNN picks its kernels on the first calls
        step()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def side_by_side(args):
    """Steps per second of one training on 2 threads against two at once on 1 thread each.

    What ``gae_course.side_by_side`` relies on: each process times ``--steps`` fused Adam steps
    (after a warm-up) of one network, alone or beside a twin in a second process.
    """
    import json
    import subprocess
    import sys

    def run(index, threads, n_processes):
        command = [sys.executable, __file__, "--one", str(index), "--threads", str(threads),
                   "--steps", str(args.steps * 10)]
        processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(n_processes)]
        return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in processes]

    print(f"{'network':34s} {'1 x 2 threads':>14s} {'1 x 1 thread':>13s} {'2 x 1 thread':>16s} "
          f"{'steps/s gained':>15s}  (ms per step)")
    for index, (name, _, _) in enumerate(networks()):
        two_threads = run(index, 2, 1)[0]
        one_thread = run(index, 1, 1)[0]
        pair = run(index, 1, 2)
        gain = 2 * two_threads / max(pair)
        print(f"{name:34s} {two_threads * 1e3:14.1f} {one_thread * 1e3:13.1f} "
              f"{pair[0] * 1e3:7.1f}, {pair[1] * 1e3:6.1f} {gain:14.2f}x", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--side-by-side", action="store_true",
                        help="one training on 2 threads against two at once on 1 thread each")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a worker of --side-by-side
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.side_by_side:
        return side_by_side(args)
    if args.one is not None:
        import json

        _, build, loss_fn = networks()[args.one]
        torch.manual_seed(0)
        images = torch.bernoulli(torch.rand(args.batch_size, 28, 28))
        print(json.dumps(time_steps(build(), loss_fn, images, fused=True, steps=args.steps, repeats=1)))
        return
    torch.manual_seed(0)
    images = torch.bernoulli(torch.rand(args.batch_size, 28, 28))
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch_size}, "
          f"best of {args.repeats} x {args.steps} steps")
    print(f"{'network':34s} {'layout':14s} {'Adam':8s} {'ms/step':>8s} {'s/epoch of 54k':>15s}")
    for name, build, loss_fn in networks():
        for channels_last in (True, False):
            models.CHANNELS_LAST = channels_last  # read when a model is built and by its encoder
            torch.manual_seed(0)
            model = build()
            is_conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
            if not is_conv and not channels_last:
                continue  # the layout only concerns convolutions
            layout = ("channels_last" if channels_last else "contiguous") if is_conv else "-"
            for fused in (True, False):
                seconds = time_steps(model, loss_fn, images, fused=fused, steps=args.steps,
                                     repeats=args.repeats)
                epoch = seconds * 54_000 / args.batch_size
                print(f"{name:34s} {layout:14s} {'fused' if fused else 'loop':8s} "
                      f"{seconds * 1e3:8.1f} {epoch:15.1f}", flush=True)
    models.CHANNELS_LAST = True

if __name__ == "__main__":
    main()

"""Benchmark: one Gaussian mixture per class, the classes one after the other or side by side.

Run with ``.venv/bin/python benchmarks/bench_class_mixtures.py`` (about a minute on 2 cores),
alone on the machine. Chapter 5's shape: 10 classes of 6 000 codes (32-D as MNIST's, 64-D as
Fashion-MNIST's; random Gaussian clouds here), 20 full-covariance components per class, 20 EM
iterations (``tol=0``, so every fit does the same work). ``ClassConditionalGMM.fit`` is timed
as it is (its classes side by side, ``_blocks.map_tasks``) and with ``map_tasks`` replaced by a
plain loop (the classes one after the other, each on both threads), alternately, ``--repeats``
times each; it also checks that the two give the same means.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from gae_course import _blocks, gae


def one_after_the_other(function, items):
    return [function(item) for item in items]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # 20 iterations may stop short of convergence: that is the point
    rng = np.random.default_rng(0)
    side_by_side = _blocks.map_tasks
    print(f"{'codes':>6s} {'classes one after the other (s)':>32s} {'side by side (s)':>17s}")
    for d in (32, 64):
        labels = np.repeat(np.arange(10), 6000)
        codes = np.concatenate([rng.standard_normal((6000, d)) @ rng.standard_normal((d, d)) * 0.3
                                + 3 * rng.standard_normal(d) for _ in range(10)])
        times = {"serial": [], "side": []}
        means = {}
        for _ in range(args.repeats):
            for name, mapper in (("serial", one_after_the_other), ("side", side_by_side)):
                _blocks.map_tasks = mapper
                start = time.perf_counter()
                model = gae.ClassConditionalGMM(20, reg_covar=0.03, random_state=0,
                                                max_iter=args.iterations, tol=0).fit(codes, labels)
                times[name].append(time.perf_counter() - start)
                means[name] = np.stack([g.means_ for g in model.gmms_])
        _blocks.map_tasks = side_by_side
        same = np.array_equal(means["serial"], means["side"])
        print(f"{d:>4d}-D {', '.join(f'{t:.2f}' for t in times['serial']):>32s} "
              f"{', '.join(f'{t:.2f}' for t in times['side']):>17s}   same means: {same}")


if __name__ == "__main__":
    main()

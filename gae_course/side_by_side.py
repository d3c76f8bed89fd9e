"""Train independent networks side by side, one per core, before a chapter uses them.

Why. The small networks of chapters 4 and 6 (MLPs with a few hundred units, batches of 128)
gain little from a second thread: on the course's 2-core machine an Adam step of a
784-400-16 VAE took 16.1 ms on one thread and 13.4 ms on two, so one training on two threads
leaves most of the second core idle. Two trainings at once, each on one thread, get through
about 1.4 times as many steps (``benchmarks/bench_training.py --side-by-side`` measures it).

How. :func:`train_missing` takes *jobs*, each a call ``function(*args, **kwargs)`` of a
gae_course function that returns a :class:`gae_course.cache.FitResult` from the model cache
(``vae.cached_vae``, ``presets.small_vae``, ...). It first asks the cache which jobs are there
(:func:`gae_course.cache.loading_only`: nothing is trained while it asks), then runs the
others in worker processes, one thread each, which write their checkpoints to the cache as
any training does. The chapter's cells then call the same functions and load the models.

Same weights wherever a model is trained. Worker processes start fresh (``spawn``), so
every job seeds torch exactly as it would in the chapter's own process, and
:func:`gae_course.cache.cached_fit` trains every network on one thread whatever its caller
has: on the course's current machine two threads changed the last bits of every MLP's weights
(``tests/test_side_by_side.py`` trains each kind both ways through the cache); that holds
for the convolutional networks too (chapter 5's autoencoders, the judge).
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, NamedTuple


class Job(NamedTuple):
    """One training: ``function(*args, **kwargs)`` returns a FitResult from the model cache."""

    label: str
    function: Callable
    args: tuple = ()
    kwargs: dict = {}


_in_worker = False  # True in a worker process: jobs asked for there run in it, one by one


def _start_worker():
    # One thread per worker: the workers themselves use the cores.
    import torch
    from threadpoolctl import threadpool_limits

    global _in_worker
    _in_worker = True
    torch.set_num_threads(1)
    threadpool_limits(limits=1)


def _run(job: Job) -> float:
    import contextlib
    import io

    start = time.perf_counter()
    # The cache's "trained ... saved to ..." lines would land in the kernel's own terminal,
    # not the notebook: the caller reports each job instead.
    with contextlib.redirect_stdout(io.StringIO()):
        job.function(*job.args, progress=False, **job.kwargs)
    return time.perf_counter() - start  # in the worker: training, saving, loading it back


def missing(jobs) -> list[Job]:
    """The jobs whose models are not in the cache yet (nothing is trained to find out)."""
    from gae_course import cache

    import contextlib
    import io

    out = []
    for job in jobs:
        # quietly: the cache says "loaded ..." for every model it finds, and the chapter's
        # own cells will say it again when they load them
        with cache.loading_only(), contextlib.redirect_stdout(io.StringIO()):
            try:
                job.function(*job.args, progress=False, **job.kwargs)
            except cache.NotCached:
                out.append(job)
    return out


def train_missing(jobs, *, workers: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Train every job whose model is not cached, ``workers`` at a time; return what was done.

    Parameters
    ----------
    jobs : list of Job
        Independent trainings. Put the longest first: they start first, and the short ones
        fill in around them.
    workers : int, optional
        Processes at once; default the usable cores (1 trains one job after the other, in
        worker processes all the same).
    progress : bool
        A progress bar over the jobs, with each job's time as it ends.

    Returns
    -------
    summary : dict
        ``"trained"``: label to seconds, for the jobs trained now; ``"cached"``: the labels
        already in the cache; ``"seconds"``: wall time of the whole call.
    """
    import os

    from tqdm.auto import tqdm

    jobs = list(jobs)
    labels = [job.label for job in jobs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"job labels must be distinct; got {labels}.")
    from gae_course import cache

    start = time.perf_counter()
    todo = missing(jobs)
    if todo and cache.only_loading():  # asked by missing() itself: answer, train nothing
        raise cache.NotCached(f"{todo[0].label} is not in the model cache")
    todo_labels = {job.label for job in todo}
    summary = {"trained": {}, "cached": [label for label in labels if label not in todo_labels],
               "seconds": 0.0}
    if todo and _in_worker:  # a job that asks for another: train it here, on this one thread
        for job in todo:
            summary["trained"][job.label] = _run(job)
    elif todo:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = min(workers or cpus, len(todo))
        context = multiprocessing.get_context("spawn")  # no fork of a process holding torch's threads
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker) as pool:
            futures = {pool.submit(_run, job): job for job in todo}
            bar = tqdm(total=len(todo), desc=f"training {len(todo)} models, {workers} at a time",
                       disable=not progress)
            for future in as_completed(futures):
                job = futures[future]
                summary["trained"][job.label] = future.result()  # a failed job raises here
                bar.update(1)
                bar.set_postfix_str(f"{job.label}: {summary['trained'][job.label]:.0f} s")
            bar.close()
    summary["seconds"] = time.perf_counter() - start
    return summary

"""Row blocks on a small thread pool: where :mod:`gae_course.mixture`'s kernels are blocked.

Why. An EM iteration is a few matrix products plus elementwise work (subtractions, squares,
sums, exp, log-sum-exp) on arrays of n rows. On whole arrays that elementwise work streams
main memory on one core and can cost as much as the products. Cut into row blocks of about
``BLOCK_BYTES``, every temporary of a block stays in cache, and the blocks can run
on a pool of threads: NumPy releases the GIL inside its ufunc loops and BLAS calls, so two
threads keep two cores busy. Inside every block BLAS is held to one thread (threadpoolctl)
so that the two levels of threading do not fight over the cores.

How many threads. As many as BLAS may use when a kernel is called, capped by the CPUs this
process may run on: ``threadpoolctl.threadpool_limits(1)`` or ``OMP_NUM_THREADS=1`` make EM
single-threaded, and with one thread every block runs on the calling thread. :func:`settings`
overrides the thread count and the block size (the tests use it).

Same numbers on any number of threads. Per-row results are written in place. A sum over rows
is taken block by block within a fixed number of contiguous chunks, then over the chunks in
order; the chunks do not depend on the thread count, and BLAS runs on one thread inside every
block, so 1 and 2 threads give identical bits.
The block size does change the order of the additions, hence the last digits.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
from threadpoolctl import ThreadpoolController

# A block's largest temporary stays around 2 MB: in cache (L2 holds its hot part, L3 the
# rest), and large enough that the Python overhead per block (about a microsecond per NumPy
# call) is a small fraction of its work; on the full-covariance E-step 2 MB blocks were
# faster than 256 KB ones.
BLOCK_BYTES = 2**21
# Sums over rows are taken in at most this many chunks: enough for the pool to balance the
# load when other processes share the cores, few enough that the chunk totals stay small.
MAX_CHUNKS = 8
# ... and the chunk totals of one sum together stay below this.
CHUNK_TOTALS_BYTES = 2**25

_override = {"workers": None, "block_rows": None}
_state = {"controller": None, "pool": None, "pool_size": 0, "pool_pid": None}
_lock = threading.Lock()
_local = threading.local()


@contextlib.contextmanager
def settings(workers=None, block_rows=None):
    """Fix the number of threads and/or the rows per block inside a ``with`` block.

    Parameters
    ----------
    workers : int, optional
        Threads to use (1 runs every block on the calling thread).
    block_rows : int, optional
        Rows per block, for every kernel (by default each kernel sizes its own blocks).
    """
    for name, value in (("workers", workers), ("block_rows", block_rows)):
        if value is not None and not (isinstance(value, (int, np.integer)) and value >= 1):
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    saved = dict(_override)
    _override.update({k: v for k, v in (("workers", workers), ("block_rows", block_rows))
                      if v is not None})
    try:
        yield
    finally:
        _override.update(saved)


def rows_per_block(bytes_per_row, minimum=64):
    """Rows in one block so that a block's temporaries take about ``BLOCK_BYTES``."""
    if _override["block_rows"] is not None:
        return int(_override["block_rows"])
    return max(minimum, BLOCK_BYTES // max(1, int(bytes_per_row)))


def _blas_controller():
    if _state["controller"] is None:
        _state["controller"] = ThreadpoolController().select(user_api="blas")
    return _state["controller"]


def n_workers():
    """Threads the kernels use now: BLAS's current thread count, at most the usable CPUs.

    1 inside a task of :func:`map_tasks` (the tasks themselves use the threads).
    """
    if getattr(_local, "serial", False):
        return 1
    if _override["workers"] is not None:
        return int(_override["workers"])
    blas_threads = [lib.num_threads for lib in _blas_controller().lib_controllers]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(max(blas_threads, default=1), cpus or 1))


def _pool(workers):
    # A forked child inherits the pool object but not its threads: start a fresh one there.
    with _lock:
        if _state["pool_pid"] != os.getpid() or _state["pool_size"] < workers:
            _state["pool"] = ThreadPoolExecutor(workers, thread_name_prefix="gae_course-blocks")
            _state["pool_size"], _state["pool_pid"] = workers, os.getpid()
        return _state["pool"]


def _chunks(n_rows, block_rows, n_chunks):
    """Split the blocks of ``block_rows`` rows into ``n_chunks`` contiguous runs of blocks."""
    starts = range(0, n_rows, block_rows)
    blocks = [slice(s, min(s + block_rows, n_rows)) for s in starts]
    n_chunks = max(1, min(n_chunks, len(blocks)))
    bounds = np.linspace(0, len(blocks), n_chunks + 1).round().astype(int)
    return [blocks[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _run(tasks, workers):
    """Run the zero-argument callables ``tasks``; return their results in order."""
    if getattr(_local, "serial", False):  # inside map_tasks: BLAS is already on one thread
        return [task() for task in tasks]
    workers = min(workers, len(tasks))
    # One BLAS thread per block, on one worker as on several: BLAS may split a product
    # differently on more threads, and the last digits would then depend on the count.
    with _blas_controller().limit(limits=1):
        if workers <= 1:
            return [task() for task in tasks]
        futures = [_pool(workers).submit(task) for task in tasks]
        return [future.result() for future in futures]


def map_tasks(function, items):
    """``[function(item) for item in items]``, the items spread over the threads.

    For many independent pieces of work too small to split well into row blocks, such as one
    mixture per class fitted on 6 000 codes each: with two fits at once, each on one thread,
    two cores do more than one fit at a time on two threads (whose blocks are small and
    whose M-step sums wait for each other). Inside a task every kernel runs its blocks on
    the task's thread with BLAS on one thread, as it would with one worker, so the results
    are the same bits as ``workers=1`` gives, on any number of threads.

    Parameters
    ----------
    function : callable
        Called once per item, possibly on another thread: it must not share mutable state
        with the other calls.
    items : sequence

    Returns
    -------
    results : list, in the order of ``items``
    """
    items = list(items)
    workers = min(n_workers(), len(items))
    if workers <= 1:
        return [function(item) for item in items]

    def task(item):
        _local.serial = True
        try:
            return function(item)
        finally:
            _local.serial = False

    # One limit for all tasks, set and lifted here: a limit per task, set and lifted on
    # several threads at once, could restore another task's value in the middle of its work.
    with _blas_controller().limit(limits=1):
        futures = [_pool(workers).submit(task, item) for item in items]
        wait(futures)  # every task has ended before the limit is lifted, even if one failed
    return [future.result() for future in futures]


def for_each_block(n_rows, block_rows, work):
    """Call ``work(rows)`` for every block ``rows = slice(start, stop)`` of ``range(n_rows)``.

    ``work`` writes its results in place (row ``i`` of an output belongs to one block only).
    """
    workers = n_workers()

    def run(chunk):
        return lambda: [work(rows) for rows in chunk]

    _run([run(chunk) for chunk in _chunks(n_rows, block_rows, 2 * MAX_CHUNKS)], workers)


def sum_over_blocks(n_rows, block_rows, add_block, shape):
    """The sum over all row blocks of a per-block quantity, in an order fixed by the blocks.

    Parameters
    ----------
    n_rows, block_rows : int
    add_block : callable
        ``add_block(rows, total)`` adds the part of ``slice`` ``rows`` into ``total``.
    shape : tuple of int
        Shape of the sum.

    Returns
    -------
    total : ndarray of shape ``shape``
    """
    n_chunks = min(MAX_CHUNKS, max(1, CHUNK_TOTALS_BYTES // (8 * int(np.prod(shape)))))

    def run(chunk):
        def task():
            total = np.zeros(shape)
            for rows in chunk:
                add_block(rows, total)
            return total
        return task

    totals = _run([run(chunk) for chunk in _chunks(n_rows, block_rows, n_chunks)], n_workers())
    total = totals[0]
    for other in totals[1:]:
        total += other
    return total


def scratch(name, shape):
    """A reusable float64 buffer of ``shape`` private to the calling thread (contents stale).

    Fresh arrays of a few hundred KB per block would cost page faults; a thread's buffers
    are allocated once and reused across blocks and calls.
    """
    buffers = _local.__dict__.setdefault("buffers", {})
    size = int(np.prod(shape))
    buffer = buffers.get(name)
    if buffer is None or buffer.size < size:
        buffer = buffers[name] = np.empty(size)
    return buffer[:size].reshape(shape)

"""Work on threads of this process: short items on all cores, and the features of many
recordings a few at a time.

:func:`parallel_map` runs short items (the column ranges of one matching, the recordings of
a search) on threads of a pool kept for the whole process.

A learned chroma has two stages of about equal cost: decoding and the HCQT, which run on
one core, and the network, which TensorFlow spreads over all cores. One recording after the
other leaves a core idle half of the time (about 1.4 of 2 cores busy). :func:`map_in_order`
computes a few recordings at once on threads, so the HCQT of one overlaps the network of
another (both release the GIL); the results come back in input order and are bit-identical
to one recording at a time (``bench/bench_indexing.py``, ``tests/test_threads.py``).

BLAS runs on one thread while features are computed (:func:`one_blas_thread`): the bits of
some products (librosa's chroma filter bank) depend on how many threads share them, and a
recording's features must not depend on where or beside what they were computed. The limit
is set by the thread that calls :func:`map_in_order`, before its threads start: once the
main thread had set a limit, OpenBLAS ignored one asked for from another thread (NumPy's
OpenBLAS through threadpoolctl 3.8; ``tests/test_threads.py`` checks what the threads get).
"""
import contextlib
import itertools
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor, wait

MAX_FEATURE_THREADS = 4
"""At most this many recordings are computed (and held in memory) at once."""


def feature_threads() -> int:
    """Recordings computed at once by default: one per core and one more, at most
    :data:`MAX_FEATURE_THREADS` (each holds its audio and HCQT in memory: about 0.5 GB for
    an hour of audio)."""
    return min((os.cpu_count() or 1) + 1, MAX_FEATURE_THREADS)


def map_in_order(fn, items, threads=None):
    """``fn(item)`` for every item, computed on up to ``threads`` threads, yielded in order.

    At most ``threads`` items are in progress or done but not yet taken. An error of
    ``fn(item)`` is raised when that item's turn comes, after the results of the items before
    it; then, or when the caller stops early, items not started are dropped and the ones
    running are stopped at their next :func:`check_cancelled` and waited for (no thread
    outlives the generator). BLAS stays on one thread
    from the first result asked for until the generator ends (:func:`one_blas_thread`).

    Args:
        fn (callable): Function of one item; must be safe to call from several threads
        items (iterable): Inputs
        threads (int): Threads (Default value = None: :func:`feature_threads`); 1 computes
            every item in the calling thread

    Yields:
        result: ``fn(item)``, in the order of ``items``
    """
    threads = feature_threads() if threads is None else int(threads)
    if threads <= 1:
        for item in items:
            yield fn(item)
        return
    with one_blas_thread():  # first in, last out: threads entering it later change nothing
        yield from _map_on_threads(fn, iter(items), threads)


class Cancelled(BaseException):
    """Raised by :func:`check_cancelled` in a computation whose result is no longer wanted
    (a BaseException, so that no ``except Exception`` on the way keeps it going)."""


_local = threading.local()


def check_cancelled():
    """Raise :class:`Cancelled` if this thread computes an item of a :func:`map_in_order`
    that has stopped (an error, an interrupt, or a caller that stopped early).

    Long computations call it between their steps (the network's chunks, the HCQT's filter
    banks), so that a Ctrl-C does not wait for whole recordings to finish; elsewhere it does
    nothing."""
    stop = getattr(_local, 'stop', None)
    if stop is not None and stop.is_set():
        raise Cancelled()


def _run(fn, item, stop):
    _local.stop = stop
    try:
        return fn(item)
    finally:
        _local.stop = None


def _map_on_threads(fn, items, threads):
    pending = deque()
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix='ctc-chroma-features')
    try:
        for item in items:
            pending.append(pool.submit(_run, fn, item, stop))
            if len(pending) == threads:
                break
        while pending:
            result = pending.popleft().result()
            for item in items:  # keep ``threads`` items in progress
                pending.append(pool.submit(_run, fn, item, stop))
                break
            yield result
    finally:
        stop.set()  # the items still running end at their next check_cancelled()
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)


_POOL = None
_POOL_LOCK = threading.Lock()


def parallel_map(fn, items, n_jobs):
    """``[fn(item) for item in items]`` on up to ``n_jobs`` threads (``fn`` releases the GIL),
    for many short items, such as the column ranges of a matching.

    The calling thread works too, beside threads of a pool kept for the whole process:
    starting new threads per call (and waiting until the scheduler spreads them over the
    cores) can take longer than a 150 x 200 000 matching itself (about 5 ms). Workers pull
    the next item from a shared counter, so uneven items balance out; after an error, no new
    item is started and the error is raised in the caller.
    """
    global _POOL
    items = list(items)
    n_jobs = min(n_jobs, len(items))
    if n_jobs <= 1:
        return [fn(item) for item in items]
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                                       thread_name_prefix='ctc-chroma-matching')
    results = [None] * len(items)
    counter = itertools.count()  # next() on it is atomic
    failed = threading.Event()

    def work():
        while not failed.is_set():
            i = next(counter)
            if i >= len(items):
                return
            try:
                results[i] = fn(items[i])
            except BaseException:
                failed.set()
                raise

    helpers = [_POOL.submit(work) for _ in range(n_jobs - 1)]
    try:
        work()
    finally:
        wait(helpers)  # the caller's own error, if any, propagates from here
    for helper in helpers:
        helper.result()  # raises a helper's error
    return results


_BLAS_LOCK = threading.Lock()
_blas_users = 0
_blas_limiter = None


@contextlib.contextmanager
def one_blas_thread():
    """BLAS on one thread while the block runs, also when several threads enter it at once.

    ``threadpoolctl.threadpool_limits`` sets a process-wide limit and restores the previous
    one on exit; entered by overlapping threads, the first to leave would lift the limit
    under the others. Here the first thread to enter sets it, and the last to leave
    restores it (:func:`map_in_order` enters first and leaves last)."""
    global _blas_users, _blas_limiter
    with _BLAS_LOCK:
        if _blas_users == 0:
            from threadpoolctl import threadpool_limits
            _blas_limiter = threadpool_limits(limits=1, user_api='blas')
        _blas_users += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None

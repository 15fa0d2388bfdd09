"""Features of many recordings on threads: order, errors, early stops, BLAS limit, same bits."""
import shutil
import threading
import time

import numpy as np
import pytest

from ctc_chroma_lib import threads
from ctc_chroma_lib.threads import map_in_order, one_blas_thread, parallel_map


def test_parallel_map_keeps_order_and_raises_a_workers_error():
    assert parallel_map(lambda x: x * x, range(50), 3) == [x * x for x in range(50)]
    started = []

    def fail_on_seven(x):
        started.append(x)
        if x == 7:
            raise ValueError('seven')
        return x

    with pytest.raises(ValueError, match='seven'):
        parallel_map(fail_on_seven, range(10_000), 2)
    assert len(started) < 10_000  # no new item starts after the error


def feature_threads_alive():
    return [t for t in threading.enumerate() if t.name.startswith('ctc-chroma-features')]


class Tracker:
    """A function of one item that records how many calls run at once and which started."""

    def __init__(self, fail_on=None):
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.started = []
        self.fail_on = fail_on

    def __call__(self, item):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.started.append(item)
        try:
            time.sleep(0.001 * ((item * 7) % 5))  # uneven: later items often finish first
            if item == self.fail_on:
                raise ValueError(f'item {item}')
            return item * item
        finally:
            with self.lock:
                self.running -= 1


@pytest.mark.parametrize('n_threads', [1, 2, 3, 8])
def test_results_come_in_input_order_with_at_most_threads_at_once(n_threads):
    fn = Tracker()
    assert list(map_in_order(fn, range(40), n_threads)) == [i * i for i in range(40)]
    assert sorted(fn.started) == list(range(40))
    assert fn.most <= n_threads
    if n_threads > 1:
        assert fn.most > 1  # it does compute several at once
    assert not feature_threads_alive()


def test_an_error_comes_at_its_items_turn_after_the_results_before_it():
    fn = Tracker(fail_on=5)
    results = []
    with pytest.raises(ValueError, match='item 5'):
        for value in map_in_order(fn, range(100), 3):
            results.append(value)
    assert results == [i * i for i in range(5)]
    assert max(fn.started) < 5 + 3  # nothing started beyond the items in progress
    assert not feature_threads_alive()


def test_stopping_early_starts_nothing_more_and_leaves_no_thread():
    fn = Tracker()
    results = map_in_order(fn, range(100), 3)
    taken = [next(results), next(results)]
    results.close()
    assert taken == [0, 1]
    assert len(fn.started) <= 2 + 3
    assert not feature_threads_alive()


def test_stopping_ends_running_items_at_their_next_check_instead_of_waiting_for_them():
    """A Ctrl-C while long recordings are computed: the running ones stop at their next
    check (the network's chunks, the HCQT's filter banks), not when they are done."""
    from ctc_chroma_lib.threads import Cancelled, check_cancelled
    ended = []

    def long_computation(item):
        if item == 0:
            return item
        try:
            for _ in range(1000):  # 10 s unless stopped
                time.sleep(0.01)
                check_cancelled()
        except Cancelled:
            ended.append(item)
            raise
        return item

    results = map_in_order(long_computation, range(10), 3)
    assert next(results) == 0
    time.sleep(0.05)  # items 1-3 are running
    started = time.perf_counter()
    results.close()
    assert time.perf_counter() - started < 2.0
    assert sorted(ended) == [1, 2, 3]
    assert not feature_threads_alive()
    check_cancelled()  # outside a map: nothing happens


def test_learned_chroma_stops_between_chunks_when_cancelled(monkeypatch):
    """The checks are where the time goes: in the HCQT's filter banks and the network's
    chunks of a real computation."""
    from ctc_chroma_lib.chroma import learned_chroma
    from ctc_chroma_lib.threads import Cancelled
    stop = threading.Event()
    stop.set()
    y = np.zeros(22050 * 3, dtype=np.float32)
    monkeypatch.setattr(threads._local, 'stop', stop, raising=False)
    with pytest.raises(Cancelled):
        learned_chroma(y)
    from ctc_chroma_lib.features import hcqt
    from ctc_chroma_lib.model import load_model, predict_probs
    with pytest.raises(Cancelled):
        hcqt(y)
    monkeypatch.setattr(threads._local, 'stop', None)
    features, _ = hcqt(y)
    monkeypatch.setattr(threads._local, 'stop', stop)
    with pytest.raises(Cancelled):
        predict_probs(load_model('teaching'), features)


def test_a_slow_consumer_holds_at_most_threads_results():
    fn = Tracker()
    results = map_in_order(fn, range(50), 2)
    next(results)
    time.sleep(0.05)  # the threads could run far ahead if nothing bounded them
    assert len(fn.started) <= 1 + 2
    assert list(results) == [i * i for i in range(1, 50)]


def test_the_default_is_one_thread_per_core_and_one_more_at_most_four(monkeypatch):
    for cores, expected in ((1, 2), (2, 3), (3, 4), (64, threads.MAX_FEATURE_THREADS)):
        monkeypatch.setattr(threads.os, 'cpu_count', lambda: cores)
        assert threads.feature_threads() == expected


def blas_threads():
    from threadpoolctl import threadpool_info
    return {p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'}


def test_blas_is_on_one_thread_in_every_thread_and_restored_after():
    """The limit is set by the calling thread: OpenBLAS can ignore one that a thread asks for
    after another thread set the last one (as the previous limit's restoring does)."""
    from threadpoolctl import threadpool_limits
    if not blas_threads():
        pytest.skip('no BLAS library found by threadpoolctl')
    with threadpool_limits(limits=2, user_api='blas'):
        assert blas_threads() == {2}
        for _ in range(2):  # the second run starts after the first one's restoring
            seen = list(map_in_order(lambda item: blas_threads(), range(12), 3))
            assert seen == [{1}] * 12
            assert blas_threads() == {2}
        results = map_in_order(lambda item: blas_threads(), range(12), 3)
        next(results)
        results.close()  # stopped early: restored too
        assert blas_threads() == {2}


def test_overlapping_blas_limits_end_with_the_last_one():
    """``threadpool_limits`` alone would let the first block to end lift the limit under the
    others."""
    from threadpoolctl import threadpool_limits
    if not blas_threads():
        pytest.skip('no BLAS library found by threadpoolctl')
    with threadpool_limits(limits=2, user_api='blas'):
        outer = one_blas_thread()
        outer.__enter__()
        inner = one_blas_thread()
        inner.__enter__()
        outer.__exit__(None, None, None)  # the first one in leaves first
        assert blas_threads() == {1}
        inner.__exit__(None, None, None)
        assert blas_threads() == {2}


def test_learned_chroma_on_threads_is_bit_identical_to_one_at_a_time(monkeypatch):
    """The network runs on the same TensorFlow threads however many recordings share them,
    and the HCQT on one BLAS thread: the same bits, in the same order."""
    from ctc_chroma_lib.chroma import compute_chroma
    from ctc_chroma_lib.dataset import load_dataset
    paths = [item.audio_path for item in load_dataset()[:8]]

    def chroma(path):
        return compute_chroma(path, 'ctc', cache=False)[0]

    alone = [chroma(path) for path in paths]
    together = list(map_in_order(chroma, paths, 3))
    assert len(together) == len(alone)
    for a, b in zip(alone, together):
        assert a.dtype == b.dtype == np.float32 and a.tobytes() == b.tobytes()


def test_an_index_built_on_threads_equals_one_built_a_recording_at_a_time(tmp_path, monkeypatch):
    from ctc_chroma_lib.dataset import load_dataset
    from ctc_chroma_lib.index import build_index, load_index
    audio = tmp_path / 'audio'
    audio.mkdir()
    for item in load_dataset()[:6]:
        shutil.copy(item.audio_path, audio)
    build_index(audio, tmp_path / 'threads', 'ctc', progress=False)
    monkeypatch.setattr(threads, 'feature_threads', lambda: 1)
    build_index(audio, tmp_path / 'one', 'ctc', progress=False)
    with_threads, one = load_index(tmp_path / 'threads'), load_index(tmp_path / 'one')
    assert [rel for rel, _ in with_threads[1]] == [rel for rel, _ in one[1]]
    assert len(one[1]) == 6
    for (_, a), (_, b) in zip(with_threads[1], one[1]):
        assert a.tobytes() == b.tobytes()


def test_an_interrupted_index_on_threads_keeps_exactly_the_recordings_before_it(
        tmp_path, monkeypatch):
    """An interrupt (or error) while a few recordings are computed at once: the index keeps
    the ones before it in order, and nothing computed after it is stored."""
    from ctc_chroma_lib import chroma
    from ctc_chroma_lib.dataset import load_dataset
    from ctc_chroma_lib.index import build_index, load_index, read_manifest
    audio = tmp_path / 'audio'
    audio.mkdir()
    for item in load_dataset()[:6]:
        shutil.copy(item.audio_path, audio)
    names = sorted(path.name for path in audio.iterdir())
    compute = chroma.compute_chroma

    def interrupted_at_the_third(path, kind, **kwargs):
        if path.name == names[2]:
            raise KeyboardInterrupt
        return compute(path, kind, **kwargs)
    monkeypatch.setattr(chroma, 'compute_chroma', interrupted_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        build_index(audio, tmp_path / 'index', 'cqt', progress=False)
    assert sorted(read_manifest(tmp_path / 'index')['files']) == names[:2]
    assert len(load_index(tmp_path / 'index')[1]) == 2
    assert not feature_threads_alive()

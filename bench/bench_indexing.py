"""Indexing throughput: ``ctc-chroma index`` one recording at a time, on threads, and with
two local worker processes.

The first ``--items`` recordings of the teaching set (all folds) are indexed from audio (kind
``ctc``: decoding, HCQT, network, blank removal; no caches) into a fresh index: in this
process one recording at a time, in this process with a few recordings at once on threads
(the default of ``--workers 1``, :mod:`ctc_chroma_lib.threads`), and with two worker
processes (``--workers 2``), ``--repeats`` times each; medians of the wall times. The
threads must give the same bits as one recording at a time; the worker processes the same
recordings and the same chroma up to float32 rounding (a worker runs TensorFlow and BLAS on
its share of the cores, which can change the order of sums).

Starting the workers (spawned processes that import TensorFlow and load the model) costs
a few seconds, which a small folder does not amortize; ``--copies N`` indexes every recording
N times (under other names) to see the rate of a larger folder.

    .venv/bin/python bench/bench_indexing.py [--items 499] [--copies 1] [--repeats 1]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--items', type=int, default=499)
    parser.add_argument('--copies', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=1)
    args = parser.parse_args()
    import numpy as np

    from ctc_chroma_lib.audio import audio_duration
    from ctc_chroma_lib.dataset import load_dataset
    from ctc_chroma_lib.index import build_index, read_manifest
    items = load_dataset()[:args.items]
    work = Path(tempfile.mkdtemp(prefix='bench_indexing_'))
    audio = work / 'audio'
    audio.mkdir()
    for it in items:
        name = Path(it.audio_path)
        for copy in range(args.copies):
            suffix = f'_{copy}' if copy else ''
            shutil.copy(name, audio / f'{name.stem}{suffix}{name.suffix}')
    seconds = sum(audio_duration(p) for p in audio.iterdir())
    print(f'{len(items) * args.copies} recordings, {seconds / 60:.1f} min of audio, {os.cpu_count()} CPU cores, '
          f'median of {args.repeats}', flush=True)
    from ctc_chroma_lib import threads
    from ctc_chroma_lib.chroma import compute_chroma
    # warm up (model, compiled functions) beforehand: every configuration in this process reuses them
    compute_chroma(items[0].audio_path, 'ctc', cache=False)
    default_threads = threads.feature_threads
    configurations = (('one at a time', 1, 1), (f'threads ({default_threads()})', None, 1),
                      ('--workers 2', None, 2))
    times, chroma = {}, {}
    for name, n_threads, workers in configurations:
        threads.feature_threads = default_threads if n_threads is None else lambda: n_threads
        runs = []
        for _ in range(args.repeats):
            index = work / 'index'
            shutil.rmtree(index, ignore_errors=True)
            started = time.perf_counter()
            build_index(audio, index, model='ctc', progress=False, workers=workers)
            runs.append(time.perf_counter() - started)
        times[name] = float(np.median(runs))
        chroma[name] = {rel: np.load(index / 'features' / e['npz'])['chroma']
                        for rel, e in read_manifest(index)['files'].items()}
        print(f'{name:<15} {times[name]:6.1f} s  ({seconds / times[name]:5.1f}x real time, '
              f'{times["one at a time"] / times[name]:.2f}x one at a time)', flush=True)
    threads.feature_threads = default_threads
    one = chroma['one at a time']
    for name, _, _ in configurations[1:]:
        same = chroma[name].keys() == one.keys()
        identical = same and all(np.array_equal(a, chroma[name][rel]) for rel, a in one.items())
        largest = max(float(np.abs(a - chroma[name][rel]).max()) for rel, a in one.items()) \
            if same else float('nan')
        print(f'{name}: same recordings: {same}; bit-identical chroma: {identical}; largest '
              f'difference: {largest:.1e}')
    names = [name for name, _, _ in configurations]
    print(f'speed-up of 2 workers over the threads: {times[names[1]] / times[names[2]]:.2f}x')
    print(json.dumps({'items': len(items), 'copies': args.copies, 'audio_s': seconds,
                      'seconds': times}))
    shutil.rmtree(work)


if __name__ == '__main__':
    main()

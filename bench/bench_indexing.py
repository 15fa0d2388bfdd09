"""Indexing throughput: ``ctc-chroma index`` with one and with two local worker processes.

The first ``--items`` recordings of the teaching set (all folds) are indexed from audio (kind
``ctc``: decoding, HCQT, network, blank removal; no caches) into a fresh index, once in
this process (``--workers 1``) and once with two worker processes (``--workers 2``),
``--repeats`` times each; medians of the wall times. The indexes must hold the same
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
    times, manifests = {}, {}
    for workers in (1, 2):
        runs = []
        for _ in range(args.repeats):
            index = work / f'index{workers}'
            shutil.rmtree(index, ignore_errors=True)
            started = time.perf_counter()
            build_index(audio, index, model='ctc', progress=False, workers=workers)
            runs.append(time.perf_counter() - started)
        times[workers] = float(np.median(runs))
        manifest = read_manifest(index)
        manifests[workers] = {rel: np.load(index / 'features' / e['npz'])['chroma']
                              for rel, e in manifest['files'].items()}
        print(f'--workers {workers}: {times[workers]:6.1f} s  ({seconds / times[workers]:5.1f}x '
              f'real time)', flush=True)
    same = manifests[1].keys() == manifests[2].keys()
    identical = same and all(np.array_equal(a, manifests[2][rel]) for rel, a in manifests[1].items())
    largest = max((float(np.abs(a - manifests[2][rel]).max()) for rel, a in manifests[1].items()
                   if a.shape == manifests[2][rel].shape), default=float('nan')) if same else None
    print(f'speed-up of 2 workers: {times[1] / times[2]:.2f}x; same recordings: {same}; '
          f'bit-identical chroma: {identical}; largest difference: {largest:.1e}')
    print(json.dumps({'items': len(items), 'copies': args.copies, 'audio_s': seconds, 'seconds': times}))
    shutil.rmtree(work)


if __name__ == '__main__':
    main()

"""Benchmark: fast ``features.hcqt`` against ``features.hcqt_reference`` on one minute of audio.

Run: ``.venv/bin/python bench/bench_hcqt.py [--repeats 5]``

The minute is built by repeating the reference recordings in ``../shared/reference_audio``
(real piano and orchestra audio); without them a synthetic minute (chords and noise) is
used and the output says so. Both implementations run on the same signal in the same
process, after one warm-up call each (numba compilation, filter banks); the table shows
the median of the repeats.
"""
import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from ctc_chroma_lib.constants import HCQT
from ctc_chroma_lib.features import hcqt, hcqt_reference

REFERENCE_DIR = Path(__file__).resolve().parents[1].parent / 'shared' / 'reference_audio'
RECORDINGS = ('Beethoven_Op002-2-01_Pitman.wav', 'Beethoven_Op067-01_DavidHighSchool.wav')
SECONDS = 60


def one_minute():
    """Return (signal, description) for one minute of audio at HCQT.sr."""
    paths = [REFERENCE_DIR / name for name in RECORDINGS]
    n_samples = SECONDS * HCQT.sr
    if all(path.exists() for path in paths):
        pieces = [sf.read(path, dtype='float32')[0] for path in paths]
        cycle = np.concatenate(pieces)
        y = np.tile(cycle, n_samples // len(cycle) + 1)[:n_samples]
        return y, 'real audio (reference recordings, repeated)'
    rng = np.random.default_rng(0)
    t = np.arange(n_samples) / HCQT.sr
    roots = 110.0 * 2 ** (rng.integers(0, 24, size=SECONDS) / 12)
    root = np.repeat(roots, HCQT.sr)[:n_samples]
    y = sum(np.sin(2 * np.pi * root * ratio * t) for ratio in (1.0, 1.26, 1.5, 2.0)) / 5
    y += 0.01 * rng.standard_normal(n_samples)
    return y.astype(np.float32), 'SYNTHETIC audio (reference recordings absent)'


def median_time(function, y, repeats):
    """Median wall time of ``function(y)`` over ``repeats`` calls, and the last result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(y)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args()

    y, description = one_minute()
    print(f'signal: {len(y) / HCQT.sr:.0f} s of {description}, {args.repeats} repeats (median)')
    hcqt(y[:HCQT.sr])            # warm-up: numba compilation, filter banks
    hcqt_reference(y[:HCQT.sr])  # warm-up: librosa's lazy imports

    reference_time, (reference, _) = median_time(hcqt_reference, y, args.repeats)
    fast_time, (fast, _) = median_time(hcqt, y, args.repeats)
    diff = np.abs(fast - reference)

    print(f'{"implementation":<16}{"time [s]":>10}')
    print(f'{"hcqt_reference":<16}{reference_time:>10.3f}')
    print(f'{"hcqt":<16}{fast_time:>10.3f}')
    print(f'speedup: {reference_time / fast_time:.2f}x')
    print(f'shape: {fast.shape} (reference {reference.shape})')
    print(f'|diff|: mean {diff.mean():.2e}, p99 {np.percentile(diff, 99):.2e}, '
          f'max {diff.max():.2e}')


if __name__ == '__main__':
    main()

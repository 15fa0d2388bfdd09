"""Real-time factor of audio -> learned chroma on one minute of audio.

Prints a table: HCQT time, model time (normalization, forward pass, postprocessing),
total, real-time factor (wall clock), and the CPU seconds of both stages; medians of
``--repeats`` runs. On a shared machine the wall clock depends on the others' load,
which the output states; the CPU seconds do much less. The reference row is the
authors' original recipe in the same run (their features.py HCQT: six ``librosa.cqt``
calls and median binning; one unchunked ``model.predict``).

Audio: the reference excerpts from ``../shared/reference_audio`` concatenated and
repeated to 60 s; without them, a synthetic 60 s signal (harmonic tones and noise),
which the output says.

Threads: TensorFlow's default (intra-op threads = cores) is kept in the library; runs
with ``--threads 1`` used the same CPU seconds but more wall time, ``--threads 2`` was no
faster than the default.

Usage: .venv/bin/python bench/bench_inference.py [--repeats 3] [--threads N] [--no-original]
"""
import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO.parent / 'shared' / 'reference_audio'
DURATION = 60.0


def one_minute_of_audio(sr):
    """Reference excerpts repeated to 60 s, else a synthetic signal; returns (y, description)."""
    n = int(DURATION * sr)
    files = sorted(REFERENCE_DIR.glob('*.wav')) if REFERENCE_DIR.is_dir() else []
    if files:
        from ctc_chroma_lib.audio import load_audio
        excerpt = np.concatenate([load_audio(f, sr=sr) for f in files])
        return np.resize(excerpt, n).astype(np.float32), f'reference audio ({len(files)} excerpts, repeated)'
    rng = np.random.default_rng(0)
    t = np.arange(n) / sr
    pitches = rng.integers(40, 80, size=int(DURATION * 4))
    f0 = 440.0 * 2 ** ((pitches[(t * 4).astype(int)] - 69) / 12)
    y = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / sr) / k for k in range(1, 6))
    y = 0.3 * y / np.max(np.abs(y)) + 0.01 * rng.standard_normal(n)
    return y.astype(np.float32), 'SYNTHETIC audio (reference audio absent)'


def median_time(fn, repeats):
    """Median wall-clock and process CPU seconds of ``fn()`` after one warm-up call."""
    fn()  # warm-up: graph tracing, filter banks, numba compilation
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return float(np.median(wall)), float(np.median(cpu))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=None,
                        help='TensorFlow intra-op threads (default: TensorFlow decides, = cores)')
    parser.add_argument('--no-original', action='store_true', help="skip the authors' recipe row")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    import tensorflow as tf
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    from ctc_chroma_lib.chroma import postprocess
    from ctc_chroma_lib.constants import HCQT
    from ctc_chroma_lib.features import hcqt
    from ctc_chroma_lib.model import build_model, predict_probs, prepare_input
    from ctc_chroma_lib.published import PUBLISHED_MODEL_IDS, load_published

    load_before = os.getloadavg()[0]
    y, what = one_minute_of_audio(HCQT.sr)
    model = load_published('v2_ctc_train123valid4') if PUBLISHED_MODEL_IDS else build_model()
    features, _ = hcqt(y, sr=HCQT.sr)

    rows = []
    t_hcqt = median_time(lambda: hcqt(y, sr=HCQT.sr), args.repeats)
    t_model = median_time(lambda: postprocess(predict_probs(model, features)), args.repeats)
    rows.append(('this project', t_hcqt, t_model))

    if not args.no_original and PUBLISHED_MODEL_IDS:
        import soundfile
        from ctc_chroma_lib.published import published_models_dir
        spec = importlib.util.spec_from_file_location(
            'authors_features', published_models_dir().parent / 'features.py')
        authors = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(authors)
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / 'minute.wav'
            soundfile.write(wav, y, HCQT.sr)

            def authors_hcqt():
                # their compute_hcqt_median without the frequency grid (librosa 0.11 API change)
                h = authors.compute_hcqt(str(wav))
                times = authors.get_time_grid(h.shape[-1])
                grid = np.arange(times[0], times[-1] + np.finfo(float).eps, 1.0 / HCQT.feature_rate)
                return authors.median_bin_salience(h, times, grid, axis=-1)

            t_orig_hcqt = median_time(authors_hcqt, args.repeats)
        x = prepare_input(features)[None]
        t_orig_model = median_time(lambda: model.predict(x, verbose=0), args.repeats)
        rows.append(("authors' recipe", t_orig_hcqt, t_orig_model))

    threads = args.threads or f'default ({tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()})'
    print(f'audio: {DURATION:.0f} s of {what}; TF intra-op threads: {threads}; '
          f'cores: {len(os.sched_getaffinity(0))}; median of {args.repeats}')
    print(f'load average before the run: {load_before:.1f} (others\' processes slow the wall clock; '
          'CPU s = seconds of CPU this process used, all threads)')
    print(f'{"pipeline":<16} {"HCQT s":>8} {"model s":>8} {"total s":>8} {"x real time":>12} '
          f'{"HCQT CPU s":>11} {"model CPU s":>12} {"x real time per CPU s":>22}')
    for name, (h_wall, h_cpu), (m_wall, m_cpu) in rows:
        total = h_wall + m_wall
        print(f'{name:<16} {h_wall:8.3f} {m_wall:8.3f} {total:8.3f} {DURATION / total:12.1f} '
              f'{h_cpu:11.3f} {m_cpu:12.3f} {DURATION / (h_cpu + m_cpu):22.1f}')
    if len(rows) == 2:
        ours, theirs = (r[1][0] + r[2][0] for r in rows)
        ours_cpu, theirs_cpu = (r[1][1] + r[2][1] for r in rows)
        print(f'speed-up over the authors\' recipe: {theirs / ours:.1f}x wall clock, '
              f'{theirs_cpu / ours_cpu:.1f}x CPU seconds')


if __name__ == '__main__':
    main()

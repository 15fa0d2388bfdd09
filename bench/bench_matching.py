"""Speed of the subsequence-DTW matching function: ctc_chroma_lib vs libfmp vs librosa.

Run: ``.venv/bin/python bench/bench_matching.py [--n 150] [--m 200000] [--m-librosa 20000]``

Two queries: a one-hot theme query (as built from a symbolic theme; its cost rows are
database rows) and a dense random one (12-term dot product per cell).

All implementations get the same random unit-norm chroma query (12 x N) and database
(12 x M); their matching functions are checked to agree (max abs difference printed) before
the timings (median of --repeats runs, first call excluded: numba compilation) are compared
in nanoseconds per cell of the N x M cost matrix. librosa builds full N x M matrices in
Python-level NumPy/numba code, so it gets a shorter database (ns/cell stays comparable).
The last rows time document ranking with one and with all CPU cores.
"""
import argparse
import os
import statistics
import time

import numpy as np


def unit_chroma(rng, n):
    A = rng.random((12, n)).astype(np.float32)
    return A / np.linalg.norm(A, axis=0)


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def librosa_delta(X, Y, stepsize):
    import librosa
    steps = np.array([[2, 1], [1, 2], [1, 1]]) if stepsize == 2 else \
        np.array([[1, 0], [0, 1], [1, 1]])
    C = 1 - X.T.astype(np.float64) @ Y.astype(np.float64)
    D = librosa.sequence.dtw(C=C, subseq=True, step_sizes_sigma=steps, backtrack=False)
    return D[-1, :] / X.shape[1]


def max_diff(a, b):
    finite = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return float('inf')
    return float(np.max(np.abs(a[finite] - b[finite]))) if finite.any() else 0.0


def main():
    import libfmp.c7
    from ctc_chroma_lib.retrieval import compute_matching_function, rank_documents

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--n', type=int, default=150, help='query frames')
    parser.add_argument('--m', type=int, default=200000, help='database frames')
    parser.add_argument('--m-librosa', type=int, default=20000, help='database frames, librosa')
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    X, Y = unit_chroma(rng, args.n), unit_chroma(rng, args.m)
    # a theme query: one-hot frames (what ctc_chroma_lib.query builds)
    X_theme = np.zeros_like(X)
    X_theme[rng.integers(0, 12, args.n // 5).repeat(5), np.arange(args.n // 5 * 5)] = 1
    Ys = Y[:, :args.m_librosa]
    cells, cells_small = args.n * args.m, args.n * args.m_librosa
    print(f'query N = {args.n}, database M = {args.m} (librosa: {args.m_librosa}), '
          f'median of {args.repeats}, {os.cpu_count()} CPU cores')
    print(f'{"implementation":<42} {"steps":>5} {"time/s":>8} {"ns/cell":>8} {"speedup":>8} '
          f'{"max |diff|":>11}')
    for stepsize, X, label in ((2, X_theme, 'one-hot theme query'), (2, X, 'dense random query'),
                               (1, X, 'dense random query')):
        print(f'-- {label}, step sizes {"{(2,1),(1,2),(1,1)}" if stepsize == 2 else "{(1,0),(0,1),(1,1)}"}')
        compute_matching_function(X[:, :5], Y[:, :50], stepsize)  # compile / load numba cache
        libfmp.c7.compute_matching_function_dtw(X[:, :5], Y[:, :50], stepsize)
        t_ours, ours = median_time(lambda: compute_matching_function(X, Y, stepsize),
                                   args.repeats)
        t_fmp, fmp = median_time(
            lambda: libfmp.c7.compute_matching_function_dtw(X, Y, stepsize)[0], args.repeats)
        librosa_delta(X[:, :5], Ys[:, :50], stepsize)
        t_ros, ros = median_time(lambda: librosa_delta(X, Ys, stepsize), args.repeats)
        ours_small = compute_matching_function(X, Ys, stepsize)
        ns_ours, ns_fmp, ns_ros = (t_ours / cells * 1e9, t_fmp / cells * 1e9,
                                   t_ros / cells_small * 1e9)
        rows = [('ctc_chroma_lib.compute_matching_function', t_ours, ns_ours, 1.0, 0.0),
                ('libfmp compute_matching_function_dtw', t_fmp, ns_fmp, ns_fmp / ns_ours,
                 max_diff(ours, fmp)),
                (f'librosa.sequence.dtw (M={args.m_librosa})', t_ros, ns_ros, ns_ros / ns_ours,
                 max_diff(ours_small, ros))]
        for name, t, ns, speedup, diff in rows:
            print(f'{name:<42.42} {stepsize:>5} {t:8.3f} {ns:8.2f} {speedup:7.1f}x {diff:11.2e}')
        del fmp

    X = X_theme
    docs = [(f'rec{i}', unit_chroma(rng, 20000)) for i in range(16)]
    rank_documents(X, docs[:2], n_jobs=1)
    t1, r1 = median_time(lambda: rank_documents(X, docs, n_jobs=1), args.repeats)
    tn, rn = median_time(lambda: rank_documents(X, docs, n_jobs=os.cpu_count()), args.repeats)
    assert r1 == rn
    print(f'rank_documents, 16 recordings x 20000 frames: 1 thread {t1:.3f} s, '
          f'{os.cpu_count()} threads {tn:.3f} s ({t1 / tn:.2f}x)')

    time_full_evaluation()


def time_full_evaluation():
    """Wall time of the default ``ctc-chroma evaluate`` work: fold 5, every available kind,
    once with an empty feature cache (audio -> features -> matching) and once cached."""
    import tempfile
    from ctc_chroma_lib.dataset import load_dataset
    from ctc_chroma_lib.evaluation import TEST_FOLDS, available_kinds, evaluate
    from ctc_chroma_lib.evaluation import DEFAULT_KINDS, DEFAULT_PUBLISHED
    try:
        items = load_dataset(folds=TEST_FOLDS)
    except Exception as e:  # noqa: BLE001 - the benchmark reports instead of failing
        print(f'full evaluation skipped: {e}')
        return
    kinds, _ = available_kinds(list(DEFAULT_KINDS) + [DEFAULT_PUBLISHED])
    minutes = sum(float(it.metadata.get('Duration', 0)) for it in items) / 60
    with tempfile.TemporaryDirectory() as cache:
        previous = os.environ.get('CTC_CHROMA_CACHE')
        os.environ['CTC_CHROMA_CACHE'] = cache
        try:
            start = time.perf_counter()
            evaluate(items, kinds, progress=False)
            cold = time.perf_counter() - start
            start = time.perf_counter()
            evaluate(items, kinds, progress=False)
            warm = time.perf_counter() - start
        finally:
            if previous is None:
                del os.environ['CTC_CHROMA_CACHE']
            else:
                os.environ['CTC_CHROMA_CACHE'] = previous
    print(f'full evaluation, fold {",".join(map(str, TEST_FOLDS))} ({len(items)} queries, '
          f'{minutes:.1f} min of audio), kinds {", ".join(kinds)}: '
          f'{cold:.1f} s with an empty feature cache, {warm:.1f} s cached')


if __name__ == '__main__':
    main()

"""Subsequence DTW matching of a query chromagram against audio chromagrams, and ranking.

Notebook: 06_Retrieval.ipynb

The query ``X`` (12 x N) and a database recording ``Y`` (12 x M) have unit-norm columns, so
the cosine cost is ``C = 1 - X^T Y`` (FMP, C7S2). Subsequence DTW accumulates ``C`` with
the step sizes {(2, 1), (1, 2), (1, 1)} (``stepsize=2``, the paper's setting, tempo ratios
between 1/2 and 2) or {(1, 0), (0, 1), (1, 1)} (``stepsize=1``), free start and end in the
database; the matching function is the last row of the accumulated cost divided by N,
``Delta(m)``, low where a match ends at frame m. :func:`compute_matching_function` returns
the values of ``libfmp.c7.compute_matching_function_dtw`` (same initialization, unweighted
steps, ``inf`` where no path ends; equal up to float rounding, below 1e-6) but never stores
the N x M matrices: it sweeps blocks of columns row by row and computes the cost on the fly
(a one-hot theme frame just reads one database row) in the same vectorized pass as the
recurrence, and splits long databases over the CPU cores. On two cores a theme query takes
0.16-0.18 ns per cell, libfmp 6.6-7 (``bench/bench_matching.py``).

A recording's score is the minimum of its matching function; recordings are ranked by
ascending score (:func:`rank_documents`). Queries may be tried in 12 cyclic shifts
(transposition invariance) and at several tempo factors (multi-tempo); the best one wins.
"""
import os
from dataclasses import dataclass, asdict

import numpy as np
from numba import njit

from .constants import FEATURE_RATE
from .errors import CTCChromaError
from .threads import parallel_map

STEP_SIZES = {1: ((1, 0), (0, 1), (1, 1)), 2: ((2, 1), (1, 2), (1, 1))}
"""Step sizes (query frames, database frames) for the two ``stepsize`` settings."""

_BLOCK = 512
"""Database columns per block: the block of ``Y`` (12 x 512 float32) and three rows of the
accumulated cost stay in the L1/L2 cache while all N query rows are swept over it."""


def _check_pair(X, Y):
    X = np.asarray(X)
    Y = np.asarray(Y)
    if X.ndim != 2 or Y.ndim != 2:
        raise CTCChromaError(f'query and database must be 2-D (features x frames), got shapes '
                             f'{X.shape} and {Y.shape}')
    if X.shape[0] != Y.shape[0]:
        raise CTCChromaError(f'query has {X.shape[0]} features per frame but the database has '
                             f'{Y.shape[0]}')
    if X.shape[1] == 0 or Y.shape[1] == 0:
        raise CTCChromaError(f'empty query or database (shapes {X.shape}, {Y.shape})')
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(Y))):
        raise CTCChromaError('query or database contains NaN or infinite values')
    # float32 cost (rounding ~1e-7 per cell), float64 accumulation: Delta agrees with
    # libfmp's float64 result to ~1e-7, well below 1e-5, at twice the SIMD width
    return (np.ascontiguousarray(X, dtype=np.float32),
            np.ascontiguousarray(Y, dtype=np.float32))


def _check_stepsize(stepsize):
    if stepsize not in STEP_SIZES:
        raise CTCChromaError(f'stepsize must be 1 or 2, got {stepsize!r}')


@njit(cache=True, nogil=True)
def _matching_21(X, Y, onehot, m_begin, m_end, out):
    """Matching function, step sizes {(2,1),(1,2),(1,1)}, for database frames [m_begin, m_end).

    A path ending at frame m starts at frame m - 2(N - 1) or later, so the sweep starts there
    and the values are exactly those of a sweep over the whole database (this is what lets
    separate threads compute separate column ranges). Row n only depends on rows n-1 and
    n-2, so each row of a column block is one vectorizable pass computing cost and recurrence
    together; the two last columns of every row are carried over to the next block. Costs of
    one-hot query frames are read off one database row; the other frames' costs come from one
    matrix product per block.
    """
    K = X.shape[0]
    N = X.shape[1]
    B = _BLOCK
    # query frames that need a dot product, as rows of a (D x K) matrix
    dense_row = np.full(N, -1, dtype=np.int64)
    n_dense = 0
    for n in range(N):
        if onehot[n] < 0:
            dense_row[n] = n_dense
            n_dense += 1
    X_dense = np.empty((max(n_dense, 1), K), dtype=np.float32)
    for n in range(N):
        if dense_row[n] >= 0:
            for k in range(K):
                X_dense[dense_row[n], k] = X[k, n]
    # rows of width B + 2: slots 0, 1 hold the two columns left of the block
    row0 = np.empty(B + 2)
    row1 = np.empty(B + 2)
    row2 = np.empty(B + 2)
    border = np.full((N, 2), np.inf)
    products = np.empty((1, 1), dtype=np.float32)
    for m0 in range(max(0, m_begin - 2 * (N - 1)), m_end, B):
        w = min(B, m_end - m0)
        if n_dense > 0:
            products = np.dot(X_dense, np.ascontiguousarray(Y[:, m0:m0 + w]))  # (D x w) BLAS
        prev2 = row0  # row n - 2
        prev1 = row1  # row n - 1
        cur = row2
        for n in range(N):
            # cost[j] = 1 - x * source[j]: a one-hot query frame's dot product is one product
            # (the same float32 value the full sum gives), so its cost row is a database row
            c_n = onehot[n]
            if c_n >= 0:
                x = X[c_n, n]
                source = Y[c_n, m0:m0 + w]
            else:
                x = np.float32(1.0)
                source = products[dense_row[n], :w]
            cur[0] = border[n, 0]
            cur[1] = border[n, 1]
            # one fused, vectorized pass per row: cost and recurrence together
            if n == 0:
                # free start: any database frame may begin the match
                for j in range(w):
                    cur[j + 2] = np.float32(1.0) - x * source[j]
            elif n == 1:
                for j in range(w):
                    cur[j + 2] = (np.float32(1.0) - x * source[j]) + min(prev1[j + 1], prev1[j])
            else:
                for j in range(w):
                    cur[j + 2] = ((np.float32(1.0) - x * source[j])
                                  + min(min(prev1[j + 1], prev2[j + 1]), prev1[j]))
            border[n, 0] = cur[w]
            border[n, 1] = cur[w + 1]
            prev2, prev1, cur = prev1, cur, prev2
        for j in range(max(0, m_begin - m0), w):
            out[m0 + j - m_begin] = prev1[j + 2] / N


@njit(cache=True, nogil=True, fastmath=True)
def _cost_column(X, Y, m, out):
    """out[n] = 1 - <X[:, n], Y[:, m]>, float32 (vectorized over n)."""
    for n in range(X.shape[1]):
        out[n] = np.float32(1.0)
    for k in range(X.shape[0]):
        y = Y[k, m]
        for n in range(X.shape[1]):
            out[n] -= X[k, n] * y


@njit(cache=True, nogil=True)
def _matching_111(X, Y, out):
    """Last row of the step-size-{(1,0),(0,1),(1,1)} subsequence-DTW accumulated cost.

    Column-wise sweep keeping one column; as in libfmp, the first column is the cumulative
    cost (vertical steps only) and the first row is the cost itself.
    """
    N = X.shape[1]
    M = Y.shape[1]
    col = np.empty(N)
    cost = np.empty(N, dtype=np.float32)
    for m in range(M):
        _cost_column(X, Y, m, cost)
        if m == 0:
            acc = 0.0
            for n in range(N):
                acc += cost[n]
                col[n] = acc
        else:
            diag = col[0]
            col[0] = cost[0]
            for n in range(1, N):
                left = col[n]
                best = diag
                if left < best:
                    best = left
                if col[n - 1] < best:
                    best = col[n - 1]
                col[n] = cost[n] + best
                diag = left
        out[m] = col[N - 1] / N


def _single_entry_rows(X):
    """Per query frame: the feature index if it is the frame's only non-zero entry, else -1.

    Theme queries are one-hot (see :mod:`ctc_chroma_lib.query`); for them the cost of a
    frame is read off one database row instead of a 12-term dot product.
    """
    nonzero = X != 0
    return np.where(nonzero.sum(axis=0) == 1, nonzero.argmax(axis=0), -1).astype(np.int64)


def compute_matching_function(X, Y, stepsize=2, n_jobs=None):
    """Subsequence-DTW matching function of query ``X`` in database ``Y`` (cosine cost).

    Notebook: 06_Retrieval.ipynb

    Equal (to floating-point rounding) to ``libfmp.c7.compute_matching_function_dtw(X, Y,
    stepsize)[0]``, without building the N x M cost and accumulated-cost matrices.

    Args:
        X (np.ndarray): Query chromagram (K x N), unit-norm columns
        Y (np.ndarray): Database chromagram (K x M), unit-norm columns
        stepsize (int): 2 for steps {(2,1),(1,2),(1,1)}, 1 for {(1,0),(0,1),(1,1)} (Default value = 2)
        n_jobs (int): Threads for ``stepsize=2`` on long databases (column ranges overlapping
            by 2(N - 1) frames, identical results); None = all CPU cores (Default value = None)

    Returns:
        Delta (np.ndarray): Matching function (M,) float64; ``inf`` where no admissible path ends
    """
    _check_stepsize(stepsize)
    X, Y = _check_pair(X, Y)
    N, M = X.shape[1], Y.shape[1]
    out = np.empty(M)
    if stepsize == 1:
        _matching_111(X, Y, out)
        return out
    onehot = _single_entry_rows(X)
    n_jobs = n_jobs or os.cpu_count() or 1
    # threads pay off once each range is long compared to the 2(N - 1) overlap and to the
    # thread start-up cost (~0.1 ms = 1e5 cells)
    chunks = int(min(n_jobs, M // (8 * N), N * M // 500_000))
    if chunks <= 1:
        _matching_21(X, Y, onehot, 0, M, out)
        return out
    bounds = np.linspace(0, M, chunks + 1).astype(int)
    parallel_map(lambda ab: _matching_21(X, Y, onehot, ab[0], ab[1], out[ab[0]:ab[1]]),
                  zip(bounds[:-1], bounds[1:]), chunks)
    return out


@njit(cache=True, nogil=True)
def _accumulated_window(X, Y, stepsize):
    """Full accumulated cost matrix (N x W) of a (small) database window, libfmp's recursion."""
    N = X.shape[1]
    W = Y.shape[1]
    C = np.empty((W, N), dtype=np.float32)
    for m in range(W):
        _cost_column(X, Y, m, C[m])
    C = C.T
    D = np.full((N, W), np.inf)
    if stepsize == 1:
        acc = 0.0
        for n in range(N):
            acc += C[n, 0]
            D[n, 0] = acc
        for m in range(W):
            D[0, m] = C[0, m]
        for n in range(1, N):
            for m in range(1, W):
                D[n, m] = C[n, m] + min(D[n - 1, m], D[n, m - 1], D[n - 1, m - 1])
    else:
        for m in range(W):
            D[0, m] = C[0, m]
        for n in range(1, N):
            for m in range(1, W):
                best = D[n - 1, m - 1]
                if n >= 2 and D[n - 2, m - 1] < best:
                    best = D[n - 2, m - 1]
                if m >= 2 and D[n - 1, m - 2] < best:
                    best = D[n - 1, m - 2]
                D[n, m] = C[n, m] + best
    return D


@njit(cache=True, nogil=True)
def _backtrack(D, m, stepsize):
    """Warping path (L x 2, query frame, window frame) ending at (N-1, m); libfmp's tie order."""
    N = D.shape[0]
    n = N - 1
    path = [(n, m)]
    while n > 0:
        if m == 0:
            n, m = n - 1, 0
        elif stepsize == 1:
            val = min(D[n - 1, m - 1], D[n - 1, m], D[n, m - 1])
            if val == D[n - 1, m - 1]:
                n, m = n - 1, m - 1
            elif val == D[n - 1, m]:
                n = n - 1
            else:
                m = m - 1
        else:
            d11 = D[n - 1, m - 1]
            d21 = D[n - 2, m - 1] if n >= 2 else np.inf
            d12 = D[n - 1, m - 2] if m >= 2 else np.inf
            val = min(d11, d21, d12)
            if val == d11:
                n, m = n - 1, m - 1
            elif val == d21:
                n, m = n - 2, m - 1
            else:
                n, m = n - 1, m - 2
        path.append((n, m))
    P = np.empty((len(path), 2), dtype=np.int64)
    for i in range(len(path)):
        P[len(path) - 1 - i, 0] = path[i][0]
        P[len(path) - 1 - i, 1] = path[i][1]
    return P


def match_path(X, Y, end_index, stepsize=2, cost=None):
    """Optimal warping path of the match of ``X`` ending at database frame ``end_index``.

    Notebook: 06_Retrieval.ipynb

    Recomputes the accumulated cost only on a window ending at ``end_index``: 2N - 1 columns
    suffice for ``stepsize=2`` (a path advances at most two database frames per query frame);
    for ``stepsize=1`` the window is doubled until its optimum equals the global one
    (``cost``, the matching-function value Delta(end_index), computed if not given).

    Args:
        X (np.ndarray): Query chromagram (K x N)
        Y (np.ndarray): Database chromagram (K x M)
        end_index (int): Database frame where the match ends
        stepsize (int): 1 or 2 (Default value = 2)
        cost (float): Delta(end_index) if already known (Default value = None)

    Returns:
        path (np.ndarray): Warping path (L x 2) of (query frame, database frame) pairs
    """
    _check_stepsize(stepsize)
    X, Y = _check_pair(X, Y)
    N, M = X.shape[1], Y.shape[1]
    end_index = int(end_index)
    if not 0 <= end_index < M:
        raise CTCChromaError(f'end_index {end_index} outside the database (0..{M - 1})')
    if cost is None:
        cost = compute_matching_function(X, Y[:, :end_index + 1], stepsize, n_jobs=1)[-1]
    width = 2 * N - 1 if stepsize == 2 else 2 * N
    while True:
        start = max(0, end_index + 1 - width)
        D = _accumulated_window(X, Y[:, start:end_index + 1], stepsize)
        local = D[-1, -1] / N
        if start == 0 or stepsize == 2 or abs(local - cost) <= 1e-6 * max(1.0, abs(cost)):
            break
        width *= 2
    if not np.isfinite(D[-1, -1]):
        raise CTCChromaError(f'no admissible match of the query ({N} frames) ends at database '
                             f'frame {end_index}')
    P = _backtrack(D, D.shape[1] - 1, stepsize)
    P[:, 1] += start
    return P


def find_matches(X, Y, num_matches=5, stepsize=2):
    """Best non-overlapping matches of a query in one recording, by ascending cost.

    Repeatedly takes the minimum of the matching function, recovers the match's start by
    backtracking, and excludes the match span (plus N/2 frames after its end, where
    near-copies of the same match end) from further minima.

    Args:
        X (np.ndarray): Query chromagram (K x N)
        Y (np.ndarray): Database chromagram (K x M)
        num_matches (int): Maximum number of matches (Default value = 5)
        stepsize (int): Step-size setting (Default value = 2)

    Returns:
        matches (np.ndarray): (L x 3) rows (start frame, end frame, cost), L <= num_matches
    """
    delta = compute_matching_function(X, Y, stepsize)
    N = np.asarray(X).shape[1]
    found = []
    while len(found) < num_matches:
        end = int(np.argmin(delta))
        cost = float(delta[end])
        if not np.isfinite(cost):
            break
        start = int(match_path(X, Y, end, stepsize, cost=cost)[0, 1])
        found.append((start, end, cost))
        delta[start:end + N // 2 + 1] = np.inf
    return np.array(found, dtype=np.float64).reshape(-1, 3)


@dataclass(frozen=True)
class Match:
    """Best match of a query in one recording.

    Attributes:
        name (str): Recording name
        rank (int): 1 = best
        cost (float): Minimum of the matching function (``inf`` if the query cannot match)
        start_frame (int), end_frame (int): Match start/end frames (inclusive), -1 if none
        start_time (float), end_time (float): Match start/end in seconds (end of last frame)
        shift (int): Cyclic chroma shift of the query (semitones up) that matched best
        tempo_factor (float): Query duration factor that matched best
    """

    name: str
    rank: int
    cost: float
    start_frame: int
    end_frame: int
    start_time: float
    end_time: float
    shift: int = 0
    tempo_factor: float = 1.0

    def to_dict(self):
        """Plain dict of the fields (for JSON)."""
        return asdict(self)


def _as_document_list(documents):
    if isinstance(documents, dict):
        return list(documents.items())
    return [(name, Y) for name, Y in documents]


def _as_query_list(queries):
    """Normalize to a list of (tempo_factor, X)."""
    if isinstance(queries, np.ndarray):
        return [(1.0, queries)]
    out = []
    for q in queries:
        if isinstance(q, np.ndarray):
            out.append((1.0, q))
        else:
            out.append((float(q[0]), q[1]))
    if not out:
        raise CTCChromaError('no query given')
    return out


def _best_in_document(queries, Y, shifts, stepsize):
    """(cost, end_frame, shift, tempo_factor, X) of the best query variant in one document."""
    best = (np.inf, -1, 0, queries[0][0], None)
    for factor, X in queries:
        for shift in shifts:
            Xs = np.roll(X, shift, axis=0) if shift else X
            delta = compute_matching_function(Xs, Y, stepsize, n_jobs=1)
            end = int(np.argmin(delta))
            if delta[end] < best[0]:
                best = (float(delta[end]), end, shift, factor, Xs)
    return best


def _score_documents(queries, documents, stepsize, transposition_invariant, n_jobs,
                     with_paths):
    """Per recording, in input order: (name, cost, start, end, shift, tempo_factor)."""
    _check_stepsize(stepsize)
    queries = _as_query_list(queries)
    docs = _as_document_list(documents)
    if not docs:
        raise CTCChromaError('the database has no recordings')
    shifts = range(12) if transposition_invariant else (0,)

    def one(doc):
        name, Y = doc
        cost, end, shift, factor, X = _best_in_document(queries, Y, shifts, stepsize)
        if not np.isfinite(cost):
            return name, cost, -1, -1, shift, factor
        start = end
        if with_paths:
            start = int(match_path(X, Y, end, stepsize, cost=cost)[0, 1])
        return name, cost, start, end, shift, factor

    return parallel_map(one, docs, n_jobs or os.cpu_count() or 1)


def rank_documents(queries, documents, stepsize=2, transposition_invariant=False,
                   feature_rate=FEATURE_RATE, n_jobs=None, with_paths=True):
    """Rank recordings by the subsequence-DTW cost of their best match with the query.

    Notebook: 06_Retrieval.ipynb

    Args:
        queries (np.ndarray or list): One query chromagram (12 x N), or a list of them, or a
            list of (tempo_factor, chromagram) pairs (multi-tempo: the best variant is kept)
        documents (dict or list): Recording name -> chromagram (12 x M), or (name, Y) pairs
        stepsize (int): Step-size setting of the subsequence DTW (Default value = 2)
        transposition_invariant (bool): Also try the 11 other cyclic shifts of the query
            (Default value = False)
        feature_rate (float): Frames per second, for the match times (Default value = 25.0)
        n_jobs (int): Threads (the matching releases the GIL); None = all CPU cores
            (Default value = None)
        with_paths (bool): Recover match start frames by backtracking; if False the start is
            reported equal to the end (Default value = True)

    Returns:
        matches (list of Match): One per recording, best first (ties keep the input order;
            recordings the query cannot match have cost ``inf``, frames -1, times NaN, last)
    """
    results = _score_documents(queries, documents, stepsize, transposition_invariant, n_jobs,
                               with_paths)
    order = sorted(range(len(results)), key=lambda i: results[i][1])
    matches = []
    for rank, i in enumerate(order, start=1):
        name, cost, start, end, shift, factor = results[i]
        found = end >= 0
        matches.append(Match(
            name=name, rank=rank, cost=cost, start_frame=start, end_frame=end,
            start_time=start / feature_rate if found else float('nan'),
            end_time=(end + 1) / feature_rate if found else float('nan'),
            shift=shift, tempo_factor=factor))
    return matches


def document_costs(queries, documents, *, stepsize=2, transposition_invariant=False, n_jobs=None):
    """Cost (minimum of the matching function) of the best query variant per recording.

    Args:
        queries: As in :func:`rank_documents`
        documents: As in :func:`rank_documents`
        stepsize (int): Step-size setting (Default value = 2)
        transposition_invariant (bool): Try all 12 cyclic shifts (Default value = False)
        n_jobs (int): Threads; None = all CPU cores (Default value = None)

    Returns:
        costs (np.ndarray): (number of recordings,) float64, in the input order
    """
    results = _score_documents(queries, documents, stepsize, transposition_invariant, n_jobs,
                               with_paths=False)
    return np.array([r[1] for r in results], dtype=np.float64)

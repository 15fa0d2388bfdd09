"""Two-stage search of an archive: a coarse subsequence DTW picks candidates, the exact one ranks.

Notebook: 06_Retrieval.ipynb

Matching a theme against every recording at 25 Hz costs N x M cells for M frames of audio:
linear in the archive. The *coarse stage* runs the same subsequence DTW (step sizes
{(2,1),(1,2),(1,1)}, cosine cost) on features averaged over :data:`COARSE_FACTOR` frames
(6.25 Hz), query and recordings alike, which costs 1 / COARSE_FACTOR² of the cells; the
recordings with the lowest coarse cost are the *candidates*. The *exact stage* matches the
query against the candidates at 25 Hz (:func:`ctc_chroma_lib.retrieval.rank_documents`), so
every reported cost, match and time is exact; only a relevant recording that the coarse
stage ranks below :data:`CANDIDATES` others can be missed. ``exact=True`` matches every
recording at 25 Hz (in chunks, without holding the archive in memory).

The coarse features of all recordings are one (frames x 12) float32 array, memory-mapped
from the index (:mod:`ctc_chroma_lib.index`), with each recording's first frame and
length; every recording is matched on its own with the fast matching function of
:mod:`ctc_chroma_lib.retrieval` (threads over ranges of recordings), so no match spans two
recordings.
"""
import os

import numpy as np

from .constants import FEATURE_RATE
from .errors import CTCChromaError
from .normalization import normalize_columns
from .retrieval import (_as_query_list, compute_matching_function,
                        document_costs, rank_documents)
from .threads import parallel_map

COARSE_FACTOR = 4
"""Frames averaged into one frame of the coarse stage (25 Hz -> 6.25 Hz)."""

CANDIDATES = 100
"""Recordings the coarse stage passes to the exact stage by default."""

EXACT_CHUNK = 256
"""Recordings converted to float32 and matched together by the exhaustive search."""


def coarse_chroma(X, factor=COARSE_FACTOR):
    """Average every ``factor`` frames of a chromagram and normalize the frames.

    Args:
        X (np.ndarray): Chromagram (12 x N), unit-norm frames
        factor (int): Frames per coarse frame (Default value = COARSE_FACTOR)

    Returns:
        Xc (np.ndarray): (12 x ceil(N / factor)) float32, unit-norm frames; the last coarse
            frame averages the remaining frames
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] == 0:
        raise CTCChromaError(f'a chromagram is features x frames, got shape {X.shape}')
    starts = np.arange(0, X.shape[1], factor)
    return normalize_columns(np.add.reduceat(X, starts, axis=1))


def coarse_costs(queries, coarse, starts, lengths, *, transposition_invariant=False,
                 factor=COARSE_FACTOR, n_jobs=None):
    """Coarse-stage cost of every recording: the best query variant's coarse matching cost.

    Args:
        queries: One query chromagram (12 x N) or (tempo_factor, chromagram) pairs, at 25 Hz
        coarse (np.ndarray): All recordings' coarse frames as rows (M x 12) float32
        starts, lengths (np.ndarray): First row and number of rows of every recording
        transposition_invariant (bool): Also try the 11 other cyclic shifts
            (Default value = False)
        factor (int): Coarse factor the features were made with (Default value = COARSE_FACTOR)
        n_jobs (int): Threads; None = all CPU cores (Default value = None)

    Returns:
        costs (np.ndarray): (number of recordings,) float64; ``inf`` where no match fits
    """
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    n_jobs = n_jobs or os.cpu_count() or 1
    shifts = range(12) if transposition_invariant else (0,)
    variants = [np.roll(coarse_chroma(X, factor), shift, axis=0)
                for _, X in _as_query_list(queries) for shift in shifts]
    # contiguous ranges of recordings of about equal frame counts, a few per thread
    cumulative = np.cumsum(lengths)
    n_chunks = max(1, min(len(starts), 4 * n_jobs))
    bounds = np.searchsorted(cumulative, np.linspace(0, cumulative[-1], n_chunks + 1)[1:-1])
    ranges = [(a, b) for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(starts)]) if b > a]
    best = np.full(len(starts), np.inf)

    def chunk(r):
        # the rows of a range of recordings, as one features x frames array
        first, last = starts[r[0]], starts[r[1] - 1] + lengths[r[1] - 1]
        Y = np.ascontiguousarray(np.asarray(coarse[first:last], dtype=np.float32).T)
        for d in range(r[0], r[1]):
            Yd = Y[:, starts[d] - first:starts[d] - first + lengths[d]]
            for Xc in variants:
                # one recording at a time: no match spans two recordings
                value = compute_matching_function(Xc, Yd, 2, n_jobs=1).min()
                if value < best[d]:
                    best[d] = value

    parallel_map(chunk, ranges, n_jobs)
    return best

class DocumentList:
    """(name, chromagram) pairs with the ``names`` / ``document(i)`` interface of a pack."""

    def __init__(self, documents):
        self.names = [name for name, _ in documents]
        self._documents = [Y for _, Y in documents]

    def document(self, i):
        """The chromagram of recording ``i``."""
        return self._documents[i]


def search(features, queries, *, top=10, candidates=CANDIDATES, exact=False,
           transposition_invariant=False, stepsize=2, feature_rate=FEATURE_RATE):
    """The ``top`` best recordings of an archive for a query, two-stage or exhaustive.

    Args:
        features: The archive: an object with ``names`` (list of str), ``document(i)``
            (12 x M float32 chromagram of recording i) and, for the two-stage search,
            ``coarse``, ``coarse_starts``, ``coarse_lengths`` (see :func:`coarse_costs`), as
            :class:`ctc_chroma_lib.index.PackedFeatures`; or a list of (name, chromagram)
            pairs, which is always searched exhaustively
        queries: As in :func:`ctc_chroma_lib.retrieval.rank_documents`
        top (int): Results to return (Default value = 10)
        candidates (int): Recordings the coarse stage passes on (Default value = CANDIDATES)
        exact (bool): Match every recording at 25 Hz (Default value = False)
        transposition_invariant (bool): Try all 12 cyclic shifts (Default value = False)
        stepsize (int): Step sizes of the subsequence DTW; the coarse stage needs 2
            (Default value = 2)
        feature_rate (float): Frames per second (Default value = 25.0)

    Returns:
        matches (list of Match): The best ``top`` (or fewer) recordings, rank 1 first
        info (dict): ``stage`` ('two-stage' or 'exact'), ``candidates`` (recordings matched
            at 25 Hz), ``recordings``

    Raises:
        CTCChromaError: No recordings, ``top`` or ``candidates`` below 1, or the two-stage
            search with ``stepsize`` 1
    """
    if top < 1 or candidates < 1:
        raise CTCChromaError(f'top and candidates must be at least 1, got {top} and {candidates}')
    if isinstance(features, list):
        features, exact = DocumentList(features), True
    n = len(features.names)
    if n == 0:
        raise CTCChromaError('the archive has no recordings')
    if not exact and stepsize != 2:
        raise CTCChromaError('the two-stage search uses step sizes 2; pass exact=True for 1')
    if exact or n <= candidates:
        costs = np.empty(n)
        for start in range(0, n, EXACT_CHUNK):
            chunk = [(features.names[i], features.document(i))
                     for i in range(start, min(n, start + EXACT_CHUNK))]
            costs[start:start + len(chunk)] = document_costs(
                queries, chunk, stepsize=stepsize, transposition_invariant=transposition_invariant)
        chosen = np.argsort(costs, kind='stable')[:top]
        stage, matched = 'exact', n
    else:
        coarse = coarse_costs(queries, features.coarse, features.coarse_starts,
                              features.coarse_lengths,
                              transposition_invariant=transposition_invariant)
        chosen = np.argsort(coarse, kind='stable')[:max(candidates, top)]
        stage, matched = 'two-stage', len(chosen)
    chosen = sorted(int(i) for i in chosen)  # input order breaks ties, as in rank_documents
    ranked = rank_documents(queries, [(features.names[i], features.document(i)) for i in chosen],
                            stepsize=stepsize, transposition_invariant=transposition_invariant,
                            feature_rate=feature_rate)
    return ranked[:top], {'stage': stage, 'candidates': matched, 'recordings': n}

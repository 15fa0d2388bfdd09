"""Cross-modal retrieval evaluation: themes as queries, recordings as database (paper, Sec. 5).

Notebook: 06_Retrieval.ipynb

Protocol: every item (theme) of an evaluated fold is a query; the database holds the audio
recordings of all items of that fold; the relevant document is the theme's own recording.
Recordings are ranked by the subsequence-DTW cost of their best match
(:func:`ctc_chroma_lib.retrieval.document_costs`). Metrics are Top-1, Top-5, Top-10 (share of
queries whose relevant recording is among the first k) and the mean reciprocal rank, per
fold and over all queries. Ties are counted against the query: the rank of the relevant
recording is 1 + the number of *other* recordings with a cost lower than or equal to its own.
"""
import math
import sys
from typing import Dict, Iterable, Sequence

import numpy as np

from .errors import CTCChromaError
from .query import DEFAULT_TEMPO_FACTORS, TEMPO_STRATEGIES, build_queries
from .retrieval import document_costs

TEST_FOLDS = (5,)
"""Folds evaluated by default. The shipped teaching models are trained on folds 1-3 and
validated (early stopping, model choice) on fold 4, so fold 5 is the only fold none of them
has seen; evaluating other folds measures partly training data."""

DEFAULT_KINDS = ('ctc', 'strong', 'linear', 'cqt', 'cens', 'basic-pitch')
"""Feature kinds evaluated by default (besides :data:`DEFAULT_PUBLISHED`), when available."""

DEFAULT_PUBLISHED = 'published:v2_ctc_train123valid4'
"""Authors' CTC model included in the default evaluation: trained on MTD folds 1-3,
validated on fold 4, i.e. its held-out test fold is 5 like :data:`TEST_FOLDS`."""

DEFAULT_TEMPO = 'score'
"""Default tempo strategy of the queries (see :mod:`ctc_chroma_lib.query`): the score tempo,
as in the paper. The step sizes {(2,1),(1,2),(1,1)} already absorb tempo ratios between 1/2
and 2, and on fold 5 of the teaching dataset trying seven tempo factors ('multi') was not
better (published CTC model: MRR 0.736 'score' vs 0.704 'multi'; CQT 0.499 vs 0.485; CENS
0.479 vs 0.507) while costing seven times the matching time; more query variants also give
wrong recordings more chances to match well."""

TOP_K = (1, 5, 10)


def retrieval_metrics(ranks: Sequence[int]) -> dict:
    """Top-k rates and mean reciprocal rank of a list of ranks (1 = relevant document first).

    Args:
        ranks (list of int): Rank of the relevant document per query (>= 1)

    Returns:
        metrics (dict): ``top1``, ``top5``, ``top10``, ``mrr`` (floats in [0, 1], NaN if
            there are no queries) and ``n_queries`` (int)
    """
    ranks = np.asarray(ranks, dtype=np.int64).reshape(-1)
    if np.any(ranks < 1):
        raise CTCChromaError(f'ranks must be >= 1, got {ranks.min()}')
    n = len(ranks)
    metrics = {}
    for k in TOP_K:
        metrics[f'top{k}'] = float(np.mean(ranks <= k)) if n else float('nan')
    metrics['mrr'] = float(np.mean(1.0 / ranks)) if n else float('nan')
    metrics['n_queries'] = int(n)
    return metrics


def rank_of_relevant(costs: Sequence[float], relevant: int) -> int:
    """Rank of the relevant document among all (ties count against it).

    Args:
        costs (np.ndarray): Cost per document (lower = better; ``inf`` = no match)
        relevant (int): Index of the relevant document

    Returns:
        rank (int): 1 + number of other documents with cost <= the relevant one's
    """
    costs = np.asarray(costs, dtype=np.float64)
    others = np.delete(costs, relevant)
    return 1 + int(np.sum(others <= costs[relevant]))


def available_kinds(kinds: Iterable[str]):
    """Split feature kinds into those that can be computed now and those that cannot.

    Args:
        kinds (list of str): Feature kinds (see :func:`ctc_chroma_lib.chroma.compute_chroma`)

    Returns:
        available (list of str): Kinds whose weights (if any) are present
        missing (dict): Kind -> reason it cannot be computed
    """
    from .chroma import resolve_kind
    available, missing = [], {}
    for kind in kinds:
        try:
            spec = resolve_kind(kind)
            if kind == 'basic-pitch':
                from .basic_pitch_chroma import model_path
                model_path()
            if spec is not None and not spec.startswith('published:'):
                from .model import weights_path
                path = weights_path(spec)
                if not path.is_file():
                    raise CTCChromaError(f'weights {path} missing (run `make train`)')
        except CTCChromaError as e:
            missing[kind] = str(e)
            continue
        available.append(kind)
    return available, missing


def _progress(iterable, desc, total=None, enabled=True):
    if not enabled:
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False)


def compute_database(items, kind, feature_fn=None, progress=True) -> Dict[str, np.ndarray]:
    """Chromagram of every distinct recording of the items.

    Notebook: 06_Retrieval.ipynb

    Args:
        items (list of Item): Dataset items
        kind (str): Feature kind
        feature_fn (callable): ``feature_fn(audio_path, kind) -> (chroma, times)``
            (Default value = None, i.e. :func:`ctc_chroma_lib.chroma.compute_chroma`)
        progress (bool): Show a progress bar on stderr (Default value = True)

    Returns:
        database (dict): str(audio_path) -> chromagram (12 x M)
    """
    if feature_fn is None:
        from .chroma import compute_chroma
        feature_fn = compute_chroma
    paths = sorted({str(item.audio_path) for item in items})
    database = {}
    for path in _progress(paths, f'features {kind}', enabled=progress):
        database[path] = np.asarray(feature_fn(path, kind)[0], dtype=np.float32)
    return database


def evaluate_kind(items, database, tempo=DEFAULT_TEMPO, factors=DEFAULT_TEMPO_FACTORS,
                  stepsize=2, transposition_invariant=False, progress=True, desc='matching'):
    """Rank of each item's own recording when its theme queries the recordings of its fold.

    Notebook: 04_Model_and_Training.ipynb

    Args:
        items (list of Item): Queries (their folds define the databases)
        database (dict): str(audio_path) -> chromagram, covering all items' recordings
        tempo (str): 'score' or 'multi' (Default value = 'score')
        factors (tuple): Tempo factors for 'multi' (Default value = DEFAULT_TEMPO_FACTORS)
        stepsize (int): Subsequence-DTW step-size setting (Default value = 2)
        transposition_invariant (bool): Try all 12 query shifts (Default value = False)
        progress (bool): Show a progress bar (Default value = True)
        desc (str): Progress bar label (Default value = 'matching')

    Returns:
        ranks (dict): fold -> list of (mtd_id, rank) in item order
    """
    folds = sorted({item.fold for item in items})
    fold_docs = {}
    for fold in folds:
        names = sorted({str(item.audio_path) for item in items if item.fold == fold})
        fold_docs[fold] = (names, [(name, database[name]) for name in names])
    ranks = {fold: [] for fold in folds}
    for item in _progress(items, desc, enabled=progress):
        names, docs = fold_docs[item.fold]
        queries = build_queries(item.theme, tempo=tempo, factors=factors, name=item.mtd_id)
        costs = document_costs(queries, docs, stepsize=stepsize,
                               transposition_invariant=transposition_invariant)
        rank = rank_of_relevant(costs, names.index(str(item.audio_path)))
        ranks[item.fold].append((item.mtd_id, rank))
    return ranks


def summarize(ranks_per_fold) -> dict:
    """Metrics over all queries plus ``per_fold`` metrics.

    Notebook: 04_Model_and_Training.ipynb

    Args:
        ranks_per_fold (dict): fold -> list of (query id, rank)

    Returns:
        result (dict): :func:`retrieval_metrics` of all ranks, with ``per_fold`` (str(fold) ->
            metrics) and ``ranks`` (query id -> rank)
    """
    all_ranks = [r for fold in sorted(ranks_per_fold) for _, r in ranks_per_fold[fold]]
    result = retrieval_metrics(all_ranks)
    result['per_fold'] = {str(fold): retrieval_metrics([r for _, r in ranks_per_fold[fold]])
                          for fold in sorted(ranks_per_fold)}
    result['ranks'] = {qid: r for fold in sorted(ranks_per_fold)
                       for qid, r in ranks_per_fold[fold]}
    return result


def evaluate(items, kinds, tempo=DEFAULT_TEMPO, factors=DEFAULT_TEMPO_FACTORS, stepsize=2,
             transposition_invariant=False, feature_fn=None, progress=True) -> dict:
    """Retrieval evaluation of feature kinds (and tempo strategies) on dataset items.

    Notebook: 06_Retrieval.ipynb

    Args:
        items (list of Item): Items of the evaluated folds (e.g. ``load_dataset(folds=(5,))``)
        kinds (list of str): Feature kinds, e.g. ['ctc', 'cqt']
        tempo (str or list of str): 'score', 'multi' or both; with several strategies the
            result names are '<kind>/<tempo>' (Default value = 'score')
        factors (tuple): Tempo factors of 'multi' (Default value = DEFAULT_TEMPO_FACTORS)
        stepsize (int): Subsequence-DTW step sizes (Default value = 2)
        transposition_invariant (bool): Try all 12 query shifts (Default value = False)
        feature_fn (callable): ``feature_fn(audio_path, kind) -> (chroma, times)``
            (Default value = None, i.e. :func:`ctc_chroma_lib.chroma.compute_chroma`)
        progress (bool): Progress bars on stderr (Default value = True)

    Returns:
        result (dict): ``{"features": {name: {"top1", "top5", "top10", "mrr", "n_queries",
            "per_fold", "ranks"}}, "folds": [...], "settings": {...}}``
    """
    items = list(items)
    if not items:
        raise CTCChromaError('no items to evaluate (empty dataset or folds)')
    tempos = [tempo] if isinstance(tempo, str) else list(tempo)
    for t in tempos:
        if t not in TEMPO_STRATEGIES:
            raise CTCChromaError(f'unknown tempo strategy {t!r} (expected '
                                 f'{" or ".join(TEMPO_STRATEGIES)})')
    features = {}
    for kind in kinds:
        database = compute_database(items, kind, feature_fn=feature_fn, progress=progress)
        for t in tempos:
            name = kind if len(tempos) == 1 else f'{kind}/{t}'
            ranks = evaluate_kind(items, database, tempo=t, factors=factors, stepsize=stepsize,
                                  transposition_invariant=transposition_invariant,
                                  progress=progress, desc=f'matching {name}')
            features[name] = summarize(ranks)
    return {
        'features': features,
        'folds': sorted({item.fold for item in items}),
        'settings': {
            'kinds': list(kinds), 'tempo': tempos, 'tempo_factors': list(factors),
            'stepsize': stepsize, 'transposition_invariant': transposition_invariant,
            'n_items': len(items), 'n_recordings': len({str(i.audio_path) for i in items}),
        },
    }


def format_table(result: dict) -> str:
    """Paper-style table: one row per feature, columns Top-1, Top-5, Top-10, MRR, #queries.

    Notebook: 06_Retrieval.ipynb

    Args:
        result (dict): Output of :func:`evaluate`

    Returns:
        table (str): Plain-text table
    """
    names = list(result['features'])
    width = max([len('Features')] + [len(n) for n in names])
    lines = [f'{"Features":<{width}}  {"Top-1":>6}  {"Top-5":>6}  {"Top-10":>6}  {"MRR":>6}  '
             f'{"#queries":>8}']
    for name in names:
        m = result['features'][name]
        cells = ['   n/a' if math.isnan(m[k]) else f'{m[k]:6.3f}'
                 for k in ('top1', 'top5', 'top10', 'mrr')]
        lines.append(f'{name:<{width}}  ' + '  '.join(cells) + f'  {m["n_queries"]:>8d}')
    return '\n'.join(lines)


def ctc_fit(items, kinds, progress=True) -> dict:
    """How well each learned feature type's model fits the CTC objective on the items.

    Notebook: 08_Published_Models.ipynb

    Args:
        items (list of Item): Items with weak alignments
        kinds (list of str): Feature kinds; those without a CTC-style output (cqt, cens,
            basic-pitch) are skipped
        progress (bool): Progress bars on stderr (Default value = True)

    Returns:
        fit (dict): kind -> :func:`ctc_chroma_lib.training.ctc_fit_diagnostics`
    """
    from .chroma import compute_chroma, resolve_kind
    from .training import ctc_fit_diagnostics

    fit = {}
    for kind in kinds:
        if resolve_kind(kind) is None:
            continue
        outputs = [(item, compute_chroma(item.audio_path, kind, return_probs=True)[2])
                   for item in _progress(items, f'CTC fit {kind}', enabled=progress)]
        fit[kind] = ctc_fit_diagnostics(outputs)
    return fit


def format_ctc_fit(fit: dict) -> str:
    """Table of :func:`ctc_fit`: CTC loss per note, blank share, median largest blank."""
    names = list(fit)
    width = max([len('Model')] + [len(n) for n in names])
    lines = [f'{"Model":<{width}}  {"CTC loss/note":>13}  {"blank argmax":>12}  {"#notes":>6}']
    for name in names:
        d = fit[name]
        lines.append(f'{name:<{width}}  {d["loss_per_note"]:13.3f}  {d["blank_share"]:12.3f}  '
                     f'{d["n_notes"]:>6d}')
    return '\n'.join(lines)

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
from .kinds import (FEATURE_TYPES, SPLITS, TRAINING_KINDS, WEIGHTS_SUFFIX, for_split, resolve,
                    split_holding_out)
from .query import DEFAULT_TEMPO_FACTORS, TEMPO_STRATEGIES, build_queries
from .retrieval import document_costs

TEST_FOLDS = (5,)
"""Folds evaluated by default. The shipped teaching models are trained on folds 1-3 and
validated (early stopping, model choice) on fold 4, so fold 5 is the only fold none of them
has seen; evaluating other folds measures partly training data."""

DEFAULT_KINDS = FEATURE_TYPES
"""Feature kinds evaluated by default (besides :data:`DEFAULT_PUBLISHED`), when available:
all named kinds of :data:`ctc_chroma_lib.kinds.KINDS`."""

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

    Raises:
        CTCChromaError: A rank below 1
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
    available, missing = [], {}
    for kind in kinds:
        try:
            resolve(kind).check()
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


def compute_database(items, kind, *, feature_fn=None, progress=True) -> Dict[str, np.ndarray]:
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
    from .threads import map_in_order
    threads = None  # compute_chroma is safe on threads (a few recordings at once)
    if feature_fn is None:
        from .chroma import compute_chroma
        feature_fn = compute_chroma
    else:
        threads = 1  # a given feature_fn may not be
    paths = sorted({str(item.audio_path) for item in items})
    features = map_in_order(lambda path: feature_fn(path, kind)[0], paths, threads)
    return {path: np.asarray(chromagram, dtype=np.float32)
            for path, chromagram in zip(paths, _progress(features, f'features {kind}',
                                                         enabled=progress, total=len(paths)))}


def evaluate_kind(items, database, *, tempo=DEFAULT_TEMPO, factors=DEFAULT_TEMPO_FACTORS,
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


def evaluate(items, kinds, *, tempo=DEFAULT_TEMPO, factors=DEFAULT_TEMPO_FACTORS, stepsize=2,
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

    Raises:
        CTCChromaError: No items, an unknown tempo strategy or feature kind
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
        fit (dict): kind -> :func:`ctc_chroma_lib.losses.ctc_fit_diagnostics`
    """
    from .chroma import compute_chroma
    from .losses import ctc_fit_diagnostics

    fit = {}
    for kind in kinds:
        if not resolve(kind).learned:
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


# ---------------------------------------------------------------------------------------
# Cross-validation (the paper's protocol over all five folds)

CV_PUBLISHED = tuple(f'published:v2_ctc_{split}' for split in SPLITS)
"""Authors' checkpoints evaluated by default with ``--cv``: their CTC models of the five
splits (``v2``, the checkpoints of the ISMIR 2020 paper). They never heard the teaching
audio, so each one is evaluated on every teaching fold."""


def cv_feature(kind, fold):
    """The feature type that evaluates ``fold`` in cross-validation.

    A kind this project trains (ctc, strong, linear) is replaced by its model of the split
    that held ``fold`` out (:func:`ctc_chroma_lib.kinds.split_holding_out`); every other
    kind (cqt, cens, basic-pitch, published:<ID>) is the same on every fold.

    Args:
        kind (str): Feature kind
        fold (int): The evaluated fold, 1-5

    Returns:
        name (str): E.g. 'teaching-ctc-train234valid5' for ('ctc', 1), 'ctc' for ('ctc', 5)

    Raises:
        CTCChromaError: ``kind`` is a weights file (one model, not one per split)
    """
    if kind in TRAINING_KINDS:
        return for_split(kind, split_holding_out(fold)).name
    if kind.endswith(WEIGHTS_SUFFIX):
        raise CTCChromaError(f'{kind!r} is one model, but cross-validation evaluates every '
                             'fold with a model that never saw it; evaluate the file on its '
                             'test fold with --folds instead')
    return kind


def missing_cv_models(kinds, folds):
    """The models that cross-validating ``kinds`` on ``folds`` needs and that are not there.

    Returns:
        missing (dict): Feature name -> reason (with the command that trains it)
    """
    missing = {}
    for kind in kinds:
        for fold in folds:
            name = cv_feature(kind, fold)
            _, reasons = available_kinds([name])
            missing.update(reasons)
    return missing


def _mean_std(values):
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float('nan'), float('nan')
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return float(np.mean(values)), std


def wilcoxon_reciprocal_ranks(ranks, reference='ctc'):
    """Paired Wilcoxon signed-rank tests on the reciprocal ranks: ``reference`` against each
    other feature type, over the queries both answered.

    Args:
        ranks (dict): Feature name -> {query id: rank}
        reference (str): The feature type the others are compared with (Default value = 'ctc')

    Returns:
        tests (dict): Feature name -> ``{"n_queries", "n_differing", "mean_rr_difference"
            (reference minus other), "statistic", "p_value"}``; p is NaN where no query's
            reciprocal rank differs
    """
    from scipy.stats import wilcoxon

    tests = {}
    if reference not in ranks:
        return tests
    for name, other in ranks.items():
        if name == reference:
            continue
        common = sorted(set(ranks[reference]) & set(other))
        a = np.array([1.0 / ranks[reference][q] for q in common])
        b = np.array([1.0 / other[q] for q in common])
        differing = int(np.sum(a != b))
        if differing:
            statistic, p = wilcoxon(a, b, zero_method='wilcox', alternative='two-sided')
            statistic, p = float(statistic), float(p)
        else:
            statistic, p = float('nan'), float('nan')
        tests[name] = {'n_queries': len(common), 'n_differing': differing,
                       'mean_rr_difference': float(np.mean(a - b)) if common else float('nan'),
                       'statistic': statistic, 'p_value': p}
    return tests


def evaluate_cv(items, kinds, *, published=(), tempo=DEFAULT_TEMPO, factors=DEFAULT_TEMPO_FACTORS,
                stepsize=2, transposition_invariant=False, feature_fn=None, progress=True,
                reference='ctc') -> dict:
    """Cross-validated retrieval evaluation, as in the paper: every fold is queried with its
    own themes against its own recordings, with the models of the split that held it out.

    Args:
        items (list of Item): Items of all evaluated folds (e.g. ``load_dataset()``)
        kinds (list of str): Feature kinds; ctc, strong and linear use one model per split
            (:func:`cv_feature`)
        published (list of str): 'published:<ID>' models, a separate group of rows, each
            evaluated on every fold (Default value = ())
        tempo (str): Query tempo strategy (Default value = 'score')
        factors (tuple): Tempo factors of 'multi' (Default value = DEFAULT_TEMPO_FACTORS)
        stepsize (int): Subsequence-DTW step sizes (Default value = 2)
        transposition_invariant (bool): Try all 12 query shifts (Default value = False)
        feature_fn (callable): ``feature_fn(audio_path, name) -> (chroma, times)``
            (Default value = None, i.e. :func:`ctc_chroma_lib.chroma.compute_chroma`)
        progress (bool): Progress bars on stderr (Default value = True)
        reference (str): Feature type the Wilcoxon tests compare the others with
            (Default value = 'ctc')

    Returns:
        result (dict): ``{"features": {name: {"top1", "top5", "top10", "mrr", "n_queries",
            "top1_std", "mrr_std", ...}}, "per_fold": {"1": {name: metrics}, ...},
            "models": {"1": {name: feature type used}, ...}, "ranks": {name: {query: rank}},
            "wilcoxon": ..., "groups": {"project": [...], "published": [...]},
            "settings": {...}}``. Top-level metrics are means over the folds; the ``_std``
            entries are their sample standard deviations (ddof = 1); ``n_queries`` is the
            total over the folds.

    Raises:
        CTCChromaError: No items, an unknown tempo strategy, a fold without a split
            holding it out, or a model that is not trained yet
    """
    items = list(items)
    if not items:
        raise CTCChromaError('no items to evaluate (empty dataset or folds)')
    if tempo not in TEMPO_STRATEGIES:
        raise CTCChromaError(f'unknown tempo strategy {tempo!r} (expected '
                             f'{" or ".join(TEMPO_STRATEGIES)})')
    names = list(dict.fromkeys(list(kinds) + list(published)))
    folds = sorted({item.fold for item in items})
    per_fold, models = {}, {}
    ranks = {name: {} for name in names}
    for fold in folds:
        fold_items = [item for item in items if item.fold == fold]
        per_fold[str(fold)], models[str(fold)] = {}, {}
        for name in names:
            feature = cv_feature(name, fold)
            database = compute_database(fold_items, feature, feature_fn=feature_fn,
                                        progress=progress)
            fold_ranks = evaluate_kind(fold_items, database, tempo=tempo, factors=factors,
                                       stepsize=stepsize,
                                       transposition_invariant=transposition_invariant,
                                       progress=progress, desc=f'fold {fold} {feature}')[fold]
            per_fold[str(fold)][name] = retrieval_metrics([r for _, r in fold_ranks])
            models[str(fold)][name] = feature
            ranks[name].update(fold_ranks)
    features = {}
    for name in names:
        metrics = {}
        for key in ('top1', 'top5', 'top10', 'mrr'):
            metrics[key], metrics[f'{key}_std'] = _mean_std(
                [per_fold[str(fold)][name][key] for fold in folds])
        metrics['n_queries'] = sum(per_fold[str(fold)][name]['n_queries'] for fold in folds)
        features[name] = metrics
    return {
        'features': features,
        'per_fold': per_fold,
        'models': models,
        'ranks': ranks,
        'wilcoxon': {'reference': reference,
                     'tests': wilcoxon_reciprocal_ranks(ranks, reference)},
        'groups': {'project': [n for n in names if n not in published],
                   'published': [n for n in names if n in published]},
        'folds': folds,
        'settings': {
            'protocol': 'cross-validation: each fold with the models of the split that held it out',
            'kinds': list(kinds), 'published': list(published), 'tempo': tempo,
            'tempo_factors': list(factors), 'stepsize': stepsize,
            'transposition_invariant': transposition_invariant, 'n_items': len(items),
            'n_recordings': len({str(i.audio_path) for i in items}),
            'std': 'sample standard deviation over folds (ddof = 1)',
        },
    }


def format_cv_table(result: dict) -> str:
    """Paper-style table of :func:`evaluate_cv`: mean ± std over folds, published rows apart,
    then the Wilcoxon tests.

    Notebook: 06_Retrieval.ipynb

    Args:
        result (dict): Output of :func:`evaluate_cv`

    Returns:
        table (str): Plain-text table
    """
    names = list(result['features'])
    width = max([len('Features')] + [len(n) for n in names])
    n_folds = len(result['folds'])

    def cell(m, key):
        if math.isnan(m[key]):
            return f'{"n/a":>13}'
        return f'{m[key]:.3f} ± {m[key + "_std"]:.3f}'

    header = (f'{"Features":<{width}}  {"Top-1":>13}  {"Top-5":>13}  {"Top-10":>13}  '
              f'{"MRR":>13}  {"#queries":>8}')
    lines = [f'Mean ± std over {n_folds} folds (each fold with the models of the split that '
             'held it out)', header]
    for group, title in (('project', None),
                         ('published', "Authors' published checkpoints (never heard the "
                                       'teaching audio; every fold)')):
        rows = result['groups'][group]
        if not rows:
            continue
        if title:
            lines.append(title)
        for name in rows:
            m = result['features'][name]
            lines.append(f'{name:<{width}}  ' + '  '.join(cell(m, k) for k in
                                                         ('top1', 'top5', 'top10', 'mrr'))
                         + f'  {m["n_queries"]:>8d}')
    tests = result['wilcoxon']['tests']
    if tests:
        ref = result['wilcoxon']['reference']
        lines += ['', f'Wilcoxon signed-rank test on the reciprocal ranks, {ref} against each '
                      'other feature type (paired over queries, two-sided)',
                  f'{"Features":<{width}}  {"mean RR diff":>12}  {"differing":>9}  {"p":>9}']
        for name, t in tests.items():
            p = 'n/a' if math.isnan(t['p_value']) else f'{t["p_value"]:.2g}'
            lines.append(f'{name:<{width}}  {t["mean_rr_difference"]:+12.3f}  '
                         f'{t["n_differing"]:>9d}  {p:>9}')
    return '\n'.join(lines)

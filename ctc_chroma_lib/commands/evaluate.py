"""``ctc-chroma evaluate``: cross-modal retrieval evaluation (Top-1/5/10, MRR) per feature type.

Notebook: 06_Retrieval.ipynb
"""
import json
import sys
from pathlib import Path

from ..errors import CTCChromaError
from ..kinds import FEATURE_TYPES


def add_parser(subparsers):
    """Register the ``evaluate`` subcommand on the ``ctc-chroma`` parser."""
    from ..evaluation import (CV_PUBLISHED, DEFAULT_KINDS, DEFAULT_PUBLISHED, DEFAULT_TEMPO,
                              TEST_FOLDS)
    parser = subparsers.add_parser(
        'evaluate', help='theme-to-recording retrieval evaluation of chroma feature types',
        description='Every theme of the evaluated folds queries the recordings of its fold '
                    '(subsequence DTW, cosine cost); prints Top-1, Top-5, Top-10 and MRR per '
                    'feature type.')
    parser.add_argument('--dataset', metavar='DIR',
                        help='dataset folder (default: the teaching dataset)')
    parser.add_argument('--folds', metavar='F[,F...]',
                        help=f'folds to evaluate, comma-separated or "all" (default: '
                             f'{",".join(map(str, TEST_FOLDS))}, the fold no shipped model was '
                             f'trained or validated on)')
    parser.add_argument('--features', metavar='KIND[,KIND...]',
                        help='feature types: ' + ', '.join(FEATURE_TYPES) + ', published:<ID>, '
                             'teaching-KIND-SPLIT, or a .weights.h5 file from `ctc-chroma '
                             f'train --out` (default: {",".join(DEFAULT_KINDS)},{DEFAULT_PUBLISHED}, '
                             f'those available)')
    parser.add_argument('--tempo', default=DEFAULT_TEMPO, metavar='STRATEGY[,STRATEGY]',
                        help='query tempo: score, multi, or score,multi to compare '
                             f'(default: {DEFAULT_TEMPO})')
    parser.add_argument('--stepsize', type=int, default=2, choices=(1, 2),
                        help='subsequence-DTW step sizes: 2 = {(2,1),(1,2),(1,1)} (default), '
                             '1 = {(1,0),(0,1),(1,1)}')
    parser.add_argument('--transposition-invariant', action='store_true',
                        help='also try the 11 other cyclic chroma shifts of each query')
    parser.add_argument('--ctc-fit', action='store_true',
                        help='also report, for every learned feature type, the CTC loss per '
                             'note and the share of frames where the blank wins, on the weak '
                             'segments of the evaluated items')
    parser.add_argument('--cv', action='store_true',
                        help='cross-validation over all five folds: every fold is evaluated '
                             'with the ctc, strong and linear models of the split that held it '
                             'out (teaching-KIND-SPLIT), the published checkpoints on every '
                             'fold; prints mean ± std over folds and Wilcoxon tests of ctc '
                             'against the others')
    parser.add_argument('--published', metavar='ID[,ID...]',
                        help='with --cv: the published checkpoints of the separate group of '
                             f'rows (default: {",".join(p.split(":", 1)[1] for p in CV_PUBLISHED)}; '
                             '"none" for none)')
    parser.add_argument('--json', metavar='FILE', help='also write the results as JSON')
    parser.set_defaults(func=run)
    return parser


def parse_folds(text):
    """Folds from '5', '4,5' or 'all'."""
    if text.strip().lower() == 'all':
        return None
    try:
        folds = tuple(int(f) for f in text.split(',') if f.strip())
    except ValueError:
        raise CTCChromaError(f'invalid --folds {text!r} (expected e.g. 5 or 4,5 or all)') from None
    if not folds:
        raise CTCChromaError(f'invalid --folds {text!r}')
    return folds


def run(args):
    """Run the evaluation, print the table, optionally write JSON.

    Args:
        args (argparse.Namespace): Parsed arguments

    Returns:
        status (int): 0 on success
    """
    from .. import evaluation
    from ..dataset import load_dataset
    from ..fileio import atomic_path

    if args.cv:
        return run_cv(args)
    if args.published:
        raise CTCChromaError('--published belongs to --cv (without it, name published '
                             'models in --features)')
    tempos = [t.strip() for t in args.tempo.split(',') if t.strip()]
    for t in tempos:
        if t not in ('score', 'multi'):
            raise CTCChromaError(f'invalid --tempo {t!r} (expected score, multi or score,multi)')
    if args.features:
        kinds = [k.strip() for k in args.features.split(',') if k.strip()]
        available, missing = evaluation.available_kinds(kinds)
        if missing:
            kind, reason = next(iter(missing.items()))
            raise CTCChromaError(f'feature type {kind!r} is not available: {reason}')
    else:
        kinds = list(evaluation.DEFAULT_KINDS) + [evaluation.DEFAULT_PUBLISHED]
        kinds, missing = evaluation.available_kinds(kinds)
        if missing:
            print(f'skipped unavailable feature types: {", ".join(missing)}', file=sys.stderr)
        if not kinds:
            raise CTCChromaError('no feature type is available')
    items = load_dataset(args.dataset,
                         folds=parse_folds(args.folds or ','.join(map(str, evaluation.TEST_FOLDS))))
    result = evaluation.evaluate(items, kinds, tempo=tempos if len(tempos) > 1 else tempos[0],
                                 stepsize=args.stepsize,
                                 transposition_invariant=args.transposition_invariant)
    result['settings']['dataset'] = str(args.dataset or 'teaching (default)')
    if not args.features and missing:
        result['settings']['skipped'] = missing
    print(evaluation.format_table(result))
    if args.ctc_fit:
        result['ctc_fit'] = evaluation.ctc_fit(items, kinds)
        print()
        print(evaluation.format_ctc_fit(result['ctc_fit']))
    if args.json:
        with atomic_path(Path(args.json)) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=1) + '\n')
    return 0


def _published_names(text):
    """'published:<ID>' names from --published (IDs with or without the prefix, or 'none')."""
    from ..evaluation import CV_PUBLISHED
    from ..kinds import PUBLISHED_PREFIX
    if text is None:
        return list(CV_PUBLISHED)
    if text.strip().lower() == 'none':
        return []
    names = []
    for part in (p.strip() for p in text.split(',') if p.strip()):
        names.append(part if part.startswith(PUBLISHED_PREFIX) else PUBLISHED_PREFIX + part)
    return names


def run_cv(args):
    """``evaluate --cv``: every fold with the models of the split that held it out."""
    from .. import evaluation
    from ..dataset import load_dataset
    from ..fileio import atomic_path
    from ..kinds import PUBLISHED_PREFIX

    if args.folds:
        raise CTCChromaError('--cv evaluates all five folds; leave out --folds')
    if args.ctc_fit:
        raise CTCChromaError('--ctc-fit reports one model per kind; run it without --cv')
    tempos = [t.strip() for t in args.tempo.split(',') if t.strip()]
    if len(tempos) != 1 or tempos[0] not in ('score', 'multi'):
        raise CTCChromaError(f'--cv takes one --tempo, score or multi, not {args.tempo!r}')
    published = _published_names(args.published)
    if args.features:
        requested = [k.strip() for k in args.features.split(',') if k.strip()]
        published = list(dict.fromkeys(
            published + [k for k in requested if k.startswith(PUBLISHED_PREFIX)]))
        kinds = [k for k in requested if not k.startswith(PUBLISHED_PREFIX)]
    else:
        kinds = list(evaluation.DEFAULT_KINDS)
    items = load_dataset(args.dataset)
    folds = sorted({item.fold for item in items})
    _, missing_published = evaluation.available_kinds(published)
    if missing_published and (args.published is not None or args.features):
        kind, reason = next(iter(missing_published.items()))
        raise CTCChromaError(f'feature type {kind!r} is not available: {reason}')
    missing = evaluation.missing_cv_models(kinds, folds)
    if missing and args.features:
        name, reason = next(iter(missing.items()))
        more = f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''
        raise CTCChromaError(f'cross-validation needs {name!r}{more}: {reason}')
    skipped = {}
    if missing:  # the default feature types: evaluate those that are complete
        incomplete = [k for k in kinds if evaluation.missing_cv_models([k], folds)]
        kinds = [k for k in kinds if k not in incomplete]
        skipped.update({k: 'models missing: ' + ', '.join(
            n for n in missing if n == k or n.startswith(f'teaching-{k}')) for k in incomplete})
    if missing_published:
        published = [p for p in published if p not in missing_published]
        skipped.update(missing_published)
    if skipped:
        print(f'skipped unavailable feature types: {", ".join(skipped)} (see `make train '
              'SPLIT=...`)', file=sys.stderr)
    if not kinds and not published:
        raise CTCChromaError('no feature type is available')
    reference = 'ctc' if 'ctc' in kinds else (kinds or published)[0]
    result = evaluation.evaluate_cv(items, kinds, published=published, tempo=tempos[0],
                                    stepsize=args.stepsize,
                                    transposition_invariant=args.transposition_invariant,
                                    reference=reference)
    result['settings']['dataset'] = str(args.dataset or 'teaching (default)')
    if skipped:
        result['settings']['skipped'] = skipped
    print(evaluation.format_cv_table(result))
    if args.json:
        with atomic_path(Path(args.json)) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=1) + '\n')
    return 0

"""``ctc-chroma evaluate``: cross-modal retrieval evaluation (Top-1/5/10, MRR) per feature type.

Notebook: 06_Retrieval.ipynb
"""
import json
import sys
from pathlib import Path

from ..errors import CTCChromaError


def add_parser(subparsers):
    """Register the ``evaluate`` subcommand on the ``ctc-chroma`` parser."""
    from ..evaluation import DEFAULT_KINDS, DEFAULT_PUBLISHED, DEFAULT_TEMPO, TEST_FOLDS
    parser = subparsers.add_parser(
        'evaluate', help='theme-to-recording retrieval evaluation of chroma feature types',
        description='Every theme of the evaluated folds queries the recordings of its fold '
                    '(subsequence DTW, cosine cost); prints Top-1, Top-5, Top-10 and MRR per '
                    'feature type.')
    parser.add_argument('--dataset', metavar='DIR',
                        help='dataset folder (default: the teaching dataset)')
    parser.add_argument('--folds', default=','.join(map(str, TEST_FOLDS)), metavar='F[,F...]',
                        help=f'folds to evaluate, comma-separated or "all" (default: '
                             f'{",".join(map(str, TEST_FOLDS))}, the fold no shipped model was '
                             f'trained or validated on)')
    parser.add_argument('--features', metavar='KIND[,KIND...]',
                        help='feature types: ctc, strong, linear, cqt, cens, basic-pitch, published:<ID> '
                             f'(default: {",".join(DEFAULT_KINDS)},{DEFAULT_PUBLISHED}, '
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
    items = load_dataset(args.dataset, folds=parse_folds(args.folds))
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

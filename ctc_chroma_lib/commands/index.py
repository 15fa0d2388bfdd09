"""``ctc-chroma index``: build, update or check a retrieval index of a folder of recordings.

Notebook: 06_Retrieval.ipynb
"""
from ..errors import CTCChromaError, printable
from ..kinds import FEATURE_TYPES


def add_parser(subparsers):
    """Register the ``index`` subcommand on the ``ctc-chroma`` parser."""
    parser = subparsers.add_parser(
        'index', help='compute the chroma of every recording in a folder (incremental)',
        description='Compute chroma features of all audio files below DIR into an index '
                    'directory. Re-running processes only new or changed files, recomputes '
                    'missing or corrupt feature files and drops removed recordings. Writes '
                    'are atomic, an interrupted run leaves a valid index, and one run at a '
                    'time may write to an index (a lock). With --check INDEX, verify an '
                    'index without changing it.',
        usage='%(prog)s DIR --out INDEX [--model MODEL] [--prune] [--allow-empty]\n'
              '       %(prog)s DIR --out INDEX [--workers N | --dask ADDRESS]\n'
              '       %(prog)s --from-features DIR --model MODEL --out INDEX [--prune]\n'
              '       %(prog)s --check INDEX')
    parser.add_argument('audio_dir', metavar='DIR', nargs='?',
                        help='folder with recordings (recursive)')
    parser.add_argument('--model', default='ctc',
                        help='feature type: ctc (= teaching, default), '
                             + ', '.join(FEATURE_TYPES[1:]) + ', published:<ID>, '
                             'teaching-KIND-SPLIT or a .weights.h5 file')
    parser.add_argument('--out', metavar='INDEX', help='index directory')
    parser.add_argument('--prune', action='store_true',
                        help='allow dropping more than a few recordings (or all) that are no '
                             'longer in DIR; without it, the run changes nothing and fails')
    parser.add_argument('--allow-empty', action='store_true',
                        help='accept a folder without audio files')
    parser.add_argument('--from-features', metavar='DIR',
                        help='index the .npz files that ctc-chroma chroma wrote (recursively, '
                             'e.g. computed on another machine) instead of audio; their kind '
                             'and weights must be those of --model')
    parser.add_argument('--workers', type=int, default=1, metavar='N',
                        help='compute the features in N local processes (default 1: in this '
                             'process, a few recordings at once on threads)')
    parser.add_argument('--dask', metavar='ADDRESS',
                        help='compute the features on the workers of a dask.distributed '
                             'scheduler (e.g. tcp://10.0.0.5:8786); this process writes the index')
    parser.add_argument('--check', metavar='INDEX',
                        help='verify every entry and feature file of INDEX; exit 1 if a '
                             'problem is found')
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Build, update or check the index and print a one-line summary.

    Args:
        args (argparse.Namespace): Parsed arguments (audio_dir, model, out, prune,
            allow_empty, check)

    Returns:
        status (int): 0 on success, 1 if ``--check`` found problems
    """
    if args.check:
        if args.audio_dir or args.out:
            raise CTCChromaError('--check INDEX takes no DIR and no --out')
        return _check(args.check)
    if args.from_features and args.audio_dir:
        raise CTCChromaError('give either a folder of recordings or --from-features DIR')
    source = args.from_features or args.audio_dir
    if not source or not args.out:
        raise CTCChromaError('give a folder of recordings and --out INDEX (or --check INDEX)')
    from ..index import build_index
    summary = build_index(source, args.out, model=args.model, prune=args.prune,
                          allow_empty=args.allow_empty, from_features=bool(args.from_features),
                          workers=args.workers, dask=args.dask)
    repaired = f', {summary["repaired"]} repaired' if summary['repaired'] else ''
    print(f'{printable(args.out)}: {summary["total"]} recordings ({summary["added"]} added, '
          f'{summary["updated"]} updated{repaired}, {summary["removed"]} removed, '
          f'{summary["unchanged"]} unchanged)')
    return 0


def _check(index_dir):
    import sys

    from ..index import check_index
    report = check_index(index_dir)
    for problem in report['problems']:
        print(f'problem: {printable(problem)}')
    for note in report['notes']:
        print(f'note: {printable(note)}')
    if report['problems']:
        print(f'ctc-chroma index: error: {printable(index_dir)}: {len(report["problems"])} '
              f'problem(s) in {report["total"]} recordings; run ctc-chroma index on its folder '
              f'to repair', file=sys.stderr)
        return 1
    print(f'{printable(index_dir)}: {report["total"]} recordings, every feature file verified')
    return 0

"""``ctc-chroma dataset``: generate the MTD-style teaching dataset from the music21 corpus.

Notebook: 01_Task_and_Data.ipynb
"""
import sys


def add_parser(subparsers):
    """Register the ``dataset`` subcommand on the ``ctc-chroma`` parser."""
    parser = subparsers.add_parser(
        'dataset', help='generate the MTD-style teaching dataset (make data)',
        description='Generate the MTD-style teaching dataset from the music21 corpus: themes, '
                    'polyphonic recordings rendered with FluidSynth, weak and strong '
                    'alignments, metadata, README and checksums (about an hour on two cores).')
    parser.add_argument('--out', default='data/MTD-teaching', metavar='DIR',
                        help='output folder (default: data/MTD-teaching)')
    parser.add_argument('--seed', type=int, default=0, help='dataset seed (default 0)')
    parser.add_argument('--n-items', type=int, default=None, metavar='N',
                        help='stop after N items')
    parser.add_argument('--jobs', type=int, default=2, metavar='N',
                        help='worker processes (default 2)')
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Generate the dataset and print a summary line.

    Args:
        args (argparse.Namespace): Parsed arguments (out, seed, n_items, jobs)

    Returns:
        status (int): 0 on success
    """
    import logging

    from ..dataset_generation import generate_dataset
    from ..errors import CTCChromaError

    if args.n_items is not None and args.n_items < 1:
        raise CTCChromaError(f'--n-items must be at least 1, got {args.n_items}')
    if args.jobs < 1:
        raise CTCChromaError(f'--jobs must be at least 1, got {args.jobs}')
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    rows = generate_dataset(args.out, seed=args.seed, n_items=args.n_items, jobs=args.jobs)
    minutes = sum(float(r['Duration']) for r in rows) / 60
    print(f'{len(rows)} items, {len({r["WorkID"] for r in rows})} works, '
          f'{len({r["ComposerID"] for r in rows})} composers, {minutes:.1f} min of audio '
          f'written to {args.out}', file=sys.stderr)
    return 0

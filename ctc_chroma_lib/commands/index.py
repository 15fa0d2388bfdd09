"""``ctc-chroma index``: build or update a retrieval index of a folder of recordings.

Notebook: 06_Retrieval.ipynb
"""


def add_parser(subparsers):
    """Register the ``index`` subcommand on the ``ctc-chroma`` parser."""
    parser = subparsers.add_parser(
        'index', help='compute the chroma of every recording in a folder (incremental)',
        description='Compute chroma features of all audio files below DIR into an index '
                    'directory. Re-running processes only new or changed files and drops '
                    'removed ones; an interrupted run leaves a valid index.')
    parser.add_argument('audio_dir', metavar='DIR', help='folder with recordings (recursive)')
    parser.add_argument('--model', default='ctc',
                        help='feature type: ctc (= teaching, default), strong, linear, '
                             'published:<ID>, cqt, cens')
    parser.add_argument('--out', required=True, metavar='INDEX', help='index directory')
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Build or update the index and print a one-line summary.

    Notebook: 06_Retrieval.ipynb

    Args:
        args (argparse.Namespace): Parsed arguments (audio_dir, model, out)

    Returns:
        status (int): 0 on success
    """
    from ..index import build_index
    summary = build_index(args.audio_dir, args.out, model=args.model)
    print(f'{args.out}: {summary["total"]} recordings ({summary["added"]} added, '
          f'{summary["updated"]} updated, {summary["removed"]} removed, '
          f'{summary["unchanged"]} unchanged)')
    return 0

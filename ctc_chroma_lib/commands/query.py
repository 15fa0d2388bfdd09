"""``ctc-chroma query``: find the recordings that contain a symbolic theme.

Notebook: 06_Retrieval.ipynb
"""
import json
import math


def add_parser(subparsers):
    """Register the ``query`` subcommand on the ``ctc-chroma`` parser."""
    parser = subparsers.add_parser(
        'query', help='rank the recordings of an index by how well they match a theme',
        description='Match a monophonic theme (MIDI, MusicXML/MXL, kern, ABC, MEI or note-list '
                    'CSV) against every recording of an index with subsequence DTW.')
    parser.add_argument('theme', metavar='THEME', help='theme file')
    parser.add_argument('--index', required=True, metavar='INDEX', help='index directory')
    parser.add_argument('--model', help='feature type the index must hold (checked)')
    parser.add_argument('--top', type=int, default=10, help='number of results (default 10)')
    parser.add_argument('--tempo', default='score', choices=('score', 'multi'),
                        help='query tempo: score tempo (default) or several tempo factors')
    parser.add_argument('--transposition-invariant', action='store_true',
                        help='also try the 11 other cyclic chroma shifts of the theme')
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')
    parser.set_defaults(func=run)
    return parser


def _seconds(t):
    return None if t is None or not math.isfinite(t) else round(float(t), 3)


def _clock(t):
    minutes, seconds = divmod(t, 60.0)
    return f'{int(minutes)}:{seconds:05.2f}'


def run(args):
    """Rank the index's recordings for the theme; print a table or JSON.

    Notebook: 06_Retrieval.ipynb

    Args:
        args (argparse.Namespace): Parsed arguments

    Returns:
        status (int): 0 on success
    """
    from ..errors import CTCChromaError, printable
    from ..index import load_index
    from ..query import build_queries, check_theme_fits, read_theme, theme_duration
    from ..retrieval import rank_documents

    if args.top < 1:
        raise CTCChromaError(f'--top must be at least 1, got {args.top}')
    notes = read_theme(args.theme)
    manifest, documents = load_index(args.index, kind=args.model)
    longest = max(Y.shape[1] for _, Y in documents)
    check_theme_fits(notes, longest, tempo=args.tempo, name=args.theme)
    queries = build_queries(notes, tempo=args.tempo, name=args.theme)
    matches = rank_documents(queries, documents,
                             transposition_invariant=args.transposition_invariant)
    if not math.isfinite(matches[0].cost):  # rounding at the limit of check_theme_fits
        raise CTCChromaError(f'{args.theme}: the theme ({theme_duration(notes):.1f} s at score '
                             f'tempo) is longer than every recording can match')
    shown = [m for m in matches[:args.top] if math.isfinite(m.cost)]
    if args.json:
        print(json.dumps({
            'theme': str(args.theme), 'index': str(args.index), 'kind': manifest['kind'],
            'tempo': args.tempo, 'transposition_invariant': args.transposition_invariant,
            'results': [{'rank': m.rank, 'file': m.name, 'cost': round(m.cost, 6),
                         'start_time': _seconds(m.start_time), 'end_time': _seconds(m.end_time),
                         'start_frame': m.start_frame, 'end_frame': m.end_frame,
                         'shift': m.shift, 'tempo_factor': m.tempo_factor} for m in shown]},
            indent=1))
        return 0
    print(f'{"rank":>4}  {"cost":>7}  {"start":>8}  {"end":>8}  {"shift":>5}  {"tempo":>5}  file')
    for m in shown:
        print(f'{m.rank:>4}  {m.cost:7.4f}  {_clock(m.start_time):>8}  {_clock(m.end_time):>8}  '
              f'{m.shift:>5}  {m.tempo_factor:5.2f}  {printable(m.name)}')
    return 0

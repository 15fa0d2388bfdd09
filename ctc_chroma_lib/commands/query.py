"""``ctc-chroma query``: find the recordings that contain one or more symbolic themes.

Notebook: 06_Retrieval.ipynb

Several themes are answered in one process, with the index loaded once. Every theme is read
and checked before the first one is matched, so a bad theme fails the command before any
result is printed.
"""
import json
import math


def add_parser(subparsers):
    """Register the ``query`` subcommand on the ``ctc-chroma`` parser."""
    parser = subparsers.add_parser(
        'query', help='rank the recordings of an index by how well they match a theme',
        description='Match monophonic themes (MIDI, MusicXML/MXL, kern, ABC, MEI or note-list '
                    'CSV) against every recording of an index with subsequence DTW. With '
                    'several themes, the table has one section per theme and --json prints a '
                    'list with one object per theme.')
    parser.add_argument('themes', nargs='+', metavar='THEME', help='theme file(s)')
    parser.add_argument('--index', required=True, metavar='INDEX', help='index directory')
    parser.add_argument('--model', help='feature type the index must hold (checked)')
    parser.add_argument('--top', type=int, default=10, help='number of results (default 10)')
    parser.add_argument('--tempo', default='score', choices=('score', 'multi'),
                        help='query tempo: score tempo (default) or several tempo factors')
    parser.add_argument('--transposition-invariant', action='store_true',
                        help='also try the 11 other cyclic chroma shifts of the theme')
    parser.add_argument('--exact', action='store_true',
                        help='match every recording at 25 Hz instead of the two-stage search '
                             '(a coarse search picks candidates, the exact one ranks them)')
    parser.add_argument('--candidates', type=int, default=None, metavar='K',
                        help='recordings the coarse stage passes to the exact one (default '
                             f'{_default_candidates()})')
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')
    parser.set_defaults(func=run)
    return parser


def _default_candidates():
    from ..search import CANDIDATES
    return CANDIDATES


def _seconds(t):
    return None if t is None or not math.isfinite(t) else round(float(t), 3)


def _clock(t):
    minutes, seconds = divmod(t, 60.0)
    return f'{int(minutes)}:{seconds:05.2f}'


def run(args):
    """Rank the index's recordings for every theme; print tables or JSON.

    Args:
        args (argparse.Namespace): Parsed arguments

    Returns:
        status (int): 0 on success
    """
    import sys

    from ..errors import CTCChromaError
    from ..index import open_index
    from ..query import check_theme_fits, read_theme
    from ..search import CANDIDATES

    if args.top < 1:
        raise CTCChromaError(f'--top must be at least 1, got {args.top}')
    if args.candidates is None:
        args.candidates = max(CANDIDATES, args.top)
    if args.candidates < args.top:
        raise CTCChromaError(f'--candidates must be at least --top ({args.top}), got '
                             f'{args.candidates}')
    themes = [(path, read_theme(path)) for path in args.themes]
    manifest, features, note = open_index(args.index, kind=args.model)
    if note:
        print(note, file=sys.stderr)
    longest = max(entry['frames'] for entry in manifest['files'].values())
    for path, notes in themes:
        check_theme_fits(notes, longest, tempo=args.tempo, name=path)
    answers = [_answer(args, path, notes, manifest, features) for path, notes in themes]
    if args.json:
        objects = [answer for answer, _ in answers]
        print(json.dumps(objects[0] if len(objects) == 1 else objects, indent=1))
        return 0
    for i, (answer, shown) in enumerate(answers):
        if len(answers) > 1:
            print(('\n' if i else '') + f'== {_printable(answer["theme"])}')
        _print_table(shown)
    return 0


def _printable(text):
    from ..errors import printable
    return printable(text)


def _answer(args, path, notes, manifest, features):
    """One theme's ranking: the JSON object and the matches shown."""
    from ..errors import CTCChromaError
    from ..query import build_queries, theme_duration
    from ..search import search

    queries = build_queries(notes, tempo=args.tempo, name=path)
    matches, info = search(features, queries, top=args.top, candidates=args.candidates,
                           exact=args.exact, transposition_invariant=args.transposition_invariant)
    if not math.isfinite(matches[0].cost):  # rounding at the limit of check_theme_fits
        raise CTCChromaError(f'{path}: the theme ({theme_duration(notes):.1f} s at score '
                             f'tempo) is longer than every recording can match')
    shown = [m for m in matches[:args.top] if math.isfinite(m.cost)]
    return {'theme': str(path), 'index': str(args.index), 'kind': manifest['kind'],
            'tempo': args.tempo, 'transposition_invariant': args.transposition_invariant,
            'search': info['stage'], 'matched_exactly': info['candidates'],
            'recordings': info['recordings'],
            'results': [{'rank': m.rank, 'file': m.name, 'cost': round(m.cost, 6),
                         'start_time': _seconds(m.start_time), 'end_time': _seconds(m.end_time),
                         'start_frame': m.start_frame, 'end_frame': m.end_frame,
                         'shift': m.shift, 'tempo_factor': m.tempo_factor} for m in shown]}, shown


def _print_table(matches):
    print(f'{"rank":>4}  {"cost":>7}  {"start":>8}  {"end":>8}  {"shift":>5}  {"tempo":>5}  file')
    for m in matches:
        print(f'{m.rank:>4}  {m.cost:7.4f}  {_clock(m.start_time):>8}  {_clock(m.end_time):>8}  '
              f'{m.shift:>5}  {m.tempo_factor:5.2f}  {_printable(m.name)}')

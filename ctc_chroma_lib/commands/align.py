"""``ctc-chroma align``: note-wise alignment of a theme in a recording from a weak alignment.

Notebook: 07_Weak_to_Strong_Alignment.ipynb

Writes the strong-alignment format of the dataset (``Start;End;Pitch``, seconds in the
recording, one row per theme note) to ``--out`` or to standard output.
"""
import math
import sys

from ..errors import CTCChromaError
from .chroma import resolve_model


def add_parser(subparsers):
    """Register the ``align`` subcommand on the ``ctc-chroma`` parser."""
    parser = subparsers.add_parser(
        'align', help='note onsets of a theme in a recording, from where it starts and ends',
        description='Estimate when each note of a theme is played in a recording, given only '
                    'where the theme starts and ends there (a weak alignment), from the CTC '
                    'posterior of a CTC chroma model. Writes Start;End;Pitch rows (seconds).')
    parser.add_argument('theme', metavar='THEME', help='theme file (MIDI, MusicXML, CSV note list)')
    parser.add_argument('audio', metavar='AUDIO', help='the recording')
    parser.add_argument('--start', type=float, required=True, help='theme start in seconds')
    parser.add_argument('--end', type=float, required=True, help='theme end in seconds')
    parser.add_argument('--model', default='teaching',
                        help='a CTC model: teaching (default), published:<ID> or a .weights.h5 file')
    parser.add_argument('--out', metavar='CSV', help='output file (default: standard output)')
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Align the theme and write its notes."""
    from pathlib import Path

    from ..audio import check_audio_duration
    from ..query import read_theme

    for name in ('start', 'end'):
        if not math.isfinite(getattr(args, name)):
            raise CTCChromaError(f'--{name} must be a finite number of seconds')
    if not 0 <= args.start < args.end:
        raise CTCChromaError(f'need 0 <= --start < --end, got {args.start} and {args.end}')
    theme = read_theme(args.theme)
    duration = check_audio_duration(args.audio)
    if args.start >= duration:
        raise CTCChromaError(f'--start {args.start} s lies after the end of {args.audio} '
                             f'({duration:.2f} s)')
    out = Path(args.out) if args.out else None
    if out is not None and (out.is_dir() or not out.parent.is_dir()):
        raise CTCChromaError(f'cannot write {out}: not a file in an existing folder')
    spec, _ = resolve_model(args.model)

    from ..alignment import align_theme
    from ..chroma import learned_chroma
    from ..model import load_model
    from ..themes import write_alignment_csv

    _, probs, _ = learned_chroma(args.audio, model=load_model(spec))
    notes = align_theme(probs, theme, args.start, min(args.end, duration))
    if out is None:
        print('Start;End;Pitch')
        for note in notes:
            print(f'{note.start:.6f};{note.end:.6f};{note.pitch}')
    else:
        write_alignment_csv(out, notes)
        print(f'{len(notes)} notes aligned: {out}', file=sys.stderr)
    return 0

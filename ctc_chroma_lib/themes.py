"""Monophonic themes as note lists, and their CSV files.

Notebook: 01_Task_and_Data.ipynb

A theme is a list of :class:`ThemeNote` sorted by onset. The note-list CSV files of the
teaching dataset (``data_CSV/<MTDID>.csv``) are semicolon-separated with the columns
``Start;Duration;Pitch;StartBeat;DurationBeat`` (seconds at the score tempo, MIDI pitch,
quarter-note beats), the FMP order ``Start, Duration, Pitch`` first. Strong alignments
(``data_ALIGNMENT/<MTDID>.csv``) use ``Start;End;Pitch`` in seconds of the recording.
"""
import contextlib
import csv
import io
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from .errors import CTCChromaError
from .fileio import atomic_path

THEME_CSV_COLUMNS = ('Start', 'Duration', 'Pitch', 'StartBeat', 'DurationBeat')
ALIGNMENT_CSV_COLUMNS = ('Start', 'End', 'Pitch')
MIDI_PITCHES = (0, 127)
"""Lowest and highest valid MIDI pitch."""


@dataclass(frozen=True)
class ThemeNote:
    """One note of a theme.

    Notebook: 03_CTC.ipynb

    Attributes:
        start (float): Onset in seconds (score time, or recording time for alignments)
        duration (float): Duration in seconds
        pitch (int): MIDI pitch
        start_beat (float): Onset in quarter-note beats (None if unknown)
        duration_beat (float): Duration in quarter-note beats (None if unknown)
    """

    start: float
    duration: float
    pitch: int
    start_beat: Optional[float] = None
    duration_beat: Optional[float] = None

    @property
    def end(self) -> float:
        return self.start + self.duration

    @property
    def chroma(self) -> int:
        """Chroma class (pitch class) of the note, 0 = C … 11 = B."""
        return self.pitch % 12


def import_pretty_midi():
    """Import and return ``pretty_midi`` without anything written to stdout.

    Notebook: 01_Task_and_Data.ipynb

    pretty_midi imports pyfluidsynth, which prints the path of the FluidSynth library it found
    whenever the environment variable ``CI`` is set. On stdout, that line would corrupt the
    JSON of ``ctc-chroma query --json`` and the stored outputs of the notebooks; every module
    of this package imports pretty_midi through this function.

    Returns:
        pretty_midi (module): The pretty_midi package
    """
    with contextlib.redirect_stdout(io.StringIO()):
        import pretty_midi
    return pretty_midi


def synthesize_theme(notes: Sequence[ThemeNote], fs: int = 8000, program: int = 0) -> np.ndarray:
    """Sonify a theme with pretty_midi's sine synthesizer (no SoundFont needed).

    Notebook: 01_Task_and_Data.ipynb

    Args:
        notes (list of ThemeNote): Theme, onsets and durations in seconds
        fs (int): Sampling rate (Default value = 8000)
        program (int): General MIDI program of the (only) instrument (Default value = 0)

    Returns:
        y (np.ndarray): Mono signal, float64, until one second after the last note's offset
    """
    pretty_midi = import_pretty_midi()
    midi = pretty_midi.PrettyMIDI()
    instrument = pretty_midi.Instrument(program=program)
    instrument.notes = [pretty_midi.Note(velocity=100, pitch=n.pitch, start=n.start, end=n.end)
                        for n in notes]
    midi.instruments.append(instrument)
    return midi.synthesize(fs=fs)


def check_monophonic(notes: Sequence[ThemeNote], name: str = 'theme', tol: float = 1e-6) -> None:
    """Raise :class:`CTCChromaError` unless ``notes`` is a non-empty, sorted, monophonic line.

    Args:
        notes: The theme's notes
        name: What to call the theme in the error message (e.g. its file name)
        tol: Overlap in seconds that is still accepted as legato, not polyphony
    """
    if len(notes) == 0:
        raise CTCChromaError(f'{name}: the theme has no notes')
    for i, note in enumerate(notes):
        if not (math.isfinite(note.start) and math.isfinite(note.duration)) or note.duration <= 0:
            raise CTCChromaError(f'{name}: note {i + 1} has an invalid onset or duration '
                                 f'({note.start}, {note.duration})')
        if not (isinstance(note.pitch, (int, np.integer))
                and MIDI_PITCHES[0] <= note.pitch <= MIDI_PITCHES[1]):
            raise CTCChromaError(f'{name}: note {i + 1} has an invalid pitch {note.pitch!r} '
                                 f'(expected an integer MIDI pitch {MIDI_PITCHES[0]} to '
                                 f'{MIDI_PITCHES[1]})')
    for i in range(1, len(notes)):
        if notes[i].start < notes[i - 1].start - tol:
            raise CTCChromaError(f'{name}: notes are not sorted by onset (note {i + 1})')
        if notes[i].start < notes[i - 1].end - tol:
            raise CTCChromaError(f'{name}: the theme is polyphonic (notes {i} and {i + 1} '
                                 f'overlap at {notes[i].start:.3f} s)')


def read_semicolon_csv(path, required):
    """Rows of a semicolon-separated CSV file as dicts; CTCChromaError naming the file if it
    is missing, unreadable or lacks a ``required`` column.
    """
    try:
        # utf-8-sig: spreadsheet programs often write a byte-order mark before the header
        with open(path, newline='', encoding='utf-8-sig') as f:
            reader = csv.DictReader(f, delimiter=';')
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise CTCChromaError(f'{path}: missing column(s) {", ".join(missing)} '
                                     f'(expected {";".join(required)})')
            return list(reader)
    except FileNotFoundError:
        raise CTCChromaError(f'{path}: file not found') from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CTCChromaError(f'{path}: cannot read ({e})') from None


def _number(row, column, path, kind=float):
    try:
        value = float(row[column])
    except (TypeError, ValueError):
        raise CTCChromaError(f'{path}: invalid {column} value {row[column]!r}') from None
    if kind is int:
        if not (math.isfinite(value) and value == round(value) and MIDI_PITCHES[0] <= value
                <= MIDI_PITCHES[1]):
            raise CTCChromaError(f'{path}: invalid {column} value {row[column]!r} (expected an '
                                 f'integer MIDI pitch {MIDI_PITCHES[0]} to {MIDI_PITCHES[1]})')
        return int(value)
    return value


def read_theme_csv(path) -> List[ThemeNote]:
    """Read a theme note list (``Start;Duration;Pitch[;StartBeat;DurationBeat]``).

    Args:
        path (str): Path to the CSV file

    Returns:
        notes (list of ThemeNote): Notes sorted by onset
    """
    rows = read_semicolon_csv(path, THEME_CSV_COLUMNS[:3])
    notes = []
    for row in rows:
        beats = [row.get(c) for c in THEME_CSV_COLUMNS[3:]]
        has_beats = all(b not in (None, '') for b in beats)
        notes.append(ThemeNote(
            start=_number(row, 'Start', path), duration=_number(row, 'Duration', path),
            pitch=_number(row, 'Pitch', path, int),
            start_beat=_number(row, 'StartBeat', path) if has_beats else None,
            duration_beat=_number(row, 'DurationBeat', path) if has_beats else None))
    return sorted(notes, key=lambda n: n.start)


def write_theme_csv(path, notes: Sequence[ThemeNote]) -> None:
    """Write a theme note list atomically (see :func:`read_theme_csv` for the columns)."""
    rows = [(f'{n.start:.6f}', f'{n.duration:.6f}', str(n.pitch),
             '' if n.start_beat is None else f'{n.start_beat:.6f}',
             '' if n.duration_beat is None else f'{n.duration_beat:.6f}') for n in notes]
    _write_rows(path, THEME_CSV_COLUMNS, rows)


def read_alignment_csv(path) -> List[ThemeNote]:
    """Read a strong alignment (``Start;End;Pitch``, seconds in the recording).

    Returns:
        notes (list of ThemeNote): Aligned notes (start and duration in recording seconds)
    """
    notes = []
    for row in read_semicolon_csv(path, ALIGNMENT_CSV_COLUMNS):
        start, end = _number(row, 'Start', path), _number(row, 'End', path)
        notes.append(ThemeNote(start=start, duration=end - start,
                               pitch=_number(row, 'Pitch', path, int)))
    return notes


def write_alignment_csv(path, notes: Sequence[ThemeNote]) -> None:
    """Write a strong alignment atomically (``Start;End;Pitch``)."""
    rows = [(f'{n.start:.6f}', f'{n.end:.6f}', str(n.pitch)) for n in notes]
    _write_rows(path, ALIGNMENT_CSV_COLUMNS, rows)


def _write_rows(path, header, rows):
    with atomic_path(path) as tmp, open(tmp, 'w', newline='') as f:
        writer = csv.writer(f, delimiter=';', lineterminator='\n')
        writer.writerow(header)
        writer.writerows(rows)

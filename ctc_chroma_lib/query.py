"""Symbolic theme queries: read a monophonic theme and turn it into a chroma query.

Notebook: 06_Retrieval.ipynb

A theme comes from a MIDI file (pretty_midi), a score file that music21 reads (MusicXML,
compressed MusicXML ``.mxl``, Humdrum ``**kern``, ABC, MEI) or the dataset's note-list CSV
(:func:`ctc_chroma_lib.themes.read_theme_csv`). Only monophonic themes are queries: chords or
overlapping voices are rejected, as are empty and unreadable files.

The query chromagram has one column per frame at the feature rate (25 Hz): the one-hot chroma
vector of the note sounding in that frame. Its duration follows the score tempo (the note
list's seconds), optionally stretched by a factor or to a target duration; the multi-tempo
strategy builds several stretched versions (:data:`DEFAULT_TEMPO_FACTORS`).

Rests: a frame without a sounding note *holds the previous note's chroma* (``rest='hold'``,
default). In recordings, a rest inside a theme is mostly articulation: the previous note
decays and reverberates, so its chroma is still the closest description. A zero column is
not an option (every column must have unit norm for the cosine cost, and with step sizes
(2, 1) a constant-cost column would bias paths that skip it); ``rest='uniform'`` uses the
unit-norm flat vector 1/sqrt(12) instead, which no chroma class prefers.
"""
import math
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from .constants import FEATURE_RATE
from .errors import CTCChromaError
from .themes import ThemeNote, check_monophonic, import_pretty_midi, read_theme_csv

MIDI_SUFFIXES = ('.mid', '.midi')
SCORE_SUFFIXES = ('.musicxml', '.xml', '.mxl', '.krn', '.abc', '.mei')
CSV_SUFFIXES = ('.csv',)
THEME_SUFFIXES = MIDI_SUFFIXES + SCORE_SUFFIXES + CSV_SUFFIXES

DEFAULT_TEMPO_FACTORS = (0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.4)
"""Duration factors of the multi-tempo strategy (query durations 0.7 to 1.4 times the score's).
Together with the step sizes {(2,1),(1,2),(1,1)} (local tempo ratios 1/2 to 2) this covers
performances from about 0.35 to 2.8 times the score duration."""

TEMPO_STRATEGIES = ('score', 'multi')

MAX_QUERY_FRAMES = int(12 * 3600 * FEATURE_RATE)
"""Longest query chromagram (12 hours at 25 Hz, 52 MB); longer themes are input errors."""

MAX_COMPRESSION = 2.0
"""The step sizes {(2,1),(1,2),(1,1)} let a query match a recording span at most this many
times shorter than itself."""

LEGATO_TOLERANCE = 0.03
"""Overlap (seconds) between consecutive notes of a MIDI theme still read as legato, not as
polyphony; the earlier note is cut at the later onset."""


def _read_midi(path: Path) -> List[ThemeNote]:
    pretty_midi = import_pretty_midi()
    try:
        midi = pretty_midi.PrettyMIDI(str(path))
    except Exception as e:  # pretty_midi/mido raise many types on corrupt files
        raise CTCChromaError(f'{path}: cannot read MIDI file ({type(e).__name__}: {e})') from None
    raw = sorted(((n.start, n.end, n.pitch) for inst in midi.instruments if not inst.is_drum
                  for n in inst.notes if n.end > n.start), key=lambda t: (t[0], t[2]))
    notes = []
    for i, (start, end, pitch) in enumerate(raw):
        if i + 1 < len(raw) and start < raw[i + 1][0] < end <= raw[i + 1][0] + LEGATO_TOLERANCE:
            end = raw[i + 1][0]
        notes.append(ThemeNote(start=float(start), duration=float(end - start), pitch=int(pitch)))
    return notes


def _read_score(path: Path) -> List[ThemeNote]:
    import music21
    try:
        score = music21.converter.parse(str(path))
    except Exception as e:  # music21 raises many types on corrupt or unknown input
        raise CTCChromaError(f'{path}: cannot read score file ({type(e).__name__}: {e})') from None
    try:
        flat = score.stripTies().flatten()
        events = flat.secondsMap
    except Exception as e:
        raise CTCChromaError(f'{path}: cannot interpret score ({type(e).__name__}: {e})') from None
    notes = []
    for event in events:
        element = event['element']
        if isinstance(element, music21.chord.Chord):
            raise CTCChromaError(f'{path}: the theme is polyphonic (chord at quarter-note offset '
                                 f'{float(element.offset):g}); queries must be monophonic')
        if not isinstance(element, music21.note.Note) or event['durationSeconds'] <= 0:
            continue
        notes.append(ThemeNote(
            start=float(event['offsetSeconds']), duration=float(event['durationSeconds']),
            pitch=int(element.pitch.midi), start_beat=float(element.offset),
            duration_beat=float(element.duration.quarterLength)))
    return sorted(notes, key=lambda n: (n.start, n.pitch))


def read_theme(path) -> List[ThemeNote]:
    """Read a monophonic theme from MIDI, a music21 score format or a note-list CSV.

    Notebook: 06_Retrieval.ipynb

    Args:
        path (str or Path): Theme file (.mid/.midi, .musicxml/.xml/.mxl/.krn/.abc/.mei, .csv)

    Returns:
        notes (list of ThemeNote): Notes sorted by onset, the first one starting at 0 seconds

    Raises:
        CTCChromaError: File missing, unreadable or of unknown type; theme empty or polyphonic
    """
    path = Path(path)
    if not path.is_file():
        raise CTCChromaError(f'{path}: theme file not found')
    suffix = path.suffix.lower()
    if suffix in MIDI_SUFFIXES:
        notes = _read_midi(path)
    elif suffix in SCORE_SUFFIXES:
        notes = _read_score(path)
    elif suffix in CSV_SUFFIXES:
        notes = read_theme_csv(path)
    else:
        raise CTCChromaError(f'{path}: unknown theme file type (expected one of '
                             f'{", ".join(THEME_SUFFIXES)})')
    check_monophonic(notes, name=str(path))
    t0 = notes[0].start
    return [ThemeNote(n.start - t0, n.duration, n.pitch, n.start_beat, n.duration_beat)
            for n in notes]


def _round(x: float) -> int:
    """Round half up (Python's round() rounds half to even, which makes lengths jump)."""
    return int(math.floor(x + 0.5))


def theme_duration(notes: Sequence[ThemeNote]) -> float:
    """Duration in seconds from the first onset to the last note end.

    Notebook: 06_Retrieval.ipynb
    """
    if len(notes) == 0:
        raise CTCChromaError('the theme has no notes')
    return max(n.end for n in notes) - min(n.start for n in notes)


def query_chromagram(notes: Sequence[ThemeNote], *, feature_rate=FEATURE_RATE, tempo_scale=1.0,
                     target_duration=None, rest='hold', name='theme') -> np.ndarray:
    """One-hot chroma query of a monophonic theme at the feature rate.

    Notebook: 06_Retrieval.ipynb

    Args:
        notes (list of ThemeNote): Monophonic theme (seconds at the score tempo)
        feature_rate (float): Frames per second (Default value = 25.0)
        tempo_scale (float): Factor on all onsets and durations (2.0 = query twice as long,
            i.e. half the score tempo) (Default value = 1.0)
        target_duration (float): If given, stretch the theme to this many seconds instead
            (overrides ``tempo_scale``) (Default value = None)
        rest (str): Frames without a note: 'hold' (previous note's chroma) or 'uniform'
            (1/sqrt(12) everywhere) (Default value = 'hold')
        name (str): Theme name for error messages (Default value = 'theme')

    Returns:
        X (np.ndarray): Query chromagram (12 x N) float32, unit-norm columns, N >= 1

    Raises:
        CTCChromaError: Unknown rest handling, an invalid tempo scale, feature rate or
            target duration, or a query too long to match
    """
    check_monophonic(notes, name=name)
    if rest not in ('hold', 'uniform'):
        raise CTCChromaError(f"rest must be 'hold' or 'uniform', got {rest!r}")
    duration = theme_duration(notes)
    if target_duration is not None:
        if not (math.isfinite(target_duration) and target_duration > 0):
            raise CTCChromaError(f'invalid target duration {target_duration!r}')
        scale = target_duration / duration
    else:
        scale = float(tempo_scale)
    if not (math.isfinite(scale) and scale > 0) or not feature_rate > 0:
        raise CTCChromaError(f'invalid tempo scale {tempo_scale!r} or feature rate '
                             f'{feature_rate!r}')
    t0 = min(n.start for n in notes)
    frames_per_second = scale * feature_rate
    if not duration * frames_per_second <= MAX_QUERY_FRAMES:
        raise CTCChromaError(f'{name}: the query would last {duration * scale:.4g} s, more than '
                             f'{MAX_QUERY_FRAMES / feature_rate / 3600:g} hours')
    num_frames = max(1, _round(duration * frames_per_second))
    # chroma class per frame; -1 = no note sounding (rest)
    frame_chroma = np.full(num_frames, -1, dtype=np.int64)
    for note in notes:
        a = min(_round((note.start - t0) * frames_per_second), num_frames - 1)
        # every note keeps at least one frame unless the next note starts in the same frame
        b = max(a + 1, min(_round((note.end - t0) * frames_per_second), num_frames))
        frame_chroma[a:b] = note.chroma
    X = np.zeros((12, num_frames), dtype=np.float32)
    last = -1
    for i, c in enumerate(frame_chroma):
        if c < 0 and rest == 'hold' and last >= 0:
            c = last
        if c >= 0:
            X[c, i] = 1.0
            last = c
        else:
            X[:, i] = 1.0 / np.sqrt(12.0)
    return X


def check_theme_fits(notes: Sequence[ThemeNote], longest_frames: int, tempo='score',
                     factors=DEFAULT_TEMPO_FACTORS, feature_rate=FEATURE_RATE,
                     name='theme') -> None:
    """Raise CTCChromaError if even the shortest query of a theme cannot match any recording.

    Checked before the queries are built, so that a theme of absurd length fails at once
    instead of after allocating its query.

    Args:
        notes (list of ThemeNote): Monophonic theme
        longest_frames (int): Frames of the longest recording
        tempo (str): Tempo strategy, see :func:`build_queries` (Default value = 'score')
        factors (tuple of float): Duration factors for 'multi' (Default value =
            DEFAULT_TEMPO_FACTORS)
        feature_rate (float): Frames per second (Default value = 25.0)
        name (str): Theme name for the message (Default value = 'theme')
    """
    duration = theme_duration(notes)
    shortest = duration * (min(factors) if tempo == 'multi' else 1.0)
    if shortest * feature_rate / MAX_COMPRESSION > longest_frames + 1:
        raise CTCChromaError(
            f'{name}: the theme ({duration:.4g} s at score tempo) is longer than every '
            f'recording can match (longest {longest_frames / feature_rate:.1f} s; matching '
            f'compresses a theme at most {MAX_COMPRESSION:g}-fold)')


def build_queries(notes: Sequence[ThemeNote], *, tempo='score', factors=DEFAULT_TEMPO_FACTORS,
                  target_duration=None, feature_rate=FEATURE_RATE, rest='hold',
                  name='theme') -> List[Tuple[float, np.ndarray]]:
    """Query chromagrams for a tempo strategy, as (tempo factor, chromagram) pairs.

    Notebook: 06_Retrieval.ipynb

    Args:
        notes (list of ThemeNote): Monophonic theme
        tempo (str): 'score' (one query at the score tempo, or at ``target_duration``) or
            'multi' (one query per factor) (Default value = 'score')
        factors (tuple of float): Duration factors for 'multi' (Default value =
            DEFAULT_TEMPO_FACTORS)
        target_duration (float): Expected duration in seconds; the factors then apply to it
            (Default value = None)
        feature_rate (float): Frames per second (Default value = 25.0)
        rest (str): See :func:`query_chromagram` (Default value = 'hold')
        name (str): Theme name for error messages (Default value = 'theme')

    Returns:
        queries (list of (float, np.ndarray)): (factor, 12 x N_factor chromagram) pairs

    Raises:
        CTCChromaError: Unknown tempo strategy or invalid tempo factors
    """
    if tempo not in TEMPO_STRATEGIES:
        raise CTCChromaError(f'unknown tempo strategy {tempo!r} (expected '
                             f'{" or ".join(TEMPO_STRATEGIES)})')
    chosen = (1.0,) if tempo == 'score' else tuple(float(f) for f in factors)
    if not chosen or any(not (math.isfinite(f) and f > 0) for f in chosen):
        raise CTCChromaError(f'invalid tempo factors {factors!r}')
    base = theme_duration(notes) if target_duration is None else float(target_duration)
    return [(f, query_chromagram(notes, feature_rate=feature_rate, target_duration=base * f,
                                 rest=rest, name=name)) for f in chosen]

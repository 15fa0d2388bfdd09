"""Generate the MTD-style teaching dataset from public-domain scores of the music21 corpus.

Notebook: 01_Task_and_Data.ipynb

The real Musical Theme Dataset (MTD) pairs monophonic themes with commercial recordings and
cannot be redistributed. This module builds a small stand-in with the same structure: each
item is one occurrence of a theme (a 2-8 bar phrase of the top voice of a real score), a
polyphonic audio rendering of the passage (all voices, with real neighbouring music before
and after the theme) performed with a random global tempo, a smooth rubato curve, a
phrase-final ritardando, dynamics and varied General MIDI instrumentation, the weak alignment
(theme start and end in the audio) and, because we render the audio ourselves, the exact
strong alignment of every theme note.

Usage::

    python -m ctc_chroma_lib.dataset_generation --out data/MTD-teaching [--seed 0] [--n-items N]

The output is deterministic in the seed: metadata, note lists, alignments and MIDI files are
identical on every run, and so are the decoded audio samples; the .ogg bytes differ (random
Ogg stream serial numbers) and may change with other FluidSynth or libvorbis versions.
"""
import csv
import logging
import math
import multiprocessing
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .constants import HCQT, N_FOLDS
from .errors import CTCChromaError
from .fileio import atomic_path
from .themes import ThemeNote, check_monophonic, import_pretty_midi, write_alignment_csv, write_theme_csv

LOGGER = logging.getLogger('ctc_chroma_lib.dataset_generation')

SAMPLE_RATE = HCQT.sr
"""The recordings are rendered at the HCQT's sampling rate, so nothing is resampled."""
METADATA_COLUMNS = ('MTDID', 'WorkID', 'ComposerID', 'WorkTitle', 'Ensemble', 'Polyphony',
                    'StartTime', 'EndTime', 'Fold', 'Source', 'Measures', 'ScoreTempo',
                    'TempoFactor', 'Instruments', 'Seed', 'Duration')
MODALITY_FOLDERS = ('data_AUDIO', 'data_CSV', 'data_MIDI', 'data_ALIGNMENT', 'data_PERFORMANCE')
# libsndfile maps compression_level 0..1 onto Vorbis quality 1..0 (VBR); 0.65 gives about
# 45 kbit/s for mono 22.05 kHz, transparent enough for chroma features and small enough to
# keep the whole dataset below 30 MiB.
OGG_COMPRESSION_LEVEL = 0.65
LEAD_IN = 0.1           # seconds of silence before the first sounding note
RELEASE_TAIL = 0.6      # seconds after the last note offset (instrument release, reverb)
MIN_THEME_NOTES = 4
PEAK_DBFS = -1.0

# General MIDI programs (0-based) grouped by ensemble; each tuple lists one program per part
# from the top voice down (the last entry is repeated for further parts).
INSTRUMENTATIONS = {
    'chorale': (('Choir Aahs', (52,)), ('Church Organ', (19,)), ('String Ensemble', (48,)),
                ('Winds', (73, 68, 71, 70)), ('Brass', (56, 60, 57, 58)),
                ('Strings', (40, 41, 42, 43))),
    'vocal ensemble': (('Choir Aahs', (52,)), ('Voice Oohs', (53,)), ('Recorders', (74, 74, 74, 71, 70)),
                       ('Viols', (40, 41, 41, 42, 42)), ('Church Organ', (19,))),
    'string quartet': (('String Quartet', (40, 40, 41, 42)), ('String Ensemble', (48,)),
                       ('Slow Strings', (49,)), ('Violin and Strings', (40, 48, 48, 48))),
    'piano': (('Acoustic Grand Piano', (0,)), ('Bright Acoustic Piano', (1,)),
              ('Electric Grand Piano', (2,)), ('Harpsichord', (6,))),
    'keyboard': (('Harpsichord', (6,)), ('Acoustic Grand Piano', (0,)), ('Church Organ', (19,))),
    'voice and piano': (('Choir Aahs and Piano', (52, 0)), ('Violin and Piano', (40, 0)),
                        ('Flute and Piano', (73, 0)), ('Clarinet and Piano', (71, 0)),
                        ('Cello and Piano', (42, 0))),
    'trio sonata': (('Violins and Harpsichord', (40, 40, 6)), ('Strings and Organ', (40, 40, 19)),
                    ('Flutes and Harpsichord', (73, 73, 6))),
    'solo and piano': (('Clarinet and Piano', (71, 0)), ('Oboe and Piano', (68, 0)),
                       ('Violin and Piano', (40, 0))),
}


@dataclass(frozen=True)
class WorkSpec:
    """One score of the music21 corpus that becomes a work of the dataset."""

    composer: str          # ComposerID, e.g. 'Bach'
    source: str            # music21 corpus path, e.g. 'bach/bwv10.7.mxl'
    ensemble: str          # key of INSTRUMENTATIONS
    max_phrases: int       # at most this many themes are taken from the work
    score_tempo: Optional[float] = None  # quarter notes per minute, None: from the score
    melody_part: int = 0   # index of the part that carries the theme


@dataclass
class Phrase:
    """A theme candidate: its notes and the passage (all voices) around it, in score beats."""

    work_index: int
    phrase_index: int
    theme: List[Tuple[float, float, int]]            # (onset, duration, pitch) in beats
    passage: List[Tuple[float, float, int, int]]     # (onset, duration, pitch, part)
    melody_mask: List[bool]                          # passage note is a theme note
    measures: str
    n_parts: int


@dataclass
class RenderedItem:
    """Everything that is written for one dataset item (in memory)."""

    work_index: int
    phrase_index: int
    theme: List[ThemeNote]
    alignment: List[ThemeNote]
    audio: np.ndarray
    performance_midi: object
    theme_midi: object
    metadata: dict = field(default_factory=dict)


def _corpus_works():
    """The list of works, fixed so that the dataset can be regenerated identically.

    Notebook: 01_Task_and_Data.ipynb

    Returns:
        works (list of WorkSpec): Works in generation order
    """
    from music21 import corpus

    def stems(composer, suffixes):
        root = Path(corpus.getComposer(composer)[0]).parents[0]
        while root.name != 'corpus':
            root = root.parent
        return sorted(str(Path(p).relative_to(root)) for p in corpus.getComposer(composer)
                      if Path(p).suffix in suffixes)

    works = []
    chorales = [s for s in stems('bach', ('.mxl',)) if re.fullmatch(r'bach/bwv\d+\.\d+\.mxl', s)]
    works += [WorkSpec('Bach', s, 'chorale', 3, 76.0) for s in chorales[:48]]
    palestrina = [s for s in stems('palestrina', ('.krn',))
                  if re.fullmatch(r'palestrina/(Kyrie|Agnus|Benedictus)_0\d\.krn', s)]
    works += [WorkSpec('Palestrina', s, 'vocal ensemble', 4) for s in palestrina[:16]]
    madrigals = [s for s in stems('monteverdi', ('.mxl',)) if '_old' not in s]
    works += [WorkSpec('Monteverdi', s, 'vocal ensemble', 4) for s in madrigals[:16]]
    works += [WorkSpec('Josquin', s, 'vocal ensemble', 4) for s in stems('josquin', ('.abc',))]
    works += [WorkSpec('Haydn', s, 'string quartet', 4) for s in stems('haydn', ('.mxl',))]
    mozart = stems('mozart', ('.mxl',))
    works += [WorkSpec('Mozart', s, 'piano' if 'k545' in s else 'string quartet', 3)
              for s in mozart]
    beethoven = [s for s in stems('beethoven', ('.mxl',))
                 if re.search(r'opus18no1/', s)]
    works += [WorkSpec('Beethoven', s, 'string quartet', 4) for s in beethoven]
    works += [WorkSpec('Schumann', s, 'string quartet', 4)
              for s in stems('schumann_robert', ('.mxl',)) if 'opus41' in s]
    works += [WorkSpec('Schumann', 'schumann_robert/dichterliebe_no2.xml', 'voice and piano', 4),
              WorkSpec('Schumann', 'schumann_robert/opus48no2.mxl', 'voice and piano', 4)]
    works += [WorkSpec('Schumann_Clara', s, 'piano', 4)
              for s in stems('schumann_clara', ('.mxl', '.xml'))]
    works += [WorkSpec('Schubert', 'schubert/Lindenbaum.xml', 'voice and piano', 6),
              WorkSpec('Chopin', 'chopin/mazurka06-2.krn', 'piano', 6),
              WorkSpec('Joplin', 'joplin/maple_leaf_rag.mxl', 'piano', 6),
              WorkSpec('Corelli', 'corelli/opus3no1/1grave.xml', 'trio sonata', 5),
              WorkSpec('Verdi', 'verdi/laDonnaEMobile.mxl', 'voice and piano', 6),
              WorkSpec('Weber', 'weber/concertino_clarinet.mxl', 'solo and piano', 6),
              WorkSpec('CPE_Bach', 'cpebach/h186.mxl', 'keyboard', 6),
              WorkSpec('Handel', 'handel/rinaldo/Lascia_chio_pianga.mxl', 'voice and piano', 6)]
    return works


def _load_score(source: str):
    """Parse a music21 corpus score (music21 keeps its parse cache in its scratch folder)."""
    from music21 import corpus
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            score = corpus.parse(source)
            # ABC files hold one voice per tune: merge the voices into one score.
            return score.mergeScores() if hasattr(score, 'mergeScores') else score
        except Exception as e:  # music21 raises many exception types for odd files
            raise CTCChromaError(f'{source}: cannot parse score ({e})') from None


def score_notes(score) -> np.ndarray:
    """All pitched notes of a score as rows (onset, duration, pitch, part) in quarter beats.

    Args:
        score (music21.stream.Score): Parsed score

    Returns:
        notes (np.ndarray): N x 4 array, sorted by onset, part, pitch; ties merged, chords
            split into their pitches, grace notes dropped
    """
    rows = []
    for part_index, part in enumerate(score.parts):
        for element in part.flatten().stripTies().notes:
            duration = float(element.quarterLength)
            if duration <= 0:
                continue
            pitches = getattr(element, 'pitches', ())
            for p in pitches:
                rows.append((float(element.offset), duration, int(p.midi), part_index))
    notes = np.array(rows, dtype=float).reshape(-1, 4)
    order = np.lexsort((notes[:, 2], notes[:, 3], notes[:, 0]))
    return notes[order]


def monophonic_line(notes: np.ndarray) -> np.ndarray:
    """Reduce one part to its top line: highest pitch per onset, overlaps truncated.

    Args:
        notes (np.ndarray): N x >=3 array (onset, duration, pitch, ...) of one part

    Returns:
        line (np.ndarray): M x 3 array (onset, duration, pitch), strictly monophonic
    """
    if len(notes) == 0:
        return np.zeros((0, 3))
    line = []
    for onset in np.unique(notes[:, 0]):
        group = notes[notes[:, 0] == onset]
        top = group[np.argmax(group[:, 2])]
        line.append([onset, top[1], top[2]])
    line = np.array(line)
    ends = line[:, 0] + line[:, 1]
    ends[:-1] = np.minimum(ends[:-1], line[1:, 0])
    line[:, 1] = ends - line[:, 0]
    return line[line[:, 1] > 1e-6]


def _measure_table(part) -> np.ndarray:
    """Rows (number, offset, length) of the measures of a part, in quarter beats."""
    rows = [(m.number, float(m.offset), float(m.quarterLength))
            for m in part.getElementsByClass('Measure')]
    return np.array(rows, dtype=float).reshape(-1, 3)


def _fermata_ends(part) -> List[float]:
    """Offsets (quarter beats) where a note with a fermata ends in a part."""
    from music21 import expressions
    ends = []
    for n in part.flatten().stripTies().notes:
        if any(isinstance(e, expressions.Fermata) for e in n.expressions):
            ends.append(float(n.offset + n.quarterLength))
    return sorted(set(ends))


def _score_tempo(score, line: np.ndarray, spec: WorkSpec) -> float:
    """Score tempo in quarter notes per minute: given, from a metronome mark, or estimated."""
    if spec.score_tempo:
        return float(spec.score_tempo)
    from music21 import tempo
    for mark in score.recurse().getElementsByClass(tempo.MetronomeMark):
        qpm = mark.getQuarterBPM()
        if qpm is not None and 40 <= qpm <= 200:
            return float(round(qpm))
    # Without a mark, choose the tempo that makes a typical melody note last half a second.
    median_beats = float(np.median(line[:, 1])) if len(line) else 1.0
    return float(np.clip(round(60.0 * median_beats / 0.5), 60, 200))


def phrase_spans(measures: np.ndarray, fermata_ends: Sequence[float], qpm: float,
                 target_seconds: float = 6.0) -> List[Tuple[float, float]]:
    """Split a score into consecutive 2-8 bar phrases.

    Chorale phrases end at fermatas (short ones are merged until they span two bars);
    otherwise the score is cut into groups of bars lasting about ``target_seconds``.

    Args:
        measures (np.ndarray): M x 3 rows (number, offset, length) in quarter beats
        fermata_ends (list of float): Phrase ends marked by fermatas (quarter beats)
        qpm (float): Score tempo in quarter notes per minute
        target_seconds (float): Typical phrase duration at the score tempo (Default value = 6.0)

    Returns:
        spans (list of (float, float)): (start, end) in quarter beats
    """
    if len(measures) == 0:
        return []
    bar = float(np.median(measures[:, 2]))
    score_end = float(measures[-1, 1] + measures[-1, 2])
    spans = []
    if len(fermata_ends) >= 2:
        start = 0.0
        for end in fermata_ends:
            if end - start >= 2 * bar - 1e-6:
                if end - start <= 8 * bar + 1e-6:
                    spans.append((start, end))
                start = end
        return spans
    bars_per_phrase = int(np.clip(round(target_seconds * qpm / 60.0 / bar), 2, 8))
    starts = measures[::bars_per_phrase, 1]
    for start in starts:
        spans.append((float(start), float(min(start + bars_per_phrase * bar, score_end))))
    return spans


def _measure_label(measures: np.ndarray, onset: float, end: float) -> str:
    """Measure numbers 'a-b' covering the quarter-beat range [onset, end)."""
    first = measures[np.searchsorted(measures[:, 1], onset + 1e-6, side='right') - 1, 0]
    last = measures[np.searchsorted(measures[:, 1], end - 1e-6, side='right') - 1, 0]
    return f'{int(first)}-{int(last)}'


def extract_phrases(spec: WorkSpec, work_index: int, seed: int):
    """Parse a work and cut it into theme candidates with their passages.

    Args:
        spec (WorkSpec): The work
        work_index (int): Position of the work in the work list
        seed (int): Dataset seed (context lengths and tempo factors are drawn per item)

    Returns:
        phrases (list of Phrase): Selected phrases
        qpm (float): Score tempo
        title (str): Work title
        skipped (list of str): Why candidates were skipped
    """
    score = _load_score(spec.source)
    notes = score_notes(score)
    n_parts = len(score.parts)
    melody_index = _melody_part_index(score, spec)
    melody_part = score.parts[melody_index]
    line = monophonic_line(notes[notes[:, 3] == melody_index])
    measures = _measure_table(melody_part)
    qpm = _score_tempo(score, line, spec)
    fermatas = _fermata_ends(melody_part) if spec.ensemble == 'chorale' else []
    spans = phrase_spans(measures, fermatas, qpm)
    title = (score.metadata.title if score.metadata is not None and score.metadata.title
             else Path(spec.source).stem)
    skipped, candidates = [], []
    for start, end in spans:
        theme = line[(line[:, 0] >= start - 1e-6) & (line[:, 0] < end - 1e-6)].copy()
        if len(theme) < MIN_THEME_NOTES:
            skipped.append(f'{spec.source} beats {start:g}-{end:g}: only {len(theme)} notes')
            continue
        theme[-1, 1] = min(theme[-1, 1], end - theme[-1, 0])
        sounding = theme[:, 1].sum() / (theme[-1, 0] + theme[-1, 1] - theme[0, 0])
        if sounding < 0.5:
            skipped.append(f'{spec.source} beats {start:g}-{end:g}: melody rests too much')
            continue
        candidates.append(theme)
    if len(candidates) > spec.max_phrases:
        # Spread the chosen phrases over the whole work, first and last phrase included.
        picks = np.unique(np.round(np.linspace(0, len(candidates) - 1, spec.max_phrases)))
        candidates = [candidates[int(i)] for i in picks]
    phrases = []
    score_end = float(np.max(notes[:, 0] + notes[:, 1])) if len(notes) else 0.0
    for phrase_index, theme in enumerate(candidates):
        rng = item_rng(seed, work_index, phrase_index)
        tempo_factor, pre_s, post_s = _draw_timing(rng)
        beats_per_second = qpm * tempo_factor / 60.0
        theme_start, theme_end = theme[0, 0], theme[-1, 0] + theme[-1, 1]
        passage_start = max(0.0, theme_start - pre_s * beats_per_second)
        passage_end = min(score_end, theme_end + post_s * beats_per_second)
        passage, melody_mask = _passage_notes(notes, theme, melody_index,
                                              passage_start, passage_end)
        phrases.append(Phrase(
            work_index=work_index, phrase_index=phrase_index,
            theme=[tuple(map(float, row)) for row in theme],
            passage=passage, melody_mask=melody_mask,
            measures=_measure_label(measures, theme_start, theme_end), n_parts=n_parts))
    return phrases, qpm, str(title), skipped


def _melody_part_index(score, spec: WorkSpec) -> int:
    """The part that carries the theme: the soprano of a chorale (some chorales list
    obbligato instruments first), otherwise the part given in the work spec."""
    if spec.ensemble == 'chorale':
        for index, part in enumerate(score.parts):
            if (part.partName or '').strip().lower().startswith('soprano'):
                return index
    return spec.melody_part


def _passage_notes(notes, theme, melody_part, passage_start, passage_end):
    """Notes of all parts sounding in the passage; theme notes replaced by the theme's line."""
    theme_keys = {(round(t[0], 6), int(t[2])): i for i, t in enumerate(theme)}
    passage, melody_mask = [], []
    theme_start = theme[0, 0]
    theme_end = theme[-1, 0] + theme[-1, 1]
    for onset, duration, pitch, part in notes:
        if onset < passage_start - 1e-6 or onset >= passage_end - 1e-6:
            continue
        key = (round(onset, 6), int(pitch))
        if part == melody_part and key in theme_keys:
            # pop: a unison of two voices in the melody part must not yield two theme notes
            t = theme[theme_keys.pop(key)]
            passage.append((float(t[0]), float(t[1]), int(t[2]), int(part)))
            melody_mask.append(True)
            continue
        if part == melody_part and theme_start - 1e-6 <= onset < theme_end - 1e-6:
            # Another note of the melody part inside the theme: keep it only if it is below
            # the theme note sounding at that time (an accompanying chord tone).
            sounding = theme[(theme[:, 0] <= onset + 1e-6) & (theme[:, 0] + theme[:, 1] > onset + 1e-6)]
            if len(sounding) and pitch >= sounding[0, 2]:
                continue
        end = min(onset + duration, passage_end)
        passage.append((float(onset), float(end - onset), int(pitch), int(part)))
        melody_mask.append(False)
    return passage, melody_mask


def item_rng(seed: int, work_index: int, phrase_index: int) -> np.random.Generator:
    """The random generator of one item (independent of the order items are processed in)."""
    return np.random.default_rng([seed, work_index, phrase_index])


def _draw_timing(rng: np.random.Generator):
    """Global tempo factor and context lengths (seconds) before and after the theme."""
    tempo_factor = float(rng.uniform(0.75, 1.25))
    pre_s, post_s = (float(x) for x in rng.uniform(0.5, 2.0, size=2))
    return tempo_factor, pre_s, post_s


def tempo_curve(beats: np.ndarray, rng: np.random.Generator, depth: float = 0.08,
                ritardando_end: Optional[float] = None, ritardando: float = 0.1,
                ritardando_beats: float = 2.0) -> np.ndarray:
    """Local tempo multiplier: a smooth random rubato curve with a phrase-final ritardando.

    Args:
        beats (np.ndarray): Score positions in quarter beats (increasing)
        rng (np.random.Generator): Random generator of the item
        depth (float): Largest relative deviation of the rubato curve (Default value = 0.08)
        ritardando_end (float): Beat where the ritardando reaches its slowest tempo, followed
            by a return to tempo within one beat; None for none (Default value = None)
        ritardando (float): Relative slowing at ``ritardando_end`` (Default value = 0.1)
        ritardando_beats (float): Length of the ritardando in beats (Default value = 2.0)

    Returns:
        multiplier (np.ndarray): Positive tempo multiplier per beat position (same shape)
    """
    curve = np.zeros_like(beats, dtype=float)
    # A few slow sinusoids (periods of 3 to 16 beats) give a smooth, non-periodic curve.
    for _ in range(3):
        period = rng.uniform(3.0, 16.0)
        curve += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * beats / period + rng.uniform(0, 2 * np.pi))
    peak = np.max(np.abs(curve)) if len(curve) else 0.0
    multiplier = 1.0 + (depth * curve / peak if peak > 0 else 0.0)
    if ritardando_end is not None and ritardando > 0:
        before = np.clip((beats - (ritardando_end - ritardando_beats)) / ritardando_beats, 0, 1)
        after = np.clip(1 - (beats - ritardando_end), 0, 1)
        shape = np.where(beats <= ritardando_end, before, after)
        shape = shape * shape * (3 - 2 * shape)  # smoothstep
        multiplier = multiplier * (1.0 - ritardando * shape)
    return multiplier


def performance_time_map(beats: np.ndarray, qpm: float, tempo_factor: float,
                         multiplier: Optional[np.ndarray] = None) -> np.ndarray:
    """Performance time (seconds) of score positions played with a varying tempo.

    The tempo at beat b is ``qpm * tempo_factor * multiplier(b)`` quarter notes per minute;
    the time is its inverse integrated over the beats (trapezoidal rule), so it increases
    strictly wherever the tempo is positive.

    Args:
        beats (np.ndarray): Increasing score positions in quarter beats, first one at time 0
        qpm (float): Score tempo in quarter notes per minute
        tempo_factor (float): Global tempo factor of the performance
        multiplier (np.ndarray): Local tempo multiplier per position; None for constant
            tempo (Default value = None)

    Returns:
        seconds (np.ndarray): Time of each position, starting at 0 (same shape as ``beats``)
    """
    beats = np.asarray(beats, dtype=float)
    if multiplier is None:
        multiplier = np.ones_like(beats)
    if np.any(np.diff(beats) <= 0):
        raise CTCChromaError('performance_time_map: beats must increase strictly')
    if np.any(np.asarray(multiplier) <= 0) or qpm <= 0 or tempo_factor <= 0:
        raise CTCChromaError('performance_time_map: tempo must be positive')
    seconds_per_beat = 60.0 / (qpm * tempo_factor * np.asarray(multiplier, dtype=float))
    steps = np.diff(beats) * 0.5 * (seconds_per_beat[1:] + seconds_per_beat[:-1])
    return np.concatenate([[0.0], np.cumsum(steps)])


def _draw_instrumentation(ensemble: str, n_parts: int, rng: np.random.Generator):
    """Pick an instrumentation of the ensemble; returns its name and one program per part."""
    choices = INSTRUMENTATIONS[ensemble]
    name, programs = choices[int(rng.integers(len(choices)))]
    per_part = [programs[min(i, len(programs) - 1)] for i in range(n_parts)]
    return name, per_part


def perform_phrase(phrase: Phrase, qpm: float, ensemble: str, seed: int):
    """Turn a phrase into a performance MIDI and the theme's strong alignment.

    Args:
        phrase (Phrase): Theme and passage in score beats
        qpm (float): Score tempo
        ensemble (str): Key of INSTRUMENTATIONS
        seed (int): Dataset seed

    Returns:
        midi (pretty_midi.PrettyMIDI): Everything that is rendered (performance times)
        alignment (list of ThemeNote): Theme notes in performance seconds
        info (dict): Tempo factor, instrumentation name and reverb settings
    """
    pretty_midi = import_pretty_midi()
    rng = item_rng(seed, phrase.work_index, phrase.phrase_index)
    tempo_factor, _, _ = _draw_timing(rng)
    passage = np.array(phrase.passage, dtype=float).reshape(-1, 4)
    theme = np.array(phrase.theme, dtype=float)
    start = float(passage[:, 0].min())
    end = float((passage[:, 0] + passage[:, 1]).max())
    grid = np.arange(start, end + 1 / 48, 1 / 48)  # 1/48 beat resolves sextuplet 32nds
    theme_end = float(theme[-1, 0] + theme[-1, 1])
    multiplier = tempo_curve(grid, rng, depth=float(rng.uniform(0.04, 0.08)),
                             ritardando_end=theme_end, ritardando=float(rng.uniform(0.05, 0.15)))
    seconds = performance_time_map(grid, qpm, tempo_factor, multiplier) + LEAD_IN

    def to_seconds(b):
        return np.interp(b, grid, seconds)

    instrumentation, programs = _draw_instrumentation(ensemble, phrase.n_parts, rng)
    base_velocity = rng.uniform(62, 88)
    part_gain = rng.uniform(-6, 6, size=phrase.n_parts)
    midi = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=qpm * tempo_factor)
    tracks = {}
    for part in range(phrase.n_parts):
        program = programs[part]
        tracks[part] = pretty_midi.Instrument(
            program=program, name=f'part {part + 1}: {pretty_midi.program_to_instrument_name(program)}')
    melody_program = programs[0]
    melody = pretty_midi.Instrument(
        program=melody_program, name=f'melody: {pretty_midi.program_to_instrument_name(melody_program)}')
    alignment = []
    span = max(end - start, 1e-6)
    for (onset, duration, pitch, part), is_melody in zip(passage, phrase.melody_mask):
        t0, t1 = to_seconds(onset), to_seconds(onset + duration)
        # Slightly detached playing, but never shorter than 50 ms.
        t1 = max(t0 + 0.05, t1 - min(0.04, 0.12 * (t1 - t0)))
        arch = 10.0 * math.sin(math.pi * (onset - start) / span)  # phrase dynamics
        velocity = base_velocity + arch + part_gain[int(part)] + rng.normal(0, 4)
        if is_melody:
            velocity += 10  # the theme's voice leads
        note = pretty_midi.Note(velocity=int(np.clip(round(velocity), 25, 120)),
                                pitch=int(pitch), start=float(t0), end=float(t1))
        if is_melody:
            melody.notes.append(note)
            alignment.append(ThemeNote(start=round(float(t0), 6), duration=round(float(t1 - t0), 6),
                                       pitch=int(pitch)))
        else:
            tracks[int(part)].notes.append(note)
    midi.instruments = [melody] + [tracks[p] for p in sorted(tracks) if tracks[p].notes]
    alignment.sort(key=lambda n: n.start)
    reverb = None
    if rng.uniform() < 0.7:
        reverb = (float(rng.uniform(0.1, 0.2)), float(rng.uniform(0.08, 0.3)))  # wet, decay
    info = {'tempo_factor': tempo_factor, 'instrumentation': instrumentation,
            'programs': programs, 'reverb': reverb,
            'reverb_seed': int(rng.integers(2 ** 31))}
    return midi, alignment, info


def _soundfont_path() -> str:
    pretty_midi = import_pretty_midi()
    path = Path(pretty_midi.__file__).parent / 'TimGM6mb.sf2'
    if not path.exists():
        raise CTCChromaError(f'{path}: SoundFont not found (it ships with pretty_midi)')
    return str(path)


def render_audio(midi, reverb=None, sr: int = SAMPLE_RATE, reverb_seed: int = 0) -> np.ndarray:
    """Render a performance MIDI with FluidSynth; optional short synthetic reverb; -1 dBFS peak.

    Args:
        midi (pretty_midi.PrettyMIDI): Performance
        reverb ((float, float)): (wet mix, decay time constant in s) or None (Default value = None)
        sr (int): Sampling rate (Default value = 22050)
        reverb_seed (int): Seed of the reverb's noise impulse response (Default value = 0)

    Returns:
        y (np.ndarray): Mono float32 signal ending RELEASE_TAIL s after the last note offset
    """
    from scipy.signal import fftconvolve
    y = midi.fluidsynth(fs=sr, synthesizer=_soundfont_path()).astype(np.float64)
    n = int(round((midi.get_end_time() + RELEASE_TAIL) * sr))
    y = np.pad(y, (0, max(0, n - len(y))))[:n]
    if reverb is not None:
        wet, decay = reverb
        rng = np.random.default_rng(reverb_seed)
        t = np.arange(int(4 * decay * sr)) / sr
        impulse = rng.standard_normal(len(t)) * np.exp(-t / decay)
        reverberant = fftconvolve(y, impulse)[:n]
        scale = np.sqrt(np.mean(y ** 2) / max(np.mean(reverberant ** 2), 1e-20))
        y = (1 - wet) * y + wet * scale * reverberant
    peak = np.max(np.abs(y))
    if peak > 0:
        y = y * (10 ** (PEAK_DBFS / 20) / peak)
    return y.astype(np.float32)


def theme_notes(phrase: Phrase, qpm: float) -> List[ThemeNote]:
    """The theme in score seconds at the score tempo, starting at 0."""
    theme = np.array(phrase.theme, dtype=float)
    beats = theme[:, 0] - theme[0, 0]
    seconds_per_beat = 60.0 / qpm
    # Round onsets and offsets (not durations) to the CSV precision, so that rounding can
    # never make consecutive notes overlap.
    starts = np.round(beats * seconds_per_beat, 6)
    ends = np.round((beats + theme[:, 1]) * seconds_per_beat, 6)
    ends[:-1] = np.minimum(ends[:-1], starts[1:])
    return [ThemeNote(start=float(start), duration=float(round(end - start, 6)),
                      pitch=int(pitch), start_beat=round(float(beat), 6),
                      duration_beat=round(float(dur), 6))
            for start, end, pitch, beat, dur in zip(starts, ends, theme[:, 2], beats, theme[:, 1])]


def theme_midi(notes: Sequence[ThemeNote], qpm: float, program: int = 0):
    """A one-track MIDI file of the theme at the score tempo."""
    pretty_midi = import_pretty_midi()
    midi = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=qpm)
    track = pretty_midi.Instrument(program=program, name='theme')
    track.notes = [pretty_midi.Note(velocity=80, pitch=n.pitch, start=n.start, end=n.end)
                   for n in notes]
    midi.instruments.append(track)
    return midi


def _process_work(args):
    """Worker: parse a work, render all its items (runs in a separate process)."""
    spec, work_index, seed = args
    try:
        phrases, qpm, title, skipped = extract_phrases(spec, work_index, seed)
    except Exception as e:  # a score music21 cannot handle is skipped, not fatal
        return [], [f'{spec.source}: {type(e).__name__}: {e}']
    items = []
    for phrase in phrases:
        theme = theme_notes(phrase, qpm)
        try:
            check_monophonic(theme, f'{spec.source} measures {phrase.measures}')
        except CTCChromaError as e:
            skipped.append(str(e))
            continue
        midi, alignment, info = perform_phrase(phrase, qpm, spec.ensemble, seed)
        if [n.pitch for n in alignment] != [n.pitch for n in theme]:
            skipped.append(f'{spec.source} measures {phrase.measures}: alignment does not '
                           f'match the theme')
            continue
        audio = render_audio(midi, info['reverb'], reverb_seed=info['reverb_seed'])
        instruments = sorted({pretty_name(p) for p in info['programs']})
        metadata = {
            'WorkID': work_id(spec), 'ComposerID': spec.composer, 'WorkTitle': title,
            'Ensemble': spec.ensemble, 'Polyphony': phrase.n_parts,
            'StartTime': f'{alignment[0].start:.6f}', 'EndTime': f'{alignment[-1].end:.6f}',
            'Source': spec.source, 'Measures': phrase.measures, 'ScoreTempo': f'{qpm:g}',
            'TempoFactor': f'{info["tempo_factor"]:.4f}',
            'Instruments': f'{info["instrumentation"]} ({", ".join(instruments)})',
            'Seed': f'{seed}/{work_index}/{phrase.phrase_index}',
            'Duration': f'{len(audio) / SAMPLE_RATE:.6f}'}
        items.append(RenderedItem(work_index=work_index, phrase_index=phrase.phrase_index,
                                  theme=theme, alignment=alignment, audio=audio,
                                  performance_midi=midi, theme_midi=theme_midi(theme, qpm),
                                  metadata=metadata))
    return items, skipped


def pretty_name(program: int) -> str:
    """General MIDI instrument name of a program number."""
    pretty_midi = import_pretty_midi()
    return pretty_midi.program_to_instrument_name(int(program))


def work_id(spec: WorkSpec) -> str:
    """A readable WorkID from the corpus path, e.g. 'Bach_bwv10.7'.

    Notebook: 01_Task_and_Data.ipynb
    """
    stem = str(Path(spec.source).with_suffix('')).split('/', 1)[1].replace('/', '-')
    return f'{spec.composer}_{stem}'


def assign_folds(work_items: Sequence[Tuple[str, str, int]], n_folds: int = 5) -> dict:
    """Split works into folds: no work in two folds, item counts and composers balanced.

    Each composer's works, largest first, go to the fold with the fewest items of that
    composer (ties: fewest items in total, then the lowest fold number).

    Args:
        work_items (list of (str, str, int)): (WorkID, ComposerID, number of items)
        n_folds (int): Number of folds (Default value = 5)

    Returns:
        folds (dict): WorkID -> fold number 1..n_folds
    """
    totals = np.zeros(n_folds, dtype=int)
    folds = {}
    composers = sorted({c for _, c, _ in work_items},
                       key=lambda c: -sum(n for _, cc, n in work_items if cc == c))
    for composer in composers:
        per_composer = np.zeros(n_folds, dtype=int)
        works = sorted([w for w in work_items if w[1] == composer], key=lambda w: (-w[2], w[0]))
        for wid, _, count in works:
            fold = min(range(n_folds), key=lambda f: (per_composer[f], totals[f], f))
            folds[wid] = fold + 1
            per_composer[fold] += count
            totals[fold] += count
    return folds


def _sha256(path: Path) -> str:
    from .fileio import sha256_file
    return sha256_file(path)


def write_manifest(root: Path) -> Path:
    """Write MANIFEST.sha256 (``<sha256>  <relative path>`` per file, sorted)."""
    root = Path(root)
    lines = [f'{_sha256(p)}  {p.relative_to(root).as_posix()}'
             for p in sorted(root.rglob('*')) if p.is_file() and p.name != 'MANIFEST.sha256'
             and not p.name.startswith('.')]
    path = root / 'MANIFEST.sha256'
    with atomic_path(path) as tmp, open(tmp, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def _write_item(root: Path, mtd_id: str, item: RenderedItem) -> None:
    import soundfile as sf
    with atomic_path(root / 'data_AUDIO' / f'{mtd_id}.ogg') as tmp:
        sf.write(tmp, item.audio, SAMPLE_RATE, format='OGG', subtype='VORBIS',
                 compression_level=OGG_COMPRESSION_LEVEL)
    write_theme_csv(root / 'data_CSV' / f'{mtd_id}.csv', item.theme)
    write_alignment_csv(root / 'data_ALIGNMENT' / f'{mtd_id}.csv', item.alignment)
    with atomic_path(root / 'data_MIDI' / f'{mtd_id}.mid') as tmp:
        item.theme_midi.write(tmp)
    with atomic_path(root / 'data_PERFORMANCE' / f'{mtd_id}.mid') as tmp:
        item.performance_midi.write(tmp)


README_TEMPLATE = 'templates/dataset_README.md'
"""The dataset README (package data of ``ctc_chroma_lib``), a ``str.format`` template filled
in by :func:`write_readme`."""


def write_readme(root: Path, rows: Sequence[dict], seed: int) -> None:
    """Write the dataset's README.md with its statistics."""
    composers = sorted({r['ComposerID'] for r in rows},
                       key=lambda c: (-sum(r['ComposerID'] == c for r in rows), c))
    table = '\n'.join(
        f'| {c} | {sum(r["ComposerID"] == c for r in rows)} | '
        f'{len({r["WorkID"] for r in rows if r["ComposerID"] == c})} |' for c in composers)
    folds = ', '.join(f'fold {f}: {sum(int(r["Fold"]) == f for r in rows)} items'
                      for f in range(1, N_FOLDS + 1))
    from importlib.resources import files
    template = files(__package__).joinpath(README_TEMPLATE).read_text(encoding='utf-8')
    text = template.format(
        seed=seed, n_items=len(rows), n_works=len({r['WorkID'] for r in rows}),
        n_composers=len(composers), minutes=sum(float(r['Duration']) for r in rows) / 60,
        composer_table=table, fold_counts=folds, min_notes=MIN_THEME_NOTES,
        ogg_level=OGG_COMPRESSION_LEVEL)
    with atomic_path(Path(root) / 'README.md') as tmp, open(tmp, 'w') as f:
        f.write(text)


def write_metadata(path: Path, rows: Sequence[dict]) -> None:
    """Write the semicolon-separated metadata table (columns METADATA_COLUMNS)."""
    with atomic_path(path) as tmp, open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=METADATA_COLUMNS, delimiter=';',
                                lineterminator='\n')
        writer.writeheader()
        writer.writerows(rows)


def generate_dataset(out, seed: int = 0, n_items: Optional[int] = None, jobs: int = 2,
                     progress: bool = True) -> List[dict]:
    """Generate the teaching dataset into ``out``.

    Args:
        out (str or Path): Output folder (e.g. data/MTD-teaching)
        seed (int): Dataset seed (Default value = 0)
        n_items (int): Stop after this many items (None: all) (Default value = None)
        jobs (int): Worker processes (Default value = 2)
        progress (bool): Show a tqdm progress bar on stderr (Default value = True)

    Returns:
        rows (list of dict): The metadata rows written
    """
    from tqdm import tqdm
    root = Path(out)
    works = _corpus_works()
    tasks = [(spec, index, seed) for index, spec in enumerate(works)]
    rows, written = [], set()
    bar = tqdm(total=len(tasks), unit='work', disable=not progress, file=sys.stderr)
    context = multiprocessing.get_context('spawn' if sys.platform == 'darwin' else 'fork')
    with context.Pool(max(1, jobs)) as pool:
        for items, skipped in pool.imap(_process_work, tasks):
            bar.update(1)
            for message in skipped:
                LOGGER.warning('skipped: %s', message)
            for item in items:
                if n_items is not None and len(rows) >= n_items:
                    break
                mtd_id = f'MTDT{len(rows) + 1:04d}'
                _write_item(root, mtd_id, item)
                rows.append({'MTDID': mtd_id, **item.metadata})
                written.add(mtd_id)
            bar.set_postfix(items=len(rows))
            if n_items is not None and len(rows) >= n_items:
                pool.terminate()
                break
    bar.close()
    folds = assign_folds(sorted({(r['WorkID'], r['ComposerID'],
                                  sum(1 for q in rows if q['WorkID'] == r['WorkID']))
                                 for r in rows}))
    for row in rows:
        row['Fold'] = folds[row['WorkID']]
    # Files of an earlier, larger run would otherwise linger in the manifest.
    for folder in MODALITY_FOLDERS:
        for path in (root / folder).glob('*'):
            if path.stem not in written:
                path.unlink()
    write_metadata(root / 'MTD-teaching.csv', rows)
    write_readme(root, rows, seed)
    write_manifest(root)
    return rows


def main(argv=None) -> int:
    """``python -m ctc_chroma_lib.dataset_generation`` runs ``ctc-chroma dataset``.

    Args:
        argv (list of str): Arguments (Default value = None: sys.argv)

    Returns:
        status (int): 0 on success, 2 for bad input
    """
    from .cli import main as cli_main
    return cli_main(['dataset'] + list(sys.argv[1:] if argv is None else argv))


if __name__ == '__main__':
    sys.exit(main())

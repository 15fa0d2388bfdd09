"""Theme note lists: CSV round trips, the monophony check, pretty_midi import and sonification."""
import sys

import numpy as np
import pytest

from ctc_chroma_lib.errors import CTCChromaError
from ctc_chroma_lib.themes import (ThemeNote, check_monophonic, import_pretty_midi,
                                   read_alignment_csv, read_theme_csv, synthesize_theme,
                                   write_alignment_csv, write_theme_csv)

NOTES = [ThemeNote(0.0, 0.5, 67, 0.0, 1.0), ThemeNote(0.5, 0.5, 67, 1.0, 1.0),
         ThemeNote(1.0, 1.0, 63, 2.0, 2.0)]


def test_theme_csv_round_trip_keeps_seconds_beats_and_pitch(tmp_path):
    path = tmp_path / 'theme.csv'
    write_theme_csv(path, NOTES)
    assert read_theme_csv(path) == NOTES


def test_theme_csv_without_beat_columns_reads_beats_as_none(tmp_path):
    path = tmp_path / 'theme.csv'
    path.write_text('Start;Duration;Pitch\n0;0.5;60\n0.5;0.25;62\n')
    notes = read_theme_csv(path)
    assert [(n.pitch, n.start_beat) for n in notes] == [(60, None), (62, None)]


def test_alignment_csv_round_trip_uses_start_end(tmp_path):
    path = tmp_path / 'alignment.csv'
    write_alignment_csv(path, NOTES)
    assert path.read_text().splitlines()[0] == 'Start;End;Pitch'
    assert [(n.start, n.end, n.pitch) for n in read_alignment_csv(path)] == \
        [(n.start, n.end, n.pitch) for n in NOTES]


def test_missing_column_names_the_file_and_column(tmp_path):
    path = tmp_path / 'broken.csv'
    path.write_text('Start;Pitch\n0;60\n')
    with pytest.raises(CTCChromaError, match=r'broken\.csv.*Duration'):
        read_theme_csv(path)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(CTCChromaError, match='nothere.csv'):
        read_theme_csv(tmp_path / 'nothere.csv')


def test_non_numeric_value_is_an_error(tmp_path):
    path = tmp_path / 'bad.csv'
    path.write_text('Start;Duration;Pitch\n0;abc;60\n')
    with pytest.raises(CTCChromaError, match='Duration'):
        read_theme_csv(path)


def test_repeated_notes_are_monophonic():
    check_monophonic(NOTES)


def test_overlapping_notes_are_polyphonic():
    with pytest.raises(CTCChromaError, match='polyphonic'):
        check_monophonic([ThemeNote(0.0, 1.0, 60), ThemeNote(0.5, 1.0, 64)])


def test_empty_theme_is_rejected():
    with pytest.raises(CTCChromaError, match='no notes'):
        check_monophonic([])


def test_chroma_is_pitch_class():
    assert [n.chroma for n in NOTES] == [7, 7, 3]


def test_import_pretty_midi_keeps_stdout_clean(tmp_path, monkeypatch, capsys):
    # pyfluidsynth prints its library path on import when $CI is set; stand in for it with a
    # module that prints, so the test does not depend on where FluidSynth is installed.
    (tmp_path / 'pretty_midi.py').write_text("print('fluidsynth was found at /somewhere')\nNAME = 'fake'\n")
    real = import_pretty_midi()  # so that monkeypatch puts the real module back afterwards
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, 'pretty_midi')
    module = import_pretty_midi()
    assert module.NAME == 'fake' and module is not real
    assert capsys.readouterr().out == ''


def test_synthesize_theme_sounds_for_the_theme_duration():
    y = synthesize_theme(NOTES, fs=8000)
    assert y.ndim == 1 and np.all(np.isfinite(y))
    assert len(y) == (2.0 + 1.0) * 8000  # the last offset plus pretty_midi's one-second tail
    # every note sounds: energy in each note's span
    for note in NOTES:
        span = y[int(note.start * 8000) + 100:int(note.end * 8000) - 100]
        assert np.sqrt(np.mean(span ** 2)) > 0.01

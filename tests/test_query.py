"""Specification of theme reading and query chromagrams (ctc_chroma_lib.query)."""
import numpy as np
import pytest

from ctc_chroma_lib.errors import CTCChromaError
from ctc_chroma_lib.query import (DEFAULT_TEMPO_FACTORS, build_queries, query_chromagram,
                                  read_theme)
from ctc_chroma_lib.themes import ThemeNote, write_theme_csv

# C4 E4 G4 (quarter notes at 120 bpm = 0.5 s), then C5 half note
MELODY = [ThemeNote(0.0, 0.5, 60), ThemeNote(0.5, 0.5, 64), ThemeNote(1.0, 0.5, 67),
          ThemeNote(1.5, 1.0, 72)]


def write_midi(path, notes, program=0, extra_track=None):
    import pretty_midi
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    for track in [notes] + ([extra_track] if extra_track else []):
        inst = pretty_midi.Instrument(program=program)
        for n in track:
            inst.notes.append(pretty_midi.Note(velocity=90, pitch=n.pitch, start=n.start,
                                               end=n.end))
        midi.instruments.append(inst)
    midi.write(str(path))
    return path


def write_musicxml(path, pitches_and_lengths, chord=None):
    import music21
    stream = music21.stream.Stream()
    stream.append(music21.tempo.MetronomeMark(number=120))
    for pitch, ql in pitches_and_lengths:
        stream.append(music21.note.Note(pitch, quarterLength=ql))
    if chord:
        stream.append(music21.chord.Chord(chord, quarterLength=1))
    stream.write('musicxml', fp=str(path))
    return path


def assert_melody(notes):
    assert [n.pitch for n in notes] == [60, 64, 67, 72]
    np.testing.assert_allclose([n.start for n in notes], [0, 0.5, 1.0, 1.5], atol=1e-6)
    np.testing.assert_allclose([n.duration for n in notes], [0.5, 0.5, 0.5, 1.0], atol=1e-6)


def test_read_theme_from_midi(tmp_path):
    assert_melody(read_theme(write_midi(tmp_path / 't.mid', MELODY)))


def test_read_theme_from_midi_shifts_the_first_onset_to_zero(tmp_path):
    late = [ThemeNote(n.start + 2.0, n.duration, n.pitch) for n in MELODY]
    assert_melody(read_theme(write_midi(tmp_path / 't.mid', late)))


def test_read_theme_from_musicxml(tmp_path):
    path = write_musicxml(tmp_path / 't.musicxml', [('C4', 1), ('E4', 1), ('G4', 1), ('C5', 2)])
    assert_melody(read_theme(path))


def test_read_theme_from_kern(tmp_path):
    path = tmp_path / 't.krn'
    path.write_text('**kern\n*MM120\n4c\n4e\n4g\n2cc\n*-\n')
    assert_melody(read_theme(path))


def test_read_theme_from_note_list_csv(tmp_path):
    write_theme_csv(tmp_path / 't.csv', MELODY)
    assert_melody(read_theme(tmp_path / 't.csv'))


def test_polyphonic_midi_is_rejected(tmp_path):
    path = write_midi(tmp_path / 'p.mid', MELODY, extra_track=[ThemeNote(0.0, 2.0, 48)])
    with pytest.raises(CTCChromaError, match='p.mid.*polyphonic'):
        read_theme(path)


def test_musicxml_with_a_chord_is_rejected(tmp_path):
    path = write_musicxml(tmp_path / 'c.musicxml', [('C4', 1)], chord=['C4', 'E4'])
    with pytest.raises(CTCChromaError, match='c.musicxml.*polyphonic'):
        read_theme(path)


def test_empty_theme_is_rejected(tmp_path):
    write_theme_csv(tmp_path / 'e.csv', [])
    with pytest.raises(CTCChromaError, match='e.csv.*no notes'):
        read_theme(tmp_path / 'e.csv')


@pytest.mark.parametrize('name', ['bad.mid', 'bad.musicxml', 'bad.mxl'])
def test_corrupt_theme_file_is_rejected_naming_it(tmp_path, name):
    (tmp_path / name).write_bytes(b'\x00\x01 definitely not music')
    with pytest.raises(CTCChromaError, match=name):
        read_theme(tmp_path / name)


def test_unknown_theme_type_and_missing_file_are_rejected(tmp_path):
    (tmp_path / 't.txt').write_text('C D E')
    with pytest.raises(CTCChromaError, match='unknown theme file type'):
        read_theme(tmp_path / 't.txt')
    with pytest.raises(CTCChromaError, match='not found'):
        read_theme(tmp_path / 'missing.mid')


def test_query_chromagram_is_one_hot_per_frame_at_the_feature_rate():
    X = query_chromagram(MELODY)
    assert X.shape == (12, 63) and X.dtype == np.float32  # 2.5 s at 25 Hz
    expected = np.repeat([0, 4, 7, 0], [13, 12, 13, 25])  # rounded note boundaries
    np.testing.assert_array_equal(X.argmax(axis=0), expected)
    np.testing.assert_allclose(np.linalg.norm(X, axis=0), 1.0)


def test_query_chromagram_scales_duration():
    assert query_chromagram(MELODY, tempo_scale=2.0).shape[1] == 125
    assert query_chromagram(MELODY, target_duration=4.0).shape[1] == 100


def test_rests_hold_the_previous_chroma_or_are_uniform():
    notes = [ThemeNote(0.0, 0.4, 62), ThemeNote(0.8, 0.4, 69)]
    held = query_chromagram(notes)
    np.testing.assert_array_equal(held.argmax(axis=0)[10:20], 2)
    uniform = query_chromagram(notes, rest='uniform')
    np.testing.assert_allclose(uniform[:, 10:20], 1 / np.sqrt(12), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(uniform, axis=0), 1.0, rtol=1e-6)


def test_very_short_theme_still_has_one_frame():
    X = query_chromagram([ThemeNote(0.0, 0.001, 65)])
    assert X.shape == (12, 1) and X[5, 0] == 1


def test_query_chromagram_rejects_polyphony_and_bad_scale():
    with pytest.raises(CTCChromaError, match='polyphonic'):
        query_chromagram([ThemeNote(0, 1, 60), ThemeNote(0.5, 1, 64)])
    with pytest.raises(CTCChromaError):
        query_chromagram(MELODY, tempo_scale=0)


def test_multi_tempo_builds_one_query_per_factor():
    queries = build_queries(MELODY, tempo='multi')
    assert [f for f, _ in queries] == list(DEFAULT_TEMPO_FACTORS)
    assert [X.shape[1] for _, X in queries] == [int(np.floor(62.5 * f + 0.5))
                                               for f in DEFAULT_TEMPO_FACTORS]
    (factor, X), = build_queries(MELODY, tempo='score')
    assert factor == 1.0 and X.shape[1] == 63
    with pytest.raises(CTCChromaError, match='tempo strategy'):
        build_queries(MELODY, tempo='fast')

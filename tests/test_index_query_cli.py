"""Specification of the retrieval index and the ``index`` / ``query`` commands."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ctc_chroma_lib.cli import main
from ctc_chroma_lib.errors import CTCChromaError
from ctc_chroma_lib.index import MANIFEST_NAME, build_index, load_index, read_manifest
from ctc_chroma_lib.themes import ThemeNote, write_theme_csv

SR = 22050
MELODIES = {'a.wav': [60, 62, 64, 65, 67, 69, 71, 72],
            'sub/b.flac': [67, 64, 60, 64, 67, 72, 76, 74],
            'c.ogg': [69, 65, 62, 65, 69, 74, 77, 76]}
"""Three recordings: sine-tone melodies, 0.4 s per note after 0.5 s of silence."""


def sine_melody(pitches, note_seconds=0.4, pad=0.5):
    t = np.arange(int(note_seconds * SR)) / SR
    envelope = np.minimum(1, np.minimum(t / 0.01, (note_seconds - t) / 0.02))
    notes = [0.3 * np.sin(2 * np.pi * 440 * 2 ** ((p - 69) / 12) * t) * envelope
             for p in pitches]
    silence = np.zeros(int(pad * SR))
    return np.concatenate([silence, *notes, silence]).astype(np.float32)


def write_audio_folder(folder):
    for name, pitches in MELODIES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(folder / name, sine_melody(pitches), SR)
    return folder


def theme_csv(path, pitches, seconds=0.5):
    write_theme_csv(path, [ThemeNote(seconds * i, seconds, p) for i, p in enumerate(pitches)])
    return path


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """A cqt index of the three recordings, built once through the CLI."""
    root = tmp_path_factory.mktemp('retrieval')
    audio = write_audio_folder(root / 'audio')
    assert main(['index', str(audio), '--model', 'cqt', '--out', str(root / 'index')]) == 0
    return audio, root / 'index'


@pytest.fixture
def index_copy(built, tmp_path):
    audio, index = built
    shutil.copytree(audio, tmp_path / 'audio')
    shutil.copytree(index, tmp_path / 'index')
    return tmp_path / 'audio', tmp_path / 'index'


def counting_features(calls):
    def feature_fn(path, kind):
        calls.append(Path(path).name)
        return np.full((12, 50), 1 / np.sqrt(12), dtype=np.float32), np.arange(50) / 25
    return feature_fn


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# index

def test_index_lists_every_audio_file_with_kind_and_provenance(built):
    _, index = built
    manifest = read_manifest(index)
    assert manifest['kind'] == 'cqt'
    assert sorted(manifest['files']) == ['a.wav', 'c.ogg', 'sub/b.flac']
    entry = manifest['files']['a.wav']
    assert {'size', 'mtime', 'sha256', 'npz', 'frames'} <= set(entry)
    assert (index / 'features' / entry['npz']).is_file()


def test_index_follows_symbolic_links_to_audio_files(built, tmp_path):
    audio, _ = built
    (tmp_path / 'links').mkdir()
    (tmp_path / 'links' / 'linked.wav').symlink_to(audio / 'a.wav')
    build_index(tmp_path / 'links', tmp_path / 'index', 'cqt', progress=False,
                feature_fn=counting_features([]))
    assert list(read_manifest(tmp_path / 'index')['files']) == ['linked.wav']


def test_second_index_run_processes_nothing(index_copy):
    audio, index = index_copy
    calls = []
    summary = build_index(audio, index, 'cqt', feature_fn=counting_features(calls),
                          progress=False)
    assert calls == [] and summary['unchanged'] == 3


def test_changed_file_is_reprocessed_and_its_old_features_removed(index_copy):
    audio, index = index_copy
    old_npz = read_manifest(index)['files']['a.wav']['npz']
    sf.write(audio / 'a.wav', sine_melody([72, 71, 69]), SR)
    calls = []
    summary = build_index(audio, index, 'cqt', feature_fn=counting_features(calls),
                          progress=False)
    assert calls == ['a.wav'] and summary['updated'] == 1
    assert not (index / 'features' / old_npz).exists()


def test_touched_but_unchanged_file_is_not_reprocessed(index_copy):
    audio, index = index_copy
    os.utime(audio / 'c.ogg', (1e9, 1e9))
    calls = []
    build_index(audio, index, 'cqt', feature_fn=counting_features(calls), progress=False)
    assert calls == []


def test_deleted_file_is_dropped_from_the_index(index_copy):
    audio, index = index_copy
    (audio / 'sub' / 'b.flac').unlink()
    summary = build_index(audio, index, 'cqt', feature_fn=counting_features([]),
                          progress=False)
    assert summary['removed'] == 1
    assert sorted(read_manifest(index)['files']) == ['a.wav', 'c.ogg']
    assert len(list((index / 'features').glob('*.npz'))) == 2


def test_interrupted_run_leaves_a_valid_index_of_the_completed_files(tmp_path):
    audio = write_audio_folder(tmp_path / 'audio')
    calls = []

    def interrupted(path, kind):
        if len(calls) == 2:
            raise KeyboardInterrupt
        return counting_features(calls)(path, kind)
    with pytest.raises(KeyboardInterrupt):
        build_index(audio, tmp_path / 'index', 'cqt', feature_fn=interrupted, progress=False)
    _, documents = load_index(tmp_path / 'index')
    assert len(documents) == 2
    calls.clear()
    build_index(audio, tmp_path / 'index', 'cqt', feature_fn=counting_features(calls),
                progress=False)
    assert len(calls) == 1


KILLED_RUN = """
import os, sys
import numpy as np
import ctc_chroma_lib.index as index
index.MANIFEST_INTERVAL = 0.0
done = []
def features(path, kind):
    if len(done) == 2:
        os._exit(9)  # no cleanup, no finally: like SIGKILL
    done.append(path)
    return np.ones((12, 10), dtype=np.float32) / np.sqrt(12), np.arange(10) / 25
index.build_index(sys.argv[1], sys.argv[2], 'cqt', feature_fn=features, progress=False)
"""


def test_killed_run_leaves_a_valid_index(tmp_path):
    import subprocess
    import sys
    audio = write_audio_folder(tmp_path / 'audio')
    run = subprocess.run([sys.executable, '-c', KILLED_RUN, str(audio), str(tmp_path / 'index')],
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 9
    _, documents = load_index(tmp_path / 'index')
    assert len(documents) == 2


def test_index_rejects_unreadable_audio_naming_it_and_writes_nothing(tmp_path, capsys):
    audio = write_audio_folder(tmp_path / 'audio')
    (audio / 'broken.wav').write_bytes(b'RIFF\x00\x00not really audio')
    code = main(['index', str(audio), '--model', 'cqt', '--out', str(tmp_path / 'index')])
    assert code == 2
    assert 'broken.wav' in one_error_line(capsys)
    assert not (tmp_path / 'index').exists()


def test_index_refuses_to_mix_feature_types(index_copy, capsys):
    audio, index = index_copy
    assert main(['index', str(audio), '--model', 'cens', '--out', str(index)]) == 2
    assert "'cqt'" in one_error_line(capsys)


def test_index_rejects_unknown_model_and_missing_folder(tmp_path, capsys):
    assert main(['index', str(tmp_path), '--model', 'bogus', '--out', str(tmp_path / 'i')]) == 2
    assert 'bogus' in one_error_line(capsys)
    assert main(['index', str(tmp_path / 'nope'), '--model', 'cqt',
                 '--out', str(tmp_path / 'i')]) == 2
    assert 'nope' in one_error_line(capsys)


# query

def test_query_finds_the_recording_with_the_theme_and_its_time_span(built, tmp_path, capsys):
    _, index = built
    theme = theme_csv(tmp_path / 'theme.csv', [67, 64, 60, 64, 67, 72])
    assert main(['query', str(theme), '--index', str(index), '--json']) == 0
    results = json.loads(capsys.readouterr().out)['results']
    assert [r['file'] for r in results][0] == 'sub/b.flac'
    assert [r['rank'] for r in results] == [1, 2, 3]
    # the six theme notes sound from 0.5 s to 2.9 s in the recording
    assert results[0]['start_time'] == pytest.approx(0.5, abs=0.15)
    assert results[0]['end_time'] == pytest.approx(2.9, abs=0.15)


def test_query_table_shows_top_results(built, tmp_path, capsys):
    _, index = built
    theme = theme_csv(tmp_path / 'theme.csv', [69, 65, 62, 65, 69])
    assert main(['query', str(theme), '--index', str(index), '--top', '2',
                 '--tempo', 'multi']) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ['rank', 'cost', 'start', 'end', 'shift', 'tempo', 'file']
    assert len(lines) == 3 and lines[1].split()[-1] == 'c.ogg'


def test_transposition_invariant_query_reports_the_shift(built, tmp_path, capsys):
    _, index = built
    theme = theme_csv(tmp_path / 'theme.csv', [p - 3 for p in [67, 64, 60, 64, 67, 72]])
    assert main(['query', str(theme), '--index', str(index), '--json',
                 '--transposition-invariant']) == 0
    best = json.loads(capsys.readouterr().out)['results'][0]
    assert (best['file'], best['shift']) == ('sub/b.flac', 3)


def bad_theme(tmp_path, kind):
    if kind == 'empty':
        return theme_csv(tmp_path / 'empty.csv', [])
    if kind == 'corrupt':
        path = tmp_path / 'corrupt.mid'
        path.write_bytes(b'MThd garbage')
        return path
    if kind == 'polyphonic':
        path = tmp_path / 'poly.csv'
        write_theme_csv(path, [ThemeNote(0, 1, 60), ThemeNote(0.5, 1, 64)])
        return path
    return theme_csv(tmp_path / 'long.csv', [60, 62] * 20, seconds=1.0)  # 40 s > 2 x 4.2 s


@pytest.mark.parametrize('kind,message', [('empty', 'no notes'), ('corrupt', 'corrupt.mid'),
                                          ('polyphonic', 'polyphonic'),
                                          ('long', 'longer than every recording')])
def test_query_rejects_bad_themes_with_one_line(built, tmp_path, capsys, kind, message):
    _, index = built
    assert main(['query', str(bad_theme(tmp_path, kind)), '--index', str(index)]) == 2
    assert message in one_error_line(capsys)


def test_query_rejects_a_missing_index(tmp_path, capsys):
    theme = theme_csv(tmp_path / 'theme.csv', [60, 62, 64])
    assert main(['query', str(theme), '--index', str(tmp_path / 'nowhere')]) == 2
    assert 'nowhere' in one_error_line(capsys)


def test_query_rejects_a_corrupt_manifest(index_copy, tmp_path, capsys):
    _, index = index_copy
    (index / MANIFEST_NAME).write_text('{"format": "ctc-chroma-ind')
    theme = theme_csv(tmp_path / 'theme.csv', [60, 62, 64])
    assert main(['query', str(theme), '--index', str(index)]) == 2
    assert 'corrupt' in one_error_line(capsys)


def test_query_rejects_a_corrupt_feature_file(index_copy, tmp_path, capsys):
    _, index = index_copy
    npz = read_manifest(index)['files']['a.wav']['npz']
    (index / 'features' / npz).write_bytes(b'truncated')
    theme = theme_csv(tmp_path / 'theme.csv', [60, 62, 64])
    assert main(['query', str(theme), '--index', str(index)]) == 2
    assert 'a.wav' in one_error_line(capsys)


def test_query_rejects_an_index_of_another_feature_type(built, tmp_path, capsys):
    _, index = built
    theme = theme_csv(tmp_path / 'theme.csv', [60, 62, 64])
    assert main(['query', str(theme), '--index', str(index), '--model', 'teaching']) == 2
    assert "'cqt'" in one_error_line(capsys)


def test_load_index_requires_recordings(tmp_path):
    (tmp_path / 'empty_audio').mkdir()
    build_index(tmp_path / 'empty_audio', tmp_path / 'index', 'cqt', progress=False)
    with pytest.raises(CTCChromaError, match='no recordings'):
        load_index(tmp_path / 'index')

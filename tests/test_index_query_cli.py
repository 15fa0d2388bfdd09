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


def test_a_corrupt_feature_file_is_reported_and_repaired_while_queries_read_the_pack(
        index_copy, tmp_path, capsys):
    audio, index = index_copy
    npz = read_manifest(index)['files']['a.wav']['npz']
    theme = theme_csv(tmp_path / 'theme.csv', [60, 62, 64])
    before = run_cli(capsys, 'query', theme, '--index', index, '--json')
    (index / 'features' / npz).write_bytes(b'truncated')
    assert run_cli(capsys, 'query', theme, '--index', index, '--json') == before
    code, out, _ = run_cli(capsys, 'index', '--check', index)
    assert code == 1 and 'problem: a.wav' in out
    assert run_cli(capsys, 'index', audio, '--model', 'cqt', '--out', index)[0] == 0
    assert run_cli(capsys, 'index', '--check', index)[0] == 0


def same_ranking(a, b):
    """Equal rankings and matches; costs agree to float16 rounding of the packed features."""
    key = ('rank', 'file', 'start_frame', 'end_frame', 'shift')
    return ([[r[k] for k in key] for r in a] == [[r[k] for k in key] for r in b]
            and all(abs(r['cost'] - q['cost']) < 2e-3 for r, q in zip(a, b)))


def pack_file(index, part):
    return index / 'pack' / read_manifest(index)['pack'][part]['file']


def test_query_rejects_a_truncated_pack_naming_it(index_copy, tmp_path, capsys):
    _, index = index_copy
    path = pack_file(index, 'chroma')
    path.write_bytes(path.read_bytes()[:-24])
    theme = theme_csv(tmp_path / 'theme.csv', [60, 62, 64])
    code, out, err = run_cli(capsys, 'query', theme, '--index', index)
    assert code == 2 and out == '' and len(err) == 1 and path.name in err[0]
    code, out, _ = run_cli(capsys, 'index', '--check', index)
    assert code == 1 and 'packed features' in out


@pytest.mark.parametrize('part,transform,message', [
    ('coarse', lambda a: np.where(a > 0.5, np.nan, a), 'NaN'),
    ('coarse', lambda a: -a, 'negative'),
    ('chroma', lambda a: a * 3, 'unit-norm'),
    ('chroma', lambda a: np.where(a > 0.5, np.inf, a), 'infinite')])
def test_query_rejects_tampered_packs_of_the_same_size(index_copy, tmp_path, capsys, part,
                                                       transform, message):
    _, index = index_copy
    path = pack_file(index, part)
    array = np.load(path)
    np.save(path, transform(array).astype(array.dtype))
    theme = theme_csv(tmp_path / 'theme.csv', [60, 62, 64])
    code, out, err = run_cli(capsys, 'query', theme, '--index', index, '--exact')
    assert code == 2 and out == '' and len(err) == 1
    assert message in err[0] and path.name in err[0]
    code, out, _ = run_cli(capsys, 'index', '--check', index)
    assert code == 1 and 'checksum' in out


def test_a_stale_pack_is_not_used_and_the_next_index_run_rebuilds_it(index_copy, tmp_path,
                                                                     capsys):
    """As after a run killed between writing the manifest and packing the features."""
    audio, index = index_copy
    theme = theme_csv(tmp_path / 'theme.csv', [60, 62, 64])
    before = run_cli(capsys, 'query', theme, '--index', index, '--json')[1]
    manifest = read_manifest(index)
    manifest['pack']['entries_digest'] = '0' * 64
    (index / MANIFEST_NAME).write_text(json.dumps(manifest))
    code, out, err = run_cli(capsys, 'query', theme, '--index', index, '--json')
    assert code == 0 and len(err) == 1 and 'stale' in err[0] and 'exhaustively' in err[0]
    assert same_ranking(json.loads(out)['results'], json.loads(before)['results'])
    code, out, _ = run_cli(capsys, 'index', '--check', index)
    assert code == 0 and 'stale' in out
    assert run_cli(capsys, 'index', audio, '--model', 'cqt', '--out', index)[0] == 0
    assert run_cli(capsys, 'query', theme, '--index', index)[2] == []


def test_two_stage_search_and_exact_search_agree_and_say_which_ran(index_copy, tmp_path,
                                                                    capsys):
    _, index = index_copy
    theme = theme_csv(tmp_path / 'theme.csv', [69, 65, 62, 65, 69])
    results = {}
    for flags in ([], ['--exact'], ['--candidates', '1', '--top', '1']):
        code, out, err = run_cli(capsys, 'query', theme, '--index', index, '--json', *flags)
        assert code == 0 and err == []
        results[tuple(flags)] = json.loads(out)
    # three recordings: fewer than the default candidates, so both match all exactly
    assert results[()]['results'] == results[('--exact',)]['results']
    assert results[('--exact',)]['search'] == 'exact'
    one = results[('--candidates', '1', '--top', '1')]
    assert one['search'] == 'two-stage' and one['matched_exactly'] == 1
    assert one['results'][0] == results[('--exact',)]['results'][0]
    code, _, err = run_cli(capsys, 'query', theme, '--index', index, '--candidates', '2',
                           '--top', '3')
    assert code == 2 and '--candidates' in err[0]


def test_query_rejects_an_index_of_another_feature_type(built, tmp_path, capsys):
    _, index = built
    theme = theme_csv(tmp_path / 'theme.csv', [60, 62, 64])
    assert main(['query', str(theme), '--index', str(index), '--model', 'teaching']) == 2
    assert "'cqt'" in one_error_line(capsys)


def test_load_index_requires_recordings(tmp_path):
    (tmp_path / 'empty_audio').mkdir()
    build_index(tmp_path / 'empty_audio', tmp_path / 'index', 'cqt', progress=False,
                allow_empty=True)
    with pytest.raises(CTCChromaError, match='no recordings'):
        load_index(tmp_path / 'index')


# integrity: one writer, no silent deletion, a manifest that is not trusted blindly

def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def test_a_second_writer_fails_cleanly_while_an_index_run_holds_the_lock(index_copy, capsys):
    from ctc_chroma_lib.fileio import exclusive_lock
    from ctc_chroma_lib.index import LOCK_NAME
    audio, index = index_copy
    before = read_manifest(index)
    with exclusive_lock(index / LOCK_NAME, 'the test'):
        code, _, err = run_cli(capsys, 'index', audio, '--model', 'cqt', '--out', index)
    assert code == 2 and len(err) == 1 and 'another process' in err[0]
    assert read_manifest(index) == before


def test_index_recomputes_a_missing_feature_file(index_copy, capsys):
    audio, index = index_copy
    npz = index / 'features' / read_manifest(index)['files']['a.wav']['npz']
    npz.unlink()
    code, out, _ = run_cli(capsys, 'index', audio, '--model', 'cqt', '--out', index)
    assert code == 0 and '1 repaired' in out and '2 unchanged' in out
    assert npz.is_file()
    assert len(load_index(index)[1]) == 3


def rewrite_features(index, rel, transform, update_checksum):
    """Replace the features of ``rel`` by ``transform(chroma)``, as tampering would."""
    from ctc_chroma_lib.fileio import sha256_file
    manifest = read_manifest(index)
    entry = manifest['files'][rel]
    path = index / 'features' / entry['npz']
    with np.load(path) as data:
        chroma, times = data['chroma'], data['times']
    with open(path, 'wb') as f:
        np.savez(f, chroma=transform(chroma), times=times)
    if update_checksum:
        entry['npz_size'], entry['npz_sha256'] = path.stat().st_size, sha256_file(path)
        (index / MANIFEST_NAME).write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize('transform,update_checksum,message', [
    (lambda c: c * 1e6, True, 'norm'),
    (lambda c: (c * 100).astype(np.int64), True, 'dtype'),
    (lambda c: np.where(c > 0.5, np.nan, c).astype(np.float32), True, 'NaN'),
    (lambda c: c[:, :-5], True, 'shape')])
def test_query_rejects_tampered_features_naming_the_file(index_copy, tmp_path, capsys,
                                                         transform, update_checksum, message):
    audio, index = index_copy
    path = rewrite_features(index, 'c.ogg', transform, update_checksum)
    theme = theme_csv(tmp_path / 'theme.csv', [69, 65, 62, 65, 69])
    code, out, err = run_cli(capsys, 'query', theme, '--index', index)
    assert code == 2 and out == '' and len(err) == 1
    assert message in err[0] and path.name in err[0] and 'c.ogg' in err[0]
    code, out, err = run_cli(capsys, 'index', '--check', index)
    assert code == 1 and 'problem: c.ogg' in out and len(err) == 1


def test_a_changed_feature_file_is_found_and_recomputed_by_the_next_index_run(
        index_copy, tmp_path, capsys):
    audio, index = index_copy
    rewrite_features(index, 'c.ogg', lambda c: c * 1e6, update_checksum=False)
    code, out, err = run_cli(capsys, 'index', '--check', index)
    assert code == 1 and 'problem: c.ogg' in out and 'checksum' in out
    assert run_cli(capsys, 'index', audio, '--model', 'cqt', '--out', index)[0] == 0
    assert run_cli(capsys, 'index', '--check', index)[0] == 0


def test_feature_file_of_another_recording_is_not_accepted(index_copy, tmp_path, capsys):
    _, index = index_copy
    files = read_manifest(index)['files']
    shutil.copy(index / 'features' / files['a.wav']['npz'],
                index / 'features' / files['c.ogg']['npz'])
    code, out, _ = run_cli(capsys, 'index', '--check', index)
    assert code == 1 and 'checksum' in out and 'c.ogg' in out
    manifest = read_manifest(index)
    del manifest['pack']  # the feature files are what a query reads then
    (index / MANIFEST_NAME).write_text(json.dumps(manifest))
    theme = theme_csv(tmp_path / 'theme.csv', [60, 62, 64])
    code, _, err = run_cli(capsys, 'query', theme, '--index', index)
    assert code == 2 and 'checksum' in err[-1] and 'c.ogg' in err[-1]


def test_check_reports_a_sound_index(built, capsys):
    _, index = built
    code, out, err = run_cli(capsys, 'index', '--check', index)
    assert code == 0 and err == [] and '3 recordings, every feature file verified' in out


@pytest.mark.parametrize('npz', ['../../../../../../etc/passwd', '/dev/zero', '../manifest.json',
                                 'sub/x.npz'])
def test_manifest_cannot_point_outside_the_features_folder(index_copy, tmp_path, capsys, npz):
    _, index = index_copy
    manifest = read_manifest(index)
    manifest['files']['a.wav']['npz'] = npz
    (index / MANIFEST_NAME).write_text(json.dumps(manifest))
    theme = theme_csv(tmp_path / 'theme.csv', [60, 62, 64])
    code, _, err = run_cli(capsys, 'query', theme, '--index', index)
    assert code == 2 and len(err) == 1 and 'a.wav' in err[0] and 'not a file name' in err[0]


@pytest.mark.parametrize('which', ['feature file', 'pack'])
def test_a_named_pipe_in_place_of_an_index_file_does_not_hang_the_query(index_copy, tmp_path,
                                                                       which):
    import subprocess
    import sys
    _, index = index_copy
    if which == 'pack':
        npz = pack_file(index, 'coarse')
    else:
        manifest = read_manifest(index)
        npz = index / 'features' / manifest['files']['a.wav']['npz']
        del manifest['pack']
        (index / MANIFEST_NAME).write_text(json.dumps(manifest))
    npz.unlink()
    os.mkfifo(npz)
    theme = theme_csv(tmp_path / 'theme.csv', [60, 62, 64])
    run = subprocess.run([sys.executable, '-m', 'ctc_chroma_lib.cli', 'query', str(theme),
                          '--index', str(index)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and 'not a regular file' in run.stderr


@pytest.mark.parametrize('change,message', [
    (lambda m: m['files'].__setitem__('a.wav', 'oops'), 'not an object'),
    (lambda m: m['files']['a.wav'].pop('size'), "'size'"),
    (lambda m: m['files']['a.wav'].__setitem__('frames', -3), 'out of range'),
    (lambda m: m['params'].__setitem__('feature_rate', 0), 'queries are built at 25 Hz'),
    (lambda m: m.__setitem__('params', None), 'not a ctc-chroma-index manifest')])
def test_malformed_manifest_entries_are_clean_errors_and_index_repairs_them(
        index_copy, tmp_path, capsys, change, message):
    audio, index = index_copy
    manifest = read_manifest(index)
    change(manifest)
    (index / MANIFEST_NAME).write_text(json.dumps(manifest))
    theme = theme_csv(tmp_path / 'theme.csv', [60, 62, 64])
    code, _, err = run_cli(capsys, 'query', theme, '--index', index)
    assert code == 2 and len(err) == 1 and message in err[0]
    if manifest['params'] is not None:
        assert run_cli(capsys, 'index', audio, '--model', 'cqt', '--out', index)[0] == 0
        assert run_cli(capsys, 'query', theme, '--index', index)[0] == 0


def test_an_empty_folder_on_an_existing_index_deletes_nothing(index_copy, tmp_path, capsys):
    _, index = index_copy
    (tmp_path / 'unmounted').mkdir()
    before = sorted((index / 'features').iterdir())
    code, _, err = run_cli(capsys, 'index', tmp_path / 'unmounted', '--model', 'cqt',
                           '--out', index)
    assert code == 2 and len(err) == 1 and 'no audio files' in err[0]
    code, _, err = run_cli(capsys, 'index', tmp_path / 'unmounted', '--model', 'cqt',
                           '--out', index, '--allow-empty')
    assert code == 2 and len(err) == 1 and '3 of its 3 recordings' in err[0]
    assert '--prune' in err[0]
    assert sorted((index / 'features').iterdir()) == before
    assert len(read_manifest(index)['files']) == 3
    code, out, _ = run_cli(capsys, 'index', tmp_path / 'unmounted', '--model', 'cqt',
                           '--out', index, '--allow-empty', '--prune')
    assert code == 0 and '3 removed' in out


def test_another_folder_on_an_existing_index_needs_prune(index_copy, tmp_path, capsys):
    _, index = index_copy
    other = tmp_path / 'other'
    other.mkdir()
    sf.write(other / 'x.wav', sine_melody([60, 64, 67]), SR)
    code, _, err = run_cli(capsys, 'index', other, '--model', 'cqt', '--out', index)
    assert code == 2 and 'not in' in err[0] and '--prune' in err[0]
    assert sorted(read_manifest(index)['files']) == ['a.wav', 'c.ogg', 'sub/b.flac']


def test_a_folder_without_audio_is_an_error_unless_allowed(tmp_path, capsys):
    (tmp_path / 'none').mkdir()
    code, _, err = run_cli(capsys, 'index', tmp_path / 'none', '--model', 'cqt',
                           '--out', tmp_path / 'index')
    assert code == 2 and 'no audio files' in err[0] and '--allow-empty' in err[0]
    assert not (tmp_path / 'index').exists()
    code, out, _ = run_cli(capsys, 'index', tmp_path / 'none', '--model', 'cqt',
                           '--out', tmp_path / 'index', '--allow-empty')
    assert code == 0 and '0 recordings' in out


def test_out_below_a_file_is_a_clean_error(built, tmp_path, capsys):
    audio, _ = built
    (tmp_path / 'afile').write_text('x')
    code, _, err = run_cli(capsys, 'index', audio, '--model', 'cqt',
                           '--out', tmp_path / 'afile' / 'sub')
    assert code == 2 and len(err) == 1 and 'afile' in err[0]


def test_leftovers_of_a_run_killed_in_its_first_manifest_write_are_cleaned(tmp_path, capsys):
    audio = write_audio_folder(tmp_path / 'audio')
    index = tmp_path / 'index'
    (index / 'features').mkdir(parents=True)
    (index / '.manifest.x1y2z3.tmp.json').write_text('{"format": "ctc-chr')
    (index / '.lock').write_text('')
    build_index(audio, index, 'cqt', feature_fn=counting_features([]), progress=False)
    assert not list(index.glob('.manifest.*')) and len(read_manifest(index)['files']) == 3


def test_version_1_index_is_upgraded_in_place_by_an_index_run(index_copy, tmp_path, capsys):
    audio, index = index_copy
    manifest = read_manifest(index)
    manifest['version'] = 1
    for entry in manifest['files'].values():
        del entry['npz_size'], entry['npz_sha256']
    (index / MANIFEST_NAME).write_text(json.dumps(manifest))
    theme = theme_csv(tmp_path / 'theme.csv', [60, 62, 64])
    code, _, err = run_cli(capsys, 'query', theme, '--index', index)
    assert code == 2 and 'upgrade' in err[0]
    calls = []
    build_index(audio, index, 'cqt', feature_fn=counting_features(calls), progress=False)
    assert calls == [] and read_manifest(index)['version'] == 3
    assert run_cli(capsys, 'query', theme, '--index', index)[0] == 0


def test_version_2_index_is_queried_without_a_pack_and_upgraded_by_an_index_run(
        index_copy, tmp_path, capsys):
    audio, index = index_copy
    theme = theme_csv(tmp_path / 'theme.csv', [60, 62, 64])
    before = json.loads(run_cli(capsys, 'query', theme, '--index', index, '--json')[1])
    manifest = read_manifest(index)
    manifest['version'] = 2
    del manifest['pack']
    (index / MANIFEST_NAME).write_text(json.dumps(manifest))
    code, out, err = run_cli(capsys, 'query', theme, '--index', index, '--json')
    assert code == 0 and len(err) == 1 and 'no packed features' in err[0]
    assert same_ranking(json.loads(out)['results'], before['results'])
    calls = []
    build_index(audio, index, 'cqt', feature_fn=counting_features(calls), progress=False)
    assert calls == [] and read_manifest(index)['version'] == 3
    assert read_manifest(index)['pack']['chroma']['frames'] == sum(
        e['frames'] for e in read_manifest(index)['files'].values())
    assert json.loads(run_cli(capsys, 'query', theme, '--index', index, '--json')[1])[
        'results'] == before['results']


# names that are not plain text

def test_file_names_with_newlines_or_undecodable_bytes_are_indexed_and_shown_escaped(
        tmp_path, capsys):
    audio = tmp_path / 'audio'
    audio.mkdir()
    odd = [os.fsdecode(b'caf\xe9.wav'), 'two\nlines.wav']
    for name, pitches in zip(odd, [[60, 62, 64, 65, 67], [67, 65, 64, 62, 60]]):
        sf.write(os.fsencode(audio / name), sine_melody(pitches), SR)
    code, _, _ = run_cli(capsys, 'index', audio, '--model', 'cqt', '--out', tmp_path / 'index')
    assert code == 0
    theme = theme_csv(tmp_path / 'theme.csv', [60, 62, 64, 65])
    code, out, _ = run_cli(capsys, 'query', theme, '--index', tmp_path / 'index')
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[1].endswith('caf\\udce9.wav') and lines[2].endswith('two\\nlines.wav')
    code, out, _ = run_cli(capsys, 'query', theme, '--index', tmp_path / 'index', '--json')
    assert json.loads(out)['results'][0]['file'] == odd[0]


def test_audio_with_nan_samples_is_named_and_the_completed_recordings_kept(tmp_path, capsys):
    audio = write_audio_folder(tmp_path / 'audio')
    signal = sine_melody([60, 62])
    signal[1000] = np.nan
    sf.write(audio / 'zz_nan.wav', signal, SR, subtype='FLOAT')
    code, _, err = run_cli(capsys, 'index', audio, '--model', 'cqt', '--out', tmp_path / 'index')
    # (the lines before the last are the progress bar)
    assert code == 2 and 'zz_nan.wav' in err[-1] and 'keeps the 3' in err[-1]
    assert err[-1].startswith('ctc-chroma index: error: ')
    assert len(load_index(tmp_path / 'index')[1]) == 3


# themes that are not music

def theme_rows(path, rows, bom=False):
    text = 'Start;Duration;Pitch\n' + ''.join(f'{a};{b};{c}\n' for a, b, c in rows)
    path.write_bytes(('\ufeff' if bom else '').encode() + text.encode())
    return path


@pytest.mark.parametrize('rows,message', [
    ([(0, 1, 'inf')], 'Pitch'), ([(0, 1, 1000)], 'Pitch'), ([(0, 1, -5)], 'Pitch'),
    ([(0, 1, 60.7)], 'Pitch'), ([(0, 1e300, 60)], 'longer than every recording'),
    ([(0, 1, 60), (1e9, 1, 62)], 'longer than every recording'),
    ([(0, 1e6, 60)], 'longer than every recording'), ([(0, 'nan', 60)], 'invalid onset')])
def test_query_rejects_themes_with_absurd_values_at_once(built, tmp_path, capsys, rows, message):
    _, index = built
    theme = theme_rows(tmp_path / 'theme.csv', rows)
    code, out, err = run_cli(capsys, 'query', theme, '--index', index, '--tempo', 'multi')
    assert code == 2 and out == '' and len(err) == 1 and message in err[0]


def test_theme_csv_with_a_byte_order_mark_is_read(built, tmp_path, capsys):
    _, index = built
    theme = theme_rows(tmp_path / 'theme.csv', [(0.5 * i, 0.5, p) for i, p in
                                                enumerate([67, 64, 60, 64, 67, 72])], bom=True)
    code, out, _ = run_cli(capsys, 'query', theme, '--index', index, '--json')
    assert code == 0 and json.loads(out)['results'][0]['file'] == 'sub/b.flac'


def test_json_errors_are_json_on_stdout_too(built, tmp_path, capsys):
    _, index = built
    theme = theme_rows(tmp_path / 'theme.csv', [(0, 1, 1000)])
    code, out, err = run_cli(capsys, 'query', theme, '--index', index, '--json')
    assert code == 2 and 'Pitch' in json.loads(out)['error'] and len(err) == 1


# interrupts

def test_an_interrupt_swallowed_by_a_library_still_ends_the_run_as_interrupted(
        monkeypatch, tmp_path, capsys):
    import signal
    import ctc_chroma_lib.commands.index as command

    def swallowing(args):
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass  # what a careless C extension callback does
        return 0
    monkeypatch.setattr(command, 'run', swallowing)
    code, _, err = run_cli(capsys, 'index', tmp_path, '--out', tmp_path / 'i')
    assert code == 130 and err == ['ctc-chroma index: error: interrupted']


def test_an_interrupt_python_cannot_raise_is_counted_without_a_traceback(
        monkeypatch, tmp_path, capsys):
    # Ctrl-C while a ctypes callback runs (numba compiling) or in a __del__: Python hands
    # the KeyboardInterrupt to sys.unraisablehook, whose default prints its traceback
    import signal
    import sys
    import ctc_chroma_lib.commands.index as command

    class InterruptedOnCleanup:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)

    def interrupted_in_a_callback(args):
        InterruptedOnCleanup()
        return 0
    printed = []
    monkeypatch.setattr(sys, 'unraisablehook', printed.append)
    monkeypatch.setattr(command, 'run', interrupted_in_a_callback)
    code, _, err = run_cli(capsys, 'index', tmp_path, '--out', tmp_path / 'i')
    assert code == 130 and err == ['ctc-chroma index: error: interrupted']
    assert printed == [] and sys.unraisablehook == printed.append  # and put back


LOADING_INTERRUPT = """
import os, signal, sys
sys.argv = ['/usr/bin/ctc-chroma']   # as the console script starts
import ctc_chroma_lib                # installs the handler first of all
os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the command line is still loading
import ctc_chroma_lib.cli as cli
print('still loading')
sys.exit(cli.main(['index', '--check', 'nowhere']))
"""


def test_ctrl_c_while_the_command_line_loads_is_kept_for_main(tmp_path):
    import subprocess
    import sys
    run = subprocess.run([sys.executable, '-c', LOADING_INTERRUPT], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert run.stdout == 'still loading\n' and 'Traceback' not in run.stderr
    assert run.returncode == 130 and run.stderr == 'ctc-chroma: error: interrupted\n'


SHUTDOWN_INTERRUPT = """
import os, signal, sys
sys.argv = ['/usr/bin/ctc-chroma']   # as the console script starts
import ctc_chroma_lib
import ctc_chroma_lib.cli as cli

class FreedWhenMainIsUnloaded:       # Python unloads __main__ while it shuts down,
    def __del__(self):               # after it has put back the signals' default actions
        os.kill(os.getpid(), signal.SIGINT)

late = FreedWhenMainIsUnloaded()
sys.exit(cli.command(['--version']))
"""


def test_ctrl_c_while_the_finished_command_shuts_down_keeps_its_status(tmp_path):
    # the console script is cli.command; a Ctrl-C that arrives while Python unloads its
    # modules must not turn the finished command's status into death by the signal (-2)
    import subprocess
    import sys
    run = subprocess.run([sys.executable, '-c', SHUTDOWN_INTERRUPT], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0 and run.stdout.startswith('ctc-chroma ')
    assert 'Traceback' not in run.stderr


def test_importing_the_command_line_leaves_the_programs_ctrl_c_alone():
    import signal
    import subprocess
    import sys
    check = ('import signal, ctc_chroma_lib, ctc_chroma_lib.cli; '
             'print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)')
    # a program started in the background by a shell inherits SIGINT ignored, and Python
    # then keeps it ignored: start the check as from a terminal
    run = subprocess.run([sys.executable, '-c', check], capture_output=True, text=True,
                         timeout=120,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert run.stdout.strip() == 'True'
    from ctc_chroma_lib._interrupts import Interrupts
    assert signal.getsignal(signal.SIGINT) is not Interrupts.handler  # nor in this process


@pytest.mark.parametrize('delay', [0.3, 0.8, 2.0])
def test_ctrl_c_at_any_moment_ends_cleanly_with_a_consistent_index(built, tmp_path, delay):
    import signal
    import subprocess
    import sys
    import time
    audio, _ = built
    index = tmp_path / 'index'
    # the console script, as a user starts it (it installs the handler first of all)
    command = Path(sys.executable).with_name('ctc-chroma')
    if not command.is_file():
        pytest.skip(f'the ctc-chroma console script is not installed beside {sys.executable}')
    # A Ctrl-C while the interpreter itself starts (importing its site module) ends any
    # Python program with 'Fatal Python error' before a line of it runs; on a loaded machine
    # that start takes longer than the shortest delay, so the delays count from it.
    started = time.perf_counter()
    subprocess.run([sys.executable, '-c', 'pass'], check=True)
    interpreter_start = time.perf_counter() - started
    process = subprocess.Popen([str(command), 'index', str(audio),
                                '--model', 'cqt', '--out', str(index)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2 * interpreter_start + delay)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert 'Traceback' not in err, err
    assert process.returncode in (0, 130), err
    if process.returncode == 130:
        # before the arguments are parsed, the command is not yet known
        assert err.strip().splitlines()[-1] in ('ctc-chroma index: error: interrupted',
                                                'ctc-chroma: error: interrupted')
    if index.exists():
        assert read_manifest(index)
        assert run_check(index) == 0


def run_check(index):
    from ctc_chroma_lib.index import check_index
    return len(check_index(index)['problems'])


# batch queries

def test_several_themes_in_one_query_give_a_json_list_of_single_theme_answers(built, tmp_path,
                                                                               capsys):
    _, index = built
    themes = [theme_csv(tmp_path / 'b.csv', [67, 64, 60, 64, 67, 72]),
              theme_csv(tmp_path / 'c.csv', [69, 65, 62, 65, 69])]
    singles = []
    for theme in themes:
        assert main(['query', str(theme), '--index', str(index), '--json']) == 0
        singles.append(json.loads(capsys.readouterr().out))
    assert main(['query', *map(str, themes), '--index', str(index), '--json']) == 0
    batch = json.loads(capsys.readouterr().out)
    assert batch == singles
    assert [answer['results'][0]['file'] for answer in batch] == ['sub/b.flac', 'c.ogg']


def test_several_themes_give_one_table_section_per_theme(built, tmp_path, capsys):
    _, index = built
    themes = [theme_csv(tmp_path / 'b.csv', [67, 64, 60, 64, 67, 72]),
              theme_csv(tmp_path / 'c.csv', [69, 65, 62, 65, 69])]
    assert main(['query', *map(str, themes), '--index', str(index), '--top', '1']) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f'== {themes[0]}' and lines[2].split()[-1] == 'sub/b.flac'
    assert f'== {themes[1]}' in lines and lines[-1].split()[-1] == 'c.ogg'


def test_a_bad_theme_in_a_batch_fails_before_any_result_is_printed(built, tmp_path, capsys):
    _, index = built
    good = theme_csv(tmp_path / 'good.csv', [60, 62, 64])
    bad = theme_rows(tmp_path / 'bad.csv', [(0, 1, 1000)])
    code, out, err = run_cli(capsys, 'query', good, bad, '--index', index)
    assert code == 2 and out == '' and len(err) == 1 and 'bad.csv' in err[0]


# features computed elsewhere

def test_index_from_feature_files_equals_the_index_of_the_audio(built, tmp_path, capsys):
    audio, index = built
    files = sorted(str(p) for p in audio.rglob('*') if p.is_file())
    assert main(['chroma', *files, '--features', 'cqt', '--out', str(tmp_path / 'f' / 'x')]) == 0
    assert main(['index', '--from-features', str(tmp_path / 'f'), '--model', 'cqt',
                 '--out', str(tmp_path / 'from_features')]) == 0
    capsys.readouterr()
    theme = theme_csv(tmp_path / 'theme.csv', [67, 64, 60, 64, 67, 72])
    answers = []
    for idx in (index, tmp_path / 'from_features'):
        assert main(['query', str(theme), '--index', str(idx), '--json']) == 0
        answers.append(json.loads(capsys.readouterr().out)['results'])
    strip = [[{k: v for k, v in r.items() if k != 'file'} for r in a] for a in answers]
    assert strip[0] == strip[1]
    assert [r['file'] for r in answers[1]][0] == 'x/b.npz'
    assert read_manifest(tmp_path / 'from_features')['source'] == 'features'


def test_index_from_features_refuses_another_kind_or_unrecorded_files(built, tmp_path, capsys):
    audio, _ = built
    assert main(['chroma', str(audio / 'a.wav'), '--features', 'cens',
                 '--out', str(tmp_path / 'f')]) == 0
    code, _, err = run_cli(capsys, 'index', '--from-features', tmp_path / 'f', '--model', 'cqt',
                           '--out', tmp_path / 'i')
    assert code == 2 and "'cens'" in err[-1] and 'a.npz' in err[-1]
    assert not (tmp_path / 'i').exists()
    np.savez(tmp_path / 'f' / 'a.npz', chroma=np.full((12, 5), 12 ** -0.5, np.float32),
             times=np.arange(5, dtype=np.float32) / 25)
    code, _, err = run_cli(capsys, 'index', '--from-features', tmp_path / 'f', '--model', 'cqt',
                           '--out', tmp_path / 'i')
    assert code == 2 and 'without kind, weights' in err[-1]
    # features of an earlier chroma computation (files without a version are version 1)
    assert main(['chroma', str(audio / 'a.wav'), '--features', 'cqt', '--out', str(tmp_path / 'f')]) == 0
    with np.load(tmp_path / 'f' / 'a.npz') as npz:
        arrays = {key: npz[key] for key in npz.files if key != 'chroma_version'}
    np.savez(tmp_path / 'f' / 'a.npz', **arrays)
    code, _, err = run_cli(capsys, 'index', '--from-features', tmp_path / 'f', '--model', 'cqt',
                           '--out', tmp_path / 'i')
    assert code == 2 and 'chroma version 1' in err[-1] and 'a.npz' in err[-1]
    assert not (tmp_path / 'i').exists()


def test_the_scale_benchmark_archive_is_indexed_from_its_feature_files(tmp_path):
    """bench_scale writes its synthetic archive with the provenance of ``ctc-chroma chroma``."""
    import importlib.util

    from ctc_chroma_lib.dataset import load_dataset
    spec = importlib.util.spec_from_file_location(
        'bench_scale', Path(__file__).resolve().parents[1] / 'bench' / 'bench_scale.py')
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    items = load_dataset()
    rng = np.random.default_rng(0)
    unit = [(Y / np.linalg.norm(Y, axis=0)).astype(np.float32) for Y in rng.random((len(items), 12, 40))]
    chroma = {it.mtd_id: Y for it, Y in zip(items, unit)}
    planted = bench.write_archive(tmp_path / 'f', 0.05, items, chroma, n_queries=2)
    summary = build_index(tmp_path / 'f', tmp_path / 'i', model='ctc', from_features=True,
                          progress=False)
    names = sorted(read_manifest(tmp_path / 'i')['files'])
    assert summary['added'] == len(names)
    assert [f'planted_{it.mtd_id}.npz' for it in planted] == names[:2]
    assert len(names) > 2 and all(n.startswith('track_') for n in names[2:])


def test_an_audio_index_is_not_extended_from_feature_files(index_copy, tmp_path, capsys):
    audio, index = index_copy
    assert main(['chroma', str(audio / 'a.wav'), '--features', 'cqt',
                 '--out', str(tmp_path / 'f')]) == 0
    code, _, err = run_cli(capsys, 'index', '--from-features', tmp_path / 'f', '--model', 'cqt',
                           '--out', index, '--prune')
    assert code == 2 and 'built from audio files' in err[-1]


# parallel and distributed indexing

def index_contents(index):
    """The manifest entries without their time stamps: equal for equal indexes."""
    files = read_manifest(index)['files']
    return {rel: {k: v for k, v in entry.items() if k != 'indexed_at'} for rel, entry in files.items()}


def test_local_workers_build_the_same_index_as_a_serial_run(built, tmp_path, capsys):
    audio, index = built
    assert main(['index', str(audio), '--model', 'cqt', '--out', str(tmp_path / 'pool'),
                 '--workers', '2']) == 0
    assert index_contents(tmp_path / 'pool') == index_contents(index)
    assert load_index(tmp_path / 'pool')[1][0][1].tobytes() == load_index(index)[1][0][1].tobytes()


def test_local_workers_give_a_learned_index_the_same_rankings(tmp_path, capsys):
    """With a network the workers' chroma is not bit-identical to one process's: a worker runs
    TensorFlow on its share of the cores, and the 'distribute' convolution (a 4032-term sum
    per output) is summed in another order on one thread than on two. The differences stay at
    float32 rounding, and the rankings and time spans are the same."""
    audio = write_audio_folder(tmp_path / 'audio')
    for name, workers in (('serial', '1'), ('pool', '2')):
        assert main(['index', str(audio), '--model', 'teaching', '--out', str(tmp_path / name),
                     '--workers', workers]) == 0
    serial, pool = load_index(tmp_path / 'serial'), load_index(tmp_path / 'pool')
    assert serial[0]['kind'] == pool[0]['kind'] == 'ctc'
    assert [rel for rel, _ in serial[1]] == [rel for rel, _ in pool[1]]
    for (_, a), (_, b) in zip(serial[1], pool[1]):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    theme = theme_csv(tmp_path / 'theme.csv', [67, 64, 60, 64, 67, 72])
    capsys.readouterr()
    answers = []
    for name in ('serial', 'pool'):
        assert main(['query', str(theme), '--index', str(tmp_path / name), '--json']) == 0
        answers.append(json.loads(capsys.readouterr().out)['results'])
    assert [r['file'] for r in answers[0]] == [r['file'] for r in answers[1]]
    assert answers[0][0]['file'] == 'sub/b.flac'
    for a, b in zip(*answers):
        assert (a['start_time'], a['end_time']) == (b['start_time'], b['end_time'])
        assert a['cost'] == pytest.approx(b['cost'], abs=1e-4)


def test_local_workers_share_the_cores(monkeypatch):
    """Each of N local workers gets its share of the cores, also in BLAS, which NumPy starts
    before the worker's initializer runs (so that variables alone come too late)."""
    from threadpoolctl import threadpool_info

    from ctc_chroma_lib.index import _worker_pool
    if (os.cpu_count() or 1) < 2:
        pytest.skip('one CPU core: every worker gets one thread anyway')
    for variable in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
        monkeypatch.delenv(variable, raising=False)
    with _worker_pool(2) as pool:
        pools = pool.submit(threadpool_info).result()
    blas = [p['num_threads'] for p in pools if p['user_api'] == 'blas']
    assert blas and set(blas) == {os.cpu_count() // 2}


def test_a_dask_cluster_builds_the_same_index_as_a_serial_run(built, tmp_path):
    distributed = pytest.importorskip('dask.distributed')
    audio, index = built
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host='127.0.0.1', dashboard_address=None) as cluster:
        summary = build_index(audio, tmp_path / 'dask', 'cqt', progress=False,
                              dask=cluster.scheduler_address)
    assert summary['added'] == 3
    assert index_contents(tmp_path / 'dask') == index_contents(index)


def test_a_worker_error_names_the_file_and_keeps_the_completed_recordings(tmp_path, capsys):
    audio = write_audio_folder(tmp_path / 'audio')
    signal = sine_melody([60, 62])
    signal[1000] = np.nan
    sf.write(audio / 'zz_nan.wav', signal, SR, subtype='FLOAT')
    code, _, err = run_cli(capsys, 'index', audio, '--model', 'cqt', '--out', tmp_path / 'index',
                           '--workers', '2')
    assert code == 2 and 'zz_nan.wav' in err[-1] and err[-1].startswith('ctc-chroma index: error')
    assert index_contents(tmp_path / 'index')  # a consistent index of what was completed


def test_an_unreachable_dask_scheduler_is_a_clean_error(built, tmp_path, capsys, monkeypatch):
    pytest.importorskip('dask.distributed')
    import ctc_chroma_lib.index as index_module
    monkeypatch.setattr(index_module, 'DASK_CONNECT_TIMEOUT', 2.0)
    audio, _ = built
    code, _, err = run_cli(capsys, 'index', audio, '--model', 'cqt', '--out', tmp_path / 'i',
                           '--dask', 'tcp://127.0.0.1:9')
    assert code == 2 and 'cannot connect to the Dask scheduler' in err[-1]
    assert not (tmp_path / 'i').exists()

"""Integrity of the teaching dataset (data/MTD-teaching), its loader and its generator."""
import csv
import hashlib
import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from ctc_chroma_lib.dataset import DEFAULT_DATASET, load_dataset
from ctc_chroma_lib.dataset_generation import (assign_folds, generate_dataset, monophonic_line,
                                               performance_time_map, phrase_spans, tempo_curve)
from ctc_chroma_lib.errors import CTCChromaError
from ctc_chroma_lib.themes import check_monophonic

ROOT = DEFAULT_DATASET
DATA = ROOT.parent
TOL = 1e-5

needs_data = pytest.mark.skipif(not (ROOT / 'MTD-teaching.csv').is_file(),
                                reason='teaching dataset not generated (run `make data`)')


def fluidsynth_available():
    """Whether pyfluidsynth finds the FluidSynth library (Debian libfluidsynth3)."""
    import contextlib
    import io
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its path when CI is set
            import fluidsynth  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


needs_fluidsynth = pytest.mark.skipif(
    not fluidsynth_available(),
    reason='the FluidSynth library is not installed (Debian libfluidsynth3 or conda-forge '
           'fluidsynth); .ci/run installs it')


@pytest.fixture(scope='module')
def items():
    return load_dataset()


@pytest.fixture(scope='module')
def audio_info(items):
    return {item.mtd_id: sf.info(str(item.audio_path)) for item in items}


@needs_data
def test_every_item_has_all_modalities(items):
    for item in items:
        for folder, ext in (('data_AUDIO', '.ogg'), ('data_CSV', '.csv'), ('data_MIDI', '.mid'),
                            ('data_ALIGNMENT', '.csv'), ('data_PERFORMANCE', '.mid')):
            path = ROOT / folder / f'{item.mtd_id}{ext}'
            assert path.is_file() and path.stat().st_size > 0, path


@needs_data
def test_no_stray_files_in_modality_folders(items):
    ids = {item.mtd_id for item in items}
    for folder in ('data_AUDIO', 'data_CSV', 'data_MIDI', 'data_ALIGNMENT', 'data_PERFORMANCE'):
        assert {p.stem for p in (ROOT / folder).iterdir()} == ids, folder


@needs_data
def test_strong_alignment_is_monotonic_and_inside_the_weak_segment(items):
    for item in items:
        strong = item.strong_alignment
        assert strong is not None, item.mtd_id
        start, end = item.weak_alignment
        onsets = np.array([n.start for n in strong])
        assert np.all(np.diff(onsets) > 0), item.mtd_id
        assert abs(strong[0].start - start) < TOL and abs(max(n.end for n in strong) - end) < TOL
        assert all(start - TOL <= n.start and n.end <= end + TOL for n in strong), item.mtd_id


@needs_data
def test_strong_alignment_matches_the_theme_note_for_note(items):
    for item in items:
        assert [n.pitch for n in item.strong_alignment] == [n.pitch for n in item.theme], \
            item.mtd_id


@needs_data
def test_themes_are_monophonic_start_at_zero_and_have_enough_notes(items):
    for item in items:
        check_monophonic(item.theme, item.mtd_id)
        assert item.theme[0].start == 0 and item.theme[0].start_beat == 0
        assert len(item.theme) >= 4


@needs_data
def test_audio_is_mono_22050_and_covers_the_theme(items, audio_info):
    for item in items:
        info = audio_info[item.mtd_id]
        assert info.samplerate == 22050 and info.channels == 1, item.mtd_id
        assert info.duration >= item.weak_alignment[1] + 0.3, item.mtd_id
        assert abs(info.duration - float(item.metadata['Duration'])) < 0.01, item.mtd_id


@needs_data
def test_audio_is_not_silent_inside_the_theme(items):
    for item in items[::25]:
        y, sr = sf.read(str(item.audio_path), dtype='float32')
        start, end = (int(t * sr) for t in item.weak_alignment)
        assert np.sqrt(np.mean(y[start:end] ** 2)) > 0.01, item.mtd_id
        assert 0.5 < np.max(np.abs(y)) <= 1.0, item.mtd_id


@needs_data
def test_folds_are_1_to_5_disjoint_by_work_and_balanced(items):
    folds_of_work = {}
    for item in items:
        folds_of_work.setdefault(item.work_id, set()).add(item.fold)
    assert all(len(f) == 1 for f in folds_of_work.values())
    counts = Counter(item.fold for item in items)
    assert sorted(counts) == [1, 2, 3, 4, 5]
    assert max(counts.values()) - min(counts.values()) <= 0.1 * len(items) / 5 + 3


@needs_data
def test_variety_of_items_works_and_composers(items):
    composers = Counter(item.composer for item in items)
    assert len(items) >= 400
    assert len({item.work_id for item in items}) >= 80
    assert len(composers) >= 8
    assert max(composers.values()) <= 0.4 * len(items)


@needs_data
def test_total_audio_duration_is_30_to_120_minutes(audio_info):
    minutes = sum(info.duration for info in audio_info.values()) / 60
    assert 30 <= minutes <= 120


@needs_data
def test_data_folder_is_at_most_40_mib():
    size = sum(p.stat().st_size for p in DATA.rglob('*') if p.is_file())
    assert size <= 40 * 2 ** 20


@needs_data
def test_manifest_lists_every_file_with_its_checksum():
    lines = (ROOT / 'MANIFEST.sha256').read_text().splitlines()
    listed = {}
    for line in lines:
        digest, name = line.split('  ', 1)
        listed[name] = digest
    files = {p.relative_to(ROOT).as_posix() for p in ROOT.rglob('*')
             if p.is_file() and p.name != 'MANIFEST.sha256'}
    assert set(listed) == files
    for name, digest in listed.items():
        assert hashlib.sha256((ROOT / name).read_bytes()).hexdigest() == digest, name


@needs_data
@needs_fluidsynth
def test_generator_reproduces_the_first_items_exactly(tmp_path):
    out = tmp_path / 'regenerated'
    rows = generate_dataset(out, seed=0, n_items=3, jobs=1, progress=False)
    with open(ROOT / 'MTD-teaching.csv', newline='') as f:
        shipped = {row['MTDID']: row for row in csv.DictReader(f, delimiter=';')}
    for row in rows:
        expected = dict(shipped[row['MTDID']])
        # Folds depend on the whole dataset, the duration on the synthesizer version.
        for column in ('Fold', 'Duration'):
            expected.pop(column)
            row.pop(column)
        assert {k: str(v) for k, v in row.items()} == expected
        for folder in ('data_CSV', 'data_ALIGNMENT'):
            name = f'{folder}/{row["MTDID"]}.csv'
            assert (out / name).read_text() == (ROOT / name).read_text(), name
    # the README comes from the template in the package data; its head has no statistics
    head = (ROOT / 'README.md').read_text().split('## Contents')[0]
    assert (out / 'README.md').read_text().startswith(head)


@pytest.mark.parametrize('args, message', [(['--jobs', '0'], '--jobs'),
                                           (['--n-items', '0'], '--n-items')])
def test_cli_dataset_rejects_bad_arguments_in_one_line(tmp_path, capsys, args, message):
    from ctc_chroma_lib.cli import main
    assert main(['dataset', '--out', str(tmp_path / 'd')] + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / 'd').exists()


def _copy_items(tmp_path, n=2):
    """A small dataset with the first n items of the teaching dataset."""
    root = tmp_path / 'MTD-small'
    with open(ROOT / 'MTD-teaching.csv', newline='') as f:
        rows = list(csv.reader(f, delimiter=';'))
    root.mkdir()
    with open(root / 'MTD-teaching.csv', 'w', newline='') as f:
        csv.writer(f, delimiter=';', lineterminator='\n').writerows(rows[:n + 1])
    ids = [row[0] for row in rows[1:n + 1]]
    for folder in ('data_AUDIO', 'data_CSV', 'data_ALIGNMENT'):
        (root / folder).mkdir()
        for path in (ROOT / folder).iterdir():
            if path.stem in ids:
                shutil.copy(path, root / folder / path.name)
    return root, ids


@needs_data
def test_loader_reads_a_copy_and_filters_folds(tmp_path):
    root, ids = _copy_items(tmp_path)
    items = load_dataset(root)
    assert [item.mtd_id for item in items] == ids
    assert load_dataset(root, folds=[items[0].fold])[0].mtd_id == ids[0]


@needs_data
@pytest.mark.parametrize('folder, ext', [('data_AUDIO', '.ogg'), ('data_CSV', '.csv')])
def test_loader_error_names_the_missing_item_file(tmp_path, folder, ext):
    root, ids = _copy_items(tmp_path)
    (root / folder / f'{ids[1]}{ext}').unlink()
    with pytest.raises(CTCChromaError, match=f'{folder}/{ids[1]}'):
        load_dataset(root)


@needs_data
def test_loader_error_names_the_missing_metadata_file_and_column(tmp_path):
    root, _ = _copy_items(tmp_path)
    text = (root / 'MTD-teaching.csv').read_text()
    (root / 'MTD-teaching.csv').unlink()
    with pytest.raises(CTCChromaError, match='MTD-teaching.csv'):
        load_dataset(root)
    (root / 'MTD-teaching.csv').write_text(text.replace('EndTime', 'End'))
    with pytest.raises(CTCChromaError, match='EndTime'):
        load_dataset(root)


@needs_data
def test_loader_error_names_an_unreadable_theme_file(tmp_path):
    root, ids = _copy_items(tmp_path)
    (root / 'data_CSV' / f'{ids[0]}.csv').write_text('Onset;Pitch\n1;60\n')
    with pytest.raises(CTCChromaError, match=f'{ids[0]}.csv'):
        load_dataset(root)


def test_loader_error_names_a_missing_dataset_folder(tmp_path):
    with pytest.raises(CTCChromaError, match='nowhere'):
        load_dataset(tmp_path / 'nowhere')


def test_performance_time_map_with_constant_tempo_follows_the_tempo_factor():
    beats = np.linspace(0, 8, 97)
    seconds = performance_time_map(beats, qpm=120, tempo_factor=1.25)
    np.testing.assert_allclose(seconds, beats * 60 / (120 * 1.25))


def test_performance_time_map_with_rubato_is_monotonic_and_keeps_the_mean_tempo():
    beats = np.arange(0, 32 + 1e-9, 1 / 48)
    multiplier = tempo_curve(beats, np.random.default_rng(3), depth=0.08,
                             ritardando_end=24.0, ritardando=0.1)
    assert np.all(multiplier > 0.8) and np.all(multiplier < 1.1)
    seconds = performance_time_map(beats, qpm=100, tempo_factor=0.8, multiplier=multiplier)
    assert seconds[0] == 0 and np.all(np.diff(seconds) > 0)
    nominal = 32 * 60 / (100 * 0.8)
    assert 0.9 * nominal < seconds[-1] < 1.15 * nominal


def test_ritardando_slows_down_before_the_phrase_end():
    beats = np.arange(0, 16 + 1e-9, 1 / 48)
    multiplier = tempo_curve(beats, np.random.default_rng(0), depth=0.0,
                             ritardando_end=12.0, ritardando=0.1)
    assert multiplier[beats == 12.0][0] == pytest.approx(0.9)
    assert multiplier[beats == 4.0][0] == pytest.approx(1.0)
    assert multiplier[-1] == pytest.approx(1.0)


def test_monophonic_line_keeps_the_top_note_and_truncates_overlaps():
    notes = np.array([[0, 2, 60], [0, 1, 64], [1, 1, 62], [1.5, 1, 65]], dtype=float)
    line = monophonic_line(notes)
    np.testing.assert_allclose(line, [[0, 1, 64], [1, 0.5, 62], [1.5, 1, 65]])


def test_chorale_phrases_end_at_fermatas_and_span_two_to_eight_bars():
    measures = np.array([[i + 1, 4 * i, 4] for i in range(10)], dtype=float)
    spans = phrase_spans(measures, fermata_ends=[4, 12, 16, 40], qpm=80)
    assert spans == [(0.0, 12.0)] + [(12.0, 40.0)]


def test_folds_keep_each_work_in_one_fold():
    works = [(f'W{i}', f'C{i % 3}', 1 + i % 4) for i in range(20)]
    folds = assign_folds(works)
    assert set(folds) == {w for w, _, _ in works} and set(folds.values()) == {1, 2, 3, 4, 5}


def test_mtd_release_layout_is_read(tmp_path):
    """A copy arranged like the MTD release: 03_MTD-medium.csv in data_META, MM:SS times,
    files named <MTDID>_<description>."""
    import shutil
    from ctc_chroma_lib.dataset import DEFAULT_DATASET, load_dataset
    item = load_dataset()[0]
    root = tmp_path / 'MTD'
    for sub in ('data_AUDIO', 'data_CSV', 'data_META'):
        (root / sub).mkdir(parents=True)
    shutil.copy(item.audio_path, root / 'data_AUDIO' / f'{item.mtd_id}_Some-Work.ogg')
    shutil.copy(DEFAULT_DATASET / 'data_CSV' / f'{item.mtd_id}.csv',
                root / 'data_CSV' / f'{item.mtd_id}_Some-Work.csv')
    (root / 'data_META' / '03_MTD-medium.csv').write_text(
        'MTDID;WorkID;ComposerID;StartTime;EndTime\n'
        f'{item.mtd_id};W1;Someone;00:00.5;01:02.25\n')
    [loaded] = load_dataset(root)
    assert loaded.weak_alignment == (0.5, 62.25)
    assert loaded.audio_path.name == f'{item.mtd_id}_Some-Work.ogg'
    assert loaded.theme == item.theme and loaded.strong_alignment is None

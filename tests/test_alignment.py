"""Weak -> strong alignment from the CTC posterior (ctc_chroma_lib.alignment, ctc-chroma align)."""
import numpy as np
import pytest

from ctc_chroma_lib import alignment
from ctc_chroma_lib.cli import main
from ctc_chroma_lib.constants import BLANK_INDEX
from ctc_chroma_lib.dataset import load_dataset
from ctc_chroma_lib.errors import CTCChromaError
from ctc_chroma_lib.themes import ThemeNote, read_alignment_csv

THEME = [ThemeNote(0.5 * i, 0.5, p) for i, p in enumerate([60, 64, 64, 67])]


def spikes_at(onsets, chroma, n_frames, delay_frames=0):
    """A peaky 13-row output: blank everywhere, one chroma spike per onset."""
    probs = np.full((13, n_frames), 1e-3)
    probs[BLANK_INDEX] = 1.0
    for t_s, c in zip(onsets, chroma):
        t = int(round(t_s * 25)) + delay_frames
        probs[:, t] = 1e-3
        probs[c, t] = 1.0
    return (probs / probs.sum(axis=0)).astype(np.float32)


def test_align_theme_puts_each_note_at_its_spike():
    onsets = [1.0, 1.6, 2.4, 2.8]
    probs = spikes_at(onsets, [0, 4, 4, 7], 100)
    notes = alignment.align_theme(probs, THEME, start=0.9, end=3.5)
    assert [n.pitch for n in notes] == [60, 64, 64, 67]
    np.testing.assert_allclose([n.start for n in notes], onsets, atol=1e-6)
    # each note lasts until the next onset, the last one until the end of the segment
    np.testing.assert_allclose([n.end for n in notes], onsets[1:] + [3.5], atol=1e-6)


def test_onset_score_reports_median_share_and_bias():
    reference = [ThemeNote(t, 0.3, 60) for t in (1.0, 2.0, 3.0, 4.0)]
    estimated = [ThemeNote(t + d, 0.3, 60) for t, d in zip((1.0, 2.0, 3.0, 4.0), (0.04, 0.04, -0.08, 0.2))]
    score = alignment.onset_score(estimated, reference)
    assert score.median_abs_ms == pytest.approx(60)
    assert score.within(0.05) == 0.5 and score.within(0.1) == 0.75
    assert score.mean_ms == pytest.approx(50)
    pooled = alignment.pooled_score([score, score])
    assert len(pooled.errors) == 8 and pooled.within(0.1) == 0.75
    with pytest.raises(CTCChromaError, match='same theme'):
        alignment.onset_score(estimated[:3], reference)


@pytest.mark.parametrize('start, end, message', [
    (3.0, 2.0, 'start < end'), (-1.0, 2.0, 'start < end'), (float('nan'), 2.0, 'start < end'),
    (9.0, 10.0, 'after the end'), (1.0, 1.1, 'too few'),
])
def test_align_theme_rejects_impossible_weak_alignments(start, end, message):
    probs = spikes_at([1.0], [0], 100)  # 4 s
    with pytest.raises(CTCChromaError, match=message):
        alignment.align_theme(probs, THEME, start, end)


def test_align_command_recovers_a_teaching_items_strong_alignment(tmp_path, capsys):
    # A test-fold item: the shipped CTC model never saw it in training.
    item = next(it for it in load_dataset(folds=(5,)) if it.mtd_id == 'MTDT0105')
    out = tmp_path / 'aligned.csv'
    theme = item.audio_path.parents[1] / 'data_CSV' / f'{item.mtd_id}.csv'
    start, end = item.weak_alignment
    assert main(['align', str(theme), str(item.audio_path), '--start', str(start),
                 '--end', str(end), '--out', str(out)]) == 0
    estimated = read_alignment_csv(out)
    assert [n.pitch for n in estimated] == [n.pitch for n in item.strong_alignment]
    score = alignment.onset_score(estimated, item.strong_alignment)
    # notebook 07: the shipped model's onsets are late by a frame or two, some by more
    assert score.median_abs_ms <= 100 and score.within(0.1) >= 0.5
    # standard output when no --out is given, the same rows
    assert main(['align', str(theme), str(item.audio_path), '--start', str(start),
                 '--end', str(end)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == 'Start;End;Pitch' and lines[1:] == out.read_text().strip().splitlines()[1:]


@pytest.mark.parametrize('extra, message', [
    (['--start', '5', '--end', '2'], 'start'),
    (['--start', 'inf', '--end', '2'], 'finite'),
    (['--start', '1000', '--end', '1001'], 'after the end'),
    (['--start', '1', '--end', '2', '--model', 'published:nope'], 'nope'),
])
def test_align_command_rejects_bad_input_with_one_line(extra, message, capsys):
    item = load_dataset(folds=(5,))[0]
    theme = item.audio_path.parents[1] / 'data_CSV' / f'{item.mtd_id}.csv'
    assert main(['align', str(theme), str(item.audio_path)] + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_align_command_writes_nothing_into_a_missing_folder(tmp_path, capsys):
    item = load_dataset(folds=(5,))[0]
    theme = item.audio_path.parents[1] / 'data_CSV' / f'{item.mtd_id}.csv'
    out = tmp_path / 'missing' / 'a.csv'
    assert main(['align', str(theme), str(item.audio_path), '--start', '0.5', '--end', '3',
                 '--out', str(out)]) == 2
    assert not out.exists() and 'cannot write' in capsys.readouterr().err

"""Labels, batching, losses and a real training step of the trainer (ctc_chroma_lib.training)."""
from pathlib import Path

import numpy as np
import pytest

from ctc_chroma_lib.constants import BLANK_INDEX
from ctc_chroma_lib.errors import CTCChromaError
from ctc_chroma_lib.themes import ThemeNote
from ctc_chroma_lib import training


def notes(*pitches, dur=0.5, start=0.0):
    return [ThemeNote(start + i * dur, dur, p) for i, p in enumerate(pitches)]


def test_label_sequence_keeps_repeated_notes():
    # C C D: CTC needs both Cs; merging them would drop a note of the theme.
    assert training.label_sequence(notes(60, 72, 62)).tolist() == [0, 0, 2]


def test_label_sequence_is_pitch_class():
    assert training.label_sequence(notes(59, 61, 70)).tolist() == [11, 1, 10]


def test_segment_frames_cover_the_weak_segment():
    times = np.arange(100) / 25.0
    first, last = training.segment_frames(times, 1.0, 2.0)
    assert times[first] == pytest.approx(1.0) and times[last - 1] == pytest.approx(2.0)
    first_m, last_m = training.segment_frames(times, 1.0, 2.0, margin=0.2)
    assert (first - first_m, last_m - last) == (5, 5)


def test_segment_frames_never_empty():
    times = np.arange(10) / 25.0
    first, last = training.segment_frames(times, 5.0, 6.0)
    assert last - first >= 1 and last <= 10


def test_strong_frame_labels_blank_between_notes():
    aligned = [ThemeNote(0.0, 0.2, 60), ThemeNote(0.4, 0.2, 64)]
    times = np.arange(0, 0.8, 0.04)
    labels = training.strong_frame_labels(aligned, times)
    assert labels[0] == 0 and labels[12] == 4
    assert labels[7] == BLANK_INDEX and labels[-1] == BLANK_INDEX


def test_linear_frame_labels_stretch_the_score_over_the_weak_segment():
    theme = notes(60, 62, 64, 65, dur=1.0)  # 4 s in the score
    times = np.arange(0, 10, 0.04)
    labels = training.linear_frame_labels(theme, (2.0, 4.0), times)  # played in 2 s
    inside = labels[(times >= 2.0) & (times < 4.0)]
    assert list(dict.fromkeys(inside.tolist())) == [0, 2, 4, 5]
    assert np.sum(inside == 0) == pytest.approx(12, abs=1)
    assert np.all(labels[times < 2.0] == BLANK_INDEX)


def test_length_batches_group_similar_lengths_within_budget():
    lengths = [10, 200, 12, 190, 11, 205]
    batches = training.length_batches(lengths, batch_frames=420, quantum=16)
    assert sorted(np.concatenate(batches).tolist()) == list(range(6))
    for b in batches:
        assert training.padded_length(max(lengths[i] for i in b), 16) * len(b) <= 420
    assert any(set(b.tolist()) == {0, 2, 4} for b in batches)


def test_length_batches_use_few_padded_shapes():
    lengths = list(range(30, 330, 7))
    batches = training.length_batches(lengths, batch_frames=512, quantum=64)
    shapes = {(len(b), training.padded_length(max(lengths[i] for i in b), 64)) for b in batches}
    padded = {training.padded_length(n, 64) for n in lengths}
    assert len(shapes) <= 2 * len(padded)
    for b in batches:
        assert len(b) * training.padded_length(max(lengths[i] for i in b), 64) <= 512 or len(b) == 1


def test_pad_batch_pads_to_the_frame_quantum():
    ex = make_examples(np.random.default_rng(0))
    x, y = training.pad_batch(ex[:2], 'ctc')
    assert x.shape[1] == training.FRAME_QUANTUM and y[:, 0].tolist() == [30, 40]


def test_length_batches_shuffle_is_seeded():
    lengths = list(range(5, 200, 5))
    a = training.length_batches(lengths, 300, np.random.default_rng(1))
    b = training.length_batches(lengths, 300, np.random.default_rng(1))
    assert [x.tolist() for x in a] == [x.tolist() for x in b]


def make_examples(rng, n=4, t=(30, 40, 35, 50)):
    out = []
    for i in range(n):
        x = rng.random((t[i], 216, 6), dtype=np.float32)
        labels = rng.integers(0, 12, size=4).astype(np.int32)
        out.append(training.Example(f'X{i}', x, labels, np.full(t[i], BLANK_INDEX, np.int32)))
    return out


def test_pad_batch_ctc_carries_lengths():
    ex = make_examples(np.random.default_rng(0))
    x, y = training.pad_batch(ex[:2], "ctc", quantum=1)
    assert x.shape == (2, 40, 216, 6)
    assert y[:, 0].tolist() == [30, 40] and y[:, 1].tolist() == [4, 4]
    assert np.all(x[0, 30:] == 0)


def test_pad_batch_framewise_marks_padding():
    ex = make_examples(np.random.default_rng(0))
    _, y = training.pad_batch(ex[:2], "strong", quantum=1)
    assert y.shape == (2, 40) and np.all(y[0, 30:] == -1) and np.all(y[1] >= 0)


def test_ctc_loss_matches_numpy_forward_on_a_toy_batch():
    import tensorflow as tf
    rng = np.random.default_rng(3)
    probs = rng.random((1, 6, 13)).astype(np.float32)
    probs /= probs.sum(-1, keepdims=True)
    y = np.array([[6, 2, 3, 3]], dtype=np.int32)  # T=6, L=2, labels D# D#
    loss = float(training.ctc_loss(tf.constant(y), tf.constant(probs))[0])
    # Brute force: sum over all 13^6 paths is too many; use the 3-symbol sub-lattice instead.
    from itertools import product
    total = 0.0
    for path in product([3, BLANK_INDEX], repeat=6):
        collapsed = [s for j, s in enumerate(path) if s != BLANK_INDEX and (j == 0 or s != path[j - 1])]
        if collapsed == [3, 3]:
            total += np.prod([probs[0, t, s] for t, s in enumerate(path)])
    assert loss == pytest.approx(-np.log(total), rel=1e-4)


def test_framewise_loss_ignores_padding():
    import tensorflow as tf
    probs = np.full((1, 3, 13), 1 / 13, dtype=np.float32)
    y = np.array([[0, 1, -1]], dtype=np.int32)
    loss = float(training.framewise_loss(tf.constant(y), tf.constant(probs))[0])
    assert loss == pytest.approx(2 * np.log(13), rel=1e-4)


def test_a_few_ctc_training_steps_lower_the_loss():
    import keras
    from ctc_chroma_lib.model import build_model
    keras.utils.set_random_seed(0)
    ex = make_examples(np.random.default_rng(0))
    x, y = training.pad_batch(ex, 'ctc')
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=training.ctc_loss)
    before = float(model.evaluate(x, y, verbose=0))
    model.fit(x, y, epochs=8, batch_size=4, verbose=0)
    after = float(model.evaluate(x, y, verbose=0))
    assert after < 0.8 * before


def test_split_items_rejects_overlapping_folds():
    with pytest.raises(CTCChromaError, match='both'):
        training.split_items([], (1, 2), (2,))


def test_unknown_training_kind_is_an_error(tmp_path):
    with pytest.raises(CTCChromaError, match='unknown training kind'):
        training.train(training.TrainingConfig(kind='frames'), [1], [1], tmp_path)


def test_training_log_keeps_the_last_entry_of_resumed_epochs(tmp_path):
    log = tmp_path / 'x.log.csv'
    log.write_text('epoch,loss,val_loss\n0,5,6\n1,4,5\n1,3.5,4.5\n2,3,4\n')
    rows = training.read_training_log(log)
    assert [r['loss'] for r in rows] == [5, 3.5, 3]
    training.plot_training_log(log, tmp_path / 'x.png')
    assert (tmp_path / 'x.png').stat().st_size > 1000


def test_train_writes_weights_config_log_and_curves(tmp_path, monkeypatch):
    from ctc_chroma_lib.dataset import load_dataset
    from ctc_chroma_lib.model import load_model
    monkeypatch.setenv('CTC_CHROMA_CACHE', str(tmp_path / 'cache'))
    items = load_dataset()
    train_items = [it for it in items if it.fold == 1][:2]
    valid_items = [it for it in items if it.fold == 4][:1]
    config = training.TrainingConfig(epochs=2, precision='float32', jit_compile=False)
    summary = training.train(config, train_items, valid_items, tmp_path / 'out', progress=False)
    out = tmp_path / 'out'
    for suffix in ('.weights.h5', '.json', '.log.csv', '.png'):
        assert (out / f'teaching-ctc{suffix}').is_file(), suffix
    assert summary['epochs_run'] == 2 and summary['train_items'] == [it.mtd_id for it in train_items]
    assert not list(out.glob('.teaching-ctc*'))  # no backup or temporary best weights left
    model = load_model(str(out / 'teaching-ctc.weights.h5'))
    assert model.output_shape[-1] == 13


def test_train_command_reports_a_missing_dataset(tmp_path, capsys):
    from ctc_chroma_lib.cli import main
    assert main(['train', '--dataset', str(tmp_path / 'nothing'), '--out', str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'nothing' in err[0]


def test_harmonic_prior_init_passes_the_fundamental_bin_through():
    import keras
    from ctc_chroma_lib.model import build_model
    keras.utils.set_random_seed(0)
    model = build_model()
    training.harmonic_prior_init(model)
    hcqt = np.zeros((1, 20, 216, 6), dtype=np.float32)
    hcqt[0, :, 64, 1] = 1.0  # harmonic-1 bin 64: chroma (64 // 3) % 12 = 9 = A
    hcqt[0, :, 100, 3] = 1.0  # another harmonic channel must not pass through
    salience = keras.Model(model.input, model.get_layer('salience').output)(hcqt).numpy()
    assert int(np.argmax(salience[0, 10])) == 64
    assert salience[0, 10, 64] > 0.9 and salience[0, 10, 100] < 0.2
    probs = model(hcqt).numpy()
    assert int(np.argmax(probs[0, 10, :12])) == 9


def test_windowed_training_model_equals_the_model_away_from_the_ends():
    import keras
    from ctc_chroma_lib.model import CONTEXT_FRAMES, build_model
    keras.utils.set_random_seed(0)
    model = build_model()
    x = np.random.default_rng(0).random((2, 256, 216, 6), dtype=np.float32)
    full = model(x).numpy()
    windowed = training.windowed_model(model, window=64)(x).numpy()
    assert windowed.shape == full.shape
    inner = slice(CONTEXT_FRAMES, 256 - CONTEXT_FRAMES)
    np.testing.assert_allclose(windowed[:, inner], full[:, inner], atol=1e-5)


def test_config_defaults_depend_on_the_kind_and_explicit_values_win():
    assert training.TrainingConfig(kind='ctc').learning_rate == 1e-4
    assert training.TrainingConfig(kind='strong').learning_rate == 1e-3
    config = training.TrainingConfig(kind='ctc', learning_rate=3e-3, epochs=2)
    assert (config.learning_rate, config.epochs, config.patience) == (3e-3, 2, 4)


@pytest.mark.parametrize('kind', training.TRAINING_KINDS)
def test_shipped_models_were_trained_with_the_default_configuration(kind):
    # so that `make train` (ctc-chroma train --kind KIND) reproduces them
    import json
    from dataclasses import asdict
    stored = json.loads((training.WEIGHTS_DIR / f'teaching-{kind}.json').read_text())['config']
    default = json.loads(json.dumps(asdict(training.TrainingConfig(kind=kind))))
    assert stored == default

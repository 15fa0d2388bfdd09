"""Labels, batching, losses and a real training step of the trainer (ctc_chroma_lib.training)."""
from pathlib import Path

import numpy as np
import pytest

from ctc_chroma_lib.constants import BLANK_INDEX
from ctc_chroma_lib.errors import CTCChromaError
from ctc_chroma_lib.themes import ThemeNote
from ctc_chroma_lib import batching, losses, training
from ctc_chroma_lib import labels as labels_lib


def notes(*pitches, dur=0.5, start=0.0):
    return [ThemeNote(start + i * dur, dur, p) for i, p in enumerate(pitches)]


def test_label_sequence_keeps_repeated_notes():
    # C C D: CTC needs both Cs; merging them would drop a note of the theme.
    assert labels_lib.label_sequence(notes(60, 72, 62)).tolist() == [0, 0, 2]


def test_label_sequence_is_pitch_class():
    assert labels_lib.label_sequence(notes(59, 61, 70)).tolist() == [11, 1, 10]


def test_segment_frames_cover_the_weak_segment():
    times = np.arange(100) / 25.0
    first, last = labels_lib.segment_frames(times, 1.0, 2.0)
    assert times[first] == pytest.approx(1.0) and times[last - 1] == pytest.approx(2.0)
    first_m, last_m = labels_lib.segment_frames(times, 1.0, 2.0, margin=0.2)
    assert (first - first_m, last_m - last) == (5, 5)


def test_segment_frames_never_empty():
    times = np.arange(10) / 25.0
    first, last = labels_lib.segment_frames(times, 5.0, 6.0)
    assert last - first >= 1 and last <= 10


def test_strong_frame_labels_blank_between_notes():
    aligned = [ThemeNote(0.0, 0.2, 60), ThemeNote(0.4, 0.2, 64)]
    times = np.arange(0, 0.8, 0.04)
    labels = labels_lib.strong_frame_labels(aligned, times)
    assert labels[0] == 0 and labels[12] == 4
    assert labels[7] == BLANK_INDEX and labels[-1] == BLANK_INDEX


def test_linear_frame_labels_stretch_the_score_over_the_weak_segment():
    theme = notes(60, 62, 64, 65, dur=1.0)  # 4 s in the score
    times = np.arange(0, 10, 0.04)
    labels = labels_lib.linear_frame_labels(theme, (2.0, 4.0), times)  # played in 2 s
    inside = labels[(times >= 2.0) & (times < 4.0)]
    assert list(dict.fromkeys(inside.tolist())) == [0, 2, 4, 5]
    assert np.sum(inside == 0) == pytest.approx(12, abs=1)
    assert np.all(labels[times < 2.0] == BLANK_INDEX)


def test_length_batches_group_similar_lengths_within_budget():
    lengths = [10, 200, 12, 190, 11, 205]
    batches = batching.length_batches(lengths, batch_frames=420, quantum=16)
    assert sorted(np.concatenate(batches).tolist()) == list(range(6))
    for b in batches:
        assert batching.padded_length(max(lengths[i] for i in b), 16) * len(b) <= 420
    assert any(set(b.tolist()) == {0, 2, 4} for b in batches)


def test_length_batches_use_few_padded_shapes():
    lengths = list(range(30, 330, 7))
    batches = batching.length_batches(lengths, batch_frames=512, quantum=64)
    shapes = {(len(b), batching.padded_length(max(lengths[i] for i in b), 64)) for b in batches}
    padded = {batching.padded_length(n, 64) for n in lengths}
    assert len(shapes) <= 2 * len(padded)
    for b in batches:
        assert len(b) * batching.padded_length(max(lengths[i] for i in b), 64) <= 512 or len(b) == 1


def test_pad_batch_pads_to_the_frame_quantum():
    ex = make_examples(np.random.default_rng(0))
    x, y = batching.pad_batch(ex[:2], 'ctc')
    assert x.shape[1] == batching.FRAME_QUANTUM and y[:, 0].tolist() == [30, 40]


def test_length_batches_shuffle_is_seeded():
    lengths = list(range(5, 200, 5))
    a = batching.length_batches(lengths, 300, np.random.default_rng(1))
    b = batching.length_batches(lengths, 300, np.random.default_rng(1))
    assert [x.tolist() for x in a] == [x.tolist() for x in b]


def make_examples(rng, n=4, t=(30, 40, 35, 50)):
    out = []
    for i in range(n):
        x = rng.random((t[i], 216, 6), dtype=np.float32)
        labels = rng.integers(0, 12, size=4).astype(np.int32)
        out.append(batching.Example(f'X{i}', x, labels, np.full(t[i], BLANK_INDEX, np.int32)))
    return out


def test_pad_batch_ctc_carries_lengths():
    ex = make_examples(np.random.default_rng(0))
    x, y = batching.pad_batch(ex[:2], "ctc", quantum=1)
    assert x.shape == (2, 40, 216, 6)
    assert y[:, 0].tolist() == [30, 40] and y[:, 1].tolist() == [4, 4]
    assert np.all(x[0, 30:] == 0)


def test_pad_batch_framewise_marks_padding():
    ex = make_examples(np.random.default_rng(0))
    _, y = batching.pad_batch(ex[:2], "strong", quantum=1)
    assert y.shape == (2, 40) and np.all(y[0, 30:] == -1) and np.all(y[1] >= 0)


def test_ctc_loss_matches_numpy_forward_on_a_toy_batch():
    import tensorflow as tf
    rng = np.random.default_rng(3)
    probs = rng.random((1, 6, 13)).astype(np.float32)
    probs /= probs.sum(-1, keepdims=True)
    y = np.array([[6, 2, 3, 3]], dtype=np.int32)  # T=6, L=2, labels D# D#
    loss = float(losses.ctc_loss(tf.constant(y), tf.constant(probs))[0])
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
    loss = float(losses.framewise_loss(tf.constant(y), tf.constant(probs))[0])
    assert loss == pytest.approx(2 * np.log(13), rel=1e-4)


def test_a_few_ctc_training_steps_lower_the_loss():
    import keras
    from ctc_chroma_lib.model import build_model
    keras.utils.set_random_seed(0)
    ex = make_examples(np.random.default_rng(0))
    x, y = batching.pad_batch(ex, 'ctc')
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=losses.ctc_loss)
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
    from ctc_chroma_lib.plots import plot_training_log
    plot_training_log(log, png_path=tmp_path / 'x.png')
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


class _Stop(Exception):
    pass


def interrupted_validation(real_metrics, at_begin=None, at_end=None):
    """A stand-in for training.validation_metrics whose callback raises _Stop at the
    beginning (``at_begin``) or the end (``at_end``) of that epoch (0-based)."""
    import keras

    def metrics(model, items, progress=False, **options):
        inner = real_metrics(model, items, progress, **options)

        class Interrupt(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if epoch == at_begin:
                    raise _Stop()

            def on_epoch_end(self, epoch, logs=None):
                if epoch == at_end:
                    raise _Stop()
                inner.on_epoch_end(epoch, logs)
        return Interrupt()
    return metrics


def test_the_validation_retrieval_post_processes_like_the_trained_kind(tmp_path, monkeypatch):
    """val_mrr measures the chroma the model will be used with: smoothed for CTC models."""
    from ctc_chroma_lib.dataset import load_dataset
    monkeypatch.setenv('CTC_CHROMA_CACHE', str(tmp_path / 'cache'))
    items = load_dataset()
    train_items = [it for it in items if it.fold == 1][:1]
    valid_items = [it for it in items if it.fold == 4][:1]
    seen = {}

    def recording(model, items, progress=False, smoothing=1):
        seen[kind] = smoothing
        raise _Stop()

    monkeypatch.setattr(training, 'validation_metrics', recording)
    for kind in ('ctc', 'strong'):
        config = training.TrainingConfig(kind=kind, epochs=1, precision='float32')
        with pytest.raises(_Stop):
            training.train(config, train_items, valid_items, tmp_path / kind, progress=False)
    assert seen == {'ctc': 7, 'strong': 1}


def test_a_run_interrupted_while_validating_repeats_that_epoch(tmp_path, monkeypatch):
    """An interruption after an epoch's training but before its log row and backup (e.g.
    during the validation retrieval) must not leave that epoch out of the resumed log."""
    from ctc_chroma_lib.dataset import load_dataset
    monkeypatch.setenv('CTC_CHROMA_CACHE', str(tmp_path / 'cache'))
    items = load_dataset()
    train_items = [it for it in items if it.fold == 1][:1]
    valid_items = [it for it in items if it.fold == 4][:1]
    config = training.TrainingConfig(epochs=3, precision='float32', pitch_shift=0,
                                     random_margin=0.0)
    real_metrics = training.validation_metrics
    monkeypatch.setattr(training, 'validation_metrics',
                        interrupted_validation(real_metrics, at_end=1))
    out = tmp_path / 'out'
    with pytest.raises(_Stop):
        training.train(config, train_items, valid_items, out, progress=False)
    assert [int(r['epoch']) for r in training.read_training_log(out / 'teaching-ctc.log.csv')] == [0]
    monkeypatch.setattr(training, 'validation_metrics', real_metrics)
    summary = training.train(config, train_items, valid_items, out, progress=False)
    rows = training.read_training_log(out / 'teaching-ctc.log.csv')
    assert [int(r['epoch']) for r in rows] == [0, 1, 2]
    assert all('val_mrr' in r for r in rows) and summary['epochs_run'] == 3
    assert summary['sittings'] == 2
    assert summary['seconds_all_sittings'] > summary['seconds_this_run'] > 0
    assert not list(out.glob('.teaching-ctc*'))  # no backup or sittings record left


def test_weight_average_validates_and_resumes_on_averaged_weights(tmp_path, monkeypatch):
    """Validation sees the moving average of the weights, training the trained weights; an
    interrupted run swaps them back and trains on exactly as an uninterrupted one."""
    from ctc_chroma_lib.dataset import load_dataset
    monkeypatch.setenv('CTC_CHROMA_CACHE', str(tmp_path / 'cache'))
    items = load_dataset()
    train_items = [it for it in items if it.fold == 1][:1]
    valid_items = [it for it in items if it.fold == 4][:1]

    def run(out, weight_average):
        config = training.TrainingConfig(epochs=3, precision='float32', pitch_shift=0,
                                         random_margin=0.0, weight_average=weight_average)
        training.train(config, train_items, valid_items, tmp_path / out, progress=False)
        return training.read_training_log(tmp_path / out / 'teaching-ctc.log.csv')

    plain, averaged = run('plain', 0.0), run('averaged', 0.5)
    # the same training steps (one per epoch here), validated on other weights once the
    # average has more than the first step in it
    assert [r['loss'] for r in averaged] == [r['loss'] for r in plain]
    assert [r['val_loss'] == p['val_loss'] for r, p in zip(averaged, plain)] == [True, False, False]
    real_metrics = training.validation_metrics
    monkeypatch.setattr(training, 'validation_metrics',
                        interrupted_validation(real_metrics, at_begin=2))
    with pytest.raises(_Stop):
        run('resumed', 0.5)
    monkeypatch.setattr(training, 'validation_metrics', real_metrics)
    resumed = run('resumed', 0.5)
    assert [(r['loss'], r['val_loss']) for r in resumed] == \
        [(r['loss'], r['val_loss']) for r in averaged]
    with pytest.raises(CTCChromaError, match='momentum'):
        training.TrainingConfig(weight_average=1.0)


def test_a_resumed_run_trusts_the_backup_over_log_rows_of_unfinished_epochs(tmp_path):
    """A log row written after the last backup belongs to an epoch that is run again."""
    backup = tmp_path / '.x.backup'
    backup.mkdir()
    (backup / 'training_metadata.json').write_text('{"epoch": 2, "batch": 0}')
    (tmp_path / 'x.log.csv').write_text('epoch,loss,val_loss\n0,5,6\n1,4,5\n2,3,1\n')
    (tmp_path / '.x.best.weights.h5').write_bytes(b'')
    assert training._previous_run(tmp_path, 'x', 'val_loss', True) == (2, 5.0)


def test_a_run_is_not_resumed_with_other_settings(tmp_path):
    backup = tmp_path / '.teaching-ctc.backup'
    backup.mkdir()
    (backup / 'training_metadata.json').write_text('{"epoch": 1, "batch": 0}')
    (tmp_path / 'teaching-ctc.log.csv').write_text('epoch,loss,val_loss\n0,5,6\n')
    started = training.TrainingConfig(learning_rate=1e-3)
    training._check_resumed_settings(tmp_path / '.teaching-ctc.settings.json', 'teaching-ctc',
                                     started, ['A'], ['B'], resuming=False)
    other = training.TrainingConfig(learning_rate=3e-4, jit_compile=True)
    with pytest.raises(CTCChromaError, match='other learning_rate is waiting.*--restart'):
        training.train(other, ['A'], ['B'], tmp_path)
    assert (backup / 'training_metadata.json').exists()  # nothing discarded
    assert (tmp_path / 'teaching-ctc.log.csv').read_text().count('\n') == 2
    with pytest.raises(CTCChromaError, match='other train_items'):
        training.train(started, ['C'], ['B'], tmp_path)
    training._check_resumed_settings(tmp_path / '.teaching-ctc.settings.json', 'teaching-ctc',
                                     training.TrainingConfig(learning_rate=1e-3, jit_compile=True),
                                     ['A'], ['B'], resuming=True)  # --jit may change


def test_train_with_jit_compile_really_compiles_with_xla(tmp_path, monkeypatch):
    """Keras silently drops jit_compile under op determinism, which the trainer switches on
    for every other run (also earlier ones in the same process)."""
    import warnings

    import tensorflow as tf
    from ctc_chroma_lib.dataset import load_dataset
    monkeypatch.setenv('CTC_CHROMA_CACHE', str(tmp_path / 'cache'))
    tf.config.experimental.enable_op_determinism()  # as left behind by a run without XLA
    items = load_dataset()
    train_items = [it for it in items if it.fold == 1][:1]
    valid_items = [it for it in items if it.fold == 4][:1]
    config = training.TrainingConfig(epochs=1, precision='float32', jit_compile=True,
                                     pitch_shift=0, random_margin=0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        summary = training.train(config, train_items, valid_items, tmp_path / 'out',
                                 progress=False)
    assert not [w for w in caught if 'jit_compile' in str(w.message)]
    assert summary['config']['jit_compile'] is True and summary['epochs_run'] == 1
    config = training.TrainingConfig(epochs=1, precision='float32')
    training.train(config, train_items, valid_items, tmp_path / 'plain', progress=False)
    from tensorflow.python.framework import config as tf_config
    assert tf_config.is_op_determinism_enabled()  # the next run without XLA is deterministic


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


def test_blank_prior_is_the_share_of_frames_without_a_note_onset():
    examples = make_examples(np.random.default_rng(0))  # 4 x 4 notes in 155 frames
    assert training.blank_prior(examples) == pytest.approx(1 - 16 / 155)
    with pytest.raises(CTCChromaError, match='fewer frames than notes'):
        training.blank_prior(examples[:1] * 0)


def test_blank_prior_init_starts_the_blank_at_its_prior_and_keeps_the_other_weights():
    import keras
    from ctc_chroma_lib.model import build_model
    keras.utils.set_random_seed(0)
    model = build_model()
    before = model.get_weights()
    examples = make_examples(np.random.default_rng(1))
    p_blank = model(examples[0].x[None]).numpy()[0, :, BLANK_INDEX]
    assert np.median(p_blank) < 1e-3  # a random model all but ignores the blank
    bias = training.blank_prior_init(model, examples)
    prior = training.blank_prior(examples)
    probs = np.concatenate([model(e.x[None]).numpy()[0] for e in examples])
    assert np.median(probs[:, BLANK_INDEX]) == pytest.approx(prior, abs=0.02)
    assert model.get_layer('blank_pool').get_weights()[1][0] == pytest.approx(bias)
    changed = [i for i, (a, b) in enumerate(zip(before, model.get_weights()))
               if not np.array_equal(a, b)]
    assert len(changed) == 1 and before[changed[0]].shape == (1,)  # only the blank's bias


def test_salience_saturation_tells_a_dead_model_from_a_live_one():
    import keras
    from ctc_chroma_lib.model import build_model
    keras.utils.set_random_seed(0)
    model = build_model()
    inputs = [e.x for e in make_examples(np.random.default_rng(2))]
    live = training.salience_saturation(model, inputs)
    assert 0.0 < live['p1'] < live['p50'] < live['p99'] < 1.0 and live['slope'] > 0.1
    squishy = model.get_layer('squishy')  # the dead plateau: the sigmoid saturated at 1
    kernel, bias = squishy.get_weights()
    squishy.set_weights([kernel * 0, bias + 40.0])
    blank = model.get_layer('blank_pool')
    kernel, bias = blank.get_weights()
    blank.set_weights([np.full_like(kernel, 0.1), bias])  # 21.6 against 18 per chroma
    dead = training.salience_saturation(model, inputs)
    assert dead['p1'] == 1.0 and dead['slope'] == 0.0 and dead['blank_wins'] == 1.0
    assert live['blank_wins'] < 0.5


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
    ctc = training.TrainingConfig(kind='ctc')
    assert (ctc.epochs, ctc.lr_decay, ctc.weight_average) == (45, 'constant', 0.995)
    strong = training.TrainingConfig(kind='strong')
    assert (strong.epochs, strong.lr_decay, strong.weight_average, strong.init) == (25, 'cosine', 0.0,
                                                                                    'harmonic-prior')
    config = training.TrainingConfig(kind='ctc', learning_rate=3e-3, epochs=2, pitch_shift=0)
    assert (config.learning_rate, config.epochs, config.patience, config.pitch_shift) == (3e-3, 2, 45, 0)
    # random, as in the paper, but for the blank unit's bias, which starts at the blank's prior
    assert training.TrainingConfig(kind='ctc').init == 'blank-prior'
    assert training.TrainingConfig(kind='ctc', init='').init == ''  # an explicit '' wins


def example_with_notes(t=20):
    x = np.zeros((t, 216, 6), np.float32)
    x[:, 30, :] = 1.0  # bin 30: chroma (30 // 3) % 12 = 10 = A#
    frame_labels = np.full(t, BLANK_INDEX, np.int32)
    frame_labels[5:10] = 10
    return batching.Example('X', x, np.array([10, 0], np.int32), frame_labels)


def test_transpose_example_moves_bins_and_labels_together():
    ex = example_with_notes()
    up = batching.transpose_example(ex, 2)  # A# + 2 semitones = C
    assert np.argmax(up.x[0, :, 1]) == 36 and up.x[0, 30, 1] == 0
    assert up.labels.tolist() == [0, 2]
    assert up.frame_labels[5] == 0 and up.frame_labels[0] == BLANK_INDEX
    down = batching.transpose_example(ex, -3)  # A# - 3 = G
    assert down.labels.tolist() == [7, 9] and np.argmax(down.x[0, :, 1]) == 21
    # every (frame, harmonic) vector stays a unit vector, as model.prepare_input makes it
    np.testing.assert_allclose(np.linalg.norm(up.x, axis=1), 1.0, rtol=1e-6)


def test_transpose_example_fills_empty_vectors_like_prepare_input():
    ex = example_with_notes()
    gone = batching.transpose_example(ex, 62)  # the only bin is shifted out of the 216
    np.testing.assert_allclose(gone.x, 1 / np.sqrt(216), rtol=1e-6)


def test_crop_example_keeps_the_core_and_varies_the_margin():
    ex = example_with_notes(40)
    ex.core = (10, 30)
    assert len(batching.crop_example(ex).x) == 20  # validation: the core alone
    rng = np.random.default_rng(0)
    crops = [batching.crop_example(ex, rng) for _ in range(50)]
    for crop in crops:
        assert 20 <= len(crop.x) <= 40 and len(crop.frame_labels) == len(crop.x)
        assert crop.core is None
    assert len({len(c.x) for c in crops}) > 5


def test_make_example_with_random_margin_marks_the_core():
    from ctc_chroma_lib.dataset import load_dataset
    from ctc_chroma_lib.features import hcqt_file
    item = load_dataset(folds=(1,))[1]
    hcqt, times = hcqt_file(item.audio_path)
    plain = batching.make_example(item, hcqt, times, 'ctc')
    wide = batching.make_example(item, hcqt, times, 'ctc', random_margin=0.5)
    first, last = wide.core
    np.testing.assert_array_equal(wide.x[first:last], plain.x)
    assert first > 0 and last - first == len(plain.x)


def test_learning_rate_schedule_warms_up_then_decays():
    config = training.TrainingConfig(kind='ctc', learning_rate=1e-3, warmup_epochs=2,
                                     lr_decay='cosine', epochs=10)
    schedule = training.learning_rate_schedule(config, steps_per_epoch=10)
    rates = [float(schedule(step)) for step in (0, 10, 20, 60, 99)]
    assert rates[0] == 0 and rates[1] == pytest.approx(5e-4) and rates[2] == pytest.approx(1e-3)
    assert rates[2] > rates[3] > rates[4] >= 1e-5 * 0.99
    constant = training.TrainingConfig(kind='ctc', learning_rate=2e-3, warmup_epochs=0,
                                       lr_decay='constant')
    assert training.learning_rate_schedule(constant, 10) == 2e-3
    warm = training.TrainingConfig(kind='ctc', learning_rate=2e-3, warmup_epochs=1,
                                   lr_decay='constant', epochs=5)
    schedule = training.learning_rate_schedule(warm, 10)
    assert float(schedule(5)) == pytest.approx(1e-3) and float(schedule(40)) == pytest.approx(2e-3)


def test_make_optimizer_is_the_recipes_adam():
    config = training.TrainingConfig(kind='ctc', learning_rate=1e-3, warmup_epochs=1,
                                     lr_decay='constant', clipnorm=5.0, weight_average=0.995)
    optimizer = training.make_optimizer(config, steps_per_epoch=10)
    assert optimizer.clipnorm == 5.0 and optimizer.use_ema and optimizer.ema_momentum == 0.995
    assert float(optimizer.learning_rate) == 0  # the warm-up's first step
    plain = training.make_optimizer(
        training.TrainingConfig(kind='strong', learning_rate=2e-3, warmup_epochs=0,
                                lr_decay='constant', clipnorm=0.0, weight_average=0.0), 10)
    assert plain.clipnorm is None and not plain.use_ema
    assert float(plain.learning_rate) == pytest.approx(2e-3)


def test_loss_per_note_metric_divides_the_summed_loss_by_the_notes():
    import tensorflow as tf
    rng = np.random.default_rng(4)
    probs = rng.random((2, 8, 13)).astype(np.float32)
    probs /= probs.sum(-1, keepdims=True)
    y = np.array([[8, 2, 3, 5, 0], [6, 3, 1, 2, 1]], dtype=np.int32)
    metric = losses.ctc_loss_per_note_metric()
    metric.update_state(tf.constant(y), tf.constant(probs))
    per_item = losses.ctc_loss(tf.constant(y), tf.constant(probs)).numpy()
    assert float(metric.result()) == pytest.approx(per_item.sum() / 5, rel=1e-5)


def test_ctc_fit_diagnostics_tell_a_peaky_model_from_a_flat_one():
    from ctc_chroma_lib.dataset import load_dataset
    item = load_dataset(folds=(5,))[0]
    n_frames = int(item.weak_alignment[1] * 25) + 30
    flat = np.full((13, n_frames), 1 / 13, np.float32)
    peaky = np.full((13, n_frames), 0.001, np.float32)
    peaky[BLANK_INDEX] = 1.0
    for note in item.strong_alignment:
        t = int(round(note.start * 25))
        peaky[:, t] = 0.001
        peaky[note.chroma, t] = 1.0
    peaky /= peaky.sum(axis=0)
    d_flat = losses.ctc_fit_diagnostics([(item, flat)])
    d_peaky = losses.ctc_fit_diagnostics([(item, peaky)])
    assert d_flat['blank_share'] == 0 and d_peaky['blank_share'] > 0.8
    assert d_peaky['loss_per_note'] < 1.0 and d_flat['loss_per_note'] > 10
    assert d_peaky['n_notes'] == len(item.theme)


SPEED_SETTINGS = ('jit_compile', 'precision')
"""Fields of TrainingConfig that change how fast a run computes, not what it learns."""


def assert_trained_with_the_recipe(kind, split):
    """The stored configuration of a shipped run is its kind's recipe for ``split``, up to
    speed settings, and the run is complete; returns the model name."""
    import json
    from dataclasses import asdict
    from ctc_chroma_lib.kinds import parse_split, split_model_name
    name = split_model_name(kind, split)
    summary = json.loads((training.WEIGHTS_DIR / f'{name}.json').read_text())
    train_folds, valid_folds, _ = parse_split(split)
    default = json.loads(json.dumps(asdict(training.TrainingConfig(
        kind=kind, train_folds=train_folds, valid_folds=valid_folds))))
    stored = dict(summary['config'])
    for key in SPEED_SETTINGS:
        stored.pop(key), default.pop(key)
    assert stored == default
    assert summary['epochs_run'] == stored['epochs']  # the whole run, not a partial one
    return name


@pytest.mark.parametrize('kind', training.TRAINING_KINDS)
def test_shipped_models_were_trained_with_the_default_configuration(kind):
    # so that `make train` (ctc-chroma train --kind KIND) reproduces them
    from ctc_chroma_lib.kinds import SHIPPED_SPLIT
    assert_trained_with_the_recipe(kind, SHIPPED_SPLIT)


def split_configs():
    from ctc_chroma_lib.kinds import SHIPPED_SPLIT, SPLITS
    return [(kind, split) for kind in training.TRAINING_KINDS for split in SPLITS
            if split != SHIPPED_SPLIT]


@pytest.mark.parametrize('kind, split', split_configs())
def test_shipped_split_models_were_trained_with_their_kinds_recipe(kind, split):
    # every model evaluate --cv needs is shipped, trained with its kind's recipe, so that
    # evaluate --cv compares the shipped recipes and `make train SPLIT=` reproduces them
    name = assert_trained_with_the_recipe(kind, split)
    assert (training.WEIGHTS_DIR / f'{name}.weights.h5').is_file()


def test_a_resumed_pipeline_continues_the_random_streams_of_its_epoch():
    examples = make_examples(np.random.default_rng(0), n=4)
    fresh, steps = batching.make_tf_dataset(examples, 'ctc', 64, seed=0, pitch_shift=6)
    resumed, _ = batching.make_tf_dataset(examples, 'ctc', 64, seed=0, pitch_shift=6, first_epoch=1)
    fresh_batches = [x.numpy() for x, _ in fresh.take(2 * steps)]
    resumed_batches = [x.numpy() for x, _ in resumed.take(steps)]
    for a, b in zip(fresh_batches[steps:], resumed_batches):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(fresh_batches[:steps], resumed_batches))


# cross-validation splits

def test_the_five_splits_hold_out_every_fold_once():
    from ctc_chroma_lib.kinds import SPLITS, parse_split
    held_out = []
    for split in SPLITS:
        train_folds, valid_folds, test_fold = parse_split(split)
        assert len(train_folds) == 3 and len(valid_folds) == 1
        assert sorted(train_folds + valid_folds + (test_fold,)) == [1, 2, 3, 4, 5]
        held_out.append(test_fold)
    assert sorted(held_out) == [1, 2, 3, 4, 5]
    assert parse_split('train234valid5') == ((2, 3, 4), (5,), 1)


def test_split_names_and_errors():
    from ctc_chroma_lib.errors import CTCChromaError
    from ctc_chroma_lib.kinds import parse_split, split_model_name
    assert split_model_name('ctc', 'train123valid4') == 'teaching-ctc'
    assert split_model_name('strong', 'train451valid2') == 'teaching-strong-train451valid2'
    with pytest.raises(CTCChromaError, match='valid splits'):
        parse_split('train12valid3')

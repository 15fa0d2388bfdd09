"""Specification of loading the authors' published checkpoints (ctc_chroma_lib.published)."""
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

from ctc_chroma_lib import published
from ctc_chroma_lib.errors import CTCChromaError
from ctc_chroma_lib.model import load_model, predict_probs, prepare_input

pytestmark = pytest.mark.skipif(published.published_models_dir() is None,
                                reason="the authors' package ctc-chroma is not installed")

REFERENCE_AUDIO = (Path(__file__).resolve().parents[1].parent / 'shared' / 'reference_audio'
                   / 'Beethoven_Op002-2-01_Pitman.wav')

PARITY_IDS = ['v1_ctc_train1234valid5', 'v2_ctc_train123valid4', 'v2_strong_train234valid5',
              'v2_linear_train512valid3']


def original_forward(model_id, x):
    """The authors' forward pass (their models.py), written directly on the checkpoint tensors.

    x: (T, 216, 6) normalized input; returns probabilities (13, T).
    """
    import tensorflow as tf
    reader = tf.train.load_checkpoint(str(published.checkpoint_prefix(model_id)))

    def var(name):
        return reader.get_tensor(f'{name}/.ATTRIBUTES/VARIABLE_VALUE')

    y = tf.constant(x[None], dtype=tf.float32)
    for i in range(5):  # bendy1, bendy2, smoothy1, smoothy2, distribute
        y = tf.nn.conv2d(y, var(f'layer_with_weights-{i}/kernel'), strides=1, padding='SAME')
        y = tf.nn.leaky_relu(y + var(f'layer_with_weights-{i}/bias'), alpha=0.3)
    y = tf.nn.conv2d(y, var('layer_with_weights-5/kernel'), strides=1, padding='SAME')
    salience = tf.sigmoid(y + var('layer_with_weights-5/bias'))[0, :, :, 0].numpy().astype(np.float64)
    chroma = salience @ var('layer_with_weights-6/layer/kernel')
    blank = salience @ var('layer_with_weights-7/layer/kernel') + var('layer_with_weights-7/layer/bias')
    logits = np.concatenate([chroma, blank], axis=1)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (probs / probs.sum(axis=1, keepdims=True)).T


def authors_hcqt(path, feature_rate=25):
    """The authors' features.py HCQT (median-binned to 25 Hz), with a shim for librosa 0.11.

    Their ``compute_hcqt_median`` also calls ``librosa.cqt_frequencies`` with an argument
    that is keyword-only today; the frequency grid is not needed here, so the remaining
    steps are called one by one.
    """
    spec = importlib.util.spec_from_file_location(
        'authors_features', Path(published.published_models_dir()).parent / 'features.py')
    authors = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(authors)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # librosa: n_fft > signal at the top octave
        hcqt = authors.compute_hcqt(str(path))
    times = authors.get_time_grid(hcqt.shape[-1])
    new_times = np.arange(times[0], times[-1] + np.finfo(float).eps, 1.0 / feature_rate)
    return authors.median_bin_salience(hcqt, times, new_times, axis=-1)


def test_there_are_25_published_models():
    assert len(published.PUBLISHED_MODEL_IDS) == 25
    assert 'v2_ctc_train123valid4' in published.PUBLISHED_MODEL_IDS
    assert {i.split('_')[1] for i in published.PUBLISHED_MODEL_IDS} == {'ctc', 'strong', 'linear'}


def test_models_dir_is_found_without_importing_the_package():
    import sys
    published.published_models_dir()
    assert 'ctc_chroma' not in sys.modules


def test_unknown_id_error_lists_the_valid_ids():
    with pytest.raises(CTCChromaError) as err:
        load_model('published:v9_nonsense')
    message = str(err.value)
    assert 'v9_nonsense' in message
    assert all(model_id in message for model_id in published.PUBLISHED_MODEL_IDS)


def test_missing_package_gives_a_clear_error(monkeypatch):
    monkeypatch.setattr(published, 'published_models_dir', lambda: None)
    with pytest.raises(CTCChromaError, match='ctc-chroma'):
        published.checkpoint_prefix('v2_ctc_train123valid4')


def test_published_chroma_pooling_equals_the_fixed_pooling():
    from ctc_chroma_lib.model import chroma_pooling_matrix
    for model_id in published.PUBLISHED_MODEL_IDS:
        np.testing.assert_array_equal(published.read_checkpoint(model_id)['chroma_pool'][0],
                                      chroma_pooling_matrix())


@pytest.mark.parametrize('model_id', PARITY_IDS)
def test_loaded_model_equals_the_original_forward_pass(model_id):
    hcqt = np.random.default_rng(1).random((6, 216, 60), dtype=np.float32)
    hcqt[:, :, 7] = 0.0  # a silent frame exercises the zero fill
    ours = predict_probs(load_model(f'published:{model_id}'), hcqt, chunk_frames=25)
    original = original_forward(model_id, prepare_input(hcqt))
    assert np.max(np.abs(ours - original)) <= 1e-5


def test_every_published_model_loads():
    hcqt = np.random.default_rng(2).random((6, 216, 3), dtype=np.float32)
    for model_id in published.PUBLISHED_MODEL_IDS:
        probs = predict_probs(load_model(f'published:{model_id}'), hcqt)
        assert probs.shape == (13, 3) and np.all(np.isfinite(probs))


@pytest.mark.slow
def test_whole_pipeline_reproduces_the_original_on_reference_audio():
    if not REFERENCE_AUDIO.is_file():
        pytest.skip(f'reference audio absent: {REFERENCE_AUDIO}')
    from ctc_chroma_lib.audio import load_audio
    from ctc_chroma_lib.features import hcqt
    model_id = 'v2_ctc_train123valid4'
    theirs_hcqt = authors_hcqt(REFERENCE_AUDIO)
    original = original_forward(model_id, prepare_input(theirs_hcqt))
    ours_hcqt, _ = hcqt(load_audio(REFERENCE_AUDIO))
    ours = predict_probs(load_model(f'published:{model_id}'), ours_hcqt)
    n = min(ours.shape[1], original.shape[1])
    assert abs(ours.shape[1] - original.shape[1]) <= 1
    assert np.max(np.abs(ours[:, :n] - original[:, :n])) <= 0.02

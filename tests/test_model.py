"""Specification of the CTC chroma model (ctc_chroma_lib.model)."""
import librosa
import numpy as np
import pytest

from ctc_chroma_lib import model as model_lib
from ctc_chroma_lib.constants import BLANK_INDEX, NUM_CLASSES
from ctc_chroma_lib.errors import CTCChromaError


@pytest.fixture(scope='module')
def model():
    import keras
    keras.utils.set_random_seed(0)
    return model_lib.build_model()


@pytest.fixture(scope='module')
def weights_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp('weights') / 'seeded.weights.h5'
    model.save_weights(path)
    return path


def random_hcqt(n_frames, seed=0):
    return np.random.default_rng(seed).random((6, 216, n_frames), dtype=np.float32)


def test_output_has_one_frame_per_input_frame_and_13_classes(model):
    for n_frames in (1, 7, 40):
        x = model_lib.prepare_input(random_hcqt(n_frames))[None]
        assert model(x).shape == (1, n_frames, NUM_CLASSES)


def test_parameter_count_matches_the_published_architecture(model):
    assert model.count_params() == 75562
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 72970


def test_layers_are_named_after_the_deep_salience_stack(model):
    names = {layer.name for layer in model.layers}
    assert {'bendy1', 'bendy2', 'smoothy1', 'smoothy2', 'distribute', 'squishy',
            'chroma_pool', 'blank_pool', 'softmax'} <= names


def test_chroma_pooling_is_fixed_and_not_trainable(model):
    layer = model.get_layer('chroma_pool')
    assert not layer.trainable
    assert all(w is not layer.kernel for w in model.trainable_weights)


def test_chroma_pooling_sums_three_bins_per_semitone_into_twelve_classes(model):
    pooling = model.get_layer('chroma_pool').get_weights()[0]
    assert pooling.shape == (216, 12)
    assert set(np.unique(pooling)) == {0.0, 1.0}
    assert np.all(pooling.sum(axis=1) == 1)  # every bin in exactly one class
    assert np.all(pooling.sum(axis=0) == 18)  # 3 bins x 6 octaves per class
    # Bin 0 is C1 (32.7 Hz); bins 0-2 -> C, 3-5 -> C#, ..., 36 -> C again; A4 (440 Hz) -> A.
    assert pooling[0:3, 0].all() and pooling[3:6, 1].all() and pooling[36, 0]
    a4_bin = int(round(36 * np.log2(440.0 / 32.7)))
    assert np.argmax(pooling[a4_bin]) == 9


def test_blank_unit_is_trainable_with_bias(model):
    layer = model.get_layer('blank_pool')
    assert layer.trainable
    kernel, bias = layer.get_weights()
    assert kernel.shape == (216, 1) and bias.shape == (1,)


def test_probabilities_sum_to_one(model):
    probs = model_lib.predict_probs(model, random_hcqt(30))
    assert probs.shape == (NUM_CLASSES, 30) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    assert np.all(probs >= 0)


def test_blank_is_the_last_class_and_comes_from_the_blank_unit(model):
    # A huge blank bias must put all mass on class 12.
    layer = model.get_layer('blank_pool')
    kernel, bias = layer.get_weights()
    try:
        layer.set_weights([kernel, bias + 1000.0])
        probs = model_lib.predict_probs(model, random_hcqt(5))
    finally:
        layer.set_weights([kernel, bias])
    np.testing.assert_allclose(probs[BLANK_INDEX], 1.0, atol=1e-6)


def test_prepare_input_transposes_to_time_first():
    hcqt = random_hcqt(9)
    x = model_lib.prepare_input(hcqt)
    assert x.shape == (9, 216, 6) and x.dtype == np.float32
    ratio = x[4, :, 2] / hcqt[2, :, 4]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)


def test_prepare_input_normalizes_every_frame_and_harmonic_to_unit_l2_norm():
    x = model_lib.prepare_input(random_hcqt(11) * 7.0)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)


def test_prepare_input_fills_zero_vectors_with_uniform_unit_vector():
    hcqt = random_hcqt(4)
    hcqt[3, :, 1] = 0.0
    x = model_lib.prepare_input(hcqt)
    np.testing.assert_allclose(x[1, :, 3], 1.0 / np.sqrt(216), rtol=1e-6)
    assert np.all(np.isfinite(x))


def test_prepare_input_matches_the_authors_librosa_normalization():
    hcqt = random_hcqt(6)
    hcqt[0, :, 2] = 0.0
    expected = librosa.util.normalize(hcqt.T, norm=2, fill=True, axis=1)
    np.testing.assert_allclose(model_lib.prepare_input(hcqt), expected, atol=1e-7)


def test_prepare_input_rejects_wrong_shape():
    with pytest.raises(CTCChromaError, match='shape'):
        model_lib.prepare_input(np.zeros((216, 10)))


@pytest.mark.parametrize('chunk_frames', [1, 16, 37, 100])
def test_chunked_prediction_equals_unchunked_prediction(model, chunk_frames):
    hcqt = random_hcqt(101, seed=3)
    whole = model_lib.predict_probs(model, hcqt, chunk_frames=10_000)
    chunked = model_lib.predict_probs(model, hcqt, chunk_frames=chunk_frames)
    np.testing.assert_allclose(chunked, whole, atol=1e-6)


def test_prediction_of_an_empty_hcqt_is_empty(model):
    assert model_lib.predict_probs(model, np.zeros((6, 216, 0))).shape == (13, 0)


def test_load_model_from_weights_file_reproduces_the_saved_model(model, weights_file):
    hcqt = random_hcqt(20)
    loaded = model_lib.load_model(weights_file)
    np.testing.assert_allclose(model_lib.predict_probs(loaded, hcqt), model_lib.predict_probs(model, hcqt),
                               atol=1e-6)


def test_load_model_caches_per_spec(weights_file):
    assert model_lib.load_model(weights_file) is model_lib.load_model(str(weights_file))


def test_load_model_names_a_missing_weights_file(tmp_path):
    missing = tmp_path / 'nothing.weights.h5'
    with pytest.raises(CTCChromaError, match='nothing.weights.h5'):
        model_lib.load_model(missing)


def test_load_model_names_an_incompatible_weights_file(tmp_path):
    import keras
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / 'other.weights.h5'
    other.save_weights(path)
    with pytest.raises(CTCChromaError, match='other.weights.h5'):
        model_lib.load_model(path)


def test_load_model_names_a_corrupt_weights_file(tmp_path):
    path = tmp_path / 'corrupt.weights.h5'
    path.write_bytes(b'not hdf5 at all')
    with pytest.raises(CTCChromaError, match='corrupt.weights.h5'):
        model_lib.load_model(path)


@pytest.mark.parametrize('spec', ['teaching', 'teaching-strong', 'teaching-linear'])
def test_missing_shipped_weights_say_how_to_create_them(spec, weights_dir):
    with pytest.raises(CTCChromaError, match='make train'):
        model_lib.load_model(spec)

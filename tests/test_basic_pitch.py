"""Basic Pitch as the feature kind ``basic-pitch``: the package's own inference, reproduced."""
import sys
import types

import numpy as np
import pytest
import soundfile as sf

from conftest import harmonic_tones
from ctc_chroma_lib import basic_pitch_chroma as bp
from ctc_chroma_lib.errors import CTCChromaError

SR = bp.SAMPLE_RATE

try:
    bp.model_path()
    import onnxruntime  # noqa: F401
except (CTCChromaError, ImportError) as error:
    pytest.skip(f'Basic Pitch is not installed ({error}); `make setup` installs it',
                allow_module_level=True)


def tones(pitches, seconds=3.0):
    """Harmonic tones of the given MIDI pitches sounding together, with an attack."""
    return harmonic_tones(pitches, seconds, harmonics=4, gain=0.2, attack=0.02, decay=4)


@pytest.fixture(scope='module')
def package_inference():
    """``basic_pitch.inference`` of the installed package.

    Its note-creation module imports mir_eval and resampy, which ``--no-deps`` leaves out and
    which inference itself never calls; empty stand-ins let the module import.
    """
    stubs = {name: types.ModuleType(name) for name in ('mir_eval', 'resampy')
             if name not in sys.modules}
    sys.modules.update(stubs)
    try:
        from basic_pitch import inference
    except Exception as error:  # pragma: no cover - a package version we do not know
        pytest.skip(f'basic_pitch.inference does not import here: {error}')
    finally:
        for name in stubs:
            sys.modules.pop(name, None)
    return inference


@pytest.mark.parametrize('seconds', [0.3, 2.0, 7.3])
def test_note_activations_reproduce_the_package_inference(package_inference, tmp_path,
                                                          seconds):
    y = tones([60, 64, 67], seconds=seconds)
    sf.write(tmp_path / 'chord.wav', y, SR, subtype='FLOAT')
    model = package_inference.Model(bp.model_path())
    theirs = package_inference.run_inference(tmp_path / 'chord.wav', model)['note']
    ours = bp.note_activations(y)
    assert ours.shape == theirs.T.shape == (88, int(seconds * SR * 86 / SR))
    np.testing.assert_allclose(ours, theirs.T, atol=1e-5)


def test_a_chord_gives_its_three_chroma_classes():
    chroma, times = bp.chroma_basic_pitch(tones([60, 64, 67]))  # C E G
    middle = chroma[:, len(times) // 4: 3 * len(times) // 4].mean(axis=1)
    assert set(np.argsort(middle)[-3:]) == {0, 4, 7}
    np.testing.assert_allclose(np.linalg.norm(chroma, axis=0), 1, atol=1e-5)


def test_folding_keeps_the_most_probable_octave_of_a_pitch_class():
    notes = np.zeros((88, 2))
    notes[60 - bp.LOWEST_KEY, 0], notes[72 - bp.LOWEST_KEY, 0] = 0.5, 0.25   # C4 and C5
    notes[bp.LOWEST_KEY - bp.LOWEST_KEY, 1] = 1.0                            # A0
    chroma = bp.fold_to_chroma(notes)
    assert chroma[0, 0] == 0.5 and chroma[9, 1] == 1.0 and chroma.sum() == 1.5


def test_basic_pitch_chroma_is_on_the_grid_of_every_other_kind(tmp_path):
    from ctc_chroma_lib.chroma import compute_chroma
    from ctc_chroma_lib.index import feature_params
    sf.write(tmp_path / 'a.wav', tones([62, 66, 69], seconds=2.0), SR)
    chroma, times = compute_chroma(tmp_path / 'a.wav', 'basic-pitch', cache=False)
    _, cqt_times = compute_chroma(tmp_path / 'a.wav', 'cqt', cache=False)
    assert chroma.dtype == np.float32 and np.array_equal(times, cqt_times)
    assert feature_params('basic-pitch')['weights'] == bp.fingerprint()


def test_the_onnx_model_agrees_with_the_packaged_tflite_model(package_inference, tmp_path):
    y = tones([57, 61, 64], seconds=4.0)
    sf.write(tmp_path / 'chord.wav', y, SR, subtype='FLOAT')
    try:
        tflite = package_inference.Model(bp.model_path().with_suffix('.tflite'))
    except ValueError as error:  # pragma: no cover - no TFLite interpreter in this TensorFlow
        pytest.skip(f'the TFLite model does not load here: {error}')
    assert tflite.model_type == package_inference.Model.MODEL_TYPES.TFLITE
    theirs = package_inference.run_inference(tmp_path / 'chord.wav', tflite)['note']
    np.testing.assert_allclose(bp.note_activations(y), theirs.T, atol=1e-4)

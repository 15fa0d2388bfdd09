"""HCQT at 25 Hz: shape, rate, values equal to the straightforward librosa recipe, caching."""
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import sine
from ctc_chroma_lib import features
from ctc_chroma_lib.constants import HCQT
from ctc_chroma_lib.errors import CTCChromaError
from ctc_chroma_lib.features import hcqt, hcqt_file, hcqt_reference

SR = HCQT.sr
REFERENCE_AUDIO = (Path(__file__).resolve().parents[1].parent / 'shared' / 'reference_audio'
                   / 'Beethoven_Op002-2-01_Pitman.wav')


def _chord(seconds=2.0, sr=SR):
    """A C major triad with a little noise: energy in many bins of every harmonic."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0)) / 4
    return (y + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def _assert_close_to_reference(fast, reference):
    assert fast.shape == reference.shape
    diff = np.abs(fast - reference)
    assert diff.mean() <= 0.002
    assert np.percentile(diff, 99) <= 0.01


@pytest.fixture(scope='module')
def tone_hcqt():
    return hcqt(sine(3.0))


def test_hcqt_shape_dtype_and_value_range(tone_hcqt):
    features_, times = tone_hcqt
    assert features_.shape == (HCQT.n_harmonics, HCQT.n_bins, 75)
    assert features_.dtype == np.float32 and times.dtype == np.float32
    # the loudest bin is 0 dB before the median over hop frames
    assert features_.min() >= 0.0 and 0.99 < features_.max() <= 1.0


def test_hcqt_frames_are_at_the_feature_rate_from_zero(tone_hcqt):
    _, times = tone_hcqt
    assert times[0] == 0.0
    np.testing.assert_allclose(np.diff(times), 1.0 / HCQT.feature_rate, atol=1e-5)


def test_hcqt_peak_of_a_440_hz_tone_is_at_the_a4_bin(tone_hcqt):
    features_, _ = tone_hcqt
    a4_bin = round(HCQT.bins_per_octave * np.log2(440.0 / HCQT.fmin))
    assert np.argmax(features_[HCQT.harmonics.index(1)].mean(axis=1)) == a4_bin
    # the harmonic-2 channel starts an octave higher: A4 is an octave lower in its bins
    assert np.argmax(features_[HCQT.harmonics.index(2)].mean(axis=1)) == \
        a4_bin - HCQT.bins_per_octave


def test_hcqt_matches_reference_on_a_synthetic_chord():
    y = _chord()
    fast, fast_times = hcqt(y)
    reference, reference_times = hcqt_reference(y)
    np.testing.assert_array_equal(fast_times, reference_times)
    _assert_close_to_reference(fast, reference)


def test_hcqt_matches_reference_on_real_audio():
    if not REFERENCE_AUDIO.exists():
        pytest.skip(f'reference audio not available: {REFERENCE_AUDIO}')
    y, sr = sf.read(REFERENCE_AUDIO, dtype='float32')
    fast, _ = hcqt(y, sr=sr)
    reference, _ = hcqt_reference(y, sr=sr)
    _assert_close_to_reference(fast, reference)


def test_hcqt_mixes_stereo_down(tone_hcqt):
    y = sine(3.0)
    stereo, _ = hcqt(np.stack([y, y]))
    np.testing.assert_allclose(stereo, tone_hcqt[0], atol=1e-5)


def test_hcqt_resamples_other_sampling_rates(tone_hcqt):
    features_44k, times = hcqt(sine(3.0, sr=44100), sr=44100)
    assert features_44k.shape == tone_hcqt[0].shape
    assert np.abs(features_44k - tone_hcqt[0]).mean() < 0.01


def test_hcqt_of_silence_is_finite_and_zero():
    features_, _ = hcqt(np.zeros(SR, dtype=np.float32))
    assert np.all(np.isfinite(features_))
    assert np.all(features_ == 0.0)


def test_hcqt_of_audio_shorter_than_one_frame_is_an_error():
    with pytest.raises(CTCChromaError, match='too short'):
        hcqt(np.ones(SR // 50, dtype=np.float32))


def test_hcqt_rejects_non_finite_samples():
    y = sine(0.5)
    y[100] = np.nan
    with pytest.raises(CTCChromaError, match='NaN'):
        hcqt(y)


def test_log_compress_equals_librosa_amplitude_to_db():
    import librosa

    magnitude = np.random.default_rng(1).random((2, 30, 40)).astype(np.float32) ** 8
    expected = librosa.amplitude_to_db(magnitude, ref=np.max) / 80 + 1
    np.testing.assert_allclose(features.log_compress(magnitude), expected, atol=1e-5)


def test_median_binning_equals_librosa_sync():
    import librosa

    data = np.random.default_rng(2).random((3, 50)).astype(np.float32)
    bounds = np.array([0, 3, 7, 10, 14, 17, 21, 24, 28, 31, 35, 50])
    expected = librosa.util.sync(data, list(bounds), aggregate=np.median, pad=False)
    np.testing.assert_allclose(features.median_binning(data, bounds), expected, atol=1e-7)


# --- on-disk cache -------------------------------------------------------------------

@pytest.fixture
def tone_file(tmp_path):
    path = tmp_path / 'tone.wav'
    sf.write(path, sine(1.0), SR)
    return path


def _count_computations(monkeypatch):
    calls = []
    original = features.hcqt

    def counting_hcqt(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(features, 'hcqt', counting_hcqt)
    return calls


def test_hcqt_file_second_call_reads_the_cache(tone_file, tmp_path, monkeypatch):
    calls = _count_computations(monkeypatch)
    first, _ = hcqt_file(tone_file, cache_dir=tmp_path / 'cache')
    second, _ = hcqt_file(tone_file, cache_dir=tmp_path / 'cache')
    assert len(calls) == 1
    np.testing.assert_array_equal(first, second)
    assert len(list((tmp_path / 'cache').glob('*.npz'))) == 1


def test_hcqt_file_recomputes_when_the_content_changes(tone_file, tmp_path, monkeypatch):
    calls = _count_computations(monkeypatch)
    first, _ = hcqt_file(tone_file, cache_dir=tmp_path / 'cache')
    sf.write(tone_file, sine(1.0, freq=220.0), SR)
    second, _ = hcqt_file(tone_file, cache_dir=tmp_path / 'cache')
    assert len(calls) == 2
    assert not np.array_equal(first, second)


def test_hcqt_file_recomputes_a_corrupt_cache_file(tone_file, tmp_path, monkeypatch):
    cache_dir = tmp_path / 'cache'
    expected, _ = hcqt_file(tone_file, cache_dir=cache_dir)
    (cache_file,) = cache_dir.glob('*.npz')
    cache_file.write_bytes(b'not an npz file')
    calls = _count_computations(monkeypatch)
    recomputed, _ = hcqt_file(tone_file, cache_dir=cache_dir)
    assert len(calls) == 1
    np.testing.assert_array_equal(recomputed, expected)
    assert hcqt_file(tone_file, cache_dir=cache_dir)[0].shape == expected.shape
    assert len(calls) == 1


def test_hcqt_file_without_cache_writes_nothing(tone_file, tmp_path, monkeypatch):
    monkeypatch.setenv(features.CACHE_ENV_VAR, str(tmp_path / 'env_cache'))
    hcqt_file(tone_file, cache_dir=False)
    assert not (tmp_path / 'env_cache').exists()


def test_cache_directory_follows_the_environment_variable(tone_file, tmp_path, monkeypatch):
    monkeypatch.setenv(features.CACHE_ENV_VAR, str(tmp_path / 'env_cache'))
    hcqt_file(tone_file)
    assert len(list((tmp_path / 'env_cache' / 'hcqt').glob('*.npz'))) == 1


def test_default_cache_directory_is_in_the_repository(monkeypatch):
    monkeypatch.delenv(features.CACHE_ENV_VAR, raising=False)
    repo = Path(features.__file__).resolve().parents[1]
    assert features.default_cache_dir() == repo / 'cache' / 'hcqt'


def test_hcqt_file_of_missing_file_names_it(tmp_path):
    with pytest.raises(CTCChromaError, match='nothing.wav'):
        hcqt_file(tmp_path / 'nothing.wav', cache_dir=tmp_path / 'cache')


def test_hcqt_file_equals_hcqt_of_the_loaded_audio(tone_file, tmp_path):
    from_file, _ = hcqt_file(tone_file, cache_dir=False)
    direct, _ = hcqt(sf.read(tone_file, dtype='float32')[0])
    np.testing.assert_array_equal(from_file, direct)
    assert os.listdir(tmp_path) == ['tone.wav']

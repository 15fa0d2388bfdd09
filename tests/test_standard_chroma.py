"""Standard chroma (CQT chroma, CENS) at 25 Hz on the HCQT's frame grid."""
import numpy as np
import pytest

from conftest import sine
from ctc_chroma_lib.constants import CHROMA_NAMES, HCQT
from ctc_chroma_lib.errors import CTCChromaError
from ctc_chroma_lib.features import hcqt
from ctc_chroma_lib.normalization import normalize_columns
from ctc_chroma_lib.standard_chroma import chroma_cens, chroma_cqt

SR = HCQT.sr
KINDS = [chroma_cqt, chroma_cens]


@pytest.mark.parametrize('compute', KINDS)
def test_chroma_has_12_rows_float32_and_25_hz_times(compute):
    chroma, times = compute(sine(2.0))
    assert chroma.shape == (12, len(times)) and chroma.dtype == np.float32
    np.testing.assert_allclose(np.diff(times), 1.0 / HCQT.feature_rate, atol=1e-5)


@pytest.mark.parametrize('compute', KINDS)
def test_chroma_has_as_many_frames_as_the_hcqt(compute):
    y = sine(2.37)
    chroma, times = compute(y)
    _, hcqt_times = hcqt(y)
    np.testing.assert_array_equal(times, hcqt_times)


@pytest.mark.parametrize('compute', KINDS)
def test_chroma_columns_have_unit_norm(compute):
    chroma, _ = compute(sine(2.0))
    np.testing.assert_allclose(np.linalg.norm(chroma, axis=0), 1.0, atol=1e-5)


@pytest.mark.parametrize('compute', KINDS)
def test_chroma_of_a_440_hz_tone_peaks_at_a(compute):
    chroma, _ = compute(sine(2.0))
    assert CHROMA_NAMES[int(np.argmax(chroma.mean(axis=1)))] == 'A'


@pytest.mark.parametrize('compute', KINDS)
def test_chroma_of_silence_is_the_uniform_unit_vector(compute):
    chroma, _ = compute(np.zeros(SR, dtype=np.float32))
    np.testing.assert_allclose(chroma, 1.0 / np.sqrt(12), atol=1e-6)


@pytest.mark.parametrize('compute', KINDS)
def test_chroma_of_too_short_audio_is_an_error(compute):
    with pytest.raises(CTCChromaError, match='too short'):
        compute(np.ones(100, dtype=np.float32))


def test_normalize_columns_fills_zero_columns_and_scales_others():
    chroma = np.zeros((12, 2))
    chroma[3, 1] = 5.0
    normalized = normalize_columns(chroma)
    np.testing.assert_allclose(normalized[:, 0], 1.0 / np.sqrt(12))
    assert normalized[3, 1] == 1.0 and normalized[:, 1].sum() == 1.0

"""Specification of the one L2 normalization (ctc_chroma_lib.normalization)."""
import numpy as np
import pytest

from ctc_chroma_lib.normalization import SILENCE, TINY, normalize_columns


def test_columns_get_unit_norm_and_zero_columns_the_uniform_vector():
    chroma = np.zeros((12, 3))
    chroma[3, 1] = 5.0
    chroma[:, 2] = np.arange(12)
    out = normalize_columns(chroma)
    assert out.dtype == np.float32 and out.shape == (12, 3)
    np.testing.assert_allclose(out[:, 0], 1 / np.sqrt(12))
    assert out[3, 1] == 1.0 and out[:, 1].sum() == 1.0
    np.testing.assert_allclose(np.linalg.norm(out, axis=0), 1.0, rtol=1e-6)


def test_the_threshold_decides_what_counts_as_silent():
    """A frame of 1e-12: a learned chroma keeps its chroma, a standard one counts as silence."""
    chroma = np.zeros((12, 1))
    chroma[0, 0] = 1e-12
    assert normalize_columns(chroma)[0, 0] == 1.0  # default: TINY
    np.testing.assert_allclose(normalize_columns(chroma, threshold=SILENCE)[:, 0], 1 / np.sqrt(12))
    assert TINY < 1e-12 < SILENCE


def test_any_axis_holds_the_vectors():
    x = np.random.default_rng(0).random((5, 216, 6))
    out = normalize_columns(x, axis=1)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(out[2, :, 3], normalize_columns(x[2, :, 3:4])[:, 0])


def test_a_negative_threshold_is_an_error():
    with pytest.raises(ValueError):
        normalize_columns(np.ones((12, 1)), threshold=-1)

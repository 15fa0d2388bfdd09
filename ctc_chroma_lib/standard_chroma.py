"""Standard (not learned) chroma features at 25 Hz: CQT chroma and CENS.

Notebook: 05_Blank_Removal_and_Normalization.ipynb

Both are computed at the HCQT hop size (256 samples at 22050 Hz) and aggregated to the
HCQT's 25 Hz frame grid (``features.frame_grid``), so that for the same signal they have
exactly as many frames as the HCQT and the learned chroma: feature types are
interchangeable in retrieval.
"""
import warnings

import librosa
import numpy as np

from .constants import HCQT
from .features import frame_grid, prepare_signal
from .normalization import SILENCE, normalize_columns

CENS_SMOOTHING_FRAMES = 41
"""Hann smoothing window of CENS in hop frames (41 × 256 / 22050 Hz ≈ 0.48 s)."""

def average_to_feature_rate(features_hop, n_samples):
    """Average features at the HCQT hop size over the HCQT's 25 Hz frames.

    Args:
        features_hop (np.ndarray): Features at the HCQT hop size (n x N_hop)
        n_samples (int): Length of the signal at 22050 Hz (fixes the number of frames)

    Returns:
        features (np.ndarray): (n x T), as many frames as the HCQT
        times (np.ndarray): Frame times (T,), seconds
    """
    # the HCQT has 1 + n_samples // hop frames at the hop size; match it exactly
    n_frames = 1 + n_samples // HCQT.hop_length
    features_hop = librosa.util.fix_length(features_hop, size=n_frames, axis=-1, mode='edge')
    bounds, times = frame_grid(n_frames, HCQT)
    summed = np.add.reduceat(features_hop, bounds[:-1], axis=-1)
    return summed / np.diff(bounds), times


def hop_to_feature_rate(chroma_hop, n_samples):
    """Average hop-rate chroma over the HCQT's 25 Hz frames and normalize the columns.

    Args:
        chroma_hop (np.ndarray): Chroma at the HCQT hop size (12 x N_hop)
        n_samples (int): Length of the signal at 22050 Hz (fixes the number of frames)

    Returns:
        chroma (np.ndarray): (12 x T) float32, unit-norm columns, as many frames as the HCQT
        times (np.ndarray): Frame times (T,), seconds
    """
    chroma, times = average_to_feature_rate(chroma_hop, n_samples)
    return normalize_columns(chroma, threshold=SILENCE), times


def chroma_cqt(y, *, sr=HCQT.sr):
    """CQT-based chroma (``librosa.feature.chroma_cqt``) at 25 Hz with unit-norm columns.

    Notebook: 05_Blank_Removal_and_Normalization.ipynb

    Args:
        y (np.ndarray): Audio signal, shape (N,) or multi-channel (C, N)
        sr (int): Sampling rate of ``y`` in Hz (default: 22050); resampled if different

    Returns:
        chroma (np.ndarray): Shape (12, T), float32, unit L2 norm per column (silent
            frames: 1/sqrt(12) everywhere)
        times (np.ndarray): Frame times in seconds, shape (T,), float32 (25 Hz, same
            grid as ``features.hcqt``)

    Raises:
        CTCChromaError: The signal is shorter than one 25 Hz frame or not finite.
    """
    y = prepare_signal(y, sr, HCQT.sr)
    with warnings.catch_warnings():
        # tuning estimation on silence and short signals warn without harm
        warnings.simplefilter('ignore', UserWarning)
        chroma_hop = librosa.feature.chroma_cqt(y=y, sr=HCQT.sr, hop_length=HCQT.hop_length,
                                                bins_per_octave=HCQT.bins_per_octave)
    return hop_to_feature_rate(chroma_hop, len(y))


def chroma_cens(y, *, sr=HCQT.sr):
    """Chroma Energy Normalized Statistics (CENS) at 25 Hz with unit-norm columns.

    Notebook: 05_Blank_Removal_and_Normalization.ipynb

    CQT chroma at the hop size, L1-normalized, quantized logarithmically, smoothed with a
    Hann window of ``CENS_SMOOTHING_FRAMES`` frames (``librosa.feature.chroma_cens``), then
    downsampled to 25 Hz by averaging over each feature frame.

    Args:
        y (np.ndarray): Audio signal, shape (N,) or multi-channel (C, N)
        sr (int): Sampling rate of ``y`` in Hz (default: 22050); resampled if different

    Returns:
        chroma (np.ndarray): Shape (12, T), float32, unit L2 norm per column (silent
            frames: 1/sqrt(12) everywhere)
        times (np.ndarray): Frame times in seconds, shape (T,), float32 (25 Hz)

    Raises:
        CTCChromaError: The signal is shorter than one 25 Hz frame or not finite.
    """
    y = prepare_signal(y, sr, HCQT.sr)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        cens_hop = librosa.feature.chroma_cens(y=y, sr=HCQT.sr, hop_length=HCQT.hop_length,
                                               bins_per_octave=HCQT.bins_per_octave,
                                               win_len_smooth=CENS_SMOOTHING_FRAMES)
    return hop_to_feature_rate(cens_hop, len(y))

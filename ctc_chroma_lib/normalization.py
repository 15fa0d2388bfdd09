"""The one L2 normalization of feature vectors: chroma frames and HCQT pitch vectors.

Notebook: 05_Blank_Removal_and_Normalization.ipynb

Every vector is scaled to unit Euclidean norm; a vector whose norm is below ``threshold``
counts as silent and becomes the uniform unit vector 1/sqrt(n) (librosa's ``normalize(...,
norm=2, fill=True)``), so the result is never NaN and every frame can be compared with the
cosine cost.
"""
import numpy as np

TINY = float(np.finfo(np.float32).tiny)
"""Default threshold: the smallest normal float32 (librosa's), i.e. only vectors that are
zero to float32 precision count as silent. Learned chroma needs this: after blank removal a
frame's chroma mass can be small and still carry its chroma."""

SILENCE = 1e-10
"""Threshold of the standard chroma baselines (:mod:`ctc_chroma_lib.standard_chroma`): CQT
magnitudes of digital silence are around 1e-12 rather than exactly zero, and such frames
must become uniform rather than amplified noise."""


def normalize_columns(features, *, axis=0, threshold=TINY):
    """Scale every vector along ``axis`` to unit L2 norm; silent vectors become 1/sqrt(n).

    Args:
        features (np.ndarray): Features, e.g. chroma (12 x T)
        axis (int): The axis of the vectors (Default value = 0: the columns of a
            features × frames matrix)
        threshold (float): Vectors with a smaller norm count as silent (Default value =
            :data:`TINY`)

    Returns:
        normalized (np.ndarray): Same shape, float32, every vector of norm 1

    Raises:
        ValueError: A negative threshold
    """
    if threshold < 0:
        raise ValueError(f'threshold must be >= 0, got {threshold}')
    features = np.asarray(features, dtype=np.float64)
    norm = np.sqrt(np.sum(np.square(features), axis=axis, keepdims=True))
    silent = norm < threshold
    out = features / np.where(silent, 1.0, norm)
    out = np.where(silent, 1.0 / np.sqrt(features.shape[axis]), out)
    return out.astype(np.float32)

"""Chroma features for retrieval: learned CTC chroma and the standard baselines.

Notebook: 05_Blank_Removal_and_Normalization.ipynb

:func:`compute_chroma` is the single entry point that evaluation and the retrieval
index use: every kind returns (12 x T) float32 chroma at 25 Hz with unit-norm columns.
"""
import hashlib
import os
import re
from pathlib import Path

import numpy as np

from .audio import check_audio_duration
from .constants import BLANK_INDEX, CTC_SMOOTHING_FRAMES, FEATURE_RATE, HCQT
from .errors import CTCChromaError
from .fileio import cache_root, hash_file_into  # noqa: F401 (cache_root: part of this API)
from .kinds import Kind, resolve
from .normalization import normalize_columns

CACHE_VERSION = 2
"""Bump to invalidate cached chroma after a change of the computation (2: CTC models' chroma
is smoothed, :data:`CTC_SMOOTHING_FRAMES`)."""


def postprocess(probs, smoothing=1):
    """Chroma from class probabilities: drop the blank, smooth in time, L2-normalize every frame.

    Notebook: 05_Blank_Removal_and_Normalization.ipynb

    ``smoothing`` is the length in frames of a centred moving average of each chroma
    probability (the edges repeat the first and last frame): :data:`CTC_SMOOTHING_FRAMES`
    for CTC models, whose peaky output marks a note by a spike; 1 (none) for frame-wise
    models (:attr:`ctc_chroma_lib.kinds.Kind.smoothing`). Frames without chroma energy (all
    twelve probabilities zero) become the uniform unit vector 1/sqrt(12), so the result is
    never NaN.

    Args:
        probs (np.ndarray): Probabilities (13 x T), blank last
        smoothing (int): Odd window length in frames; 1 means no smoothing (Default value = 1)

    Returns:
        chroma (np.ndarray): Chroma (12 x T), float32, unit-norm columns

    Raises:
        CTCChromaError: Probabilities not of shape (13, T), or a window that is not a
            positive odd integer
    """
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[0] != BLANK_INDEX + 1:
        raise CTCChromaError(f'probabilities must have shape (13, T), got {probs.shape}')
    return normalize_columns(smooth_chroma(np.delete(probs, BLANK_INDEX, axis=0), smoothing))


def smooth_chroma(chroma, smoothing):
    """Centred moving average of every row over ``smoothing`` frames (edges repeated).

    Args:
        chroma (np.ndarray): Features (12 x T), e.g. chroma probabilities without the blank
        smoothing (int): Odd window length in frames; 1 returns the input (as float64)

    Returns:
        smoothed (np.ndarray): Same shape, float64

    Raises:
        CTCChromaError: A window that is not a positive odd integer
    """
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, np.integer)) \
            or smoothing < 1 or smoothing % 2 == 0:
        raise CTCChromaError(f'smoothing must be a positive odd number of frames, got {smoothing!r}')
    chroma = np.asarray(chroma, dtype=np.float64)
    if smoothing == 1:
        return chroma
    from scipy.ndimage import uniform_filter1d
    return uniform_filter1d(chroma, int(smoothing), axis=1, mode='nearest')


def frame_times(n_frames, feature_rate=FEATURE_RATE):
    """Times of the feature frames (seconds).

    Args:
        n_frames (int): Number of frames
        feature_rate (float): Frames per second (default 25)

    Returns:
        times (np.ndarray): Times (n_frames,), float32
    """
    return (np.arange(n_frames) / feature_rate).astype(np.float32)


def _as_model(model):
    from .model import load_model
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)
    return model


def learned_chroma(y_or_path, *, model='teaching', cache=True, smoothing=None):
    """Learned CTC chroma of audio (array at 22050 Hz or file).

    Notebook: 05_Blank_Removal_and_Normalization.ipynb

    Args:
        y_or_path (np.ndarray or str or Path): Mono audio at 22050 Hz, or an audio file
            (its HCQT is cached, see ``features.hcqt_file``)
        model (str or Path or keras.Model): Model spec for
            :func:`ctc_chroma_lib.model.load_model` or a model (default 'teaching')
        cache (bool): Use the on-disk HCQT cache for files (default True)
        smoothing (int or None): Window of :func:`postprocess`; None means that of the kind
            the model spec names (:attr:`ctc_chroma_lib.kinds.Kind.smoothing`), and
            :data:`CTC_SMOOTHING_FRAMES` for a model object (default None)

    Returns:
        chroma (np.ndarray): Chroma (12 x T), float32, unit-norm columns
        probs (np.ndarray): Class probabilities (13 x T), float32, blank last
        times (np.ndarray): Frame times (T,), seconds

    Raises:
        CTCChromaError: Audio shorter than one frame or not mono, unreadable or too long
            files, or a model that cannot be loaded
    """
    from . import features
    from .model import predict_probs

    if isinstance(y_or_path, (str, os.PathLike)):
        check_audio_duration(y_or_path)
        hcqt, times = features.hcqt_file(y_or_path, cache_dir=None if cache else False)
    else:
        y = np.asarray(y_or_path, dtype=np.float32)
        if y.ndim != 1 or len(y) < HCQT.sr / FEATURE_RATE:
            raise CTCChromaError(f'audio must be mono and at least one frame ({1 / FEATURE_RATE:g} s) long, '
                                 f'got shape {y.shape}')
        hcqt, times = features.hcqt(y, sr=HCQT.sr)
    if smoothing is None:
        smoothing = (resolve(os.fspath(model)).smoothing if isinstance(model, (str, os.PathLike))
                     else CTC_SMOOTHING_FRAMES)
    probs = predict_probs(_as_model(model), hcqt)
    return postprocess(probs, smoothing), probs, np.asarray(times, dtype=np.float32)


def _file_hash(path, hasher=None):
    return hash_file_into(hasher or hashlib.sha256(), path)


def kind_fingerprint(kind):
    """Hash of what computes a kind: its weights, the Basic Pitch model, or 'none'
    (:meth:`ctc_chroma_lib.kinds.Kind.fingerprint`)."""
    return resolve(kind).fingerprint()


def feature_file_provenance(kind) -> dict:
    """What computed a feature file: ``kind``, ``weights`` (:func:`kind_fingerprint`) and
    ``chroma_version`` (:data:`CACHE_VERSION`), as arrays for ``np.savez``; ``ctc-chroma
    chroma`` writes them and ``index --from-features`` checks them.

    Args:
        kind (str or Kind): Kind or model name, or a resolved :class:`~ctc_chroma_lib.kinds.Kind`
    """
    kind = kind if isinstance(kind, Kind) else resolve(kind)
    return {'kind': np.array(kind.name), 'weights': np.array(kind.fingerprint()),
            'chroma_version': np.array(CACHE_VERSION)}


def chroma_cache_path(audio_path, kind):
    """Cache file of the chroma of one audio file and kind.

    Args:
        audio_path (str or Path): Audio file
        kind (str): Chroma kind (see :func:`compute_chroma`)

    Returns:
        path (Path): ``<cache>/chroma/<audio hash>_<kind>_<weights hash>.npz``
    """
    kind = resolve(kind)
    audio_hash = _file_hash(audio_path).hexdigest()[:20]
    key = hashlib.sha256(f'{CACHE_VERSION}|{HCQT}|{kind.name}|{kind.fingerprint()}|{kind.smoothing}'
                         .encode()).hexdigest()[:16]
    # Readable part of the name only: the key above tells kinds and weights apart.
    safe_kind = re.sub(r'[^A-Za-z0-9_.-]+', '-', Path(kind.path).name if kind.path else kind.name)
    return cache_root() / 'chroma' / f'{audio_hash}_{safe_kind}_{key}.npz'


def _compute_chroma_uncached(audio_path, kind, cache):
    # BLAS on one thread: the bits of some products (librosa's chroma filter bank) depend on
    # how many threads share them, and a recording's features must not depend on where they
    # were computed (a Dask worker runs one thread, this process as many as the cores).
    from .threads import one_blas_thread
    with one_blas_thread():
        return _compute_chroma_unlimited(audio_path, kind, cache)


def _compute_chroma_unlimited(audio_path, kind, cache):
    if not kind.learned:
        from .audio import load_audio
        y = load_audio(audio_path, sr=HCQT.sr)
        chroma, times = kind.compute_function()(y, sr=HCQT.sr)
        return normalize_columns(chroma), np.asarray(times, dtype=np.float32), None
    kind.check()
    chroma, probs, times = learned_chroma(audio_path, model=kind.model, cache=cache,
                                          smoothing=kind.smoothing)
    return chroma, times, probs


def compute_chroma(audio_path, kind='ctc', *, cache=True, return_probs=False):
    """Chroma features of an audio file: learned (CTC, strong, linear, published) or standard.

    Notebook: 05_Blank_Removal_and_Normalization.ipynb

    Args:
        audio_path (str or Path): Audio file
        kind (str): 'ctc' (model 'teaching'), 'strong' ('teaching-strong'), 'linear'
            ('teaching-linear'), 'published:<ID>', 'cqt', 'cens', 'basic-pitch' (Basic
            Pitch's notes folded to chroma) or a model such as
            'teaching-ctc-train234valid5' (see :func:`ctc_chroma_lib.kinds.resolve`)
            (default 'ctc')
        cache (bool): Read/write ``<cache>/chroma/`` keyed by audio content, kind and
            weights; learned kinds also use the cached HCQT (default True)
        return_probs (bool): Also return the class probabilities (13 x T) of learned
            kinds, None for :data:`ctc_chroma_lib.kinds.COMPUTED_KINDS` (default False)

    Returns:
        chroma (np.ndarray): Chroma (12 x T), float32, unit-norm columns, 25 Hz
        times (np.ndarray): Frame times (T,), seconds
        probs (np.ndarray or None): Only if ``return_probs``

    Raises:
        CTCChromaError: Unknown kind, weights not trained, unreadable or too long audio
    """
    resolved = resolve(kind)
    check_audio_duration(audio_path)
    path = chroma_cache_path(audio_path, kind) if cache else None
    if path is not None and path.is_file():
        try:
            with np.load(path) as data:
                chroma, times = data['chroma'], data['times']
                probs = data['probs'] if 'probs' in data else None
            return (chroma, times, probs) if return_probs else (chroma, times)
        except Exception:
            pass  # an unreadable cache entry is recomputed and overwritten
    chroma, times, probs = _compute_chroma_uncached(audio_path, resolved, cache)
    if path is not None:
        from .fileio import atomic_path
        arrays = {'chroma': chroma, 'times': times}
        if probs is not None:
            arrays['probs'] = probs
        with atomic_path(path) as tmp:
            np.savez(tmp, **arrays)
    return (chroma, times, probs) if return_probs else (chroma, times)

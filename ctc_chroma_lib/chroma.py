"""Chroma features for retrieval: learned CTC chroma and the standard baselines.

Notebook: 05_Blank_Removal_and_Normalization.ipynb

:func:`compute_chroma` is the single entry point that evaluation and the retrieval
index use: every kind returns (12 x T) float32 chroma at 25 Hz with unit-norm columns.
"""
import hashlib
import os
from pathlib import Path

import numpy as np

from .audio import check_audio_duration
from .constants import BLANK_INDEX, FEATURE_RATE, HCQT
from .errors import CTCChromaError
from .fileio import cache_root, hash_file_into  # noqa: F401 (cache_root: part of this API)

FEATURE_TYPES = ('ctc', 'strong', 'linear', 'cqt', 'cens', 'basic-pitch')
"""Chroma kinds of :func:`compute_chroma`; 'published:<ID>' selects an authors' model too."""

COMPUTED_KINDS = ('cqt', 'cens', 'basic-pitch')
"""Kinds computed from the audio without a model of this project: the standard chroma and
the Basic Pitch peer (:mod:`ctc_chroma_lib.basic_pitch_chroma`)."""

LEARNED_KINDS = {'ctc': 'teaching', 'strong': 'teaching-strong', 'linear': 'teaching-linear'}
"""Learned chroma kind -> model spec of :func:`ctc_chroma_lib.model.load_model`."""

CACHE_VERSION = 1
"""Bump to invalidate cached chroma after a change of the computation."""


def postprocess(probs):
    """Chroma from CTC class probabilities: drop the blank, L2-normalize every frame.

    Notebook: 05_Blank_Removal_and_Normalization.ipynb

    Frames without chroma energy (all twelve probabilities zero) become the uniform
    unit vector 1/sqrt(12), so the result is never NaN.

    Args:
        probs (np.ndarray): Probabilities (13 x T), blank last

    Returns:
        chroma (np.ndarray): Chroma (12 x T), float32, unit-norm columns
    """
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[0] != BLANK_INDEX + 1:
        raise CTCChromaError(f'probabilities must have shape (13, T), got {probs.shape}')
    chroma = np.delete(probs, BLANK_INDEX, axis=0).astype(np.float64)
    return normalize_columns(chroma)


def normalize_columns(chroma):
    """L2-normalize every column; zero columns become 1/sqrt(n).

    Args:
        chroma (np.ndarray): Features (n x T)

    Returns:
        chroma (np.ndarray): Features (n x T), float32, unit-norm columns
    """
    chroma = np.asarray(chroma, dtype=np.float64)
    norm = np.linalg.norm(chroma, axis=0, keepdims=True)
    small = norm < np.finfo(np.float32).tiny
    out = chroma / np.where(small, 1.0, norm)
    out[:, small[0]] = 1.0 / np.sqrt(chroma.shape[0])
    return out.astype(np.float32)


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


def learned_chroma(y_or_path, model='teaching', cache=True):
    """Learned CTC chroma of audio (array at 22050 Hz or file).

    Notebook: 05_Blank_Removal_and_Normalization.ipynb

    Args:
        y_or_path (np.ndarray or str or Path): Mono audio at 22050 Hz, or an audio file
            (its HCQT is cached, see ``features.hcqt_file``)
        model (str or Path or keras.Model): Model spec for
            :func:`ctc_chroma_lib.model.load_model` or a model (default 'teaching')
        cache (bool): Use the on-disk HCQT cache for files (default True)

    Returns:
        chroma (np.ndarray): Chroma (12 x T), float32, unit-norm columns
        probs (np.ndarray): Class probabilities (13 x T), float32, blank last
        times (np.ndarray): Frame times (T,), seconds
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
    probs = predict_probs(_as_model(model), hcqt)
    return postprocess(probs), probs, np.asarray(times, dtype=np.float32)


def resolve_kind(kind):
    """Check a chroma kind and return the model spec behind it.

    Args:
        kind (str): One of :data:`FEATURE_TYPES` or 'published:<ID>'

    Returns:
        spec (str or None): Model spec for learned kinds, None for :data:`COMPUTED_KINDS`
    """
    if isinstance(kind, str) and kind.startswith('published:'):
        from .published import checkpoint_prefix
        checkpoint_prefix(kind[len('published:'):])
        return kind
    if kind in LEARNED_KINDS:
        return LEARNED_KINDS[kind]
    if kind in COMPUTED_KINDS:
        return None
    raise CTCChromaError(f'unknown chroma kind {kind!r}; valid kinds: '
                         + ', '.join(FEATURE_TYPES) + ', published:<ID>')


def _file_hash(path, hasher=None):
    return hash_file_into(hasher or hashlib.sha256(), path)


def _model_fingerprint(spec):
    """Hash of the weights behind a model spec (so retrained weights miss the cache)."""
    if spec is None:
        return 'none'
    hasher = hashlib.sha256(str(spec).encode())
    if spec.startswith('published:'):
        from .published import checkpoint_prefix
        prefix = checkpoint_prefix(spec[len('published:'):])
        for part in sorted(prefix.parent.glob(prefix.name + '.*')):
            _file_hash(part, hasher)
    else:
        from .model import weights_path, load_model
        path = weights_path(spec)
        if not path.is_file():
            load_model(spec)  # raises the error that explains the missing weights
        _file_hash(path, hasher)
    return hasher.hexdigest()[:16]


def kind_fingerprint(kind):
    """Hash of what computes a kind: its weights, the Basic Pitch model, or 'none'."""
    if kind == 'basic-pitch':
        from .basic_pitch_chroma import fingerprint
        return fingerprint()
    return _model_fingerprint(resolve_kind(kind))


def chroma_cache_path(audio_path, kind):
    """Cache file of the chroma of one audio file and kind.

    Args:
        audio_path (str or Path): Audio file
        kind (str): Chroma kind (see :func:`compute_chroma`)

    Returns:
        path (Path): ``<cache>/chroma/<audio hash>_<kind>_<weights hash>.npz``
    """
    audio_hash = _file_hash(audio_path).hexdigest()[:20]
    key = hashlib.sha256(f'{CACHE_VERSION}|{HCQT}|{kind}|{kind_fingerprint(kind)}'.encode()).hexdigest()[:16]
    safe_kind = kind.replace(':', '-')
    return cache_root() / 'chroma' / f'{audio_hash}_{safe_kind}_{key}.npz'


def _compute_chroma_uncached(audio_path, kind, spec, cache):
    if spec is None:
        from .audio import load_audio
        y = load_audio(audio_path, sr=HCQT.sr)
        if kind == 'basic-pitch':
            from .basic_pitch_chroma import chroma_basic_pitch as compute
        else:
            from . import standard_chroma
            compute = getattr(standard_chroma, f'chroma_{kind}')
        chroma, times = compute(y, sr=HCQT.sr)
        return normalize_columns(chroma), np.asarray(times, dtype=np.float32), None
    chroma, probs, times = learned_chroma(audio_path, model=spec, cache=cache)
    return chroma, times, probs


def compute_chroma(audio_path, kind='ctc', cache=True, return_probs=False):
    """Chroma features of an audio file: learned (CTC, strong, linear, published) or standard.

    Notebook: 05_Blank_Removal_and_Normalization.ipynb

    Args:
        audio_path (str or Path): Audio file
        kind (str): 'ctc' (model 'teaching'), 'strong' ('teaching-strong'), 'linear'
            ('teaching-linear'), 'published:<ID>', 'cqt', 'cens' or 'basic-pitch' (Basic
            Pitch's notes folded to chroma) (default 'ctc')
        cache (bool): Read/write ``<cache>/chroma/`` keyed by audio content, kind and
            weights; learned kinds also use the cached HCQT (default True)
        return_probs (bool): Also return the class probabilities (13 x T) of learned
            kinds, None for :data:`COMPUTED_KINDS` (default False)

    Returns:
        chroma (np.ndarray): Chroma (12 x T), float32, unit-norm columns, 25 Hz
        times (np.ndarray): Frame times (T,), seconds
        probs (np.ndarray or None): Only if ``return_probs``
    """
    spec = resolve_kind(kind)
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
    chroma, times, probs = _compute_chroma_uncached(audio_path, kind, spec, cache)
    if path is not None:
        from .fileio import atomic_path
        arrays = {'chroma': chroma, 'times': times}
        if probs is not None:
            arrays['probs'] = probs
        with atomic_path(path) as tmp:
            np.savez(tmp, **arrays)
    return (chroma, times, probs) if return_probs else (chroma, times)

"""Harmonic constant-Q transform (HCQT) at 25 Hz: the input representation of the model.

Notebook: 02_HCQT.ipynb

The recipe is the one of Bittner et al. (deep salience, ISMIR 2017) as used by Zalkow &
Müller (ISMIR 2020): for every harmonic h in (0.5, 1, 2, 3, 4, 5) a CQT with
``fmin = h * 32.7 Hz``, 36 bins per octave and 6 octaves at 22050 Hz with hop 256;
magnitudes in dB relative to the maximum over the whole stack, floored at -80 dB and
mapped to [0, 1]; then the median over the hop-256 frames that fall into each 25 Hz frame.

``hcqt_reference`` spells this out with six ``librosa.cqt`` calls. ``hcqt`` computes the
same numbers faster: it runs librosa's multirate scheme (one octave of filters per
decimation level) once for all six harmonics, so every decimated signal and every STFT is
computed once and shared by all harmonics whose octaves librosa evaluates at that level
with the same FFT size, and the filter banks are built once per process.
"""
import functools
import hashlib
import os
import warnings
from pathlib import Path

import librosa
import numba
import numpy as np
import scipy.fft
import scipy.sparse

from .audio import check_audio_file, load_audio
from .constants import HCQT, log_compress_db
from .errors import CTCChromaError
from .fileio import CACHE_ENV_VAR, atomic_path, cache_root  # noqa: F401 (CACHE_ENV_VAR)
from .threads import check_cancelled

CACHE_FORMAT_VERSION = 1
"""Bump when the cached HCQT files change meaning (invalidates every cache entry)."""


_AMIN = 1e-5        # librosa.amplitude_to_db's floor for magnitudes
_TOP_DB = 80.0      # dynamic range kept below the maximum (librosa's default top_db)
_SPARSITY = 0.01    # librosa.cqt's default: drop the smallest 1% (L1 mass) of each filter's FFT
_RES_TYPE = 'soxr_hq'
_FRAME_BLOCK = 8192  # STFT frames transformed at once (bounds memory on long recordings)


# --------------------------------------------------------------------------------------
# Shared steps: mono conversion, log compression, 25 Hz median binning
# --------------------------------------------------------------------------------------

def prepare_signal(y, sr, target_sr=HCQT.sr):
    """Check a signal, mix it down to mono float32 and resample it to ``target_sr``.

    Args:
        y (np.ndarray): Audio signal, shape (N,), or multi-channel with the channels on
            the shorter axis of a 2-D array ((C, N) as librosa, or (N, C) as soundfile)
        sr (int): Sampling rate of ``y`` in Hz
        target_sr (int): Sampling rate of the result (default: 22050)

    Returns:
        y (np.ndarray): Mono signal at ``target_sr``, shape (N',), float32

    Raises:
        CTCChromaError: The signal is not finite, has more than two dimensions, or is
            shorter than one 25 Hz frame.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=int(np.argmin(y.shape)))
    if y.ndim != 1:
        raise CTCChromaError(f'audio signal must be 1-D (mono) or 2-D (multi-channel), '
                             f'got shape {y.shape}')
    if not np.all(np.isfinite(y)):
        raise CTCChromaError('audio signal contains NaN or infinite samples')
    if sr != target_sr:
        y = librosa.resample(y, orig_sr=sr, target_sr=target_sr, res_type=_RES_TYPE)
    min_samples = int(np.ceil(target_sr / HCQT.feature_rate))
    if y.shape[0] < min_samples:
        raise CTCChromaError(f'audio signal too short for one {HCQT.feature_rate:g} Hz frame: '
                             f'{y.shape[0]} samples at {target_sr} Hz (need {min_samples})')
    return np.ascontiguousarray(y, dtype=np.float32)


def log_compress(magnitude):
    """Compress HCQT magnitudes to [0, 1]: dB relative to the global maximum, floored at -80 dB.

    Notebook: 02_HCQT.ipynb

    Equals ``librosa.amplitude_to_db(magnitude, ref=np.max) / 80 + 1`` with the maximum
    taken over all harmonics together, except for digital silence (maximum below
    librosa's ``amin`` = 1e-5), which maps to 0 (the floor) where librosa would return 1
    everywhere.

    Args:
        magnitude (np.ndarray): Non-negative magnitudes, any shape

    Returns:
        compressed (np.ndarray): Same shape, float32, values in [0, 1]
    """
    magnitude = np.asarray(magnitude, dtype=np.float32)
    ref = float(magnitude.max()) if magnitude.size else 0.0
    if ref < _AMIN:
        return np.zeros(magnitude.shape, dtype=np.float32)
    # one float32 work array: hours of audio give HCQTs of gigabytes
    db = np.maximum(magnitude, np.float32(_AMIN))
    np.log10(db, out=db)
    db *= np.float32(20.0)
    db -= np.float32(20.0 * np.log10(ref))
    np.maximum(db, db.max() - np.float32(_TOP_DB), out=db)
    return log_compress_db(db).astype(np.float32, copy=False)


def frame_grid(n_frames, params=HCQT):
    """Group hop-size frames into feature-rate frames, as the original feature extraction does.

    Notebook: 02_HCQT.ipynb

    The feature-rate grid runs from the first to the last hop frame time in steps of
    ``1 / feature_rate``; each feature frame takes the hop frames from its own time up to
    (excluding) the next feature frame's time, the last one up to the end.

    Args:
        n_frames (int): Number of frames at the hop size
        params (HCQTParams): Parameters (default: ``HCQT``)

    Returns:
        bounds (np.ndarray): Hop-frame boundaries, shape (T + 1,), int
        times (np.ndarray): Feature frame times in seconds, shape (T,), float32
    """
    hop_times = librosa.frames_to_time(np.arange(n_frames), sr=params.sr,
                                       hop_length=params.hop_length)
    # eps keeps the last hop frame time itself on the grid
    times = np.arange(hop_times[0], hop_times[-1] + np.finfo(float).eps, 1.0 / params.feature_rate)
    bounds = np.append(np.searchsorted(hop_times, times), n_frames)
    return bounds, times.astype(np.float32)


@numba.njit(cache=True)
def _segment_medians(rows, bounds, out):
    """out[i, k] = median of rows[i, bounds[k]:bounds[k + 1]] (mean of the middle two if even)."""
    longest = 0
    for k in range(bounds.shape[0] - 1):
        longest = max(longest, bounds[k + 1] - bounds[k])
    values = np.empty(longest, dtype=rows.dtype)
    for i in range(rows.shape[0]):
        for k in range(bounds.shape[0] - 1):
            n = bounds[k + 1] - bounds[k]
            # insertion sort: segments hold only 3 or 4 frames at 25 Hz
            for m in range(n):
                value = rows[i, bounds[k] + m]
                pos = m
                while pos > 0 and values[pos - 1] > value:
                    values[pos] = values[pos - 1]
                    pos -= 1
                values[pos] = value
            if n % 2 == 1:
                out[i, k] = values[n // 2]
            else:
                out[i, k] = (values[n // 2 - 1] + values[n // 2]) / 2


def median_binning(features, bounds):
    """Median of the frames between consecutive ``bounds`` along the last axis.

    Notebook: 02_HCQT.ipynb

    Same result as ``librosa.util.sync(features, bounds, aggregate=np.median, pad=False)``
    for strictly increasing bounds, without a Python loop over the segments.

    Args:
        features (np.ndarray): Features, shape (..., N)
        bounds (np.ndarray): Strictly increasing frame boundaries from 0 to N, shape (T + 1,)

    Returns:
        binned (np.ndarray): Shape (..., T), dtype of ``features``
    """
    rows = np.ascontiguousarray(features).reshape(-1, features.shape[-1])
    binned = np.empty((rows.shape[0], len(bounds) - 1), dtype=features.dtype)
    _segment_medians(rows, np.asarray(bounds, dtype=np.int64), binned)
    return binned.reshape(features.shape[:-1] + (len(bounds) - 1,))


# --------------------------------------------------------------------------------------
# Reference implementation
# --------------------------------------------------------------------------------------

def hcqt_reference(y, sr=HCQT.sr):
    """Compute the 25 Hz HCQT the straightforward way (six ``librosa.cqt`` calls).

    Notebook: 02_HCQT.ipynb

    Follows the original feature extraction step by step; slow, kept as the specification
    that ``hcqt`` is tested against.

    Args:
        y (np.ndarray): Audio signal, shape (N,) or multi-channel (C, N)
        sr (int): Sampling rate of ``y`` in Hz (default: 22050); resampled if different

    Returns:
        hcqt (np.ndarray): Shape (6, 216, T), float32, values in [0, 1]
        times (np.ndarray): Frame times in seconds, shape (T,), float32 (25 Hz)
    """
    p = HCQT
    y = prepare_signal(y, sr, p.sr)
    with warnings.catch_warnings():
        # short signals make librosa warn about the FFT size of the lowest octaves
        warnings.simplefilter('ignore', UserWarning)
        cqts = [np.abs(librosa.cqt(y, sr=p.sr, hop_length=p.hop_length, fmin=p.fmin * float(h),
                                   n_bins=p.n_bins, bins_per_octave=p.bins_per_octave))
                for h in p.harmonics]
    n_frames = min(c.shape[-1] for c in cqts)
    compressed = log_compress(np.stack([c[:, :n_frames] for c in cqts]))
    bounds, times = frame_grid(n_frames, p)
    binned = librosa.util.sync(compressed, list(bounds), aggregate=np.median, pad=False, axis=-1)
    return binned.astype(np.float32), times


# --------------------------------------------------------------------------------------
# Fast implementation: librosa's multirate CQT, evaluated once for all harmonics
# --------------------------------------------------------------------------------------

def _num_two_factors(x):
    """How often the positive integer ``x`` can be halved."""
    count = 0
    while x > 0 and x % 2 == 0:
        x //= 2
        count += 1
    return count


def _octave_plan(params):
    """Where librosa.cqt evaluates each octave of each harmonic.

    Mirrors librosa's early downsampling (as many halvings as keep the highest filter below
    a quarter of the sampling rate and leave enough factors of two in the hop) and its
    octave-by-octave halving of signal and hop.

    Returns:
        plan (list of dict): One entry per (harmonic, octave) with keys ``harmonic``
            (index), ``bins`` (slice into the 216 bins), ``freqs`` (Hz), ``alpha``,
            ``early`` (early halvings), ``level`` (total halvings of the signal) and
            ``scale`` (per-bin output factor of librosa: filter rescaling and
            ``1 / sqrt(length)``)
    """
    bpo, n_octaves = params.bins_per_octave, params.n_octaves
    nyquist = params.sr / 2.0
    # relative bandwidth of equal-tempered bins (what librosa derives from the frequencies)
    alpha = (2.0 ** (2.0 / bpo) - 1.0) / (2.0 ** (2.0 / bpo) + 1.0)
    plan = []
    for index, harmonic in enumerate(params.harmonics):
        freqs = params.fmin * float(harmonic) * 2.0 ** (np.arange(params.n_bins) / bpo)
        alphas = np.full(params.n_bins, alpha)
        _, cutoff = librosa.filters.wavelet_lengths(freqs=freqs, sr=params.sr, window='hann',
                                                     filter_scale=1, gamma=0, alpha=alphas)
        early = min(max(0, int(np.ceil(np.log2(nyquist / cutoff)) - 1) - 1),
                    max(0, _num_two_factors(params.hop_length) - n_octaves + 1))
        early_sr = params.sr / 2 ** early
        lengths_early, _ = librosa.filters.wavelet_lengths(freqs=freqs, sr=early_sr,
                                                            window='hann', filter_scale=1,
                                                            gamma=0, alpha=alphas)
        level, hop = early, params.hop_length // 2 ** early
        for octave in range(n_octaves):
            bins = slice(params.n_bins - bpo * (octave + 1), params.n_bins - bpo * octave)
            my_sr = params.sr / 2 ** level
            plan.append(dict(harmonic=index, bins=bins, freqs=freqs[bins], alpha=alphas[bins],
                             early=early, level=level,
                             scale=np.sqrt(early_sr / my_sr) / np.sqrt(lengths_early[bins])))
            if hop % 2 == 0:
                hop //= 2
                level += 1
    return plan


def _filter_fft(freqs, alpha, sr):
    """Sparse FFT of one octave of CQT filters (librosa's construction); and its FFT size."""
    basis, lengths = librosa.filters.wavelet(freqs=freqs, sr=sr, filter_scale=1, norm=1,
                                             pad_fft=True, window='hann', gamma=0, alpha=alpha)
    n_fft = basis.shape[1]
    basis *= lengths[:, np.newaxis] / float(n_fft)
    fft_basis = np.fft.fft(basis, n=n_fft, axis=1)[:, :n_fft // 2 + 1]
    return librosa.util.sparsify_rows(fft_basis, quantile=_SPARSITY, dtype=np.complex64), n_fft


@functools.lru_cache(maxsize=4)
def _filter_banks(params):
    """Group all (harmonic, octave) filters by (signal, FFT size); built once per process.

    Returns:
        banks (list of tuple): ``(chain, level, n_fft, matrix, harmonic_rows, bin_rows)``,
            ``matrix`` a CSR matrix (rows × n_fft // 2 + 1, complex64) with librosa's
            output scaling folded in; row r gives harmonic ``harmonic_rows[r]``, bin
            ``bin_rows[r]``
    """
    groups = {}
    for octave in _octave_plan(params):
        level_sr = params.sr / 2 ** octave['level']
        fft_basis, n_fft = _filter_fft(octave['freqs'], octave['alpha'], level_sr)
        fft_basis = scipy.sparse.diags(octave['scale'].astype(np.complex64)) @ fft_basis
        # the early-downsampled chain of librosa differs from repeated halving; keep them apart
        chain = octave['early'] if octave['early'] > 1 else 0
        key = (chain, octave['level'], n_fft)
        rows = np.arange(params.n_bins)[octave['bins']]
        groups.setdefault(key, []).append((fft_basis, np.full(len(rows), octave['harmonic']),
                                           rows))
    banks = []
    for (chain, level, n_fft), parts in sorted(groups.items()):
        matrix = scipy.sparse.vstack([part[0] for part in parts], format='csr')
        matrix = matrix.astype(np.complex64)
        matrix.sort_indices()
        banks.append((chain, level, n_fft, matrix,
                      np.concatenate([part[1] for part in parts]),
                      np.concatenate([part[2] for part in parts])))
    return banks


@numba.njit(cache=True)
def _sparse_response_magnitude(spectrum, indptr, indices, data, out):
    """out[r, t] = |sum_j data[j] * spectrum[indices[j], t]| over row r's entries (CSR).

    The innermost loop runs over contiguous frames, so it vectorizes.
    """
    n_frames = spectrum.shape[1]
    acc = np.empty(n_frames, dtype=np.complex64)
    for r in range(indptr.shape[0] - 1):
        acc[:] = 0
        for j in range(indptr[r], indptr[r + 1]):
            coefficient = data[j]
            row = spectrum[indices[j]]
            for t in range(n_frames):
                acc[t] += coefficient * row[t]
        for t in range(n_frames):
            out[r, t] = abs(acc[t])


def _stft_response(y, hop_length, n_fft, matrix):
    """Magnitude of the filter responses on a centered, zero-padded, rectangular-window STFT.

    Returns:
        response (np.ndarray): Shape (rows, n_frames), float32, n_frames = 1 + len(y) // hop
    """
    padded = np.pad(y, n_fft // 2)
    n_frames = 1 + (len(padded) - n_fft) // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length][:n_frames]
    response = np.empty((matrix.shape[0], n_frames), dtype=np.float32)
    for start in range(0, n_frames, _FRAME_BLOCK):
        # frequency-major spectrum: each frequency's frames are contiguous for the kernel
        spectrum = scipy.fft.rfft(frames[start:start + _FRAME_BLOCK].T, axis=0)
        _sparse_response_magnitude(np.ascontiguousarray(spectrum), matrix.indptr,
                                   matrix.indices, matrix.data,
                                   response[:, start:start + _FRAME_BLOCK])
    return response


def _halve(y):
    """Halve the sampling rate as librosa.cqt does between octaves."""
    return librosa.resample(y, orig_sr=2, target_sr=1, res_type=_RES_TYPE, scale=True)


def _decimated_signals(y, keys):
    """The signals at every (chain, level) in ``keys``, each computed once.

    Chain 0 halves ``y`` step by step; chain c > 0 is librosa's early downsampling, one
    resampling step by ``2 ** c`` to level c, then halving again.
    """
    signals = {}
    for chain in sorted({chain for chain, _ in keys}):
        top = max(level for key_chain, level in keys if key_chain == chain)
        signal = y if chain == 0 else librosa.resample(y, orig_sr=2 ** chain, target_sr=1,
                                                       res_type=_RES_TYPE, scale=True)
        signals[(chain, chain)] = signal
        for level in range(chain + 1, top + 1):
            signal = _halve(signal)
            signals[(chain, level)] = signal
    return signals


def hcqt_magnitude(y, params=HCQT):
    """HCQT magnitudes at the hop size, equal to six ``librosa.cqt`` calls trimmed to one length.

    Notebook: 02_HCQT.ipynb

    Args:
        y (np.ndarray): Mono float32 signal at ``params.sr``, shape (N,)
        params (HCQTParams): Parameters (default: ``HCQT``)

    Returns:
        magnitude (np.ndarray): Shape (n_harmonics, n_bins, n_frames), float32
    """
    banks = _filter_banks(params)
    signals = _decimated_signals(y, [(bank[0], bank[1]) for bank in banks])
    responses = []
    for chain, level, n_fft, matrix, harmonic_rows, bin_rows in banks:
        check_cancelled()  # a computation no longer wanted ends here (threads.map_in_order)
        response = _stft_response(signals[(chain, level)], params.hop_length // 2 ** level,
                                  n_fft, matrix)
        responses.append((response, harmonic_rows, bin_rows))
    n_frames = min(response.shape[1] for response, _, _ in responses)
    magnitude = np.empty((params.n_harmonics, params.n_bins, n_frames), dtype=np.float32)
    for response, harmonic_rows, bin_rows in responses:
        magnitude[harmonic_rows, bin_rows, :] = response[:, :n_frames]
    return magnitude


def hcqt(y, *, sr=HCQT.sr):
    """Compute the 25 Hz HCQT of an audio signal (fast, values as ``hcqt_reference``).

    Notebook: 02_HCQT.ipynb

    Args:
        y (np.ndarray): Audio signal, shape (N,) or multi-channel (C, N)
        sr (int): Sampling rate of ``y`` in Hz (default: 22050); resampled if different

    Returns:
        hcqt (np.ndarray): Shape (6, 216, T), float32, values in [0, 1] (equal to
            ``hcqt_reference`` up to float32 rounding, about 1e-5 at most)
        times (np.ndarray): Frame times in seconds, shape (T,), float32 (25 Hz)

    Raises:
        CTCChromaError: The signal is shorter than one 25 Hz frame or not finite.
    """
    y = prepare_signal(y, sr, HCQT.sr)
    compressed = log_compress(hcqt_magnitude(y, HCQT))
    bounds, times = frame_grid(compressed.shape[-1], HCQT)
    return median_binning(compressed, bounds), times


# --------------------------------------------------------------------------------------
# On-disk cache
# --------------------------------------------------------------------------------------

def default_cache_dir():
    """Directory of cached HCQT files: ``$CTC_CHROMA_CACHE/hcqt`` or ``<repo>/cache/hcqt``.

    Returns:
        cache_dir (Path): Cache directory (not necessarily existing yet)
    """
    return cache_root() / 'hcqt'


def _cache_key(path, params):
    """Hash of the file content, the HCQT parameters, the cache format and librosa's version."""
    digest = hashlib.sha256()
    with open(path, 'rb') as audio_file:
        for chunk in iter(lambda: audio_file.read(1 << 20), b''):
            digest.update(chunk)
    digest.update(repr((params, CACHE_FORMAT_VERSION, librosa.__version__)).encode())
    return digest.hexdigest()


def _read_cached(cache_path, params):
    """Return (hcqt, times) from a cache file, or None if it is missing or unusable."""
    try:
        with np.load(cache_path) as cached:
            features, times = cached['hcqt'], cached['times']
    except (OSError, ValueError, KeyError, EOFError):
        return None
    expected = (params.n_harmonics, params.n_bins, len(times))
    if features.shape != expected or features.dtype != np.float32 or times.ndim != 1:
        return None
    return features, times.astype(np.float32)


def hcqt_file(path, *, cache_dir=None):
    """Compute (or read from the on-disk cache) the 25 Hz HCQT of an audio file.

    Notebook: 02_HCQT.ipynb

    Cache files are ``<cache_dir>/<key>.npz`` with the key a hash of the file content,
    the HCQT parameters and the cache format, so a changed file or changed parameters
    are recomputed. An unreadable cache file is recomputed and replaced.

    Args:
        path (str or Path): Audio file (read with ``audio.load_audio``)
        cache_dir (str, Path, None or False): Cache directory; None (default) uses
            ``default_cache_dir()``, False disables caching

    Returns:
        hcqt (np.ndarray): Shape (6, 216, T), float32
        times (np.ndarray): Frame times in seconds, shape (T,), float32 (25 Hz)

    Raises:
        CTCChromaError: The file is missing, not readable audio, or too short.
    """
    path = os.fspath(path)
    if cache_dir is False:
        return hcqt(load_audio(path, sr=HCQT.sr), sr=HCQT.sr)
    check_audio_file(path)
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    cache_path = cache_dir / f'{_cache_key(path, HCQT)}.npz'
    cached = _read_cached(cache_path, HCQT)
    if cached is not None:
        return cached
    features, times = hcqt(load_audio(path, sr=HCQT.sr), sr=HCQT.sr)
    with atomic_path(cache_path) as tmp:
        np.savez(tmp, hcqt=features, times=times)
    return features, times

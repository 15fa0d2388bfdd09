"""Reading audio files as mono float32 signals at the project's sampling rate.

Notebook: 02_HCQT.ipynb
"""
import os
import warnings

import numpy as np
import soundfile as sf

from .constants import FEATURE_RATE, HCQT
from .errors import CTCChromaError

AUDIO_EXTENSIONS = ('.ogg', '.wav', '.flac', '.mp3', '.oga', '.m4a', '.aif', '.aiff', '.aifc',
                    '.opus', '.wma', '.au')
"""File name extensions read as audio (soundfile, else librosa's decoders); the teaching
dataset's recordings are Ogg Vorbis, so '.ogg' comes first where the order matters."""


def _read_with_librosa(path):
    """Decode formats that libsndfile cannot read (e.g. mp3 via audioread); raise on failure."""
    import librosa

    with warnings.catch_warnings():
        # librosa warns before falling back to audioread; the failure itself is reported below
        warnings.simplefilter('ignore')
        y, sr = librosa.load(path, sr=None, mono=False)
    return np.atleast_2d(y).T, sr


def check_audio_file(path):
    """Raise CTCChromaError naming ``path`` unless it is an existing, non-empty file.

    Args:
        path (str or Path): Audio file

    Raises:
        CTCChromaError: The path does not exist, is a directory, or is an empty file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CTCChromaError(f'audio file not found: {path}')
    if os.path.isdir(path):
        raise CTCChromaError(f'expected an audio file, got a directory: {path}')
    if os.path.getsize(path) == 0:
        raise CTCChromaError(f'audio file is empty (0 bytes): {path}')


def _native_path(path):
    """``path`` as libsndfile can open it: bytes where the name is not valid Unicode.

    On POSIX, Python decodes a file name that is not valid UTF-8 with surrogate escapes;
    soundfile cannot encode such a name, but accepts the original bytes.
    """
    try:
        path.encode('utf-8')
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def _read_frames(path):
    """Read ``path`` as (n_samples, n_channels) float32 and its sampling rate."""
    try:
        data, sr = sf.read(_native_path(path), dtype='float32', always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as sf_error:
        try:
            data, sr = _read_with_librosa(path)
        except Exception as fallback_error:
            raise CTCChromaError(f'cannot read audio file {path}: not a readable audio format '
                                 f'({sf_error}; {type(fallback_error).__name__})') from None
    return np.asarray(data, dtype=np.float32), sr


def load_audio(path, *, sr=HCQT.sr):
    """Load an audio file as a mono float32 signal at sampling rate ``sr``.

    Notebook: 02_HCQT.ipynb

    Reads with soundfile (wav, flac, ogg, ...) and falls back to librosa for other
    formats. Multi-channel audio is mixed down by averaging the channels; other sampling
    rates are resampled with ``librosa.resample`` (soxr, the default of ``librosa.load``
    that the original feature extraction used).

    Args:
        path (str or Path): Audio file
        sr (int): Target sampling rate in Hz (default: ``HCQT.sr`` = 22050)

    Returns:
        y (np.ndarray): Mono signal, shape (N,), float32

    Raises:
        CTCChromaError: The file is missing, a directory, empty, has no samples, or is not
            readable audio; the message names the file.
    """
    path = os.fspath(path)
    check_audio_file(path)
    data, file_sr = _read_frames(path)
    if data.shape[0] == 0:
        raise CTCChromaError(f'audio file contains no samples: {path}')
    y = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if file_sr != sr:
        import librosa

        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if not np.all(np.isfinite(y)):
        raise CTCChromaError(f'audio file contains non-finite samples: {path}')
    return y


def audio_duration(path):
    """Return the duration of an audio file in seconds without decoding all of it.

    Notebook: 01_Task_and_Data.ipynb, 06_Retrieval.ipynb

    Args:
        path (str or Path): Audio file

    Returns:
        duration (float): Duration in seconds

    Raises:
        CTCChromaError: The file is missing, empty, or not readable audio.
    """
    path = os.fspath(path)
    check_audio_file(path)
    try:
        info = sf.info(_native_path(path))
        return info.frames / float(info.samplerate)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        data, file_sr = _read_frames(path)
        return data.shape[0] / float(file_sr)


def check_audio_duration(path):
    """Raise CTCChromaError unless ``path`` is a readable audio file of at least one 25 Hz frame.

    Args:
        path (str or Path): Audio file

    Returns:
        duration (float): Duration in seconds
    """
    duration = audio_duration(path)
    if duration < 1.0 / FEATURE_RATE:
        raise CTCChromaError(f'audio file is shorter than one frame ({1000 / FEATURE_RATE:g} ms): {path}')
    return duration

"""Chroma from Basic Pitch, a modern polyphonic transcription model, as a peer of CTC chroma.

Notebook: 06_Retrieval.ipynb

Basic Pitch (Bittner et al., ICASSP 2022) is a lightweight note-transcription network that a
practitioner would try today instead of a dedicated chroma model. Its PyPI package
``basic-pitch==0.4.0`` ships the trained model inside the wheel; its TensorFlow pin does not
fit this project, so it is installed with ``--no-deps`` and never imported. This module finds
the ONNX file on disk and runs it with ``onnxruntime``, windowing the audio exactly as the
package's ``inference.run_inference`` does (``tests/test_basic_pitch.py`` checks that both give
the same activations):

- mono audio at 22050 Hz, preceded by half an overlap of zeros;
- windows of 43 844 samples (2 s minus one hop), hop 43 844 - 30 x 256 samples, the last one
  zero-padded; the network returns 172 frames (hop 256) per window;
- 15 frames are dropped at both ends of every window, the rest concatenated and cut to
  ``floor(n_samples * 86 / 22050)`` frames.

The ``note`` output (88 piano keys, A0 to C8, probabilities per hop frame) is folded to chroma
by the largest probability over the octaves, squared (:data:`SHARPENING`), averaged onto the
25 Hz grid of the HCQT like the standard chroma
(:func:`ctc_chroma_lib.standard_chroma.hop_to_feature_rate`) and normalized per frame.

How to fold was chosen on the teaching set's fold 4 (the validation fold of the shipped
models), never on the test fold 5. Basic Pitch gives every key a small probability, and a sum
over seven octaves turns that floor into a flat chroma: retrieval MRR on fold 4 was 0.298 for
the sum, 0.488 for the maximum, 0.541 for the squared maximum (0.554 for the cube, 0.532 for
the sixth power: a plateau).
"""
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from .constants import HCQT
from .errors import CTCChromaError

PACKAGE = 'basic_pitch'
"""Import name of the package ``basic-pitch`` (installed with ``--no-deps``)."""

MODEL_FILE = Path('saved_models') / 'icassp_2022' / 'nmp.onnx'
"""The ONNX model inside the package."""

SAMPLE_RATE = 22050
HOP = 256
WINDOW_SAMPLES = 2 * SAMPLE_RATE - HOP
"""Samples per network input window (43 844)."""
OVERLAP_FRAMES = 30
"""Output frames shared by consecutive windows; half of them is dropped at each end."""
FRAMES_PER_SECOND = SAMPLE_RATE // HOP
"""The package's (integer) frame rate, used to cut the output to the audio's length."""
LOWEST_KEY = 21
"""MIDI pitch of the first of the 88 note bins (A0)."""
SHARPENING = 2.0
"""Power applied to the folded probabilities (suppresses the floor of unlikely notes)."""
BATCH_WINDOWS = 16
"""Windows per ONNX call (memory stays below 100 MB for any recording length)."""

_INPUT = 'serving_default_input_2:0'
_NOTE_OUTPUT = 'StatefulPartitionedCall:1'


def model_path():
    """The ONNX file of Basic Pitch, found without importing the package.

    Returns:
        path (Path): ``.../site-packages/basic_pitch/saved_models/icassp_2022/nmp.onnx``

    Raises:
        CTCChromaError: The package is not installed
    """
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    folders = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    folders += [Path(p) / PACKAGE for p in sys.path if p]
    for folder in folders:
        if (folder / MODEL_FILE).is_file():
            return folder / MODEL_FILE
    raise CTCChromaError('Basic Pitch (feature kind basic-pitch) is not installed; install it '
                         'with `pip install --no-deps basic-pitch==0.4.0` (`make setup` does)')


@lru_cache(maxsize=1)
def _session():
    try:
        import onnxruntime
    except ImportError:
        raise CTCChromaError('onnxruntime is needed for the feature kind basic-pitch; '
                             'install it with `pip install onnxruntime`') from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # no warnings about unused initializers on stderr
    return onnxruntime.InferenceSession(str(model_path()), sess_options=options,
                                        providers=['CPUExecutionProvider'])


def windows(y):
    """The network's input windows of a signal, as the package cuts them.

    Args:
        y (np.ndarray): Mono signal at 22050 Hz, shape (N,)

    Returns:
        windows (np.ndarray): Shape (n_windows, 43844, 1), float32
    """
    overlap = OVERLAP_FRAMES * HOP
    padded = np.concatenate([np.zeros(overlap // 2, dtype=np.float32),
                             np.asarray(y, dtype=np.float32)])
    starts = range(0, len(padded), WINDOW_SAMPLES - overlap)
    out = np.zeros((len(starts), WINDOW_SAMPLES, 1), dtype=np.float32)
    for i, start in enumerate(starts):
        piece = padded[start:start + WINDOW_SAMPLES]
        out[i, :len(piece), 0] = piece
    return out


def note_activations(y):
    """Basic Pitch's note posteriorgram of a signal (the ``note`` output, unwrapped).

    Args:
        y (np.ndarray): Mono signal at 22050 Hz, shape (N,)

    Returns:
        notes (np.ndarray): Probabilities, shape (88, T) for MIDI pitches 21..108, one
            frame per 256 samples, ``T = floor(N * 86 / 22050)``
    """
    session = _session()
    batches = windows(y)
    outputs = [session.run([_NOTE_OUTPUT], {_INPUT: batches[i:i + BATCH_WINDOWS]})[0]
               for i in range(0, len(batches), BATCH_WINDOWS)]
    output = np.concatenate(outputs)
    trim = OVERLAP_FRAMES // 2
    frames = output[:, trim:-trim, :].reshape(-1, output.shape[-1])
    n_frames = int(np.floor(len(y) * FRAMES_PER_SECOND / SAMPLE_RATE))
    return np.ascontiguousarray(frames[:n_frames].T)


def fold_to_chroma(notes):
    """Fold an (88, T) piano-key matrix into (12, T) chroma (row 0 = C): per pitch class, the
    largest value over the octaves.
    """
    notes = np.asarray(notes, dtype=np.float64)
    chroma = np.zeros((12, notes.shape[1]), dtype=np.float64)
    for key in range(notes.shape[0]):
        pitch_class = (LOWEST_KEY + key) % 12
        np.maximum(chroma[pitch_class], notes[key], out=chroma[pitch_class])
    return chroma


def chroma_basic_pitch(y, *, sr=HCQT.sr):
    """Basic Pitch chroma at 25 Hz with unit-norm columns, on the HCQT's frame grid.

    Args:
        y (np.ndarray): Mono signal
        sr (int): Its sampling rate (resampled to 22050 Hz if different)

    Returns:
        chroma (np.ndarray): (12 x T) float32, unit-norm columns
        times (np.ndarray): Frame times (T,), seconds
    """
    from .features import prepare_signal
    from .standard_chroma import hop_to_feature_rate

    if HCQT.sr != SAMPLE_RATE or HCQT.hop_length != HOP:  # pragma: no cover
        raise CTCChromaError('Basic Pitch needs the HCQT grid of 22050 Hz and hop 256')
    y = prepare_signal(y, sr)
    return hop_to_feature_rate(fold_to_chroma(note_activations(y)) ** SHARPENING, len(y))


def fingerprint():
    """Hash of the ONNX model and the folding (part of cache keys and index parameters)."""
    import hashlib

    from .fileio import sha256_file
    recipe = f'{sha256_file(model_path())}|max over octaves|power {SHARPENING}'
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]

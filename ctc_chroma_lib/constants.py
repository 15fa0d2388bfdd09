"""The one source of truth for every constant of the method.

Notebook: 02_HCQT.ipynb (HCQT parameters), 03_CTC.ipynb (alphabet)

The original ``ctc_chroma`` code returned its parameters from a function; here they
live in one frozen dataclass that every module reads.
"""
from dataclasses import dataclass
from pathlib import Path

FEATURE_RATE = 25.0
"""Feature rate of every chroma and HCQT representation in this project (Hz)."""

CHROMA_NAMES = ('C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B')
"""Names of the 12 chroma classes, index = pitch class (MIDI pitch mod 12)."""

BLANK_INDEX = 12
"""Index of the CTC blank symbol: the alphabet is the 12 chroma classes, then blank."""

ALPHABET = CHROMA_NAMES + ('blank',)
"""The 13 output classes of the CTC chroma model (blank last)."""

NUM_CLASSES = len(ALPHABET)

CTC_SMOOTHING_FRAMES = 7
"""Frames (280 ms at 25 Hz) of the moving average applied to a CTC model's chroma
probabilities after blank removal, before normalization
(:func:`ctc_chroma_lib.chroma.postprocess`). A converged CTC model marks each note by a
spike of one or a few frames somewhere inside it, while a query spells the note out over its
whole duration; the average spreads every spike over its neighbourhood. Frame-wise models
(``strong``, ``linear``) label every frame of a note and are not smoothed. Chosen on the
validation fold 4, not on the test fold: the MRR averaged over four peaky CTC models is
highest at 7 frames and within 0.004 of it from 5 to 9 frames."""


@dataclass(frozen=True)
class HCQTParams:
    """Parameters of the harmonic constant-Q transform (deep-salience recipe)."""

    sr: int = 22050
    hop_length: int = 256
    fmin: float = 32.7
    bins_per_octave: int = 36
    n_octaves: int = 6
    harmonics: tuple = (0.5, 1, 2, 3, 4, 5)
    feature_rate: float = FEATURE_RATE

    @property
    def n_bins(self) -> int:
        """Number of CQT bins per harmonic (216)."""
        return self.bins_per_octave * self.n_octaves

    @property
    def n_harmonics(self) -> int:
        return len(self.harmonics)


HCQT = HCQTParams()
"""Default HCQT parameters used throughout the project."""


def log_compress_db(db):
    """Map decibels (``ref=max``, floored at -80 dB) to [0, 1]: ``dB / 80 + 1``."""
    return db / 80.0 + 1.0


N_FOLDS = 5
"""Cross-validation folds of the (teaching) Musical Theme Dataset, numbered 1 to 5."""

PROJECT_DIR = Path(__file__).resolve().parents[1]
"""The project's checkout: the folder that holds ``ctc_chroma_lib``, ``data``, ``bench`` and
``cache``."""

WEIGHTS_DIR = Path(__file__).resolve().parent / 'weights'
"""Folder of the shipped model weights, their configurations, logs and curves."""

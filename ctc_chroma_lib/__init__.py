"""ctc_chroma_lib: learned CTC chroma features for cross-modal theme retrieval.

The thin library behind the teaching notebooks in ``notebooks/``. It follows
Zalkow & Müller, "Using Weakly Aligned Score-Audio Pairs to Train Deep Chroma
Models for Cross-Modal Music Retrieval", ISMIR 2020. A public function that a notebook
uses names that notebook in its docstring (``Notebook:``; ``tests/test_docs.py`` checks it).
"""
from . import _interrupts

if _interrupts.started_as_command():
    _interrupts.install()  # first: Ctrl-C while the command line loads is kept for main()

from .constants import ALPHABET, BLANK_INDEX, CHROMA_NAMES, FEATURE_RATE, HCQT, HCQTParams
from .errors import CTCChromaError

__version__ = '0.1.0'

__all__ = ['ALPHABET', 'BLANK_INDEX', 'CHROMA_NAMES', 'FEATURE_RATE', 'HCQT', 'HCQTParams',
           'CTCChromaError', '__version__']

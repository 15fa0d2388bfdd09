"""Fixtures shared by the test modules."""
import shutil

import numpy as np
import pytest

from ctc_chroma_lib import constants


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    """An empty stand-in for the package's weights folder; ``install(name, source)`` copies a
    ``.weights.h5`` file in as ``<name>.weights.h5`` (e.g. 'teaching-ctc')."""
    folder = tmp_path / 'weights'
    folder.mkdir()
    monkeypatch.setattr(constants, 'WEIGHTS_DIR', folder)

    def install(name, source):
        target = folder / f'{name}.weights.h5'
        shutil.copyfile(source, target)
        return target

    install.folder = folder
    return install


# --- test signals (import them: ``from conftest import sine``) ----------------------------

SR = 22050
"""Sampling rate of the test signals (the project's, ``constants.HCQT.sr``)."""


def sine(seconds, freq=440.0, sr=SR, amplitude=0.5):
    """A sine tone, float32."""
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def harmonic_tones(pitches, seconds, harmonics=3, gain=0.1, attack=None, decay=None, sr=SR):
    """Harmonic tones (partial h at amplitude 1/h) of MIDI pitches sounding together, float32.

    ``gain`` scales the mix divided by the number of pitches; ``attack`` (seconds) and
    ``decay`` (time constant in seconds) shape an optional envelope.
    """
    t = np.arange(int(seconds * sr)) / sr
    y = np.zeros_like(t)
    for pitch in pitches:
        f0 = 440 * 2 ** ((pitch - 69) / 12)
        y += sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, harmonics + 1))
    envelope = np.ones_like(t)
    if attack:
        envelope = envelope * np.minimum(1, t / attack)
    if decay:
        envelope = envelope * np.exp(-t / decay)
    return (gain * y * envelope / len(pitches)).astype(np.float32)

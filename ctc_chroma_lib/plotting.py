"""Figures of dataset items: theme notes over a spectrogram or chromagram of the recording.

Notebook: 01_Task_and_Data.ipynb
"""
import numpy as np

from .constants import CHROMA_NAMES, FEATURE_RATE
from .errors import CTCChromaError

SPECTROGRAM_FMIN_PITCH = 24   # C1
SPECTROGRAM_N_PITCHES = 84    # seven octaves, C1..B7


def _load(item, sr):
    import soundfile as sf
    try:
        y, file_sr = sf.read(str(item.audio_path), dtype='float32', always_2d=True)
    except (OSError, RuntimeError) as e:
        raise CTCChromaError(f'{item.audio_path}: cannot read audio ({e})') from None
    y = y.mean(axis=1)
    if file_sr != sr:
        import librosa
        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr)
    return y


def item_features(item, kind='spectrogram', sr=22050, feature_rate=FEATURE_RATE):
    """Log-frequency spectrogram (dB, one bin per MIDI pitch) or CQT chroma of an item.

    Args:
        item (Item): Dataset item
        kind (str): 'spectrogram' or 'chroma' (Default value = 'spectrogram')
        sr (int): Sampling rate (Default value = 22050)
        feature_rate (float): Frames per second (Default value = FEATURE_RATE)

    Returns:
        features (np.ndarray): 84 x T (pitches C1..B7, dB) or 12 x T (chroma, max-normalized)
        times (np.ndarray): Frame times in seconds (T,)
    """
    import librosa
    if kind not in ('spectrogram', 'chroma'):
        raise CTCChromaError(f"plot kind must be 'spectrogram' or 'chroma', not {kind!r}")
    y = _load(item, sr)
    hop = int(round(sr / feature_rate / 64)) * 64 or 64   # CQT needs a multiple of 2^octaves
    cqt = np.abs(librosa.cqt(y, sr=sr, hop_length=hop,
                             fmin=librosa.midi_to_hz(SPECTROGRAM_FMIN_PITCH),
                             n_bins=SPECTROGRAM_N_PITCHES, bins_per_octave=12))
    if kind == 'spectrogram':
        features = librosa.amplitude_to_db(cqt, ref=np.max, top_db=60)
    else:
        # Fold the semitone bins into pitch classes (the lowest bin is a C), then scale each
        # frame to a maximum of one.
        energy = cqt ** 2
        features = np.zeros((12, energy.shape[1]))
        for k in range(energy.shape[0]):
            features[(SPECTROGRAM_FMIN_PITCH + k) % 12] += energy[k]
        features = features / np.maximum(features.max(axis=0, keepdims=True), 1e-10)
    times = np.arange(features.shape[1]) * hop / sr
    return features.astype(np.float32), times


def plot_item(item, kind='spectrogram', ax=None, features=None, colorbar=True,
              show_strong=True, figsize=(10, 4)):
    """Plot an item's theme notes over the spectrogram or chromagram of its recording.

    Notebook: 01_Task_and_Data.ipynb

    The weak alignment (StartTime-EndTime) is shaded and bounded by dashed lines; the strong
    alignment of each theme note is drawn as a box (pitch row or chroma row, onset to
    offset) with thin lines at the note boundaries.

    Args:
        item (Item): Dataset item
        kind (str): 'spectrogram' (log-frequency, MIDI pitch axis) or 'chroma'
            (Default value = 'spectrogram')
        ax (matplotlib.axes.Axes): Axes to draw into; None for a new figure
            (Default value = None)
        features ((np.ndarray, np.ndarray)): Precomputed output of :func:`item_features`
            (Default value = None)
        colorbar (bool): Draw a colorbar (Default value = True)
        show_strong (bool): Draw the strong alignment if the item has one (Default value = True)
        figsize ((float, float)): Figure size for a new figure (Default value = (10, 4))

    Returns:
        fig (matplotlib.figure.Figure): The figure
        ax (matplotlib.axes.Axes): The axes
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    if features is None:
        features, times = item_features(item, kind)
    else:
        features, times = features
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
    dt = times[1] - times[0] if len(times) > 1 else 1 / FEATURE_RATE
    if kind == 'spectrogram':
        lowest = SPECTROGRAM_FMIN_PITCH
        extent = [times[0] - dt / 2, times[-1] + dt / 2, lowest - 0.5,
                  lowest + features.shape[0] - 0.5]
        label, cbar_label = 'MIDI pitch', 'Magnitude (dB)'
    else:
        extent = [times[0] - dt / 2, times[-1] + dt / 2, -0.5, 11.5]
        label, cbar_label = 'Chroma', 'Energy (max-normalized)'
    image = ax.imshow(features, origin='lower', aspect='auto', cmap='gray_r',
                      extent=extent, interpolation='nearest')
    if colorbar:
        fig.colorbar(image, ax=ax, label=cbar_label, pad=0.01)
    start, end = item.weak_alignment
    ax.axvspan(start, end, color='tab:blue', alpha=0.15, label='weak alignment')
    for t in (start, end):
        ax.axvline(t, color='tab:blue', linestyle='--', linewidth=1.5)
    if show_strong and item.strong_alignment is not None:
        for i, note in enumerate(item.strong_alignment):
            row = note.pitch if kind == 'spectrogram' else note.chroma
            ax.add_patch(Rectangle((note.start, row - 0.5), note.duration, 1.0, fill=False,
                                   edgecolor='tab:red', linewidth=1.2,
                                   label='strong alignment (theme notes)' if i == 0 else None))
            ax.axvline(note.start, color='tab:red', linewidth=0.4, alpha=0.5)
    if kind == 'chroma':
        ax.set_yticks(range(12))
        ax.set_yticklabels(CHROMA_NAMES)
    elif item.strong_alignment is not None:
        pitches = [n.pitch for n in item.strong_alignment]
        ax.set_ylim(max(lowest - 0.5, min(pitches) - 24), min(extent[3], max(pitches) + 12))
    ax.set_xlabel('Time (seconds)')
    ax.set_ylabel(label)
    what = 'log-frequency spectrogram' if kind == 'spectrogram' else 'chromagram (CQT)'
    ax.set_title(f'{item.mtd_id} ({item.composer}, {item.title}): theme over {what}')
    ax.legend(loc='upper right', fontsize='small', framealpha=0.8)
    return fig, ax

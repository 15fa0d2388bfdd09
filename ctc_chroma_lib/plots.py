"""Every figure of the companion: class matrices, item spectrograms and chromagrams with their
alignments, CTC lattices, training curves and matching functions.

Notebook: 05_Blank_Removal_and_Normalization.ipynb

One convention, libfmp's: every function draws into ``ax`` (None: a new figure of size
``figsize``) and returns ``fig, ax, im``, where ``im`` is the image drawn, or None for line
plots and overlays. Matrices are features × frames (time last), drawn with
``origin='lower'``, frames centred on their times, ``gray_r`` by default: dark = large.
Notebooks and the interactive explorers (``explorers.py``) share these functions.
"""
import numpy as np

from .constants import ALPHABET, BLANK_INDEX, CHROMA_NAMES, FEATURE_RATE, HCQT
from .errors import CTCChromaError

SPECTROGRAM_FMIN_PITCH = 24
"""Lowest pitch of :func:`item_features`' spectrogram (C1)."""

SPECTROGRAM_N_PITCHES = 84
"""Pitches of the spectrogram: seven octaves, C1 … B7."""

ITEM_KINDS = ('spectrogram', 'chroma')
"""What :func:`plot_item` draws under the theme's notes."""


def _figure(ax, figsize):
    """``(fig, ax)``: the given axes and their figure, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def _time_extent(n_frames, times=None, feature_rate=FEATURE_RATE):
    """Image extent (left, right) with frames centred on their times; in frames when
    ``feature_rate`` is None and no times are given."""
    if times is None and feature_rate is None:
        return -0.5, n_frames - 0.5
    dt = 1.0 / feature_rate if times is None or len(times) < 2 else float(times[1] - times[0])
    start = float(times[0]) if times is not None and len(times) else 0.0
    return start - dt / 2, start + (n_frames - 0.5) * dt


def plot_class_matrix(features, ax=None, *, times=None, feature_rate=FEATURE_RATE, title='',
                      cmap='gray_r', vmin=0.0, vmax=None, colorbar=True, colorbar_label='',
                      figsize=(10, 3)):
    """Plot a chroma (12 x T) or chroma-plus-blank (13 x T) matrix over time.

    Notebook: 01_Task_and_Data.ipynb, 03_CTC.ipynb, 04_Model_and_Training.ipynb,
    06_Retrieval.ipynb, 07_Weak_to_Strong_Alignment.ipynb, 08_Published_Models.ipynb

    Args:
        features (np.ndarray): Matrix (12 x T) or (13 x T, blank last): network outputs,
            chroma, class posteriors, gradients
        ax (matplotlib.axes.Axes): Axes to draw into (Default value = None: a new figure)
        times (np.ndarray): Frame times in seconds (T,) (Default value = None: from 0 at
            ``feature_rate``)
        feature_rate (float): Frames per second when ``times`` is None; None: a frame axis
            (Default value = 25.0)
        title (str): Axes title (Default value = '')
        cmap (str): Colormap (Default value = 'gray_r')
        vmin (float): Bottom of the colormap (Default value = 0.0)
        vmax (float): Top of the colormap (Default value = None: the maximum)
        colorbar (bool): Draw a colorbar (Default value = True)
        colorbar_label (str): Label of the colorbar (Default value = '')
        figsize (tuple): Size of a new figure (Default value = (10, 3))

    Returns:
        fig (matplotlib.figure.Figure), ax (matplotlib.axes.Axes),
        im (matplotlib.image.AxesImage)
    """
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] not in (len(CHROMA_NAMES), len(ALPHABET)):
        raise CTCChromaError(f'a class matrix has 12 or 13 rows, got shape {features.shape}')
    fig, ax = _figure(ax, figsize)
    left, right = _time_extent(features.shape[1], times, feature_rate)
    im = ax.imshow(features, origin='lower', aspect='auto', cmap=cmap, vmin=vmin, vmax=vmax,
                   extent=(left, right, -0.5, features.shape[0] - 0.5), interpolation='nearest')
    names = ALPHABET[:features.shape[0]]
    ax.set_yticks(np.arange(len(names)))
    ax.set_yticklabels(names)
    ax.set_ylabel('Chroma' if features.shape[0] == len(CHROMA_NAMES) else 'Class')
    ax.set_xlabel('Frame' if times is None and feature_rate is None else 'Time (seconds)')
    ax.set_title(title)
    if colorbar:
        fig.colorbar(im, ax=ax, pad=0.01, label=colorbar_label)
    return fig, ax, im


def plot_ctc_lattice(lattice, labels, ax=None, *, blank=BLANK_INDEX, feature_rate=None,
                     title='', cmap='gray_r', colorbar=True, vmin=None, vmax=None,
                     unreachable_color='0.75', figsize=(10, 4)):
    """Plot a matrix over the CTC lattice (states of the extended labels x frames).

    Notebook: 03_CTC.ipynb

    Args:
        lattice (np.ndarray): Values per state and frame, shape ``(2L + 1, T)``, e.g.
            ``exp(log_alpha)`` or state posteriors
        labels (Sequence[int]): The label sequence of length ``L``
        ax (matplotlib.axes.Axes): Axes to draw into (Default value = None: a new figure)
        blank (int): Index of the blank (Default value = ``constants.BLANK_INDEX``)
        feature_rate (float): Frames per second for a time axis in seconds (Default value =
            None: frame indices)
        title (str): Axes title (Default value = '')
        cmap (str): Colormap (Default value = 'gray_r')
        colorbar (bool): Add a colorbar (Default value = True)
        vmin (float): Bottom of the colormap; smaller values are clipped (Default value =
            None: the smallest value)
        vmax (float): Top of the colormap (Default value = None: the largest value)
        unreachable_color: Colour of NaN cells, e.g. states a path cannot occupy at that
            frame (Default value = light gray, which no colormap used here contains)
        figsize (tuple): Size of a new figure (Default value = (10, 4))

    Returns:
        fig (matplotlib.figure.Figure), ax (matplotlib.axes.Axes),
        im (matplotlib.image.AxesImage)
    """
    import matplotlib

    from .ctc import extended_labels, label_names

    lattice = np.asarray(lattice)
    num_states, num_frames = lattice.shape
    fig, ax = _figure(ax, figsize)
    left, right = _time_extent(num_frames, None, feature_rate)
    colormap = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    colormap = colormap.with_extremes(bad=unreachable_color)
    im = ax.imshow(lattice, aspect='auto', origin='upper', cmap=colormap,
                   extent=(left, right, num_states - 0.5, -0.5), interpolation='nearest',
                   vmin=vmin, vmax=vmax)
    ax.set_yticks(np.arange(num_states))
    ax.set_yticklabels(label_names(extended_labels(labels, blank), blank).split())
    ax.set_ylabel('Extended label')
    ax.set_xlabel('Frame' if feature_rate is None else 'Time (seconds)')
    ax.set_title(title)
    if colorbar:
        fig.colorbar(im, ax=ax, pad=0.01)
    return fig, ax, im


def plot_alignment(item, ax=None, *, rows='chroma', show_weak=True, show_strong=True,
                   color='tab:red', legend=True, figsize=(10, 3)):
    """Overlay an item's weak alignment (shaded span) and strong alignment (note boxes).

    Notebook: 04_Model_and_Training.ipynb, 07_Weak_to_Strong_Alignment.ipynb

    The one overlay of all item figures: the notes of the strong alignment are boxes in
    their chroma row (0 … 11, fitting :func:`plot_class_matrix`) or in their MIDI pitch
    row (the spectrogram of :func:`plot_item`).

    Args:
        item (dataset.Item): Dataset item
        ax (matplotlib.axes.Axes): Axes to draw into (Default value = None: a new figure)
        rows (str): 'chroma' or 'pitch' (Default value = 'chroma')
        show_weak (bool): Shade StartTime … EndTime (Default value = True)
        show_strong (bool): Draw the theme notes of the strong alignment, if any
            (Default value = True)
        color (str): Colour of the note boxes (Default value = 'tab:red')
        legend (bool): Add a legend (Default value = True)
        figsize (tuple): Size of a new figure (Default value = (10, 3))

    Returns:
        fig (matplotlib.figure.Figure), ax (matplotlib.axes.Axes), im (None)
    """
    from matplotlib.patches import Rectangle

    if rows not in ('chroma', 'pitch'):
        raise CTCChromaError(f"rows must be 'chroma' or 'pitch', not {rows!r}")
    fig, ax = _figure(ax, figsize)
    if show_weak:
        start, end = item.weak_alignment
        ax.axvspan(start, end, color='tab:blue', alpha=0.12, label='weak alignment')
        for t in (start, end):
            ax.axvline(t, color='tab:blue', linestyle='--', linewidth=1.2)
    if show_strong and item.strong_alignment:
        for i, note in enumerate(item.strong_alignment):
            row = note.chroma if rows == 'chroma' else note.pitch
            ax.add_patch(Rectangle((note.start, row - 0.5), note.duration, 1.0,
                                   fill=False, edgecolor=color, linewidth=1.3,
                                   label='strong alignment' if i == 0 else None))
    if legend:
        ax.legend(loc='upper right', fontsize='small', framealpha=0.8)
    return fig, ax, None


def item_features(item, kind='spectrogram'):
    """Log-frequency spectrogram (dB, one bin per MIDI pitch) or CQT chroma of an item, 25 Hz.

    Both are computed from :func:`ctc_chroma_lib.audio.load_audio` at 22050 Hz on the
    HCQT's 25 Hz frame grid: the spectrogram averages a semitone CQT over every frame, the
    chroma is the CQT baseline of retrieval (:func:`ctc_chroma_lib.standard_chroma.chroma_cqt`).

    Args:
        item (dataset.Item): Dataset item
        kind (str): 'spectrogram' or 'chroma' (Default value = 'spectrogram')

    Returns:
        features (np.ndarray): 84 x T (pitches C1 … B7, dB, at most 0) or 12 x T (chroma,
            unit-norm frames), float32
        times (np.ndarray): Frame times in seconds (T,)

    Raises:
        CTCChromaError: Unknown kind or unreadable audio
    """
    import librosa

    from .audio import load_audio
    from .standard_chroma import average_to_feature_rate, chroma_cqt

    if kind not in ITEM_KINDS:
        raise CTCChromaError(f"plot kind must be 'spectrogram' or 'chroma', not {kind!r}")
    y = load_audio(item.audio_path, sr=HCQT.sr)
    if kind == 'chroma':
        return chroma_cqt(y, sr=HCQT.sr)
    cqt = np.abs(librosa.cqt(y, sr=HCQT.sr, hop_length=HCQT.hop_length,
                             fmin=librosa.midi_to_hz(SPECTROGRAM_FMIN_PITCH),
                             n_bins=SPECTROGRAM_N_PITCHES, bins_per_octave=12))
    magnitude, times = average_to_feature_rate(cqt, len(y))
    return librosa.amplitude_to_db(magnitude, ref=np.max, top_db=60).astype(np.float32), times


def plot_item(item, kind='spectrogram', ax=None, *, features=None, colorbar=True,
              show_strong=True, figsize=(10, 4)):
    """Plot an item's theme notes over the spectrogram or chromagram of its recording.

    Notebook: 01_Task_and_Data.ipynb

    The weak alignment (StartTime … EndTime) is shaded and bounded by dashed lines; the
    strong alignment of each theme note is drawn as a box (pitch row or chroma row, onset
    to offset) by :func:`plot_alignment`.

    Args:
        item (dataset.Item): Dataset item
        kind (str): 'spectrogram' (log-frequency, MIDI pitch axis) or 'chroma' (CQT chroma)
            (Default value = 'spectrogram')
        ax (matplotlib.axes.Axes): Axes to draw into (Default value = None: a new figure)
        features (tuple): Precomputed ``(features, times)`` of :func:`item_features`
            (Default value = None)
        colorbar (bool): Draw a colorbar (Default value = True)
        show_strong (bool): Draw the strong alignment if the item has one (Default value = True)
        figsize (tuple): Size of a new figure (Default value = (10, 4))

    Returns:
        fig (matplotlib.figure.Figure), ax (matplotlib.axes.Axes),
        im (matplotlib.image.AxesImage)
    """
    features, times = item_features(item, kind) if features is None else features
    fig, ax = _figure(ax, figsize)
    if kind == 'chroma':
        _, _, im = plot_class_matrix(features, ax, times=times, colorbar=colorbar,
                                     colorbar_label='unit-norm frames')
        what = 'chromagram (CQT)'
    else:
        left, right = _time_extent(features.shape[1], times)
        lowest = SPECTROGRAM_FMIN_PITCH
        im = ax.imshow(features, origin='lower', aspect='auto', cmap='gray_r',
                       extent=(left, right, lowest - 0.5, lowest + features.shape[0] - 0.5),
                       interpolation='nearest')
        if colorbar:
            fig.colorbar(im, ax=ax, label='Magnitude (dB)', pad=0.01)
        if item.strong_alignment:
            pitches = [n.pitch for n in item.strong_alignment]
            ax.set_ylim(max(lowest - 0.5, min(pitches) - 24),
                        min(lowest + features.shape[0] - 0.5, max(pitches) + 12))
        ax.set_xlabel('Time (seconds)')
        ax.set_ylabel('MIDI pitch')
        what = 'log-frequency spectrogram'
    plot_alignment(item, ax, rows='chroma' if kind == 'chroma' else 'pitch',
                   show_strong=show_strong)
    ax.set_title(f'{item.mtd_id} ({item.composer}, {item.title}): theme over {what}')
    return fig, ax, im


def plot_item_features(item, features, times, ax=None, *, title='', colorbar_label='',
                       vmax=None, show_strong=True, legend=True, figsize=(10, 3)):
    """Plot features of an item's recording with the theme's weak and strong alignment.

    Notebook: 05_Blank_Removal_and_Normalization.ipynb

    Args:
        item (dataset.Item): Dataset item
        features (np.ndarray): Features of the item's recording (12 x T or 13 x T)
        times (np.ndarray): Frame times in seconds (T,)
        ax (matplotlib.axes.Axes): Axes to draw into (Default value = None: a new figure)
        title (str): Axes title (Default value = '')
        colorbar_label (str): Label of the colorbar (Default value = '')
        vmax (float): Top of the colormap (Default value = None: the maximum)
        show_strong (bool): Draw the strong alignment (Default value = True)
        legend (bool): Add the legend; without it the note boxes stay visible everywhere
            (Default value = True)
        figsize (tuple): Size of a new figure (Default value = (10, 3))

    Returns:
        fig (matplotlib.figure.Figure), ax (matplotlib.axes.Axes),
        im (matplotlib.image.AxesImage)
    """
    fig, ax, im = plot_class_matrix(features, ax, times=times, vmax=vmax, title=title,
                                    colorbar_label=colorbar_label, figsize=figsize)
    plot_alignment(item, ax, show_strong=show_strong, legend=legend)
    return fig, ax, im


def plot_blank_share(probs, ax=None, *, times=None, title='Blank probability per frame',
                     figsize=(10, 2.5)):
    """Plot the blank probability and the summed chroma probability of every frame.

    Notebook: 05_Blank_Removal_and_Normalization.ipynb

    Args:
        probs (np.ndarray): Class probabilities (13 x T), blank last
        ax (matplotlib.axes.Axes): Axes to draw into (Default value = None: a new figure)
        times (np.ndarray): Frame times in seconds (T,) (Default value = None: 25 Hz from 0)
        title (str): Axes title (Default value = 'Blank probability per frame')
        figsize (tuple): Size of a new figure (Default value = (10, 2.5))

    Returns:
        fig (matplotlib.figure.Figure), ax (matplotlib.axes.Axes), im (None)
    """
    probs = np.asarray(probs)
    if times is None:
        times = np.arange(probs.shape[1]) / FEATURE_RATE
    fig, ax = _figure(ax, figsize)
    ax.plot(times, probs[BLANK_INDEX], color='black', label='blank')
    ax.plot(times, probs[:BLANK_INDEX].sum(axis=0), color='tab:orange', label='sum of 12 chroma')
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(times[0], times[-1])
    ax.set_xlabel('Time (seconds)')
    ax.set_ylabel('Probability')
    ax.set_title(title)
    ax.legend(loc='upper right', fontsize='small', framealpha=0.8)
    return fig, ax, None


def plot_matching_functions(deltas, ax=None, *, labels=None, relevant=None,
                            feature_rate=FEATURE_RATE, title='Matching functions',
                            figsize=(10, 3)):
    """Plot matching functions of several recordings, each marked at its minimum.

    Notebook: 06_Retrieval.ipynb

    Args:
        deltas (list of np.ndarray): Matching function (M_i,) of each recording
        ax (matplotlib.axes.Axes): Axes to draw into (Default value = None: a new figure)
        labels (list of str): Legend label of each curve (Default value = None)
        relevant (int): Index of the relevant recording, drawn thicker (Default value = None)
        feature_rate (float): Frames per second (Default value = 25.0)
        title (str): Axes title (Default value = 'Matching functions')
        figsize (tuple): Size of a new figure (Default value = (10, 3))

    Returns:
        fig (matplotlib.figure.Figure), ax (matplotlib.axes.Axes), im (None)
    """
    fig, ax = _figure(ax, figsize)
    labels = labels or [str(i) for i in range(len(deltas))]
    for i, (delta, label) in enumerate(zip(deltas, labels)):
        delta = np.asarray(delta, dtype=np.float64)
        t = np.arange(len(delta)) / feature_rate
        width = 2.2 if i == relevant else 1.0
        (line,) = ax.plot(t, np.where(np.isfinite(delta), delta, np.nan), linewidth=width,
                          label=label)
        if np.any(np.isfinite(delta)):
            m = int(np.argmin(delta))
            ax.plot(t[m], delta[m], 'o', color=line.get_color())
    ax.set_xlabel('Time (seconds)')
    ax.set_ylabel(r'$\Delta$')
    ax.set_title(title)
    ax.legend(loc='lower right', fontsize='small', framealpha=0.8)
    return fig, ax, None


def plot_training_log(log_path=None, ax=None, *, png_path=None, title=None, history=None,
                      figsize=(6.4, 4.0)):
    """Plot a training log per epoch: losses, and validation MRR and blank share.

    Notebook: 04_Model_and_Training.ipynb

    CTC logs show the loss per note, with ln 12 marked: what a model pays that knows
    where the notes are but not their chroma (the blank plateau). On the right axis, the
    validation retrieval MRR and the share of validation frames where the blank wins.

    Args:
        log_path (str or Path): CSV log of :func:`ctc_chroma_lib.training.train`
            (Default value = None: ``history`` is given)
        ax (matplotlib.axes.Axes): Draw into these axes (Default value = None: a new figure)
        png_path (str or Path): Save a new figure here, outside pyplot (Default value = None)
        title (str): Axes title (Default value = None: the log's name)
        history (list of dict): Rows as from :func:`ctc_chroma_lib.training.read_training_log`
            instead of a file (Default value = None)
        figsize (tuple): Size of a new figure (Default value = (6.4, 4.0))

    Returns:
        fig (matplotlib.figure.Figure), ax (matplotlib.axes.Axes), im (None)
    """
    from pathlib import Path

    from matplotlib.ticker import MaxNLocator

    from .fileio import atomic_path
    from .training import read_training_log

    if history is None:
        history = read_training_log(log_path)
    epochs = [int(r['epoch']) + 1 for r in history]
    own = ax is None
    if own and png_path is not None:
        # A figure outside pyplot: saving it touches neither the backend nor the figures
        # of a notebook that calls this.
        from matplotlib.figure import Figure
        fig = Figure(figsize=figsize)
        ax = fig.subplots()
    else:
        fig, ax = _figure(ax, figsize)
    per_note = bool(history) and all('val_loss_per_note' in r for r in history)
    key, unit = ('loss_per_note', 'note') if per_note else ('loss', 'item')
    ax.plot(epochs, [r[key] for r in history], 'o-', ms=4, label='training loss')
    ax.plot(epochs, [r[f'val_{key}'] for r in history], 's-', ms=4, label='validation loss')
    if per_note:
        from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
        ax.axhline(np.log(12), color='gray', ls=':', lw=1, label='ln 12')
        ax.set_yscale('log')
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel('Epoch')
    ax.set_ylabel(f'Loss per {unit}')
    ax.set_title(title or (Path(log_path).stem if log_path else ''))
    handles, labels = ax.get_legend_handles_labels()
    extra = [(k, name, style) for k, name, style in
             (('val_mrr', 'validation MRR', ('d--', 'tab:green')),
              ('val_blank_share', 'validation blank share', ('^:', 'tab:purple')))
             if history and all(k in r for r in history)]
    if extra:
        right = ax.twinx()
        for k, name, (marker, color) in extra:
            right.plot(epochs, [r[k] for r in history], marker, ms=4, color=color, label=name)
        right.set_ylabel('MRR, blank share')
        right.set_ylim(0, 1.05)
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, fontsize='small', loc='upper center', ncol=3,
              bbox_to_anchor=(0.5, -0.2), frameon=False)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if own:
        fig.tight_layout()
        if png_path is not None:
            with atomic_path(png_path) as tmp:
                fig.savefig(tmp, dpi=100)
    return fig, ax, None

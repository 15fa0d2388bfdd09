"""Figures of learned and standard chroma features and of retrieval results.

Notebook: 05_Blank_Removal_and_Normalization.ipynb

Small helpers on top of :func:`ctc_chroma_lib.plotting.plot_item` (item figures) and
:func:`ctc_chroma_lib.ctc.plot_ctc_probs` (13-class outputs): every function draws into a
given axes, so notebooks and the interactive explorers (``explorers.py``) share them.
"""
import numpy as np

from .constants import ALPHABET, BLANK_INDEX, CHROMA_NAMES, FEATURE_RATE


def _time_extent(n_frames, times=None, feature_rate=FEATURE_RATE):
    """Image extent (left, right) in seconds with frames centred on their times."""
    dt = 1.0 / feature_rate
    start = float(times[0]) if times is not None and len(times) else 0.0
    return start - dt / 2, start + (n_frames - 0.5) * dt


def plot_class_matrix(features, ax, times=None, title='', cmap='gray_r', vmin=0.0, vmax=None,
                      colorbar=True, colorbar_label=''):
    """Plot a chroma (12 x T) or chroma-plus-blank (13 x T) matrix over time.

    Notebook: 04_Model_and_Training.ipynb, 06_Retrieval.ipynb

    Args:
        features (np.ndarray): Matrix (12 x T) or (13 x T, blank last)
        ax (matplotlib.axes.Axes): Axes to draw into
        times (np.ndarray): Frame times in seconds (T,) (Default value = None: from 0 at 25 Hz)
        title (str): Axes title (Default value = '')
        cmap (str): Colormap (Default value = 'gray_r')
        vmin (float): Bottom of the colormap (Default value = 0.0)
        vmax (float): Top of the colormap (Default value = None: the maximum)
        colorbar (bool): Draw a colorbar (Default value = True)
        colorbar_label (str): Label of the colorbar (Default value = '')

    Returns:
        image (matplotlib.image.AxesImage): The image
    """
    features = np.asarray(features)
    left, right = _time_extent(features.shape[1], times)
    image = ax.imshow(features, origin='lower', aspect='auto', cmap=cmap, vmin=vmin, vmax=vmax,
                      extent=(left, right, -0.5, features.shape[0] - 0.5),
                      interpolation='nearest')
    names = list(CHROMA_NAMES) + (['blank'] if features.shape[0] == len(ALPHABET) else [])
    ax.set_yticks(np.arange(len(names)))
    ax.set_yticklabels(names)
    ax.set_ylabel('Chroma' if features.shape[0] == 12 else 'Class')
    ax.set_xlabel('Time (seconds)')
    ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, pad=0.01, label=colorbar_label)
    return image


def plot_alignment(item, ax, show_weak=True, show_strong=True, color='tab:red', legend=True):
    """Overlay an item's weak alignment (shaded span) and strong alignment (note boxes).

    Notebook: 04_Model_and_Training.ipynb, 07_Weak_to_Strong_Alignment.ipynb

    Strong-alignment notes are drawn as boxes in their chroma row (0..11), so the overlay
    fits chroma and chroma-plus-blank matrices drawn by :func:`plot_class_matrix`.

    Args:
        item (dataset.Item): Dataset item
        ax (matplotlib.axes.Axes): Axes to draw into
        show_weak (bool): Shade StartTime..EndTime (Default value = True)
        show_strong (bool): Draw the theme notes of the strong alignment, if any
            (Default value = True)
        color (str): Colour of the note boxes (Default value = 'tab:red')
        legend (bool): Add a legend (Default value = True)

    Returns:
        ax (matplotlib.axes.Axes): The axes
    """
    from matplotlib.patches import Rectangle

    if show_weak:
        start, end = item.weak_alignment
        ax.axvspan(start, end, color='tab:blue', alpha=0.12, label='weak alignment')
        for t in (start, end):
            ax.axvline(t, color='tab:blue', linestyle='--', linewidth=1.2)
    if show_strong and item.strong_alignment:
        for i, note in enumerate(item.strong_alignment):
            ax.add_patch(Rectangle((note.start, note.chroma - 0.5), note.duration, 1.0,
                                   fill=False, edgecolor=color, linewidth=1.3,
                                   label='strong alignment' if i == 0 else None))
    if legend:
        ax.legend(loc='upper right', fontsize='small', framealpha=0.8)
    return ax


def plot_item_features(item, features, times, ax, title='', colorbar_label='', vmax=None,
                       show_strong=True, legend=True):
    """Plot features of an item's recording with the theme's weak and strong alignment.

    Notebook: 05_Blank_Removal_and_Normalization.ipynb

    Chroma (12 rows) is drawn with :func:`ctc_chroma_lib.plotting.plot_item`; class
    probabilities with the blank (13 rows) with :func:`plot_class_matrix` and
    :func:`plot_alignment`.

    Args:
        item (dataset.Item): Dataset item
        features (np.ndarray): Features of the item's recording (12 x T or 13 x T)
        times (np.ndarray): Frame times in seconds (T,)
        ax (matplotlib.axes.Axes): Axes to draw into
        title (str): Axes title (Default value = '')
        colorbar_label (str): Label of the colorbar (Default value = '')
        vmax (float): Top of the colormap (Default value = None: the maximum)
        show_strong (bool): Draw the strong alignment (Default value = True)
        legend (bool): Keep the legend; without it the note boxes stay visible everywhere
            (Default value = True)

    Returns:
        ax (matplotlib.axes.Axes): The axes
    """
    from .plotting import plot_item

    features = np.asarray(features)
    if features.shape[0] == 12:
        plot_item(item, kind='chroma', ax=ax, features=(features, np.asarray(times)),
                  colorbar=False, show_strong=show_strong)
        image = ax.images[-1]
        if vmax is not None:
            image.set_clim(0.0, vmax)
        ax.figure.colorbar(image, ax=ax, pad=0.01, label=colorbar_label)
    else:
        plot_class_matrix(features, ax, times=times, vmax=vmax, colorbar_label=colorbar_label)
        plot_alignment(item, ax, show_strong=show_strong)
    if not legend and ax.get_legend() is not None:
        ax.get_legend().remove()
    ax.set_title(title)
    return ax


def plot_blank_share(probs, ax, times=None, title='Blank probability per frame'):
    """Plot the blank probability and the summed chroma probability of every frame.

    Notebook: 05_Blank_Removal_and_Normalization.ipynb

    Args:
        probs (np.ndarray): Class probabilities (13 x T), blank last
        ax (matplotlib.axes.Axes): Axes to draw into
        times (np.ndarray): Frame times in seconds (T,) (Default value = None: 25 Hz from 0)
        title (str): Axes title (Default value = 'Blank probability per frame')

    Returns:
        ax (matplotlib.axes.Axes): The axes
    """
    probs = np.asarray(probs)
    if times is None:
        times = np.arange(probs.shape[1]) / FEATURE_RATE
    ax.plot(times, probs[BLANK_INDEX], color='black', label='blank')
    ax.plot(times, probs[:BLANK_INDEX].sum(axis=0), color='tab:orange', label='sum of 12 chroma')
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(times[0], times[-1])
    ax.set_xlabel('Time (seconds)')
    ax.set_ylabel('Probability')
    ax.set_title(title)
    ax.legend(loc='upper right', fontsize='small', framealpha=0.8)
    return ax


def plot_matching_functions(deltas, ax, labels=None, relevant=None, feature_rate=FEATURE_RATE,
                            title='Matching functions'):
    """Plot matching functions of several recordings, each marked at its minimum.

    Notebook: 06_Retrieval.ipynb

    Args:
        deltas (list of np.ndarray): Matching function (M_i,) of each recording
        ax (matplotlib.axes.Axes): Axes to draw into
        labels (list of str): Legend label of each curve (Default value = None)
        relevant (int): Index of the relevant recording, drawn thicker (Default value = None)
        feature_rate (float): Frames per second (Default value = 25.0)
        title (str): Axes title (Default value = 'Matching functions')

    Returns:
        ax (matplotlib.axes.Axes): The axes
    """
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
    return ax

"""Training targets from the alignments: CTC label sequences and frame-wise labels.

Notebook: 01_Task_and_Data.ipynb

What each kind of alignment tells a model (notebook 01): the weak alignment gives the frames
of a segment and the theme's chroma *sequence* (:func:`label_sequence`, the CTC target); the
strong alignment gives a class per frame (:func:`strong_frame_labels`); stretching the
score linearly over the weak segment gives approximate frame labels
(:func:`linear_frame_labels`).
"""
import numpy as np

from .constants import BLANK_INDEX

def label_sequence(notes):
    """The CTC target of a theme: the chroma class of every note, in order.

    Notebook: 03_CTC.ipynb

    Repeated notes are *not* merged. CTC's collapsing rule merges repeated symbols of an
    alignment path, so two equal consecutive labels (say the C C of a repeated note) can
    only be produced by a path that visits a blank between them; ``tf.nn.ctc_loss``
    enforces exactly that. Merging them here would teach the model a theme with one note
    fewer.

    Args:
        notes (sequence of ThemeNote): Theme notes in order

    Returns:
        labels (np.ndarray): Chroma classes 0…11, shape (len(notes),), int32
    """
    return np.array([n.pitch % 12 for n in notes], dtype=np.int32)


def segment_frames(times, start, end, margin=0.0):
    """Indices ``[first, last)`` of the feature frames inside ``[start - margin, end + margin]``.

    Notebook: 04_Model_and_Training.ipynb

    Args:
        times (np.ndarray): Frame times in seconds (T,)
        start (float): Segment start in seconds
        end (float): Segment end in seconds
        margin (float): Seconds added on both sides (Default value = 0.0)

    Returns:
        first (int), last (int): Frame range (at least one frame)
    """
    first = int(np.searchsorted(times, start - margin, side='left'))
    last = int(np.searchsorted(times, end + margin, side='right'))
    first = min(max(first, 0), len(times) - 1)
    last = min(max(last, first + 1), len(times))
    return first, last


def frame_labels_from_notes(notes, frame_times):
    """Frame-wise labels: the chroma of the note sounding at each frame time, blank elsewhere.

    Args:
        notes (sequence of ThemeNote): Notes with start/duration on the same time axis as
            ``frame_times`` (later notes win where notes overlap)
        frame_times (np.ndarray): Frame times in seconds (T,)

    Returns:
        labels (np.ndarray): Class per frame, 0…11 or ``BLANK_INDEX``, shape (T,), int32
    """
    labels = np.full(len(frame_times), BLANK_INDEX, dtype=np.int32)
    for note in notes:
        inside = (frame_times >= note.start) & (frame_times < note.end)
        labels[inside] = note.pitch % 12
    return labels


def strong_frame_labels(strong_alignment, frame_times):
    """Frame labels from the strong alignment (note onsets/offsets in the recording).

    Notebook: 01_Task_and_Data.ipynb
    """
    return frame_labels_from_notes(strong_alignment, frame_times)


def linear_frame_labels(theme, weak_alignment, frame_times):
    """Frame labels from the weak alignment: the score's notes stretched linearly over it.

    Notebook: 01_Task_and_Data.ipynb

    The theme's score time ``0 … theme_end`` is mapped linearly onto ``StartTime …
    EndTime``; where the recording's tempo varies, these labels are wrong near the notes'
    boundaries — the weakness the CTC loss avoids.

    Args:
        theme (sequence of ThemeNote): Theme in score seconds
        weak_alignment (tuple): (StartTime, EndTime) in recording seconds
        frame_times (np.ndarray): Frame times in seconds (T,)

    Returns:
        labels (np.ndarray): shape (T,), int32
    """
    start, end = weak_alignment
    score_start = theme[0].start
    score_end = max(n.end for n in theme)
    scale = (end - start) / max(score_end - score_start, 1e-9)
    score_time = score_start + (np.asarray(frame_times) - start) / scale
    return frame_labels_from_notes(theme, score_time)

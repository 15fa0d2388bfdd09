"""From weak to strong alignment: note onsets from a CTC model's output.

Notebook: 07_Weak_to_Strong_Alignment.ipynb

A weak alignment says where a theme starts and ends in a recording. A CTC model trained
on such pairs also knows, implicitly, *when* each note is played: the CTC posterior of
the theme's label sequence over the segment (forward–backward, :func:`ctc.ctc_posteriors`)
is a soft alignment of the notes to the frames, and its most probable path
(:func:`ctc.ctc_note_frames`) a hard one. A peaky model emits each note in a short spike
at its onset, so the first frame of a note's spike is its estimated onset. The model says
little about offsets (the blank fills the rest of the note), so a note is taken to last
until the next onset, and the last note until the end of the weak segment.
"""
from dataclasses import dataclass

import numpy as np

from .constants import BLANK_INDEX, FEATURE_RATE
from .ctc import ctc_note_frames
from .errors import CTCChromaError
from .themes import ThemeNote


def align_theme(probs, theme, start, end, *, feature_rate=FEATURE_RATE):
    """Note-wise (strong) alignment of a theme from a model output and a weak alignment.

    Notebook: 07_Weak_to_Strong_Alignment.ipynb

    Args:
        probs (np.ndarray): Class probabilities of the whole recording (13 x T), blank last,
            frame ``t`` at ``t / feature_rate`` seconds
        theme (sequence of ThemeNote): The theme's notes in order (monophonic)
        start (float): Weak alignment: where the theme starts in the recording (seconds)
        end (float): ... and where it ends
        feature_rate (float): Frames per second (Default value = 25)

    Returns:
        notes (list of ThemeNote): The theme's notes in recording seconds (onset, duration
            up to the next onset, pitch of the theme)

    Raises:
        CTCChromaError: Probabilities not (13, T), a theme without notes, or a weak
            alignment outside the recording
    """
    from .labels import label_sequence, segment_frames

    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[0] != BLANK_INDEX + 1:
        raise CTCChromaError(f'probabilities must have shape (13, T), got {probs.shape}')
    theme = list(theme)
    if not theme:
        raise CTCChromaError('the theme has no notes')
    duration = probs.shape[1] / feature_rate
    if not (np.isfinite(start) and np.isfinite(end)) or not 0 <= start < end:
        raise CTCChromaError(f'the weak alignment needs 0 <= start < end, got start {start} '
                             f'and end {end}')
    if start >= duration:
        raise CTCChromaError(f'start {start:.2f} s lies after the end of the recording '
                             f'({duration:.2f} s)')
    end = min(end, duration)
    times = np.arange(probs.shape[1]) / feature_rate
    first, last = segment_frames(times, start, end)
    labels = label_sequence(theme)
    needed = len(labels) + int(np.sum(labels[1:] == labels[:-1]))
    if last - first < needed:
        raise CTCChromaError(f'the segment {start:.2f}-{end:.2f} s has {last - first} frames, '
                             f'too few for a theme of {len(labels)} notes ({needed} frames '
                             'needed at 25 Hz)')
    frames, _ = ctc_note_frames(probs[:, first:last], labels, BLANK_INDEX)
    onsets = times[first + frames[:, 0]]
    offsets = np.append(onsets[1:], end)
    return [ThemeNote(float(on), float(max(off - on, 0.0)), note.pitch)
            for on, off, note in zip(onsets, offsets, theme)]


@dataclass
class OnsetScore:
    """Onset deviations of an estimated alignment from a reference alignment."""

    errors: np.ndarray
    """Estimated minus reference onset of every note (seconds)."""

    @property
    def median_abs_ms(self):
        return float(np.median(np.abs(self.errors)) * 1000)

    @property
    def mean_ms(self):
        """Mean signed deviation: positive when the estimates are late."""
        return float(np.mean(self.errors) * 1000)

    def within(self, tolerance_s):
        """Share of notes whose onset deviates by at most ``tolerance_s`` seconds."""
        return float(np.mean(np.abs(self.errors) <= tolerance_s + 1e-9))


def onset_score(estimated, reference):
    """Compare note onsets of two alignments of the same theme (notes in the same order).

    Notebook: 07_Weak_to_Strong_Alignment.ipynb

    Args:
        estimated, reference (sequence of ThemeNote): Alignments with the same number of
            notes

    Returns:
        score (OnsetScore)
    """
    estimated, reference = list(estimated), list(reference)
    if len(estimated) != len(reference):
        raise CTCChromaError(f'the alignments have {len(estimated)} and {len(reference)} '
                             'notes; they must align the same theme')
    return OnsetScore(np.array([e.start - r.start for e, r in zip(estimated, reference)]))


def pooled_score(scores):
    """One :class:`OnsetScore` of all notes of several items.

    Notebook: 07_Weak_to_Strong_Alignment.ipynb
    """
    scores = list(scores)
    return OnsetScore(np.concatenate([s.errors for s in scores]) if scores else np.zeros(0))

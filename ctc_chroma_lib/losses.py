"""The training losses: CTC on label sequences, frame-wise cross-entropy, and diagnostics.

Notebook: 03_CTC.ipynb

:func:`ctc_loss` (``tf.nn.ctc_loss``, blank = 12) is the paper's objective;
:func:`framewise_loss` trains the ``strong`` and ``linear`` comparisons.
:func:`ctc_fit_diagnostics` measures, for any model's output, the CTC loss per note and how
often the blank wins on weakly aligned segments.
"""
import numpy as np

from .constants import BLANK_INDEX
from .labels import label_sequence, segment_frames

_LOG_EPS = 1e-7


def ctc_loss(y_true, y_pred):
    """CTC loss of a padded batch; the lengths travel inside ``y_true``.

    Notebook: 03_CTC.ipynb

    Args:
        y_true: (B, 2 + L_max) int32 rows ``[T_i, L_i, labels…]`` (see :func:`pad_batch`)
        y_pred: (B, T_max, 13) softmax output, blank last

    Returns:
        loss: (B,) negative log-likelihood of each item's label sequence
    """
    import tensorflow as tf

    y_true = tf.cast(y_true, tf.int32)
    logit_length, label_length, labels = y_true[:, 0], y_true[:, 1], y_true[:, 2:]
    # log of the softmax output: tf.nn.ctc_loss applies log-softmax itself, which leaves
    # normalized log-probabilities unchanged.
    log_probs = tf.math.log(tf.cast(y_pred, tf.float32) + _LOG_EPS)
    return tf.nn.ctc_loss(labels=labels, logits=log_probs, label_length=label_length,
                          logit_length=logit_length, logits_time_major=False,
                          blank_index=BLANK_INDEX)


def framewise_loss(y_true, y_pred):
    """Frame-wise cross-entropy (mean over the valid frames of each item), padding = -1.

    Notebook: 04_Model_and_Training.ipynb

    Args:
        y_true: (B, T_max) int32 frame labels, -1 on padding
        y_pred: (B, T_max, 13) softmax output

    Returns:
        loss: (B,) cross-entropy summed over each item's frames (same scale as the CTC loss)
    """
    import tensorflow as tf

    y_true = tf.cast(y_true, tf.int32)
    valid = tf.cast(y_true >= 0, tf.float32)
    log_probs = tf.math.log(tf.cast(y_pred, tf.float32) + _LOG_EPS)
    picked = tf.gather(log_probs, tf.maximum(y_true, 0), axis=-1, batch_dims=2)
    return -tf.reduce_sum(picked * valid, axis=1)


LOSSES = {'ctc': ctc_loss, 'strong': framewise_loss, 'linear': framewise_loss}


def ctc_loss_per_note_metric():
    """A Keras metric: the CTC loss summed over the items seen, divided by their notes.

    Per note, losses of themes of different length compare: a model that knows where the
    notes are but not their chroma scores about ln 12 ≈ 2.48 per note, a converged one
    far less (see :func:`ctc_fit_diagnostics`).
    """
    import keras
    import tensorflow as tf

    class CTCLossPerNote(keras.metrics.Metric):
        def __init__(self, name='loss_per_note', **kwargs):
            super().__init__(name=name, **kwargs)
            self.total = self.add_variable(shape=(), initializer='zeros', name='total')
            self.notes = self.add_variable(shape=(), initializer='zeros', name='notes')

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.total.assign_add(tf.reduce_sum(ctc_loss(y_true, y_pred)))
            self.notes.assign_add(tf.reduce_sum(tf.cast(y_true[:, 1], tf.float32)))

        def result(self):
            return self.total / tf.maximum(self.notes, 1.0)

        def reset_state(self):
            self.total.assign(0.0)
            self.notes.assign(0.0)

    return CTCLossPerNote()


def segment_probs(probs, item, times=None):
    """The columns of a recording's class probabilities inside the item's weak segment.

    Notebook: 07_Weak_to_Strong_Alignment.ipynb

    Args:
        probs (np.ndarray): (13, T) model output for the item's whole recording
        item (dataset.Item): Gives the weak alignment
        times (np.ndarray): Frame times (Default value = None: ``t / FEATURE_RATE``)

    Returns:
        probs (np.ndarray): (13, T_segment)
    """
    from .chroma import frame_times

    if times is None:
        times = frame_times(probs.shape[1])
    first, last = segment_frames(times, *item.weak_alignment)
    return probs[:, first:last]


def ctc_fit_diagnostics(probs_by_item):
    """How well model outputs fit the CTC objective on weakly aligned segments.

    Notebook: 04_Model_and_Training.ipynb

    For every item, the probabilities of its whole recording are cut to the weak segment
    (:func:`segment_probs`); the CTC loss is that of the theme's chroma sequence over those
    frames, computed with the NumPy forward algorithm :func:`ctc.ctc_forward` (float64;
    notebook 03 checks it against ``tf.nn.ctc_loss``, which agrees to float32 rounding and
    is many times slower for one sequence at a time).

    Args:
        probs_by_item (list of (dataset.Item, np.ndarray)): Items with the (13, T) output
            for their recording

    Returns:
        diagnostics (dict): ``loss_per_note`` (summed loss / summed notes),
            ``blank_share`` (share of segment frames whose most probable class is the
            blank), ``max_blank`` (median over items of the largest blank probability),
            ``n_items``, ``n_notes``, ``n_frames``
    """
    from .ctc import ctc_forward

    total, notes, frames, blank_frames, max_blank = 0.0, 0, 0, 0, []
    for item, probs in probs_by_item:
        seg = segment_probs(probs, item)
        labels = label_sequence(item.theme)
        total += ctc_forward(seg, labels, BLANK_INDEX)[1]
        notes += len(labels)
        frames += seg.shape[1]
        blank_frames += int(np.sum(np.argmax(seg, axis=0) == BLANK_INDEX))
        max_blank.append(float(seg[BLANK_INDEX].max()))
    return {'loss_per_note': total / max(notes, 1), 'blank_share': blank_frames / max(frames, 1),
            'max_blank': float(np.median(max_blank)) if max_blank else float('nan'),
            'n_items': len(probs_by_item), 'n_notes': notes, 'n_frames': frames}

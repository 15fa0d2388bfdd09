"""Training the chroma model from weakly aligned score–audio pairs (CTC), and its comparisons.

Notebook: 04_Model_and_Training.ipynb

Three trainings share one trainer (as in the authors' TASLP follow-up):

- ``ctc``: the paper's method. Input = the HCQT frames of the weakly aligned segment
  (``StartTime`` … ``EndTime``), target = the theme's chroma label *sequence*, loss
  ``tf.nn.ctc_loss`` with the blank at index 12. No frame-wise labels are needed.
- ``strong``: frame-wise cross-entropy with labels from the strong (note-wise) alignment;
  frames without a theme note are labelled blank.
- ``linear``: frame-wise cross-entropy with the theme's notes (score timing) stretched
  linearly over the weak segment — the naive way to turn a weak alignment into frame labels.

The default split follows the dataset's folds: 1–3 train, 4 validation, 5 test.
"""
import csv
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .constants import BLANK_INDEX, WEIGHTS_DIR  # noqa: F401 (WEIGHTS_DIR: training.WEIGHTS_DIR)
from .errors import CTCChromaError
from .fileio import atomic_path
from .kinds import KINDS, TRAINING_KINDS

MONITORS = ('val_loss', 'val_mrr')
"""Validation quantities that can select the shipped epoch and stop training."""

KIND_DEFAULTS = {name: dict(KINDS[name].recipe) for name in TRAINING_KINDS}
"""Defaults of :class:`TrainingConfig` that depend on the kind: the recipes of the shipped
models (:attr:`ctc_chroma_lib.kinds.Kind.recipe`, described at :data:`ctc_chroma_lib.kinds.CTC_RECIPE`)."""


@dataclass
class TrainingConfig:
    """Everything that determines a training run (stored next to the weights).

    Notebook: 04_Model_and_Training.ipynb
    """

    kind: str = 'ctc'
    train_folds: tuple = (1, 2, 3)
    valid_folds: tuple = (4,)
    epochs: Optional[int] = None
    """None: the kind's default (:data:`KIND_DEFAULTS`); the same for learning rate,
    patience and monitor."""
    batch_frames: int = 1024
    """Frames per batch: items of similar length are grouped until this many frames."""
    learning_rate: Optional[float] = None
    patience: Optional[int] = None
    monitor: Optional[str] = None
    """What selects the shipped epoch and stops training: 'val_loss' or 'val_mrr' (retrieval
    MRR on the validation fold, see :func:`validation_metrics`)."""
    margin: float = 0.0
    """Seconds added before and after the weak segment (``ctc`` and ``linear``)."""
    random_margin: Optional[float] = None
    """Up to this many seconds more, drawn anew for either side of every segment in every
    epoch (a random crop around the weak segment)."""
    pitch_shift: Optional[int] = None
    """Augmentation: every example of every epoch is transposed by a random number of
    semitones in ``-pitch_shift … pitch_shift`` (HCQT rolled by 3 bins per semitone,
    labels shifted mod 12; see :func:`transpose_example`). 0: no augmentation."""
    warmup_epochs: Optional[float] = None
    """Linear learning-rate warm-up from 0 over this many epochs."""
    lr_decay: Optional[str] = None
    """'constant', or 'cosine': after the warm-up, cosine decay to 1/100 of the learning
    rate at the last epoch."""
    clipnorm: Optional[float] = None
    """Gradient clipping: the gradient of every variable is rescaled to at most this norm
    (0: no clipping)."""
    seed: int = 0
    init: Optional[str] = None
    """Initial weights: '' (random, as in the paper), 'harmonic-prior' (see
    :func:`harmonic_prior_init`), or a model spec as in :func:`model.load_model`."""
    jit_compile: bool = False
    """XLA compilation; off by default: every new batch shape (lengths vary) recompiles."""
    precision: str = 'auto'
    """'float32', 'mixed_bfloat16' or 'auto' (bfloat16 compute where the CPU has native
    bfloat16 instructions: about 1.5x the frames per second; the weights stay float32)."""

    def __post_init__(self):
        for key, value in KIND_DEFAULTS.get(self.kind, KIND_DEFAULTS['strong']).items():
            if getattr(self, key) is None:
                setattr(self, key, value)


# ---------------------------------------------------------------------------------------
# Labels

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


# ---------------------------------------------------------------------------------------
# Training examples

@dataclass
class Example:
    """One training example: model input frames and its targets."""

    mtd_id: str
    x: np.ndarray  # (T, 216, 6) float32, normalized model input
    labels: np.ndarray  # CTC label sequence (L,)
    frame_labels: np.ndarray  # (T,) frame targets for strong/linear
    core: Optional[tuple] = None
    """``(first, last)``: the frames of ``x`` that every crop keeps (the segment with its
    fixed margin); the frames outside are the random margin (:func:`crop_example`).
    None: ``x`` is used whole."""


def make_example(item, hcqt, times, kind, margin=0.0, random_margin=0.0):
    """Cut the weakly aligned segment of an item and build its targets for ``kind``.

    Args:
        item (dataset.Item): Dataset item
        hcqt (np.ndarray): HCQT of the item's recording (6, 216, T)
        times (np.ndarray): Frame times (T,)
        kind (str): 'ctc', 'strong' or 'linear'
        margin (float): Seconds added around the weak segment (Default value = 0.0)
        random_margin (float): Up to this many seconds more on each side, cropped at
            random every epoch (:func:`crop_example`) (Default value = 0.0)

    Returns:
        example (Example)
    """
    from .model import prepare_input

    start, end = item.weak_alignment
    margin = max(margin, 0.0)
    first, last = segment_frames(times, start, end, margin + max(random_margin, 0.0))
    core_first, core_last = segment_frames(times, start, end, margin)
    seg_times = times[first:last]
    if kind == 'strong':
        if not item.strong_alignment:
            raise CTCChromaError(f'item {item.mtd_id} has no strong alignment; '
                                 'strong training needs one')
        frame_labels = strong_frame_labels(item.strong_alignment, seg_times)
    else:
        frame_labels = linear_frame_labels(item.theme, item.weak_alignment, seg_times)
    core = (core_first - first, core_last - first) if random_margin > 0 else None
    return Example(item.mtd_id, prepare_input(hcqt[:, :, first:last]),
                   label_sequence(item.theme), frame_labels, core)


def load_examples(items, kind, margin=0.0, progress=True, random_margin=0.0):
    """HCQT (cached on disk) and targets of every item."""
    from tqdm.auto import tqdm

    from .features import hcqt_file

    examples = []
    for item in tqdm(items, desc=f'features ({kind})', disable=not progress, unit='item'):
        hcqt, times = hcqt_file(item.audio_path)
        examples.append(make_example(item, hcqt, times, kind, margin, random_margin))
    return examples


def crop_example(example, rng=None):
    """The example cut to a random crop that keeps its ``core`` (or to the core alone).

    Notebook: 04_Model_and_Training.ipynb

    Args:
        example (Example): Example from :func:`make_example`
        rng (np.random.Generator): Draws the crop; None: exactly the core (validation)

    Returns:
        example (Example): With ``core=None``
    """
    if example.core is None:
        return example
    first, last = example.core
    if rng is not None:
        first = int(rng.integers(0, first + 1))
        last = int(rng.integers(last, len(example.x) + 1))
    return Example(example.mtd_id, example.x[first:last], example.labels,
                   example.frame_labels[first:last])


def transpose_example(example, semitones):
    """Pitch-shift augmentation: the example as if played ``semitones`` higher.

    Notebook: 04_Model_and_Training.ipynb

    The HCQT bins of every harmonic are rolled by ``3 * semitones`` bins (36 bins per
    octave); bins shifted in from outside the 216 are empty (the noise floor), bins
    shifted out are lost, and every (frame, harmonic) vector is L2-normalized again as in
    :func:`model.prepare_input`. The chroma labels move by ``semitones`` mod 12, blank
    stays blank. Since the model's layers are convolutions along pitch, this teaches
    nothing about a particular key: it multiplies the keys seen with each theme.

    Args:
        example (Example): Example with normalized input ``x`` (T, 216, 6)
        semitones (int): Transposition (positive: up)

    Returns:
        example (Example)
    """
    from .constants import HCQT
    from .model import prepare_input

    semitones = int(semitones)
    if semitones == 0:
        return example
    shift = semitones * (HCQT.bins_per_octave // 12)
    x = np.zeros_like(example.x)
    if shift > 0:
        x[:, shift:] = example.x[:, :-shift]
    else:
        x[:, :shift] = example.x[:, -shift:]
    frame_labels = example.frame_labels.copy()
    notes = (frame_labels >= 0) & (frame_labels != BLANK_INDEX)
    frame_labels[notes] = (frame_labels[notes] + semitones) % 12
    return Example(example.mtd_id, prepare_input(x.T), (example.labels + semitones) % 12,
                   frame_labels, example.core)


FRAME_QUANTUM = 128
"""Batches are padded to a multiple of this many frames, so that only a few batch shapes
occur: every new shape costs TensorFlow/oneDNN a new set of compiled kernels."""


def padded_length(n_frames, quantum=FRAME_QUANTUM):
    """``n_frames`` rounded up to a multiple of ``quantum``."""
    return -(-int(n_frames) // quantum) * quantum


def length_batches(lengths, batch_frames, rng=None, quantum=FRAME_QUANTUM):
    """Group example indices into batches of similar length with about ``batch_frames`` frames.

    Notebook: 04_Model_and_Training.ipynb

    Examples are sorted by length and cut into groups of the same padded length
    (:func:`padded_length`); a group of padded length ``P`` is split into batches of
    ``max(1, batch_frames // P)`` examples. Padding stays small and only a few distinct
    batch shapes occur. The order of the batches is shuffled with ``rng`` every epoch.

    Args:
        lengths (sequence of int): Number of frames of each example
        batch_frames (int): Target number of (padded) frames per batch
        rng (np.random.Generator): Shuffles the batch order when given (Default value = None)
        quantum (int): Padding granularity in frames (Default value = FRAME_QUANTUM)

    Returns:
        batches (list of np.ndarray): Example indices of each batch
    """
    order = np.argsort(np.asarray(lengths), kind='stable')
    padded = np.array([padded_length(lengths[i], quantum) for i in order])
    batches = []
    for value in np.unique(padded):
        group = order[padded == value]
        size = max(1, batch_frames // int(value))
        batches.extend(group[i:i + size] for i in range(0, len(group), size))
    if rng is not None:
        rng.shuffle(batches)
    return batches


def pad_batch(examples, kind, quantum=FRAME_QUANTUM):
    """Pad a list of examples to one batch: inputs, targets and per-item lengths.

    Notebook: 04_Model_and_Training.ipynb

    Returns:
        x (np.ndarray): (B, T_max, 216, 6) float32, zero padded to a multiple of ``quantum``
            frames (``quantum=1``: no extra padding)
        y (np.ndarray): for ``ctc``: (B, 2 + L_max) int32 rows ``[T_i, L_i, labels…]``;
            for ``strong``/``linear``: (B, T_max) int32 frame labels, ``-1`` on padding
    """
    t_max = padded_length(max(len(e.x) for e in examples), quantum)
    x = np.zeros((len(examples), t_max) + examples[0].x.shape[1:], dtype=np.float32)
    for i, e in enumerate(examples):
        x[i, :len(e.x)] = e.x
    if kind == 'ctc':
        l_max = max(len(e.labels) for e in examples)
        y = np.zeros((len(examples), 2 + l_max), dtype=np.int32)
        for i, e in enumerate(examples):
            y[i, 0], y[i, 1] = len(e.x), len(e.labels)
            y[i, 2:2 + len(e.labels)] = e.labels
    else:
        y = np.full((len(examples), t_max), -1, dtype=np.int32)
        for i, e in enumerate(examples):
            y[i, :len(e.frame_labels)] = e.frame_labels
    return x, y


# ---------------------------------------------------------------------------------------
# Losses

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


# ---------------------------------------------------------------------------------------
# The trainer

def resolve_precision(precision='auto'):
    """The Keras dtype policy for training: bfloat16 compute where the hardware has it."""
    if precision != 'auto':
        if precision not in ('float32', 'mixed_bfloat16'):
            raise CTCChromaError(f'unknown precision {precision!r}; '
                                 'choose auto, float32 or mixed_bfloat16')
        return precision
    try:
        flags = Path('/proc/cpuinfo').read_text().split()
    except OSError:
        flags = []
    return 'mixed_bfloat16' if ('avx512_bf16' in flags or 'amx_bf16' in flags) else 'float32'


def build_training_model(precision='float32'):
    """:func:`model.build_model` with the layers computing in ``precision``.

    The variables stay float32, so the saved weights load into the float32 model.
    """
    import keras

    from .model import build_model

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(precision)
    try:
        return build_model()
    finally:
        keras.mixed_precision.set_global_policy(previous)


HARMONIC_PRIOR_NOISE = 0.1
"""Scale of the random initial weights that remain beside the pass-through path."""


def harmonic_prior_init(model, gain=20.0, offset=3.0, noise=HARMONIC_PRIOR_NOISE,
                        harmonic_channel=1):
    """Initialize the salience stack as a pass-through of the fundamental's CQT channel.

    Notebook: 04_Model_and_Training.ipynb

    A prior the paper does not use; the shipped frame-wise models (``strong``,
    ``linear``) start from it, the CTC model starts from random weights (see
    :data:`KIND_DEFAULTS`). Channel 0 of every convolution starts as a copy of the
    harmonic-1 HCQT bin (centre tap 1, the random weights scaled by ``noise``), and the
    final 1x1 convolution maps it to ``sigmoid(gain * x - offset)``: the initial chroma is
    a plain CQT chroma, which the loss refines from the first step. No data or labels are
    involved.

    Args:
        model (keras.Model): Model from :func:`model.build_model` (modified in place)
        gain (float): Slope of the initial salience (Default value = 20.0)
        offset (float): Offset of the initial salience (Default value = 3.0)
        noise (float): Scale of the remaining random weights (Default value = 0.1)
        harmonic_channel (int): HCQT channel of harmonic 1 (Default value = 1)
    """
    from .model import CONV_LAYERS

    source = harmonic_channel
    for name, _, _ in CONV_LAYERS:
        layer = model.get_layer(name)
        kernel, bias = [np.array(w) for w in layer.get_weights()]
        kernel *= noise
        kernel[:, :, :, 0] = 0.0
        # "same" padding centres an even kernel at tap (k - 1) // 2
        kernel[(kernel.shape[0] - 1) // 2, (kernel.shape[1] - 1) // 2, source, 0] = 1.0
        bias[:] = 0.0
        layer.set_weights([kernel, bias])
        source = 0
    squishy = model.get_layer('squishy')
    kernel, bias = [np.array(w) for w in squishy.get_weights()]
    kernel *= noise
    kernel[0, 0, 0, 0] = gain
    bias[:] = -offset
    squishy.set_weights([kernel, bias])


TRAINING_WINDOW = 128
"""Frames per window of the windowed training forward pass (see :func:`windowed_model`)."""


def windowed_model(model, window=TRAINING_WINDOW):
    """Wrap the chroma model so that training runs it on fixed-size windows of the batch.

    Notebook: 04_Model_and_Training.ipynb

    TensorFlow's CPU convolutions are many times slower per frame for a batch of one or two
    long sequences than for many short ones (the weight gradients parallelize over the
    batch). The wrapper cuts every padded sequence (length a multiple of ``window``) into
    windows of ``window`` frames plus :data:`model.CONTEXT_FRAMES` of real neighbouring
    frames on each side, runs the model on all windows as one batch and puts the window
    centres back together. Since no output frame of the model sees further than
    ``CONTEXT_FRAMES``, every output equals that of one pass over the whole sequence,
    except within ``CONTEXT_FRAMES`` of a sequence's ends, where the context is zero input
    instead of the layers' zero padding.

    Args:
        model (keras.Model): Model from :func:`model.build_model` (its weights are shared)
        window (int): Frames per window (Default value = TRAINING_WINDOW)

    Returns:
        wrapper (keras.Model): Input (batch, T, 216, 6) with T a multiple of ``window``,
            output (batch, T, 13)
    """
    import keras
    import tensorflow as tf

    from .model import CONTEXT_FRAMES

    context = CONTEXT_FRAMES

    class WindowedForward(keras.layers.Layer):
        def __init__(self, inner, **kwargs):
            super().__init__(**kwargs)
            self.inner = inner

        def call(self, x, training=None):
            batch, n_frames = tf.shape(x)[0], tf.shape(x)[1]
            n_windows = n_frames // window
            padded = tf.pad(x, [[0, 0], [context, context], [0, 0], [0, 0]])
            index = (tf.range(n_windows)[:, None] * window
                     + tf.range(window + 2 * context)[None, :])
            windows = tf.gather(padded, index, axis=1)
            windows = tf.reshape(windows, [batch * n_windows, window + 2 * context,
                                           x.shape[2], x.shape[3]])
            out = self.inner(windows, training=training)[:, context:context + window]
            return tf.reshape(out, [batch, n_windows * window, out.shape[-1]])

    inputs = keras.Input(shape=model.input_shape[1:], name='hcqt_windows')
    outputs = WindowedForward(model, name='windowed', dtype=model.dtype_policy)(inputs)
    return keras.Model(inputs, outputs, name=f'{model.name}_windowed')


def validation_metrics(model, items, progress=False):
    """A Keras callback adding ``val_mrr`` and ``val_blank_share`` to every epoch's logs.

    Notebook: 04_Model_and_Training.ipynb

    Every epoch, the callback computes the class probabilities of the validation
    recordings with the current weights, as :func:`model.predict_probs` does for
    ``ctc-chroma chroma``. ``val_mrr`` is the retrieval MRR when every validation theme
    queries those recordings (the evaluation protocol of notebook 06); ``val_blank_share``
    is the share of frames inside the weak segments where the blank is the most probable
    class (:func:`ctc_fit_diagnostics`). Together with the loss per note they show the
    phases of CTC training: first the blank takes over (blank share near 1, MRR at
    chance), then notes appear at the right places with the right chroma.

    Args:
        model (keras.Model): The chroma model being trained (not the windowed wrapper)
        items (list of dataset.Item): Validation items
        progress (bool): Progress bars (Default value = False)

    Returns:
        callback (keras.callbacks.Callback)
    """
    import keras

    from .chroma import postprocess
    from .evaluation import evaluate_kind, retrieval_metrics
    from .features import hcqt_file
    from .model import predict_probs

    class ValidationMetrics(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.hcqts = None  # loaded once, on the first epoch's end

        def on_epoch_end(self, epoch, logs=None):
            if self.hcqts is None:
                self.hcqts = {str(it.audio_path): hcqt_file(it.audio_path)[0] for it in items}
            probs = {path: predict_probs(model, hcqt) for path, hcqt in self.hcqts.items()}
            database = {path: postprocess(p) for path, p in probs.items()}
            ranks = evaluate_kind(items, database, progress=progress)
            mrr = retrieval_metrics([r for fold in ranks.values() for _, r in fold])['mrr']
            fit = ctc_fit_diagnostics([(it, probs[str(it.audio_path)]) for it in items])
            if logs is not None:
                logs['val_mrr'] = round(mrr, 4)
                logs['val_blank_share'] = round(fit['blank_share'], 4)

    return ValidationMetrics()


def _save_weights(model, path):
    """Write ``model``'s weights to ``path`` (``*.weights.h5``) atomically."""
    # Keras wants the .weights.h5 suffix, so the temporary file keeps it.
    partial = str(path)[:-len('.weights.h5')] + '.partial.weights.h5'
    model.save_weights(partial)
    os.replace(partial, path)


def best_weights_checkpoint(model, path, monitor='val_loss', best=None):
    """A Keras callback saving ``model``'s weights to ``path`` whenever ``monitor`` improves.

    ``val_loss`` improves downwards, ``val_mrr`` upwards; ``best`` is the value to beat
    (a resumed run: the best of the epochs before the interruption). (The trained wrapper of
    :func:`windowed_model` is not what is shipped: the inner model's weights are.)
    """
    import keras

    sign = -1.0 if monitor == 'val_mrr' else 1.0
    start = np.inf if best is None else sign * best

    class BestWeights(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = start

        def on_epoch_end(self, epoch, logs=None):
            value = sign * (logs or {}).get(monitor, sign * np.inf)
            if value < self.best:
                self.best = value
                _save_weights(model, path)

    return BestWeights()


def epoch_weights(model, out_dir, name, epochs):
    """A Keras callback keeping the weights after the given epochs (1-based)."""
    import keras

    wanted = {int(e) for e in epochs}

    class EpochWeights(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 in wanted:
                _save_weights(model, Path(out_dir) / f'{name}.epoch{epoch + 1}.weights.h5')

    return EpochWeights()


def _set_determinism(seed):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def augmented(example, rng, pitch_shift=0):
    """One epoch's version of a training example: a random crop, a random transposition.

    Args:
        example (Example): Training example
        rng (np.random.Generator): None: the example as it is (its core; validation)
        pitch_shift (int): Largest transposition in semitones (Default value = 0)

    Returns:
        example (Example)
    """
    example = crop_example(example, rng)
    if rng is not None and pitch_shift:
        example = transpose_example(example, rng.integers(-pitch_shift, pitch_shift + 1))
    return example


def make_tf_dataset(examples, kind, batch_frames, seed=None, pitch_shift=0, first_epoch=0):
    """A ``tf.data`` pipeline of length-grouped, padded batches (reshuffled every epoch).

    Args:
        examples (list of Example): Training or validation examples
        kind (str): 'ctc', 'strong' or 'linear'
        batch_frames (int): Target padded frames per batch
        seed (int): Seed of the batch order and of the augmentation (:func:`augmented`);
            ``None`` keeps a fixed order and no augmentation (validation)
        pitch_shift (int): Largest random transposition in semitones (Default value = 0)
        first_epoch (int): Epoch the pipeline starts with (a resumed run continues the
            random streams where the interrupted one stopped) (Default value = 0)

    Returns:
        dataset (tf.data.Dataset): Endless; yields ``(x, y)`` as in :func:`pad_batch`
        steps (int): Batches per epoch
    """
    import tensorflow as tf

    lengths = [len(e.x) for e in examples]
    epoch = [int(first_epoch)]

    def generate():
        rng = None if seed is None else np.random.default_rng([seed, epoch[0]])
        epoch[0] += 1
        for batch in length_batches(lengths, batch_frames, rng):
            yield pad_batch([augmented(examples[i], rng, pitch_shift) for i in batch], kind)

    n_bins, n_harmonics = examples[0].x.shape[1:]
    signature = (tf.TensorSpec((None, None, n_bins, n_harmonics), tf.float32),
                 tf.TensorSpec((None, None), tf.int32))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    # The number of batches is the same every epoch (only their order changes), so the
    # dataset repeats and fit() is told the steps per epoch.
    steps = len(length_batches(lengths, batch_frames))
    return dataset.repeat().prefetch(2), steps


def learning_rate_schedule(config, steps_per_epoch):
    """The learning rate of :class:`TrainingConfig`: constant, or warm-up and cosine decay.

    Returns:
        learning_rate (float or keras.optimizers.schedules.LearningRateSchedule)
    """
    import keras

    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    if config.lr_decay == 'constant':
        if not warmup:
            return config.learning_rate
        # a cosine "decay" to the same value is a warm-up followed by a constant rate
        return keras.optimizers.schedules.CosineDecay(
            0.0, 1, alpha=1.0, warmup_target=config.learning_rate, warmup_steps=warmup)
    if config.lr_decay != 'cosine':
        raise CTCChromaError(f'unknown learning-rate decay {config.lr_decay!r}; '
                             'use constant or cosine')
    decay_steps = max(config.epochs * steps_per_epoch - warmup, 1)
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps,
                                                      alpha=0.01)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps, alpha=0.01, warmup_target=config.learning_rate, warmup_steps=warmup)


def train(config: TrainingConfig, train_items, valid_items, out_dir, name=None,
          resume=True, progress=True, verbose=None, keep_epochs=()):
    """Train one model and write its weights, configuration, log and loss curves.

    Notebook: 04_Model_and_Training.ipynb

    Writes to ``out_dir``: ``<name>.weights.h5`` (best validation loss),
    ``<name>.json`` (configuration, data, result), ``<name>.log.csv`` (per-epoch losses and
    throughput) and ``<name>.png`` (loss curves). A run that is interrupted resumes from
    its last completed epoch (``<out_dir>/.<name>.backup/``) when started again.

    Args:
        config (TrainingConfig): What to train
        train_items, valid_items (list of dataset.Item): Training and validation items
        out_dir (str or Path): Output folder
        name (str): Base name of the outputs (Default value = ``teaching-<kind>``)
        resume (bool): Resume an interrupted run (Default value = True)
        progress (bool): Progress bars (Default value = True)
        verbose (int): Keras verbosity (Default value = 1 on a terminal, else 2)
        keep_epochs (sequence of int): Also keep the weights after these epochs (1-based)
            as ``<name>.epoch<N>.weights.h5``, e.g. to look at a model on the blank plateau

    Returns:
        summary (dict): What was written to ``<name>.json``
    """
    import keras

    from .model import load_model

    if config.kind not in TRAINING_KINDS:
        raise CTCChromaError(f'unknown training kind {config.kind!r}; '
                             f'choose one of {", ".join(TRAINING_KINDS)}')
    if config.monitor not in MONITORS:
        raise CTCChromaError(f'unknown monitor {config.monitor!r}; use {" or ".join(MONITORS)}')
    if not train_items or not valid_items:
        raise CTCChromaError('training needs items in the training and the validation folds')
    name = name or f'teaching-{config.kind}'
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    backup_dir = out_dir / f'.{name}.backup'
    if not resume and backup_dir.exists():
        import shutil
        shutil.rmtree(backup_dir)

    log_path = out_dir / f'{name}.log.csv'
    # A backup means an interrupted run to resume; without one, the run starts afresh.
    resuming = backup_dir.exists()
    if not resuming and log_path.exists():
        log_path.unlink()
    earlier = read_training_log(log_path) if resuming and log_path.exists() else []
    first_epoch = len(earlier)
    previous_best = None
    if earlier and (out_dir / f'.{name}.best.weights.h5').exists():
        values = [row[config.monitor] for row in earlier if config.monitor in row]
        previous_best = (max if config.monitor == 'val_mrr' else min)(values) if values else None

    _set_determinism(config.seed)
    train_examples = load_examples(train_items, config.kind, config.margin, progress,
                                   config.random_margin)
    valid_examples = load_examples(valid_items, config.kind, config.margin, progress)
    train_data, train_steps = make_tf_dataset(train_examples, config.kind, config.batch_frames,
                                              config.seed, config.pitch_shift, first_epoch)
    valid_data, valid_steps = make_tf_dataset(valid_examples, config.kind, config.batch_frames)

    model = build_training_model(resolve_precision(config.precision))
    if config.init == 'harmonic-prior':
        harmonic_prior_init(model)
    elif config.init:
        model.set_weights(load_model(config.init).get_weights())
    trainer = windowed_model(model)
    optimizer = keras.optimizers.Adam(learning_rate_schedule(config, train_steps),
                                      clipnorm=config.clipnorm or None)
    metrics = [ctc_loss_per_note_metric()] if config.kind == 'ctc' else []
    trainer.compile(optimizer=optimizer, loss=LOSSES[config.kind], metrics=metrics,
                    jit_compile=config.jit_compile)

    frames_per_epoch = int(sum(len(crop_example(e).x) for e in train_examples))
    best_path = out_dir / f'.{name}.best.weights.h5'
    timer = epoch_timer(frames_per_epoch)
    monitor = config.monitor
    callbacks = [keras.callbacks.BackupAndRestore(str(backup_dir)), timer,
                 validation_metrics(model, valid_items)]
    if keep_epochs:
        callbacks.append(epoch_weights(model, out_dir, name, keep_epochs))
    callbacks += [
        best_weights_checkpoint(model, best_path, monitor, previous_best),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience,
                                      mode='max' if monitor == 'val_mrr' else 'min'),
        keras.callbacks.CSVLogger(str(log_path), append=True),
    ]
    if verbose is None:
        verbose = 1 if progress and os.isatty(2) else 2
    started = time.perf_counter()
    # the tf.data pipeline reshuffles its batches itself (make_tf_dataset)
    trainer.fit(train_data, steps_per_epoch=train_steps, validation_data=valid_data,
                validation_steps=valid_steps, epochs=config.epochs, callbacks=callbacks,
                verbose=verbose if progress else 0, shuffle=False)
    seconds = time.perf_counter() - started

    weights_path = out_dir / f'{name}.weights.h5'
    if best_path.exists():
        os.replace(best_path, weights_path)
    history = read_training_log(log_path)
    sign = -1.0 if monitor == 'val_mrr' else 1.0
    best = min(history, key=lambda row: sign * row[monitor]) if history else {}
    summary = {
        'name': name,
        'config': asdict(config),
        'train_items': [it.mtd_id for it in train_items],
        'valid_items': [it.mtd_id for it in valid_items],
        'train_frames_per_epoch': frames_per_epoch,
        'epochs_run': len(history),
        'best_epoch': int(best.get('epoch', -1)) + 1,
        'monitor': monitor,
        'best_val_loss': best.get('val_loss'),
        'best_val_mrr': best.get('val_mrr'),
        'seconds_this_run': round(seconds, 1),
        'median_train_frames_per_second': timer.median_frames_per_second(),
        'weights': weights_path.name,
    }
    with atomic_path(out_dir / f'{name}.json') as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=2) + '\n')
    plot_training_log(log_path, out_dir / f'{name}.png', title=f'{name}: {config.kind} loss')
    if backup_dir.exists():
        import shutil
        shutil.rmtree(backup_dir)
    return summary


def epoch_timer(frames_per_epoch):
    """A Keras callback measuring throughput in real (unpadded) frames per second.

    The rate of every epoch goes into the logs (and so into the CSV log) as
    ``frames_per_second``.
    """
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rates = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            rate = frames_per_epoch / (time.perf_counter() - self._start)
            self.rates.append(rate)
            if logs is not None:
                logs['frames_per_second'] = round(rate, 1)

        def median_frames_per_second(self):
            return round(float(np.median(self.rates)), 1) if self.rates else None

    return EpochTimer()


def read_training_log(path):
    """Rows of a training log CSV as dicts of floats (``epoch`` starts at 0).

    Notebook: 04_Model_and_Training.ipynb
    """
    path = Path(path)
    if not path.exists():
        raise CTCChromaError(f'training log not found: {path}')
    with open(path, newline='') as f:
        rows = [{k: float(v) for k, v in row.items() if v not in ('', None)}
                for row in csv.DictReader(f)]
    # A resumed run appends; keep the last entry of every epoch.
    by_epoch = {int(row['epoch']): row for row in rows}
    return [by_epoch[e] for e in sorted(by_epoch)]


def plot_training_log(log_path, png_path=None, title=None, ax=None, history=None):
    """Plot a training log per epoch: losses, and validation MRR and blank share.

    Notebook: 04_Model_and_Training.ipynb

    CTC logs show the loss per note, with ln 12 marked: what a model pays that knows
    where the notes are but not their chroma (the blank plateau). On the right axis, the
    validation retrieval MRR and the share of validation frames where the blank wins.

    Args:
        log_path (str or Path): CSV log of :func:`train` (None when ``history`` is given)
        png_path (str or Path): Save the figure here (Default value = None)
        title (str): Axes title (Default value = None: the log's name)
        ax (matplotlib.axes.Axes): Draw into these axes (Default value = None: a new figure)
        history (list of dict): Rows as from :func:`read_training_log` instead of a file

    Returns:
        ax (matplotlib.axes.Axes)
    """
    from matplotlib.ticker import MaxNLocator

    if history is None:
        history = read_training_log(log_path)
    epochs = [int(r['epoch']) + 1 for r in history]
    own = ax is None
    if own and png_path is not None:
        # A figure outside pyplot: saving it touches neither the backend nor the figures
        # of a notebook that calls this.
        from matplotlib.figure import Figure
        fig = Figure(figsize=(6.4, 4.0))
        ax = fig.subplots()
    elif own:
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
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
    return ax


def split_items(items, train_folds, valid_folds):
    """Items of the training folds and of the validation folds."""
    overlap = set(train_folds) & set(valid_folds)
    if overlap:
        raise CTCChromaError(f'folds {sorted(overlap)} are both training and validation folds')
    return ([it for it in items if it.fold in train_folds],
            [it for it in items if it.fold in valid_folds])

"""Training examples and batches: segments cut from the HCQT, augmented, padded, grouped.

Notebook: 04_Model_and_Training.ipynb

An :class:`Example` is one weakly aligned segment with its targets; every epoch sees a
random crop around it (:func:`crop_example`) in a random transposition
(:func:`transpose_example`); examples of similar length are grouped into batches of about
``batch_frames`` frames (:func:`length_batches`) and padded to a few shapes
(:func:`pad_batch`), fed by a ``tf.data`` pipeline (:func:`make_tf_dataset`).
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .constants import BLANK_INDEX
from .errors import CTCChromaError
from .labels import label_sequence, linear_frame_labels, segment_frames, strong_frame_labels

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

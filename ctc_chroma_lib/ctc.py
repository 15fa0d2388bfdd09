"""Connectionist temporal classification (CTC) in plain NumPy, for teaching.

Notebook: 03_CTC.ipynb

The training code uses ``tf.nn.ctc_loss``; the functions here spell out the same
mathematics (Graves et al., ICML 2006) in a few lines each so that the notebook can
show every quantity and check it against TensorFlow and against brute force:

- the collapsing map B (merge repeated symbols, then remove blanks),
- the extended label sequence with blanks between and around the labels,
- the forward and backward variables in log space and the negative log-likelihood,
- state and class posteriors (forward-backward), which are the soft alignment that CTC
  estimates from a weak (sequence-only) label,
- best-path decoding,
- the same loss and its gradient from ``tf.nn.ctc_loss`` for comparison, and plots of the
  lattice and of 13-class matrices.

Probability matrices are classes x frames (``K x T``, time last) like every feature in
this project; the blank is the last class (``constants.BLANK_INDEX`` = 12 for the
13-class chroma alphabet). Transpose a ``T x K`` network output with ``.T``.
"""
import itertools
import os

import numpy as np

from .constants import ALPHABET, BLANK_INDEX, CHROMA_NAMES
from .errors import CTCChromaError

MAX_BRUTE_FORCE_PATHS = 2_000_000
"""Largest number of paths :func:`ctc_brute_force` is willing to enumerate."""


def _blank_of(num_classes, blank):
    """The blank index: ``blank`` if given, else the last class."""
    return num_classes - 1 if blank is None else int(blank)


def _check_probs(probs):
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] < 2 or probs.shape[1] < 1:
        raise CTCChromaError(f'probs must be a classes x frames matrix with at least 2 classes '
                             f'and 1 frame, got shape {probs.shape}')
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise CTCChromaError('probs must be finite and non-negative')
    return probs


def _check_labels(labels, num_classes, blank):
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    bad = labels[(labels < 0) | (labels >= num_classes) | (labels == blank)]
    if bad.size:
        raise CTCChromaError(f'label {int(bad[0])} is not a non-blank class index in '
                             f'0..{num_classes - 1} (blank = {blank})')
    return labels


def labels_from_names(names):
    """Chroma class indices of chroma names, e.g. ``'C C D'`` -> ``[0, 0, 2]``.

    Notebook: 03_CTC.ipynb

    Args:
        names (str or Sequence[str]): Chroma names from ``constants.ALPHABET``, as a list or
            as one whitespace-separated string; ``'blank'`` or ``'-'`` stand for the blank,
            so that paths can be written like ``'C - C D'``.

    Returns:
        labels (np.ndarray): Class indices, shape ``(L,)``, dtype int64.
    """
    if isinstance(names, str):
        names = names.split()
    names = ['blank' if name == '-' else name for name in names]
    unknown = [name for name in names if name not in ALPHABET]
    if unknown:
        raise CTCChromaError(f'unknown chroma name {unknown[0]!r}; expected one of {ALPHABET}')
    return np.array([ALPHABET.index(name) for name in names], dtype=np.int64)


def label_names(labels, blank=BLANK_INDEX):
    """Readable string of a label sequence or path: chroma names, the blank as ``-``.

    Notebook: 03_CTC.ipynb

    Args:
        labels (Sequence[int]): Class indices of the 13-class alphabet.
        blank (int): Index of the blank (default: ``constants.BLANK_INDEX``).

    Returns:
        text (str): Space-separated names, e.g. ``'- C C - D'``.
    """
    return ' '.join('-' if int(k) == blank else CHROMA_NAMES[int(k)] for k in labels)


def ctc_collapse(path, blank=BLANK_INDEX):
    """The CTC collapsing map B: merge repeated symbols, then remove blanks.

    Notebook: 03_CTC.ipynb

    Args:
        path (Sequence[int]): One class index per frame, shape ``(T,)``.
        blank (int): Index of the blank (default: ``constants.BLANK_INDEX``).

    Returns:
        labels (list[int]): The label sequence the path stands for, e.g. the path
        ``C C - C D D`` collapses to ``C C D`` and ``C C C D D`` to ``C D``.
    """
    path = [int(k) for k in path]
    merged = [k for i, k in enumerate(path) if i == 0 or k != path[i - 1]]
    return [k for k in merged if k != blank]


def extended_labels(labels, blank=BLANK_INDEX):
    """The label sequence with a blank before, between and after the labels.

    Notebook: 03_CTC.ipynb

    Args:
        labels (Sequence[int]): Label sequence of length ``L`` (no blanks).
        blank (int): Index of the blank (default: ``constants.BLANK_INDEX``).

    Returns:
        extended (np.ndarray): ``[blank, l_1, blank, l_2, ..., l_L, blank]``, shape
        ``(2L + 1,)``, dtype int64; these are the rows (states) of the CTC lattice.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    extended = np.full(2 * len(labels) + 1, blank, dtype=np.int64)
    extended[1::2] = labels
    return extended


def _lattice_inputs(probs, labels, blank):
    """Log observation probabilities per lattice state and the allowed skip transitions."""
    probs = _check_probs(probs)
    blank = _blank_of(probs.shape[0], blank)
    labels = _check_labels(labels, probs.shape[0], blank)
    extended = extended_labels(labels, blank)
    with np.errstate(divide='ignore'):
        log_y = np.log(probs)[extended]
    # A state may skip the blank before it unless it repeats the previous label: this is
    # why a repeated note (C C) needs a blank in between in every valid path.
    skip = np.zeros(len(extended), dtype=bool)
    skip[2:] = (extended[2:] != blank) & (extended[2:] != extended[:-2])
    return log_y, skip


def ctc_forward(probs, labels, blank=None):
    """Forward variables of CTC in log space and the negative log-likelihood.

    Notebook: 03_CTC.ipynb

    ``alpha[s, t]`` is the log of the summed probability of all path prefixes of length
    ``t + 1`` that end in state ``s`` of the extended label sequence and collapse to its
    first ``(s + 1) // 2`` labels.

    Args:
        probs (np.ndarray): Class probabilities per frame (softmax output), ``K x T``.
        labels (Sequence[int]): Target label sequence of length ``L`` (no blanks).
        blank (int): Index of the blank; default: the last class ``K - 1``.

    Returns:
        log_alpha (np.ndarray): Forward variables, shape ``(2L + 1, T)``.
        neg_log_likelihood (float): ``-log p(labels | probs)``, the CTC loss (``inf`` if no
        path of length ``T`` collapses to ``labels``).
    """
    log_y, skip = _lattice_inputs(probs, labels, blank)
    num_states, num_frames = log_y.shape
    log_alpha = np.full((num_states, num_frames), -np.inf)
    log_alpha[:2, 0] = log_y[:2, 0]
    for t in range(1, num_frames):
        previous = log_alpha[:, t - 1]
        incoming = previous.copy()
        incoming[1:] = np.logaddexp(incoming[1:], previous[:-1])
        incoming[skip] = np.logaddexp(incoming[skip], previous[:-2][skip[2:]])
        log_alpha[:, t] = incoming + log_y[:, t]
    log_likelihood = np.logaddexp.reduce(log_alpha[-2:, -1])
    return log_alpha, float(-log_likelihood)


def ctc_backward(probs, labels, blank=None):
    """Backward variables of CTC in log space.

    Notebook: 03_CTC.ipynb

    ``beta[s, t]`` is the log of the summed probability of all path suffixes for the
    frames ``t + 1 .. T - 1`` that complete a valid path, given state ``s`` at frame ``t``
    (the observation at frame ``t`` itself is not included).

    Args:
        probs (np.ndarray): Class probabilities per frame, ``K x T``.
        labels (Sequence[int]): Target label sequence of length ``L`` (no blanks).
        blank (int): Index of the blank; default: the last class ``K - 1``.

    Returns:
        log_beta (np.ndarray): Backward variables, shape ``(2L + 1, T)``.
    """
    log_y, skip = _lattice_inputs(probs, labels, blank)
    num_states, num_frames = log_y.shape
    log_beta = np.full((num_states, num_frames), -np.inf)
    log_beta[-2:, -1] = 0.0
    for t in range(num_frames - 2, -1, -1):
        following = log_beta[:, t + 1] + log_y[:, t + 1]
        outgoing = following.copy()
        outgoing[:-1] = np.logaddexp(outgoing[:-1], following[1:])
        outgoing[:-2][skip[2:]] = np.logaddexp(outgoing[:-2][skip[2:]], following[2:][skip[2:]])
        log_beta[:, t] = outgoing
    return log_beta


def ctc_posteriors(probs, labels, blank=None):
    """Posterior probabilities of the lattice states and classes per frame (forward-backward).

    Notebook: 03_CTC.ipynb

    ``gamma[s, t] = exp(alpha[s, t] + beta[s, t]) / p(labels | probs)`` is the probability
    that a path, drawn in proportion to its probability among all paths that collapse to
    ``labels``, is in state ``s`` at frame ``t``: the soft alignment CTC infers from the
    label sequence alone. Summing the states of each class gives the class posteriors; the
    gradient of the CTC loss with respect to the logits is ``probs - class_posteriors``.

    Args:
        probs (np.ndarray): Class probabilities per frame, ``K x T``.
        labels (Sequence[int]): Target label sequence of length ``L`` (no blanks).
        blank (int): Index of the blank; default: the last class ``K - 1``.

    Returns:
        state_posteriors (np.ndarray): Shape ``(2L + 1, T)``, every column sums to 1.
        class_posteriors (np.ndarray): Shape ``(K, T)``, every column sums to 1.
    """
    probs = _check_probs(probs)
    blank = _blank_of(probs.shape[0], blank)
    log_alpha, neg_log_likelihood = ctc_forward(probs, labels, blank)
    if not np.isfinite(neg_log_likelihood):
        raise CTCChromaError(f'no path of {probs.shape[1]} frames collapses to the labels '
                             f'{list(np.asarray(labels).reshape(-1))}')
    log_beta = ctc_backward(probs, labels, blank)
    state_posteriors = np.exp(log_alpha + log_beta + neg_log_likelihood)
    class_posteriors = np.zeros_like(probs)
    np.add.at(class_posteriors, extended_labels(labels, blank), state_posteriors)
    return state_posteriors, class_posteriors


def ctc_note_frames(probs, labels, blank=None):
    """Frames of every label on the most probable state path of the CTC posterior.

    Notebook: 07_Weak_to_Strong_Alignment.ipynb

    The state posteriors ``gamma`` (:func:`ctc_posteriors`) say how probable each lattice
    state is at each frame, given the whole label sequence. The path through the lattice
    (the transitions of the forward algorithm: stay, advance by one, or skip a blank that
    separates two different labels) that maximizes the summed log posteriors is a hard
    alignment: label ``j`` holds the frames where the path is in state ``2j + 1``. For a
    peaky model these are the few frames of its spike, which mark the note's onset.

    Args:
        probs (np.ndarray): Class probabilities per frame, ``K x T``.
        labels (Sequence[int]): Target label sequence of length ``L >= 1`` (no blanks).
        blank (int): Index of the blank; default: the last class ``K - 1``.

    Returns:
        frames (np.ndarray): ``(L, 2)`` int, first and last frame (inclusive) of each label
        states (np.ndarray): ``(T,)`` int, the lattice state of every frame
    """
    state_posteriors, _ = ctc_posteriors(probs, labels, blank)
    log_y, skip = _lattice_inputs(probs, labels, blank)
    num_states, num_frames = state_posteriors.shape
    with np.errstate(divide='ignore'):
        score = np.log(state_posteriors)
    best = np.full((num_states, num_frames), -np.inf)
    came_from = np.zeros((num_states, num_frames), dtype=np.int64)
    best[:2, 0] = score[:2, 0]
    states = np.arange(num_states)
    for t in range(1, num_frames):
        previous = best[:, t - 1]
        candidates = np.full((3, num_states), -np.inf)
        candidates[0] = previous
        candidates[1, 1:] = previous[:-1]
        candidates[2, 2:][skip[2:]] = previous[:-2][skip[2:]]
        step = np.argmax(candidates, axis=0)
        best[:, t] = candidates[step, states] + score[:, t]
        came_from[:, t] = states - step
    path = np.empty(num_frames, dtype=np.int64)
    path[-1] = num_states - 1 if best[-1, -1] >= best[-2, -1] else num_states - 2
    for t in range(num_frames - 1, 0, -1):
        path[t - 1] = came_from[path[t], t]
    frames = np.zeros((num_states // 2, 2), dtype=np.int64)
    for j in range(num_states // 2):
        inside = np.flatnonzero(path == 2 * j + 1)
        frames[j] = inside[0], inside[-1]
    return frames, path


def ctc_brute_force(probs, labels, blank=None):
    """CTC negative log-likelihood by enumerating every path (only for tiny examples).

    Notebook: 03_CTC.ipynb

    Args:
        probs (np.ndarray): Class probabilities per frame, ``K x T`` with ``K ** T`` at
            most ``MAX_BRUTE_FORCE_PATHS``.
        labels (Sequence[int]): Target label sequence (no blanks).
        blank (int): Index of the blank; default: the last class ``K - 1``.

    Returns:
        neg_log_likelihood (float): ``-log`` of the summed probability of all paths that
        collapse to ``labels``.
        valid_paths (list[tuple[int]]): Those paths, in lexicographic order.
    """
    probs = _check_probs(probs)
    num_classes, num_frames = probs.shape
    blank = _blank_of(num_classes, blank)
    labels = list(_check_labels(labels, num_classes, blank))
    if num_classes ** num_frames > MAX_BRUTE_FORCE_PATHS:
        raise CTCChromaError(f'{num_classes} ** {num_frames} paths are too many to enumerate')
    frames = np.arange(num_frames)
    valid_paths = [path for path in itertools.product(range(num_classes), repeat=num_frames)
                   if ctc_collapse(path, blank) == labels]
    total = sum(np.prod(probs[list(path), frames]) for path in valid_paths)
    with np.errstate(divide='ignore'):
        return float(-np.log(total)), valid_paths


def best_path_decode(probs, blank=None):
    """Best-path (greedy) decoding: the most likely class per frame, collapsed.

    Notebook: 03_CTC.ipynb

    Args:
        probs (np.ndarray): Class probabilities per frame, ``K x T``.
        blank (int): Index of the blank; default: the last class ``K - 1``.

    Returns:
        labels (list[int]): The decoded label sequence.
        path (np.ndarray): The most likely class per frame, shape ``(T,)``.
    """
    probs = _check_probs(probs)
    path = np.argmax(probs, axis=0)
    return ctc_collapse(path, _blank_of(probs.shape[0], blank)), path


def import_tensorflow():
    """Import TensorFlow with its C++ start-up log lines silenced, and return the module.

    Notebook: 03_CTC.ipynb

    TensorFlow's native libraries write timestamped messages to the stderr file descriptor
    when they are loaded, before ``TF_CPP_MIN_LOG_LEVEL`` can take effect; a Jupyter kernel
    records them as cell output, which would make stored notebook outputs differ from every
    fresh run. The descriptor is pointed at ``os.devnull`` during the import only.

    Returns:
        tf (module): The ``tensorflow`` module.
    """
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved_stderr = os.dup(2)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        os.close(devnull)
    return tf


def tensorflow_ctc_loss(logits, labels, blank=BLANK_INDEX):
    """CTC loss and its gradient from ``tf.nn.ctc_loss``, the implementation used in training.

    Notebook: 03_CTC.ipynb

    TensorFlow computes in float32: expect agreement with the float64 NumPy functions of
    this module to about five significant digits.

    Args:
        logits (np.ndarray): Unnormalized class scores (before the softmax), ``K x T``.
        labels (Sequence[int]): Target label sequence of length ``L >= 1`` (no blanks).
        blank (int): Index of the blank (default: ``constants.BLANK_INDEX``).

    Returns:
        neg_log_likelihood (float): The CTC loss ``-log p(labels | softmax(logits))``.
        gradient (np.ndarray): Its gradient with respect to the logits, ``K x T``.
    """
    logits = np.asarray(logits, dtype=np.float32)
    labels = _check_labels(labels, logits.shape[0], blank)
    if labels.size == 0:
        raise CTCChromaError('tensorflow_ctc_loss needs at least one label')
    tf = import_tensorflow()
    # Time-major logits of one sequence: (T, batch=1, K).
    logits_tensor = tf.constant(logits.T[:, None, :])
    with tf.GradientTape() as tape:
        tape.watch(logits_tensor)
        loss = tf.nn.ctc_loss(labels=tf.constant(labels[None, :], dtype=tf.int32),
                              logits=logits_tensor, label_length=[len(labels)],
                              logit_length=[logits.shape[1]], logits_time_major=True,
                              blank_index=blank)
    gradient = tape.gradient(loss, logits_tensor).numpy()[:, 0, :].T.astype(np.float64)
    return float(loss.numpy()[0]), gradient

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

from .batching import crop_example, load_examples, make_tf_dataset
from .constants import BLANK_INDEX, WEIGHTS_DIR  # noqa: F401 (WEIGHTS_DIR: training.WEIGHTS_DIR)
from .errors import CTCChromaError
from .fileio import atomic_path
from .kinds import KINDS, TRAINING_KINDS
from .losses import LOSSES, ctc_fit_diagnostics, ctc_loss_per_note_metric

MONITORS = ('val_loss', 'val_mrr')
"""Validation quantities that can select the shipped epoch and stop training."""

KIND_DEFAULTS = {name: dict(KINDS[name].recipe) for name in TRAINING_KINDS}
"""Defaults of :class:`TrainingConfig` that depend on the kind: the recipes of the shipped
models (:attr:`ctc_chroma_lib.kinds.Kind.recipe`, described at
:data:`ctc_chroma_lib.kinds.CTC_RECIPE`)."""


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
    weight_average: Optional[float] = None
    """Momentum of an exponential moving average of the weights (Polyak averaging), updated
    after every training step: validation, the choice of the best epoch and the shipped
    weights use the averaged weights (:func:`averaged_weights_in_model`). 0: no averaging."""
    seed: int = 0
    init: Optional[str] = None
    """Initial weights: '' (random, as in the paper), 'harmonic-prior' (see
    :func:`harmonic_prior_init`), 'blank-prior' (random, the blank unit's bias at the
    blank's prior, see :func:`blank_prior_init`), or a model spec as in
    :func:`model.load_model`."""
    jit_compile: bool = False
    """XLA compilation of the training step. Off by default: every new batch shape compiles
    anew (a first epoch of several minutes), and Keras compiles with XLA only without
    TensorFlow's op determinism, so such a run is seeded but not guaranteed to be bitwise
    reproducible. On a CPU without bfloat16 (2-core AVX2) it gives about 1.7x the frames per
    second (238 against 139 on the teaching folds)."""
    precision: str = 'auto'
    """'float32', 'mixed_bfloat16' or 'auto' (bfloat16 compute where the CPU has native
    bfloat16 instructions: about 1.5x the frames per second; the weights stay float32)."""

    def __post_init__(self):
        for key, value in KIND_DEFAULTS.get(self.kind, KIND_DEFAULTS['strong']).items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if not 0.0 <= self.weight_average < 1.0:
            raise CTCChromaError(f'the weight-average momentum must be in [0, 1), '
                                 f'got {self.weight_average}')


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


def validation_metrics(model, items, progress=False, smoothing=1):
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

    The chroma for ``val_mrr`` is post-processed like the trained kind's
    (:func:`ctc_chroma_lib.chroma.postprocess` with ``smoothing``: 7 frames for CTC models
    since chroma version 2; logs of earlier runs report it without smoothing).

    Args:
        model (keras.Model): The chroma model being trained (not the windowed wrapper)
        items (list of dataset.Item): Validation items
        progress (bool): Progress bars (Default value = False)
        smoothing (int): Window of :func:`ctc_chroma_lib.chroma.postprocess`
            (Default value = 1)

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
            database = {path: postprocess(p, smoothing) for path, p in probs.items()}
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


def averaged_weights_in_model(resumed=False):
    """A Keras callback that puts the optimizer's moving average of the weights into the
    model for validation and for every callback after it at the end of an epoch, and the
    trained weights back for the next epoch (``keras.callbacks.SwapEMAWeights``).

    The backup of an epoch is therefore taken with the averaged weights in the model and
    the trained ones in the optimizer: a ``resumed`` run swaps them back before it trains on.
    """
    import keras

    class AveragedWeights(keras.callbacks.SwapEMAWeights):
        def __init__(self):
            super().__init__(swap_on_epoch=True)
            self._ema_weights_in_model = resumed

        def _tf_swap_variables(self, optimizer):
            # Keras swaps TensorFlow variables by adding and subtracting them, which rounds
            # where the two differ: the blank's bias (about 15 when it starts at its prior)
            # came back from a validation an ulp off. Swap through a copy, exactly.
            self._backend_swap_variables(optimizer)

    return AveragedWeights()


def epoch_weights(model, out_dir, name, epochs):
    """A Keras callback keeping the weights after the given epochs (1-based)."""
    import keras

    wanted = {int(e) for e in epochs}

    class EpochWeights(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 in wanted:
                _save_weights(model, Path(out_dir) / f'{name}.epoch{epoch + 1}.weights.h5')

    return EpochWeights()


def _set_determinism(seed, ops=True):
    """Seed Python, NumPy and TensorFlow, and switch TensorFlow's op determinism on (``ops``)
    or off: Keras ignores ``jit_compile`` while it is on, so a ``jit_compile`` run passes
    False, also in a process where an earlier run switched it on."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if ops:
        tf.config.experimental.enable_op_determinism()
    else:  # TensorFlow has no public switch back
        from tensorflow.python.framework import config as tf_config
        tf_config.disable_op_determinism()


def make_optimizer(config, steps_per_epoch):
    """The recipe's optimizer: Adam on :func:`learning_rate_schedule`, with the recipe's
    gradient clipping and moving average of the weights.

    Args:
        config (TrainingConfig): Run configuration
        steps_per_epoch (int): Optimizer steps per epoch

    Returns:
        optimizer (keras.optimizers.Adam): A new optimizer
    """
    import keras

    return keras.optimizers.Adam(learning_rate_schedule(config, steps_per_epoch),
                                 clipnorm=config.clipnorm or None,
                                 use_ema=bool(config.weight_average),
                                 ema_momentum=config.weight_average)


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


def _previous_run(out_dir, name, monitor, resume):
    """``(first_epoch, previous_best)`` of an interrupted run to resume, else ``(0, None)``.

    A backup folder means an interrupted run; without one (or with ``resume=False``) the run
    starts afresh and an old log is removed. The backup (written last at the end of every
    epoch, see :func:`train`) says how many epochs are complete; a log row of a later epoch
    comes from an epoch that was interrupted after logging and is run again, so it neither
    counts as done nor sets the value the best weights have to beat.
    """
    backup_dir = out_dir / f'.{name}.backup'
    if not resume and backup_dir.exists():
        import shutil
        shutil.rmtree(backup_dir)
    log_path = out_dir / f'{name}.log.csv'
    if not backup_dir.exists():
        if log_path.exists():
            log_path.unlink()
        return 0, None
    earlier = read_training_log(log_path) if log_path.exists() else []
    first_epoch = _backup_epoch(backup_dir)
    if first_epoch is None:
        first_epoch = len(earlier)
    earlier = [row for row in earlier if row['epoch'] < first_epoch]
    previous_best = None
    if earlier and (out_dir / f'.{name}.best.weights.h5').exists():
        values = [row[monitor] for row in earlier if monitor in row]
        previous_best = (max if monitor == 'val_mrr' else min)(values) if values else None
    return first_epoch, previous_best


RESUMABLE_CHANGES = ('jit_compile',)
"""Settings that may differ between the sittings of one run (they change speed, not the recipe)."""


def _check_resumed_settings(path, name, config, train_items, valid_items, resuming):
    """Refuse to resume a run with other settings or data than it started with.

    A fresh run writes its settings to ``path``; a resumed one compares (except
    :data:`RESUMABLE_CHANGES`) and raises before anything is changed. A run started without
    the record cannot be checked and resumes."""
    settings = {k: v for k, v in asdict(config).items() if k not in RESUMABLE_CHANGES}
    settings['train_items'] = [getattr(it, 'mtd_id', str(it)) for it in train_items]
    settings['valid_items'] = [getattr(it, 'mtd_id', str(it)) for it in valid_items]
    settings = json.loads(json.dumps(settings))
    if not resuming:
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(settings, indent=1) + '\n')
        return
    try:
        started = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return
    changed = sorted(k for k in set(settings) | set(started) if settings.get(k) != started.get(k))
    if changed:
        raise CTCChromaError(f'{name}: an interrupted run with other {", ".join(changed)} is '
                             f'waiting to be resumed; give the settings it started with, or '
                             f'--restart to discard it')


BLANK_PRIOR_EXAMPLES = 16
"""Training examples on which :func:`blank_prior_init` measures the untrained model."""


def blank_prior(examples):
    """The share of blank frames the CTC targets imply: 1 - notes / frames.

    Args:
        examples (list of batching.Example): Training examples

    Returns:
        prior (float)
    """
    notes = sum(len(e.labels) for e in examples)
    frames = sum(len(e.x) for e in examples)
    if not frames or notes >= frames:
        raise CTCChromaError('the training segments have fewer frames than notes')
    return 1.0 - notes / frames


def blank_prior_init(model, examples, n_examples=BLANK_PRIOR_EXAMPLES):
    """Start the blank unit at the blank's prior: set its bias so that, on a typical
    training frame, the untrained model gives the blank the probability
    :func:`blank_prior` (about 0.9).

    A random model gives the blank almost nothing (its twelve chroma logits each sum 18
    sigmoids of about 0.5, the blank logit is near 0). With its bias at 0 the CTC loss
    first makes the blank win the frames between notes, and the fast way there for Adam
    is to raise the salience of every bin, which the blank unit sums with growing weights.
    Where that saturates the salience at 1 everywhere, the chroma logits are all equal and
    the sigmoid passes no gradient: the *dead plateau*. Starting the blank at its prior
    (as one starts a classifier's output bias at the log class prior) is meant to leave
    the loss no reason to do so (README, *The dead plateau*, says how far it does). Only
    the blank unit's bias changes; every other weight stays random.

    Args:
        model (keras.Model): Model from :func:`model.build_model` (modified in place)
        examples (list of batching.Example): Training examples (the prior and the
            untrained model's blank logit are measured on them)
        n_examples (int): How many of ``examples`` the model is run on
            (Default value = BLANK_PRIOR_EXAMPLES)

    Returns:
        bias (float): The blank unit's new bias
    """
    import keras
    from scipy.special import logsumexp

    prior = blank_prior(examples)
    layer = model.get_layer('blank_pool')
    kernel, bias = [np.array(w) for w in layer.get_weights()]
    # blank logit minus the log-sum-exp of the chroma logits, per frame, at the present bias
    to_logits = keras.Model(model.input, model.get_layer('logits').output)
    margins = []
    for example in examples[:n_examples]:
        logits = np.asarray(to_logits(example.x[None], training=False)).astype(np.float64)[0]
        margins.append(logits[:, BLANK_INDEX] - logsumexp(logits[:, :BLANK_INDEX], axis=1))
    margin = float(np.median(np.concatenate(margins)))
    bias[:] = bias - margin + np.log(prior / (1.0 - prior))
    layer.set_weights([kernel, bias])
    return float(bias[0])


def salience_saturation(model, inputs):
    """How saturated the model's salience sigmoid is: the mark of the dead plateau.

    In a run on the dead blank plateau the salience is 1 in every bin of every frame: all
    twelve chroma logits are 18, the blank unit wins everywhere, and the sigmoid's slope
    ``s (1 - s)`` is 0, so no gradient reaches the convolutions. A healthy model keeps
    bins near 0 where no pitch is.

    Args:
        model (keras.Model): Model from :func:`model.build_model`
        inputs (list of np.ndarray): Model inputs (T, 216, 6), e.g. ``Example.x``

    Returns:
        stats (dict): 'p1', 'p50', 'p99' (percentiles of the salience over all bins and
            frames), 'slope' (median of s (1 - s)), 'blank_wins' (share of frames whose most
            probable class is the blank)
    """
    import keras

    probe = keras.Model(model.input, [model.get_layer('salience').output, model.output])
    salience, wins = [], []
    for x in inputs:
        s, probs = probe(np.asarray(x)[None], training=False)
        salience.append(np.asarray(s).astype(np.float64).ravel())
        wins.append(np.asarray(probs)[0].argmax(-1) == BLANK_INDEX)
    salience, wins = np.concatenate(salience), np.concatenate(wins)
    p1, p50, p99 = np.percentile(salience, [1, 50, 99])
    return {'p1': float(p1), 'p50': float(p50), 'p99': float(p99),
            'slope': float(np.median(salience * (1 - salience))),
            'blank_wins': float(wins.mean())}


def _backup_epoch(backup_dir):
    """Epochs completed according to a Keras ``BackupAndRestore`` folder (None: unknown)."""
    try:
        return int(json.loads((Path(backup_dir) / 'training_metadata.json').read_text())['epoch'])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _initial_model(config, train_examples):
    """The model to train, with the initial weights of ``config.init``."""
    from .model import load_model

    model = build_training_model(resolve_precision(config.precision))
    if config.init == 'harmonic-prior':
        harmonic_prior_init(model)
    elif config.init == 'blank-prior':
        blank_prior_init(model, train_examples)
    elif config.init:
        model.set_weights(load_model(config.init).get_weights())
    return model


def train(config: TrainingConfig, train_items, valid_items, out_dir, *, name=None,
          resume=True, progress=True, verbose=None, keep_epochs=()):
    """Train one model and write its weights, configuration, log and loss curves.

    Notebook: 04_Model_and_Training.ipynb

    Writes to ``out_dir``: ``<name>.weights.h5`` (the weights of the epoch that
    ``config.monitor`` selects: the lowest validation loss, or the highest validation MRR),
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

    Raises:
        CTCChromaError: Unknown kind or monitor, or no training or validation items
    """
    import keras

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
    log_path = out_dir / f'{name}.log.csv'
    first_epoch, previous_best = _previous_run(out_dir, name, config.monitor, resume)
    settings_path = out_dir / f'.{name}.settings.json'
    _check_resumed_settings(settings_path, name, config, train_items, valid_items,
                            resuming=backup_dir.exists())
    sittings_path = out_dir / f'.{name}.sittings.json'  # sitting_clock drops stale entries

    _set_determinism(config.seed, ops=not config.jit_compile)
    train_examples = load_examples(train_items, config.kind, config.margin, progress,
                                   config.random_margin)
    valid_examples = load_examples(valid_items, config.kind, config.margin, progress)
    train_data, train_steps = make_tf_dataset(train_examples, config.kind, config.batch_frames,
                                              config.seed, config.pitch_shift, first_epoch)
    valid_data, valid_steps = make_tf_dataset(valid_examples, config.kind, config.batch_frames)

    model = _initial_model(config, train_examples)
    trainer = windowed_model(model)
    optimizer = make_optimizer(config, train_steps)
    metrics = [ctc_loss_per_note_metric()] if config.kind == 'ctc' else []
    trainer.compile(optimizer=optimizer, loss=LOSSES[config.kind], metrics=metrics,
                    jit_compile=config.jit_compile)

    frames_per_epoch = int(sum(len(crop_example(e).x) for e in train_examples))
    best_path = out_dir / f'.{name}.best.weights.h5'
    timer = epoch_timer(frames_per_epoch)
    monitor = config.monitor
    # At the end of an epoch: metrics, log row, backup, best weights. The backup marks the
    # epoch as done, so an interruption before it (e.g. during the validation retrieval)
    # runs the whole epoch again instead of leaving it out of the log.
    callbacks = [timer, validation_metrics(model, valid_items,
                                           smoothing=KINDS[config.kind].smoothing)]
    if config.weight_average:  # first: every later callback sees the averaged weights
        callbacks.insert(0, averaged_weights_in_model(resumed=first_epoch > 0))
    if keep_epochs:
        callbacks.append(epoch_weights(model, out_dir, name, keep_epochs))
    callbacks += [
        keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience,
                                      mode='max' if monitor == 'val_mrr' else 'min'),
        keras.callbacks.CSVLogger(str(log_path), append=True),
        keras.callbacks.BackupAndRestore(str(backup_dir)),
        sitting_clock(sittings_path, first_epoch),
        best_weights_checkpoint(model, best_path, monitor, previous_best),
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
    earlier = read_sittings(sittings_path, before_epoch=first_epoch)
    summary = _write_summary(config, name, out_dir, train_items, valid_items, frames_per_epoch,
                             seconds, timer.median_frames_per_second(), weights_path, earlier)
    if backup_dir.exists():
        import shutil
        shutil.rmtree(backup_dir)
    for path in (sittings_path, settings_path):
        if path.exists():
            path.unlink()
    return summary


def _write_summary(config, name, out_dir, train_items, valid_items, frames_per_epoch, seconds,
                   frames_per_second, weights_path, earlier_sittings=()):
    """Write ``<name>.json`` and ``<name>.png`` of a finished run; returns the summary.

    ``seconds`` is this sitting's wall time; ``earlier_sittings`` are those of an interrupted
    run before it (:func:`read_sittings`), each up to its last complete epoch. The run's total
    adds them to ``seconds``, so that both figures come from one clock for this sitting."""
    from .plots import plot_training_log

    log_path = out_dir / f'{name}.log.csv'
    history = read_training_log(log_path)
    sign = -1.0 if config.monitor == 'val_mrr' else 1.0
    best = min(history, key=lambda row: sign * row[config.monitor]) if history else {}
    summary = {
        'name': name,
        'config': asdict(config),
        'train_items': [it.mtd_id for it in train_items],
        'valid_items': [it.mtd_id for it in valid_items],
        'train_frames_per_epoch': frames_per_epoch,
        'epochs_run': len(history),
        'best_epoch': int(best.get('epoch', -1)) + 1,
        'monitor': config.monitor,
        'best_val_loss': best.get('val_loss'),
        'best_val_mrr': best.get('val_mrr'),
        'seconds_this_run': round(seconds, 1),
        'sittings': len(earlier_sittings) + 1,
        'seconds_all_sittings': round(seconds + sum(s['seconds'] for s in earlier_sittings), 1),
        'median_train_frames_per_second': frames_per_second,
        'weights': weights_path.name,
    }
    with atomic_path(out_dir / f'{name}.json') as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=2) + '\n')
    plot_training_log(log_path, png_path=out_dir / f'{name}.png',
                      title=f'{name}: {config.kind} loss')
    return summary


def sitting_clock(path, first_epoch):
    """A Keras callback recording, after every epoch, how long this sitting of a run has
    trained (``path``: JSON list of ``{"first_epoch", "epochs", "seconds"}``, one entry per
    sitting). The summary of a run interrupted and resumed adds the earlier sittings to the
    last one's wall time (:func:`_write_summary`); the epoch cut off by an interruption is not
    counted."""
    import keras

    earlier = read_sittings(path, before_epoch=first_epoch)

    class SittingClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            now = {'first_epoch': first_epoch, 'epochs': epoch + 1 - first_epoch,
                   'seconds': round(time.perf_counter() - self._start, 1)}
            with atomic_path(path) as tmp:
                Path(tmp).write_text(json.dumps(earlier + [now]) + '\n')

    return SittingClock()


def read_sittings(path, before_epoch):
    """The sittings that :func:`sitting_clock` recorded and that began before
    ``before_epoch``: those before the sitting that starts there (a stale file may still hold
    entries of its own). Empty if none or unreadable."""
    try:
        sittings = json.loads(Path(path).read_text())
        return [s for s in sittings if isinstance(s, dict) and
                {'first_epoch', 'epochs', 'seconds'} <= set(s) and s['first_epoch'] < before_epoch]
    except (OSError, ValueError, TypeError):
        return []


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


def split_items(items, train_folds, valid_folds):
    """Items of the training folds and of the validation folds."""
    overlap = set(train_folds) & set(valid_folds)
    if overlap:
        raise CTCChromaError(f'folds {sorted(overlap)} are both training and validation folds')
    return ([it for it in items if it.fold in train_folds],
            [it for it in items if it.fold in valid_folds])

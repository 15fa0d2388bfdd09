"""The CTC chroma model: reduced deep-salience CNN, fixed chroma pooling, blank unit, softmax.

Notebook: 04_Model_and_Training.ipynb

Architecture (Zalkow & Müller 2020, Sec. 3; identical to the authors' published
checkpoints, see ``published.py``)::

    hcqt (batch, T, 216, 6)      # HCQT, time first, L2-normalized per frame and harmonic
    bendy1     Conv2D 64 (3x3)  + LeakyReLU(0.3)      3 520 params
    bendy2     Conv2D 32 (3x3)  + LeakyReLU(0.3)     18 464
    smoothy1   Conv2D 32 (3x3)  + LeakyReLU(0.3)      9 248
    smoothy2   Conv2D 32 (3x3)  + LeakyReLU(0.3)      9 248
    distribute Conv2D  8 (3x42) + LeakyReLU(0.3)     32 264
    squishy    Conv2D  1 (1x1)  + sigmoid                 9
    salience   (batch, T, 216)  pitch salience
    chroma_pool Dense 216->12, no bias, FIXED (non-trainable)  2 592
    blank_pool  Dense 216->1 with bias (trainable)               217
    logits      concatenate -> (batch, T, 13), blank last
    softmax     over the 13 classes (no temperature)

Total 75 562 parameters, of which 72 970 trainable and 2 592 (the chroma pooling)
fixed.

What the checkpoints fixed where the paper's description leaves room:

* every convolution uses ``padding='same'`` (so T frames in give T frames out) and a
  bias; there is no batch normalization;
* the LeakyReLU slope is 0.3 (the Keras default the authors relied on);
* the chroma pooling is a plain sum: pitch bin ``b`` (36 bins per octave, bin 0 = C1)
  goes to chroma ``(b // 3) % 12``, i.e. bins C, C+1/3, C+2/3 semitone form class C
  (the three bins are not centred on the semitone);
* the blank unit is a trainable linear unit (weights and bias) on the salience;
* the softmax has no temperature or extra bias.

The salience has a limited receptive field in time: five 3-frame convolutions see
:data:`CONTEXT_FRAMES` = 5 frames on each side, which lets :func:`predict_probs` cut
long inputs into overlapping chunks with results identical to one unchunked run.
"""
import threading
import warnings
from pathlib import Path

import numpy as np

from .constants import HCQT, NUM_CLASSES
from .ctc import import_tensorflow
from .errors import CTCChromaError
from .kinds import PUBLISHED_PREFIX, WEIGHTS_SUFFIX, resolve
from .normalization import normalize_columns
from .threads import check_cancelled

# TensorFlow is imported inside the functions that need it (through import_tensorflow,
# which keeps its native start-up lines off stderr): importing it takes seconds, which
# the command line saves for inputs it rejects anyway.

LEAKY_RELU_SLOPE = 0.3
"""Negative slope of the LeakyReLU activations (Keras default in the published models)."""

CONV_LAYERS = (
    ('bendy1', 64, (3, 3)),
    ('bendy2', 32, (3, 3)),
    ('smoothy1', 32, (3, 3)),
    ('smoothy2', 32, (3, 3)),
    ('distribute', 8, (3, 42)),
)
"""Name, number of filters and kernel size (time, pitch) of the LeakyReLU convolutions."""

CONTEXT_FRAMES = sum(k[0] // 2 for _, _, k in CONV_LAYERS)
"""Frames of context on each side that one output frame depends on (5)."""

DEFAULT_CHUNK_FRAMES = 1500
"""Output frames per forward pass in :func:`predict_probs` (one minute at 25 Hz)."""

_MODEL_CACHE = {}
_MODEL_LOCK = threading.RLock()  # threads computing features load and compile a model once


def chroma_pooling_matrix(n_bins=HCQT.n_bins, bins_per_octave=HCQT.bins_per_octave):
    """Fixed 0/1 matrix that sums the pitch-salience bins of each chroma class.

    Notebook: 04_Model_and_Training.ipynb

    Args:
        n_bins (int): Number of pitch bins (default 216)
        bins_per_octave (int): Pitch bins per octave (default 36); bin 0 is a C

    Returns:
        pooling (np.ndarray): Matrix (n_bins x 12), float32; ``pooling[b, c] = 1`` iff
            bin ``b`` belongs to chroma ``c``
    """
    bins_per_semitone = bins_per_octave // 12
    chroma_of_bin = (np.arange(n_bins) // bins_per_semitone) % 12
    pooling = np.zeros((n_bins, 12), dtype=np.float32)
    pooling[np.arange(n_bins), chroma_of_bin] = 1.0
    return pooling


def build_model(n_bins=HCQT.n_bins, n_harmonics=HCQT.n_harmonics):
    """Build the CTC chroma model (untrained, chroma pooling set).

    Notebook: 04_Model_and_Training.ipynb

    Args:
        n_bins (int): Pitch bins of the HCQT (default 216)
        n_harmonics (int): Harmonics of the HCQT (default 6)

    Returns:
        model (keras.Model): Input (batch, T, n_bins, n_harmonics) float32, output
            (batch, T, 13) softmax probabilities, blank last. 75 562 parameters
            (72 970 trainable).
    """
    import_tensorflow()
    import keras

    hcqt = keras.Input(shape=(None, n_bins, n_harmonics), name='hcqt')
    y = hcqt
    for name, filters, kernel in CONV_LAYERS:
        y = keras.layers.Conv2D(filters, kernel, padding='same', name=name)(y)
        y = keras.layers.LeakyReLU(negative_slope=LEAKY_RELU_SLOPE, name=f'{name}_leaky_relu')(y)
    y = keras.layers.Conv2D(1, (1, 1), padding='same', activation='sigmoid', name='squishy')(y)
    salience = keras.layers.Reshape((-1, n_bins), name='salience')(y)
    chroma_pool = keras.layers.Dense(12, use_bias=False, trainable=False, name='chroma_pool')
    chroma = chroma_pool(salience)
    blank = keras.layers.Dense(1, name='blank_pool')(salience)
    logits = keras.layers.Concatenate(axis=-1, name='logits')([chroma, blank])
    probs = keras.layers.Softmax(axis=-1, name='softmax')(logits)
    model = keras.Model(inputs=hcqt, outputs=probs, name='ctc_chroma')
    chroma_pool.set_weights([chroma_pooling_matrix(n_bins, n_bins // HCQT.n_octaves)])
    return model


def prepare_input(hcqt):
    """Turn an HCQT into model input: time first, L2-normalized over pitch.

    Notebook: 04_Model_and_Training.ipynb

    Every (frame, harmonic) pitch vector is scaled to unit Euclidean norm; all-zero
    vectors become the uniform unit vector 1/sqrt(216) (as ``librosa.util.normalize(
    hcqt.T, norm=2, fill=True, axis=1)`` in the authors' code).

    Args:
        hcqt (np.ndarray): HCQT (6 x 216 x T), log-compressed magnitudes

    Returns:
        x (np.ndarray): Model input (T x 216 x 6), float32

    Raises:
        CTCChromaError: Not three axes, or non-finite values
    """
    hcqt = np.asarray(hcqt)
    if hcqt.ndim != 3:
        raise CTCChromaError(f'HCQT must have 3 axes (harmonics, bins, frames), got shape {hcqt.shape}')
    if not np.all(np.isfinite(hcqt)):
        raise CTCChromaError('HCQT contains non-finite values')
    x = np.ascontiguousarray(hcqt.T, dtype=np.float32)
    return np.ascontiguousarray(normalize_columns(x, axis=1))


def _forward_fn(model):
    """A compiled forward pass for any (batch, T) shape, kept with the model."""
    tf = import_tensorflow()

    with _MODEL_LOCK:
        fn = getattr(model, '_ctc_forward', None)
        if fn is None:
            spec = tf.TensorSpec(shape=(None, None) + tuple(model.input_shape[2:]),
                                 dtype=tf.float32)
            fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
            model._ctc_forward = fn
    return fn


def predict_probs(model, hcqt, *, chunk_frames=DEFAULT_CHUNK_FRAMES):
    """Class probabilities of every frame of an HCQT.

    Notebook: 04_Model_and_Training.ipynb

    Long inputs are processed in chunks of ``chunk_frames`` output frames, each with
    :data:`CONTEXT_FRAMES` extra frames on both sides; since no output frame sees
    further, the result equals one unchunked forward pass.

    Args:
        model (keras.Model): Model from :func:`build_model` / :func:`load_model`
        hcqt (np.ndarray): HCQT (6 x 216 x T)
        chunk_frames (int): Output frames per forward pass (default 1500)

    Returns:
        probs (np.ndarray): Probabilities (13 x T), float32, blank last (row 12)
    """
    tf = import_tensorflow()

    x = prepare_input(hcqt)
    n_frames = x.shape[0]
    if n_frames == 0:
        return np.zeros((NUM_CLASSES, 0), dtype=np.float32)
    chunk_frames = max(int(chunk_frames), 1)
    forward = _forward_fn(model)
    probs = np.empty((n_frames, NUM_CLASSES), dtype=np.float32)
    for start in range(0, n_frames, chunk_frames):
        check_cancelled()  # a computation no longer wanted ends here (threads.map_in_order)
        end = min(start + chunk_frames, n_frames)
        lo = max(start - CONTEXT_FRAMES, 0)
        hi = min(end + CONTEXT_FRAMES, n_frames)
        out = forward(tf.constant(x[None, lo:hi]))[0].numpy()
        probs[start:end] = out[start - lo:end - lo]
    return np.ascontiguousarray(probs.T)


def _model_kind(spec):
    """The learned or published :class:`ctc_chroma_lib.kinds.Kind` named by ``spec``, or None
    (a path)."""
    if not isinstance(spec, str):
        return None
    try:
        kind = resolve(spec)
    except CTCChromaError:
        if spec.startswith(PUBLISHED_PREFIX):
            raise  # an unknown published ID, not a file name
        return None
    return kind if kind.learned else None


def weights_path(spec):
    """The weights file behind a model spec (None for published checkpoints).

    Args:
        spec (str or Path): 'teaching', 'teaching-strong', 'teaching-linear',
            'teaching-<kind>-<split>', 'published:<ID>' or a path to a ``.weights.h5`` file

    Returns:
        path (Path or None): Weights file; None for 'published:<ID>'
    """
    kind = _model_kind(spec)
    if kind is not None:
        return kind.weights
    return Path(spec)


def _load_weights_file(path):
    path = Path(path)
    if not path.is_file():
        raise CTCChromaError(f'weights file not found: {path}')
    if not path.name.endswith(WEIGHTS_SUFFIX):
        raise CTCChromaError(f'not a {WEIGHTS_SUFFIX} file: {path}')
    model = build_model()
    try:
        # Keras only warns when parts of a file do not match the model and keeps fresh
        # weights there; such a file is incompatible, not loaded.
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            model.load_weights(path)
    except Exception as e:  # Keras raises many types (OSError, ValueError, KeyError)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CTCChromaError(f'incompatible or corrupt weights file {path}: {first}') from None
    return model


def load_published(model_id):
    """Build the model and set the weights of one of the authors' checkpoints.

    Notebook: 08_Published_Models.ipynb

    Args:
        model_id (str): One of :data:`ctc_chroma_lib.published.PUBLISHED_MODEL_IDS`, e.g.
            'v2_ctc_train123valid4'

    Returns:
        model (keras.Model): As :func:`build_model`, with the checkpoint's weights
            (:func:`ctc_chroma_lib.published.read_checkpoint`)

    Raises:
        CTCChromaError: Unknown ID, package not installed, or a checkpoint that does not fit
    """
    from .published import read_checkpoint

    weights = read_checkpoint(model_id)
    model = build_model()
    for name, arrays in weights.items():
        layer = model.get_layer(name)
        expected = [tuple(w.shape) for w in layer.weights]
        if expected != [a.shape for a in arrays]:
            raise CTCChromaError(f'published model {model_id!r}: layer {name} has shapes '
                                 f'{[a.shape for a in arrays]} in the checkpoint, expected {expected}')
        layer.set_weights(arrays)
    return model


def load_model(spec='teaching'):
    """Load a CTC chroma model by spec; loaded models are cached in-process.

    Notebook: 04_Model_and_Training.ipynb

    Args:
        spec (str or Path): 'teaching' (CTC, MTD-teaching), 'teaching-strong',
            'teaching-linear', 'teaching-<kind>-<split>' (a cross-validation model),
            'published:<ID>' (authors' checkpoint, see ``published.PUBLISHED_MODEL_IDS``)
            or a path to a ``.weights.h5`` file (default 'teaching')

    Returns:
        model (keras.Model): Model as from :func:`build_model` with weights loaded

    Raises:
        CTCChromaError: Unknown model, weights not trained yet (says how to train them), or
            an incompatible or corrupt file
    """
    with _MODEL_LOCK:
        return _load_model_once(spec)


def _load_model_once(spec):
    kind = _model_kind(spec)
    if kind is not None and kind.family == 'published':
        key = kind.name
    else:
        if kind is not None:
            kind.check()  # missing weights: say how to train them
        path = weights_path(spec).resolve()
        # Key files by path and modification, so retrained weights are loaded afresh.
        stat = path.stat() if path.is_file() else None
        key = (str(path), stat.st_mtime_ns, stat.st_size) if stat else None
    if key is not None and key in _MODEL_CACHE:
        return _MODEL_CACHE[key]
    if kind is not None and kind.family == 'published':
        model = load_published(kind.published_id)
    else:
        model = _load_weights_file(weights_path(spec))
    if key is not None:
        _MODEL_CACHE[key] = model
    return model

"""The authors' published CTC chroma models (package ``ctc-chroma==2.1``) in this project's model.

Notebook: 04_Model_and_Training.ipynb

The package ships 25 TensorFlow checkpoints ``models/model_<ID>.index/.data-*``,
trained on the Schubert Winterreise / Musical Theme datasets with the folds in the ID
(e.g. ``v2_ctc_train123valid4``; ``ctc``, ``strong`` or ``linear`` loss). The package
itself targets a 2020 TensorFlow, so it is never imported: its files are located on
disk and the checkpoint tensors are read with ``tf.train.load_checkpoint`` (:func:`read_checkpoint`);
:func:`ctc_chroma_lib.model.load_published` sets them on the layers of
:func:`ctc_chroma_lib.model.build_model`.

Checkpoint variables (object-based, numbered in layer order)::

    layer_with_weights-0 .. -5 /{kernel,bias}   bendy1, bendy2, smoothy1, smoothy2,
                                                distribute, squishy (Conv2D)
    layer_with_weights-6/layer/kernel           chroma_pool (216 x 12, fixed 0/1)
    layer_with_weights-7/layer/{kernel,bias}    blank unit (216 x 1, 1)
"""
import importlib.util
import sys
from pathlib import Path

from .errors import CTCChromaError

PACKAGE = 'ctc_chroma'
"""Import name of the authors' package (installed as ``ctc-chroma==2.1``)."""

CONV_LAYER_NAMES = ('bendy1', 'bendy2', 'smoothy1', 'smoothy2', 'distribute', 'squishy')
"""Layers of :func:`build_model` behind ``layer_with_weights-0..5``."""


def _variable(index, name, wrapped=False):
    inner = 'layer/' if wrapped else ''
    return f'layer_with_weights-{index}/{inner}{name}/.ATTRIBUTES/VARIABLE_VALUE'


def published_models_dir():
    """Folder of the authors' checkpoints, found without importing their package.

    Notebook: 08_Published_Models.ipynb

    Returns:
        path (Path or None): ``.../site-packages/ctc_chroma/models``, or None when the
            package is not installed
    """
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    candidates = []
    if spec is not None:
        candidates += [Path(p) for p in (spec.submodule_search_locations or [])]
        if spec.origin:
            candidates.append(Path(spec.origin).parent)
    candidates += [Path(p) / PACKAGE for p in sys.path if p]
    for folder in candidates:
        models = folder / 'models'
        if models.is_dir() and any(models.glob('model_*.index')):
            return models
    return None


def _list_ids():
    models = published_models_dir()
    if models is None:
        return ()
    return tuple(sorted(p.name[len('model_'):-len('.index')] for p in models.glob('model_*.index')))


PUBLISHED_MODEL_IDS = _list_ids()
"""IDs of the authors' checkpoints found on disk (25 with ``ctc-chroma==2.1``), sorted."""


def checkpoint_prefix(model_id):
    """Path prefix of the checkpoint of one published model.

    Notebook: 08_Published_Models.ipynb

    Args:
        model_id (str): One of :data:`PUBLISHED_MODEL_IDS`, e.g. 'v2_ctc_train123valid4'

    Returns:
        prefix (Path): ``.../models/model_<ID>`` (the checkpoint files add ``.index``,
            ``.data-...``)
    """
    models = published_models_dir()
    if models is None:
        raise CTCChromaError(
            "the authors' package ctc-chroma (for published:<ID> models) is not installed; "
            'install it with `pip install --no-deps ctc-chroma==2.1` (`make setup` does)')
    if model_id not in PUBLISHED_MODEL_IDS:
        raise CTCChromaError(f'unknown published model ID {model_id!r}; valid IDs: '
                             + ', '.join(PUBLISHED_MODEL_IDS))
    return models / f'model_{model_id}'


def read_checkpoint(model_id):
    """The weights of a published model as NumPy arrays, by layer name.

    Notebook: 08_Published_Models.ipynb

    Args:
        model_id (str): One of :data:`PUBLISHED_MODEL_IDS`

    Returns:
        weights (dict): Layer name -> list of arrays in Keras order ([kernel, bias]):
            the six convolutions, 'chroma_pool' ([kernel 216 x 12]) and 'blank_pool'
            ([kernel 216 x 1, bias (1,)])
    """
    from .ctc import import_tensorflow
    tf = import_tensorflow()

    prefix = checkpoint_prefix(model_id)
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        weights = {name: [reader.get_tensor(_variable(i, 'kernel')), reader.get_tensor(_variable(i, 'bias'))]
                   for i, name in enumerate(CONV_LAYER_NAMES)}
        weights['chroma_pool'] = [reader.get_tensor(_variable(6, 'kernel', wrapped=True))]
        weights['blank_pool'] = [reader.get_tensor(_variable(7, 'kernel', wrapped=True)),
                                 reader.get_tensor(_variable(7, 'bias', wrapped=True))]
    except (tf.errors.OpError, ValueError) as e:
        raise CTCChromaError(f'cannot read published checkpoint {prefix}: {e}') from None
    return weights

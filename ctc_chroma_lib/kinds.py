"""Feature kinds: the one registry of what each chroma kind is and where its model lives.

Every chroma in this project has a *kind*. Six are named (:data:`KINDS`):

- learned by this project's trainer (:mod:`ctc_chroma_lib.training`): ``ctc`` (the paper's
  CTC loss on weak alignments), ``strong`` and ``linear`` (frame-wise cross-entropy);
- computed without a model of this project: ``cqt`` and ``cens`` (standard chroma,
  :mod:`ctc_chroma_lib.standard_chroma`) and ``basic-pitch`` (Basic Pitch's notes folded to
  chroma, :mod:`ctc_chroma_lib.basic_pitch_chroma`).

Two more families name a model instead of a kind: ``published:<ID>``, one of the authors'
checkpoints (:mod:`ctc_chroma_lib.published`), and ``teaching-<kind>-<split>``, a learned
kind trained on one cross-validation split (:data:`SPLITS`). A path to a ``.weights.h5``
file (a model trained with ``ctc-chroma train --out``) names a learned model too.
:func:`resolve` turns any of these names into a :class:`Kind`; the rest of the package asks
it, and nothing else, what a name means.
"""
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import constants
from .constants import N_FOLDS
from .errors import CTCChromaError

PUBLISHED_PREFIX = 'published:'
"""Prefix of the names of the authors' checkpoints: ``published:<ID>``."""

SPLITS = ('train123valid4', 'train234valid5', 'train345valid1', 'train451valid2',
          'train512valid3')
"""The five cross-validation splits, named like the authors' checkpoint IDs: three training
folds, one validation fold, and the remaining fold held out for testing. The shipped
``teaching-<kind>`` models are ``train123valid4`` (test fold 5)."""

SHIPPED_SPLIT = 'train123valid4'
"""The split of the shipped models (and of the authors' ``v2_ctc_train123valid4``)."""


@dataclass(frozen=True)
class Kind:
    """A feature kind, or a model standing for one: what computes it and from what.

    Attributes:
        name (str): The canonical name: 'ctc', 'cqt', 'published:<ID>',
            'teaching-<kind>-<split>' or the path of a ``.weights.h5`` file
        family (str): 'learned' (this project's models), 'published' (the authors') or
            'computed' (no model of this project)
        description (str): One line for help texts and tables
        training (str or None): For learned kinds, the targets it is trained on: 'ctc',
            'strong' or 'linear'
        split (str or None): For learned kinds, the cross-validation split of its model
        compute (str or None): For computed kinds, ``'module:function'`` of this package
            returning ``(chroma, times)`` from audio at 22050 Hz
        recipe (tuple): For learned kinds, the training defaults (see below)
    """

    name: str
    family: str
    description: str
    training: Optional[str] = None
    split: Optional[str] = None
    compute: Optional[str] = None
    recipe: tuple = ()
    """For learned kinds, ``(field, value)`` pairs: the defaults of
    :class:`ctc_chroma_lib.training.TrainingConfig` that make the shipped model."""

    @property
    def path(self) -> Optional[str]:
        """For a model given as a weights file (a name ending in :data:`WEIGHTS_SUFFIX`), its
        path; None otherwise."""
        is_file = self.family == 'learned' and self.name.endswith(WEIGHTS_SUFFIX)
        return self.name if is_file else None

    @property
    def learned(self) -> bool:
        """True where a chroma model (13 outputs, blank last) computes the kind."""
        return self.family != 'computed'

    @property
    def model(self) -> Optional[str]:
        """Model spec for :func:`ctc_chroma_lib.model.load_model` (None if computed)."""
        if self.family == 'published':
            return self.name
        if self.path is not None:
            return self.path
        if self.family == 'learned':
            return model_name(self.training, self.split)
        return None

    @property
    def smoothing(self) -> int:
        """Frames of the moving average of :func:`ctc_chroma_lib.chroma.postprocess`:
        :data:`ctc_chroma_lib.constants.CTC_SMOOTHING_FRAMES` for CTC models (``ctc``, its
        splits, the published ``*_ctc_*`` checkpoints, and a weights file whose JSON
        configuration names ``"kind": "ctc"`` or is missing), 1 (none) for frame-wise models
        (``strong``, ``linear``, the published ``*_strong_*`` and ``*_linear_*``) and computed
        kinds."""
        if self.family == 'computed':
            return 1
        if self.family == 'published':
            training = self.published_id.split('_')[1]  # v2_strong_train123valid4 -> strong
        elif self.path is not None:
            training = _training_of_weights_file(self.path)
        else:
            training = self.training
        return constants.CTC_SMOOTHING_FRAMES if training in ('ctc', None) else 1

    @property
    def published_id(self) -> Optional[str]:
        """The checkpoint ID of a published model (None otherwise)."""
        return self.name[len(PUBLISHED_PREFIX):] if self.family == 'published' else None

    @property
    def weights(self) -> Optional[Path]:
        """The ``.weights.h5`` file of a learned kind (None otherwise)."""
        if self.family != 'learned':
            return None
        if self.path is not None:
            return Path(self.path)
        return Path(constants.WEIGHTS_DIR) / (split_model_name(self.training, self.split)
                                              + WEIGHTS_SUFFIX)

    def check(self):
        """Raise :class:`CTCChromaError` with what to do when the kind cannot be computed now.

        Raises:
            CTCChromaError: Weights not trained yet, or a package that is not installed
        """
        if self.path is not None:
            if not self.weights.is_file():
                raise CTCChromaError(f'weights file not found: {self.path}')
        elif self.family == 'learned':
            if not self.weights.is_file():
                how = ('`make train`' if self.split == SHIPPED_SPLIT else
                       f'`make train SPLIT={self.split}` or `ctc-chroma train --kind '
                       f'{self.training} --split {self.split}`')
                raise CTCChromaError(f'weights of {self.name!r} are missing ({self.weights}); '
                                     f'run {how} to create them')
        elif self.family == 'published':
            from .published import checkpoint_prefix
            checkpoint_prefix(self.published_id)
        elif self.name == 'basic-pitch':
            from .basic_pitch_chroma import model_path
            model_path()

    def fingerprint(self) -> str:
        """Hash of what computes the kind: its weights, checkpoint or model; 'none' if nothing.

        Part of cache keys and of an index's parameters, so that retrained weights miss
        the caches.
        """
        from .fileio import hash_file_into

        if self.name == 'basic-pitch':
            from .basic_pitch_chroma import fingerprint
            return fingerprint()
        if self.family == 'computed':
            return 'none'
        self.check()
        hasher = hashlib.sha256(self.model.encode())
        if self.family == 'published':
            from .published import checkpoint_prefix
            prefix = checkpoint_prefix(self.published_id)
            for part in sorted(prefix.parent.glob(prefix.name + '.*')):
                hash_file_into(hasher, part)
        else:
            hash_file_into(hasher, self.weights)
        return hasher.hexdigest()[:16]

    def compute_function(self):
        """The function computing a computed kind: ``f(y, sr=22050) -> (chroma, times)``."""
        import importlib
        if self.compute is None:
            raise CTCChromaError(f'{self.name!r} is computed by a model, not by a function')
        module, function = self.compute.split(':')
        return getattr(importlib.import_module(f'.{module}', __package__), function)


def _training_of_weights_file(path):
    """The training kind ('ctc', 'strong', 'linear') that the JSON configuration beside a
    ``.weights.h5`` file records (``ctc-chroma train`` writes it); None where there is no
    readable one."""
    import json
    config = Path(str(path)[:-len(WEIGHTS_SUFFIX)] + '.json')
    try:
        training = json.loads(config.read_text())['config']['kind']
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return training if training in ('ctc', 'strong', 'linear') else None


CTC_RECIPE = (('epochs', 45), ('learning_rate', 1e-3), ('patience', 45), ('monitor', 'val_loss'),
              ('random_margin', 0.5), ('pitch_shift', 6), ('warmup_epochs', 2.0),
              ('lr_decay', 'constant'), ('clipnorm', 5.0), ('weight_average', 0.995),
              ('init', 'blank-prior'))
"""Training recipe of the shipped ``ctc`` model. It starts from random weights, as in the
paper, except for the blank unit's bias, which starts at the blank's prior
(:func:`ctc_chroma_lib.training.blank_prior_init`: without it some runs fall into the dead
plateau, README *The dead plateau*), at Adam's learning rate of 1e-3, reached by a warm-up
over two epochs and then kept, with gradient clipping, for 45 epochs; every epoch sees
every training theme in a random transposition (up to 6 semitones) and with random margins
(up to 0.5 s) around its weak segment. Validation, the choice of the epoch (lowest
validation loss) and the shipped weights use a moving average of the weights (momentum
0.995, updated every step: about the last 2.5 epochs). With the blank at its prior it starts
on the *blank plateau* (notebook 04), which it leaves by itself."""

FRAMEWISE_RECIPE = (('epochs', 25), ('learning_rate', 1e-3), ('patience', 25),
                    ('monitor', 'val_loss'), ('random_margin', 0.5), ('pitch_shift', 6),
                    ('warmup_epochs', 2.0), ('lr_decay', 'cosine'), ('clipnorm', 5.0),
                    ('weight_average', 0.0), ('init', 'harmonic-prior'))
"""Training recipe of the shipped frame-wise models (``strong``, ``linear``): the CTC model's
augmentation (pitch shifts, random margins), warm-up, cosine decay and clipping, for 25
epochs, but from :func:`ctc_chroma_lib.training.harmonic_prior_init`: from random weights
the frame-wise loss kept the strong model on an all-blank plateau (validation MRR 0.04 after
4 epochs, ``weights/strong-random-init.partial.log.csv``)."""

KINDS = {
    'ctc': Kind('ctc', 'learned', 'learned with the CTC loss from weak alignments (the paper)',
                training='ctc', split=SHIPPED_SPLIT, recipe=CTC_RECIPE),
    'strong': Kind('strong', 'learned', 'learned frame-wise from strong (note-wise) alignments',
                   training='strong', split=SHIPPED_SPLIT, recipe=FRAMEWISE_RECIPE),
    'linear': Kind('linear', 'learned',
                   'learned frame-wise from weak alignments stretched linearly',
                   training='linear', split=SHIPPED_SPLIT, recipe=FRAMEWISE_RECIPE),
    'cqt': Kind('cqt', 'computed', 'chroma of a CQT (standard baseline)',
                compute='standard_chroma:chroma_cqt'),
    'cens': Kind('cens', 'computed', 'CENS: smoothed, quantized CQT chroma (standard baseline)',
                 compute='standard_chroma:chroma_cens'),
    'basic-pitch': Kind('basic-pitch', 'computed',
                        "Basic Pitch's note posteriorgram folded to chroma (a modern peer)",
                        compute='basic_pitch_chroma:chroma_basic_pitch'),
}
"""The named feature kinds, in the order of tables and help texts."""

FEATURE_TYPES = tuple(KINDS)
"""Names of the named kinds; 'published:<ID>' and 'teaching-<kind>-<split>' name more."""

TRAINING_KINDS = tuple(name for name, kind in KINDS.items() if kind.family == 'learned')
"""Kinds this project trains (``ctc-chroma train --kind``): ctc, strong, linear."""

COMPUTED_KINDS = tuple(name for name, kind in KINDS.items() if kind.family == 'computed')
"""Kinds computed from the audio without a model of this project."""

CTC_MODEL = 'teaching'
"""Model name of the shipped ``ctc`` kind (also accepted: 'teaching-ctc')."""

_SPLIT_MODEL = re.compile(r'teaching-(?P<kind>[a-z]+)(?:-(?P<split>train\d+valid\d))?')

WEIGHTS_SUFFIX = '.weights.h5'
"""Suffix of the weights files of this project's models (a name ending in it is a path)."""


def parse_split(split):
    """Folds of a split name such as 'train234valid5'.

    Args:
        split (str): One of :data:`SPLITS`

    Returns:
        train_folds (tuple of int): Training folds
        valid_folds (tuple of int): The validation fold
        test_fold (int): The held-out fold

    Raises:
        CTCChromaError: Not one of :data:`SPLITS`
    """
    if split not in SPLITS:
        raise CTCChromaError(f'unknown split {split!r}; valid splits: {", ".join(SPLITS)}')
    train, valid = split[len('train'):].split('valid')
    train_folds, valid_folds = tuple(int(f) for f in train), (int(valid),)
    (test_fold,) = set(range(1, N_FOLDS + 1)) - set(train_folds) - set(valid_folds)
    return train_folds, valid_folds, test_fold


def split_holding_out(fold):
    """The split whose models never saw ``fold`` (1 -> 'train234valid5').

    Raises:
        CTCChromaError: Not a fold 1-5
    """
    for split in SPLITS:
        if parse_split(split)[2] == fold:
            return split
    raise CTCChromaError(f'no split holds out fold {fold!r}; folds are 1 to {N_FOLDS}')


def split_model_name(kind, split=SHIPPED_SPLIT):
    """Name of the weights of a kind trained on a split: 'teaching-ctc' for the shipped split,
    'teaching-ctc-train234valid5' for the others.

    Raises:
        CTCChromaError: Unknown split or a kind that is not trained
    """
    parse_split(split)
    if kind not in TRAINING_KINDS:
        raise CTCChromaError(f'unknown training kind {kind!r}; choose one of '
                             f'{", ".join(TRAINING_KINDS)}')
    return f'teaching-{kind}' if split == SHIPPED_SPLIT else f'teaching-{kind}-{split}'


def model_name(kind, split=SHIPPED_SPLIT):
    """Model spec of a learned kind on a split: :data:`CTC_MODEL` for the shipped ``ctc``,
    else :func:`split_model_name`."""
    if kind == 'ctc' and split == SHIPPED_SPLIT:
        return CTC_MODEL
    return split_model_name(kind, split)


def for_split(kind, split):
    """The learned kind ``kind`` as trained on ``split`` (e.g. for cross-validation).

    Args:
        kind (str): One of :data:`TRAINING_KINDS`
        split (str): One of :data:`SPLITS`

    Returns:
        kind (Kind): Named like its weights ('teaching-ctc-train234valid5'), or the shipped
            kind itself ('ctc') for :data:`SHIPPED_SPLIT`
    """
    return resolve(split_model_name(kind, split))


def resolve(name):
    """The :class:`Kind` behind a kind or model name.

    Args:
        name (str): A named kind (:data:`FEATURE_TYPES`), 'published:<ID>', or a model
            name of this project: 'teaching' (= ctc), 'teaching-<kind>' (the shipped
            models), 'teaching-<kind>-<split>', or the path of a ``.weights.h5`` file written
            by ``ctc-chroma train`` (a learned model without a split; the file is checked by
            :meth:`Kind.check`, not here)

    Returns:
        kind (Kind)

    Raises:
        CTCChromaError: Unknown name, split or published ID (weights are not checked here;
            see :meth:`Kind.check`)
    """
    if not isinstance(name, str):
        raise CTCChromaError(f'a feature kind is a name, got {type(name).__name__}')
    if name in KINDS:
        return KINDS[name]
    if name.startswith(PUBLISHED_PREFIX):
        from .published import checkpoint_prefix
        checkpoint_prefix(name[len(PUBLISHED_PREFIX):])  # raises for unknown IDs
        return Kind(name, 'published', f"the authors' checkpoint {name[len(PUBLISHED_PREFIX):]}")
    if name == CTC_MODEL:
        return KINDS['ctc']
    if name.endswith(WEIGHTS_SUFFIX):
        return Kind(name, 'learned', f'the model in {name}')
    match = _SPLIT_MODEL.fullmatch(name)
    if match and match['kind'] in TRAINING_KINDS:
        split = match['split'] or SHIPPED_SPLIT
        parse_split(split)
        if split == SHIPPED_SPLIT:
            return KINDS[match['kind']]
        base = KINDS[match['kind']]
        return Kind(name, 'learned', f'{base.description}, split {split}',
                    training=base.training, split=split, recipe=base.recipe)
    raise CTCChromaError(f'unknown chroma kind {name!r}; valid kinds: '
                         + ', '.join(FEATURE_TYPES) + ', published:<ID>, teaching-<kind>-<split>, '
                         f'or a path to a {WEIGHTS_SUFFIX} file')

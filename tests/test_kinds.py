"""Specification of the feature-kind registry (ctc_chroma_lib.kinds)."""
import pytest

from ctc_chroma_lib import kinds
from ctc_chroma_lib.errors import CTCChromaError
from ctc_chroma_lib.published import PUBLISHED_MODEL_IDS


def test_named_kinds_and_their_families():
    assert kinds.FEATURE_TYPES == ('ctc', 'strong', 'linear', 'cqt', 'cens', 'basic-pitch')
    assert kinds.TRAINING_KINDS == ('ctc', 'strong', 'linear')
    assert kinds.COMPUTED_KINDS == ('cqt', 'cens', 'basic-pitch')
    assert all(kinds.KINDS[k].learned for k in kinds.TRAINING_KINDS)
    assert not any(kinds.KINDS[k].learned for k in kinds.COMPUTED_KINDS)


@pytest.mark.parametrize('name, canonical, model, weights', [
    ('ctc', 'ctc', 'teaching', 'teaching-ctc.weights.h5'),
    ('teaching', 'ctc', 'teaching', 'teaching-ctc.weights.h5'),
    ('teaching-ctc', 'ctc', 'teaching', 'teaching-ctc.weights.h5'),
    ('teaching-ctc-train123valid4', 'ctc', 'teaching', 'teaching-ctc.weights.h5'),
    ('strong', 'strong', 'teaching-strong', 'teaching-strong.weights.h5'),
    ('teaching-linear-train234valid5', 'teaching-linear-train234valid5',
     'teaching-linear-train234valid5', 'teaching-linear-train234valid5.weights.h5'),
])
def test_model_names_resolve_to_one_kind_and_weights_file(name, canonical, model, weights):
    kind = kinds.resolve(name)
    assert (kind.name, kind.model, kind.weights.name) == (canonical, model, weights)
    assert kind.training == canonical.split('-')[1 if '-' in canonical else 0]


def test_a_weights_file_is_a_learned_model_without_a_split(tmp_path):
    path = tmp_path / 'mine.weights.h5'
    kind = kinds.resolve(str(path))
    assert kind.learned and kind.family == 'learned' and kind.split is None
    assert (kind.name, kind.model, kind.weights) == (str(path), str(path), path)
    with pytest.raises(CTCChromaError, match='weights file not found: .*mine.weights.h5'):
        kind.check()
    path.write_bytes(b'first')
    first = kind.fingerprint()
    path.write_bytes(b'second')
    assert kind.fingerprint() != first  # retrained weights miss the caches


def test_computed_kinds_have_no_model_and_a_function():
    kind = kinds.resolve('cqt')
    assert kind.model is None and kind.weights is None
    assert callable(kind.compute_function())
    assert kind.fingerprint() == 'none'


@pytest.mark.skipif(not PUBLISHED_MODEL_IDS, reason="the authors' package is not installed")
def test_published_names_are_checked_once_here():
    kind = kinds.resolve('published:v2_ctc_train123valid4')
    assert kind.family == 'published' and kind.learned
    assert kind.published_id == 'v2_ctc_train123valid4' and kind.weights is None
    with pytest.raises(CTCChromaError, match='unknown published model ID'):
        kinds.resolve('published:v9_nothing')


@pytest.mark.parametrize('name', ['chromagram', 'teaching-cqt', 'teaching-ctc-train12valid3',
                                  'teaching-ctc-train999valid4'])
def test_unknown_names_list_the_valid_ones(name):
    with pytest.raises(CTCChromaError, match='valid'):
        kinds.resolve(name)


def test_missing_split_weights_say_which_command_trains_them(weights_dir):
    with pytest.raises(CTCChromaError, match='make train SPLIT=train345valid1'):
        kinds.for_split('strong', 'train345valid1').check()
    with pytest.raises(CTCChromaError, match=r'run `make train` to create them'):
        kinds.resolve('ctc').check()


def test_every_fold_is_held_out_by_exactly_one_split():
    assert [kinds.split_holding_out(f) for f in range(1, 6)] == [
        'train234valid5', 'train345valid1', 'train451valid2', 'train512valid3',
        'train123valid4']
    with pytest.raises(CTCChromaError):
        kinds.split_holding_out(6)


def test_learned_kinds_carry_their_training_recipe():
    from ctc_chroma_lib.training import KIND_DEFAULTS, TrainingConfig
    assert KIND_DEFAULTS['ctc'] == dict(kinds.KINDS['ctc'].recipe)
    assert TrainingConfig(kind='ctc').epochs == dict(kinds.CTC_RECIPE)['epochs']

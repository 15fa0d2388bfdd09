"""Specification of the NumPy CTC functions (ctc_chroma_lib.ctc)."""
import numpy as np
import pytest

from ctc_chroma_lib import ctc
from ctc_chroma_lib.constants import BLANK_INDEX, NUM_CLASSES
from ctc_chroma_lib.errors import CTCChromaError

C, D, E, BLANK = 0, 2, 4, BLANK_INDEX


def softmax(logits):
    exp = np.exp(logits - logits.max(axis=0, keepdims=True))
    return exp / exp.sum(axis=0, keepdims=True)


def random_logits(num_frames, seed, num_classes=NUM_CLASSES):
    return np.random.default_rng(seed).normal(scale=2.0, size=(num_classes, num_frames))


def test_collapse_merges_repeats_then_removes_blanks():
    assert ctc.ctc_collapse([C, C, BLANK, C, D, D, BLANK]) == [C, C, D]


def test_collapse_without_blank_merges_repeated_notes_into_one():
    assert ctc.ctc_collapse([C, C, C, D, D]) == [C, D]


def test_collapse_of_all_blank_path_is_empty():
    assert ctc.ctc_collapse([BLANK, BLANK, BLANK]) == []


def test_extended_labels_put_blanks_around_and_between_labels():
    np.testing.assert_array_equal(ctc.extended_labels([C, C, D]),
                                  [BLANK, C, BLANK, C, BLANK, D, BLANK])


def test_labels_from_names_and_label_names_are_inverse():
    labels = ctc.labels_from_names('C C D')
    np.testing.assert_array_equal(labels, [C, C, D])
    assert ctc.label_names([BLANK, *labels]) == '- C C D'


def test_unknown_chroma_name_raises_naming_it():
    with pytest.raises(CTCChromaError, match='H'):
        ctc.labels_from_names('C H')


def test_label_equal_to_blank_is_rejected():
    with pytest.raises(CTCChromaError, match='12'):
        ctc.ctc_forward(softmax(random_logits(5, 0)), [C, BLANK])


def test_probs_must_be_a_matrix():
    with pytest.raises(CTCChromaError, match='shape'):
        ctc.ctc_forward(np.ones(13) / 13, [C])


@pytest.mark.parametrize('labels', [[C], [C, D, E], [C, C, D], [D, D, D, D], [E, C, E, C]])
def test_forward_equals_brute_force_enumeration(labels):
    # 4 classes (C, D, E mapped to 0..2 and the blank 3) keep the 4 ** 8 paths enumerable.
    small = {C: 0, D: 1, E: 2}
    small_labels = [small[k] for k in labels]
    probs = softmax(random_logits(8, seed=len(labels), num_classes=4))
    _, nll = ctc.ctc_forward(probs, small_labels)
    nll_brute, paths = ctc.ctc_brute_force(probs, small_labels)
    assert len(paths) > 0
    assert nll == pytest.approx(nll_brute, rel=1e-10)


def test_brute_force_lists_exactly_the_paths_that_collapse_to_the_labels():
    _, paths = ctc.ctc_brute_force(np.full((3, 3), 1 / 3), [0, 0])
    assert paths == [(0, 2, 0)]


def test_repeated_label_without_room_for_a_blank_is_impossible():
    # C C needs three frames (C - C); with two frames no path collapses to it.
    _, nll = ctc.ctc_forward(softmax(random_logits(2, 1)), [C, C])
    assert nll == np.inf


@pytest.mark.parametrize('labels', [[C, D, E], [C, C, D], [D, D, D, D], [E]])
def test_forward_equals_tensorflow_ctc_loss(labels):
    logits = random_logits(20, seed=7 + len(labels)).astype(np.float32)
    nll_tf, _ = ctc.tensorflow_ctc_loss(logits, labels)
    _, nll = ctc.ctc_forward(softmax(logits.astype(np.float64)), labels)
    assert nll == pytest.approx(nll_tf, rel=1e-5)


def test_loss_gradient_is_probs_minus_class_posteriors_as_in_tensorflow():
    logits = random_logits(15, seed=3).astype(np.float32)
    labels = [C, C, D, E]
    probs = softmax(logits.astype(np.float64))
    _, class_posteriors = ctc.ctc_posteriors(probs, labels)
    _, gradient_tf = ctc.tensorflow_ctc_loss(logits, labels)
    np.testing.assert_allclose(probs - class_posteriors, gradient_tf, atol=1e-5)


def test_posteriors_are_distributions_per_frame_on_allowed_states():
    probs = softmax(random_logits(12, seed=5))
    state_posteriors, class_posteriors = ctc.ctc_posteriors(probs, [C, C, D])
    assert state_posteriors.shape == (7, 12) and class_posteriors.shape == (13, 12)
    np.testing.assert_allclose(state_posteriors.sum(axis=0), 1.0)
    np.testing.assert_allclose(class_posteriors.sum(axis=0), 1.0)
    # Every path starts in the first blank or the first label and ends in the last two states.
    assert state_posteriors[2:, 0].sum() == pytest.approx(0.0)
    assert state_posteriors[:-2, -1].sum() == pytest.approx(0.0)


def test_forward_and_backward_give_the_same_likelihood():
    probs = softmax(random_logits(10, seed=9))
    labels = [D, E, E]
    log_alpha, nll = ctc.ctc_forward(probs, labels)
    log_beta = ctc.ctc_backward(probs, labels)
    np.testing.assert_allclose(-np.logaddexp.reduce(log_alpha + log_beta, axis=0), nll)


def test_posteriors_of_impossible_labels_raise():
    with pytest.raises(CTCChromaError, match='no path'):
        ctc.ctc_posteriors(softmax(random_logits(2, 1)), [C, C])


def test_best_path_decode_collapses_the_framewise_argmax():
    path = [BLANK, C, C, BLANK, C, D, D, BLANK]
    probs = np.full((NUM_CLASSES, len(path)), 0.01)
    probs[path, np.arange(len(path))] = 0.9
    labels, decoded_path = ctc.best_path_decode(probs)
    np.testing.assert_array_equal(decoded_path, path)
    assert labels == [C, C, D]


def peaky_probs(spikes, n_frames, n_classes=13, blank=12):
    probs = np.full((n_classes, n_frames), 0.01)
    probs[blank] = 0.9
    for label, t in spikes:
        probs[:, t] = 0.01
        probs[label, t] = 0.9
    return probs / probs.sum(axis=0)


def test_ctc_note_frames_finds_the_spikes_of_a_peaky_output():
    probs = peaky_probs([(3, 2), (3, 6), (5, 9)], 12)
    frames, path = ctc.ctc_note_frames(probs, [3, 3, 5])
    assert frames.tolist() == [[2, 2], [6, 6], [9, 9]]
    # the path is a valid CTC path of the labels: it collapses to them
    extended = ctc.extended_labels([3, 3, 5])
    assert ctc.ctc_collapse(extended[path]) == [3, 3, 5]
    assert np.all(np.diff(path) >= 0) and np.all(np.diff(path) <= 2)


def test_ctc_note_frames_follows_held_notes_and_keeps_every_label():
    probs = np.full((13, 10), 0.01)
    probs[0, :4] = probs[2, 4:8] = probs[4, 8:] = 1.0
    probs /= probs.sum(axis=0)
    frames, _ = ctc.ctc_note_frames(probs, [0, 2, 4])
    assert frames.tolist() == [[0, 3], [4, 7], [8, 9]]
    # a label the output never shows still gets a frame, between its neighbours
    frames, _ = ctc.ctc_note_frames(probs, [0, 7, 2, 4])
    assert frames[0, 1] < frames[1, 0] <= frames[1, 1] < frames[2, 0]


def test_ctc_note_frames_rejects_a_too_short_output():
    with pytest.raises(CTCChromaError, match='no path'):
        ctc.ctc_note_frames(peaky_probs([], 2), [1, 1])

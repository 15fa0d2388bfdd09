"""Specification of subsequence-DTW matching and document ranking (ctc_chroma_lib.retrieval)."""
import numpy as np
import pytest

import libfmp.c7

from ctc_chroma_lib.errors import CTCChromaError
from ctc_chroma_lib.retrieval import (compute_matching_function, document_costs, find_matches,
                                      match_path, rank_documents)


def unit_columns(rng, k, n):
    A = rng.random((k, n))
    return A / np.linalg.norm(A, axis=0)


def one_hot(chromas):
    X = np.zeros((12, len(chromas)), dtype=np.float32)
    X[list(chromas), np.arange(len(chromas))] = 1
    return X


def libfmp_delta(X, Y, stepsize):
    return libfmp.c7.compute_matching_function_dtw(X.astype(np.float64), Y.astype(np.float64),
                                                   stepsize=stepsize)[0]


def assert_same_delta(a, b):
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.isinf(a), np.isinf(b))
    finite = np.isfinite(b)
    np.testing.assert_allclose(a[finite], b[finite], rtol=0, atol=1e-5)


@pytest.mark.parametrize('stepsize', [1, 2])
@pytest.mark.parametrize('N,M', [(20, 700), (150, 1200), (37, 513), (5, 512)])
def test_matching_function_equals_libfmp_on_random_input(stepsize, N, M):
    rng = np.random.default_rng(N * M + stepsize)
    X, Y = unit_columns(rng, 12, N), unit_columns(rng, 12, M)
    assert_same_delta(compute_matching_function(X, Y, stepsize), libfmp_delta(X, Y, stepsize))


@pytest.mark.parametrize('stepsize', [1, 2])
@pytest.mark.parametrize('N,M', [(1, 50), (1, 1), (9, 1), (60, 20), (3, 2)])
def test_matching_function_equals_libfmp_on_edge_shapes(stepsize, N, M):
    rng = np.random.default_rng(7)
    X, Y = unit_columns(rng, 12, N), unit_columns(rng, 12, M)
    assert_same_delta(compute_matching_function(X, Y, stepsize), libfmp_delta(X, Y, stepsize))


@pytest.mark.parametrize('stepsize', [1, 2])
def test_matching_function_equals_libfmp_with_constant_columns(stepsize):
    X = np.full((12, 30), 1 / np.sqrt(12))
    Y = np.full((12, 600), 1 / np.sqrt(12))
    assert_same_delta(compute_matching_function(X, Y, stepsize), libfmp_delta(X, Y, stepsize))


@pytest.mark.parametrize('stepsize', [1, 2])
def test_matching_function_equals_libfmp_for_one_hot_queries_with_flat_rests(stepsize):
    rng = np.random.default_rng(10)
    X = one_hot(rng.integers(0, 12, 40))
    X[:, 10:15] = 1 / np.sqrt(12)
    Y = unit_columns(rng, 12, 800)
    assert_same_delta(compute_matching_function(X, Y, stepsize), libfmp_delta(X, Y, stepsize))


def test_threaded_column_ranges_give_identical_values():
    rng = np.random.default_rng(8)
    X, Y = unit_columns(rng, 12, 20), unit_columns(rng, 12, 30000)
    np.testing.assert_array_equal(compute_matching_function(X, Y, n_jobs=3),
                                  compute_matching_function(X, Y, n_jobs=1))


def test_matching_from_several_caller_threads_at_once_is_correct():
    # callers share the process-wide worker pool; each must get its own, correct result
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(11)
    Y = unit_columns(rng, 12, 30000)
    queries = [one_hot(rng.integers(0, 12, 30)) for _ in range(6)]
    expected = [compute_matching_function(X, Y, n_jobs=1) for X in queries]
    with ThreadPoolExecutor(max_workers=4) as callers:
        results = list(callers.map(lambda X: compute_matching_function(X, Y, n_jobs=2), queries))
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_matching_function_works_for_other_feature_dimensions():
    rng = np.random.default_rng(9)
    X, Y = unit_columns(rng, 5, 10), unit_columns(rng, 5, 300)
    assert_same_delta(compute_matching_function(X, Y), libfmp_delta(X, Y, 2))


def test_matching_function_accepts_float32_like_libfmp():
    rng = np.random.default_rng(3)
    X = unit_columns(rng, 12, 40).astype(np.float32)
    Y = unit_columns(rng, 12, 900).astype(np.float32)
    delta = compute_matching_function(X, Y)
    assert delta.shape == (900,) and delta.dtype == np.float64
    assert_same_delta(delta, libfmp_delta(X, Y, 2))


def test_query_longer_than_twice_the_database_cannot_match():
    rng = np.random.default_rng(0)
    delta = compute_matching_function(unit_columns(rng, 12, 50), unit_columns(rng, 12, 20))
    assert np.all(np.isinf(delta))


def test_matching_function_rejects_bad_shapes_and_stepsize():
    with pytest.raises(CTCChromaError):
        compute_matching_function(np.ones((12, 3)), np.ones((11, 5)))
    with pytest.raises(CTCChromaError):
        compute_matching_function(np.ones((12, 0)), np.ones((12, 5)))
    with pytest.raises(CTCChromaError):
        compute_matching_function(np.ones((12, 3)), np.ones((12, 5)), stepsize=3)
    with pytest.raises(CTCChromaError, match='NaN'):
        compute_matching_function(np.full((12, 3), np.nan), np.ones((12, 5)))


@pytest.mark.parametrize('stepsize', [1, 2])
def test_match_path_equals_libfmp_backtracking(stepsize):
    rng = np.random.default_rng(11)
    X, Y = unit_columns(rng, 12, 25), unit_columns(rng, 12, 400)
    delta, _, D = libfmp.c7.compute_matching_function_dtw(X, Y, stepsize=stepsize)
    end = int(np.argmin(delta))
    backtrack = (libfmp.c7.compute_optimal_warping_path_subsequence_dtw_21 if stepsize == 2
                 else libfmp.c7.compute_optimal_warping_path_subsequence_dtw)
    np.testing.assert_array_equal(match_path(X, Y, end, stepsize), backtrack(D, m=end))


@pytest.mark.parametrize('stepsize', [1, 2])
def test_match_path_recovers_planted_occurrence(stepsize):
    rng = np.random.default_rng(5)
    X = one_hot(np.cumsum(rng.integers(1, 12, 60)) % 12)  # no repeated frames: unique end
    Y = unit_columns(rng, 12, 500).astype(np.float32)
    Y[:, 200:260] = X
    end = int(np.argmin(compute_matching_function(X, Y, stepsize)))
    path = match_path(X, Y, end, stepsize)
    assert (path[0, 1], path[-1, 1]) == (200, 259)


def test_find_matches_returns_every_planted_occurrence_best_first():
    rng = np.random.default_rng(15)
    X = one_hot(np.cumsum(rng.integers(1, 12, 30)) % 12)
    Y = unit_columns(rng, 12, 600).astype(np.float32)
    Y[:, 400:430] = X
    Y[:, 100:130] = 0.9 * X + 0.1 * Y[:, 100:130]  # a slightly disturbed second occurrence
    Y[:, 100:130] /= np.linalg.norm(Y[:, 100:130], axis=0)
    matches = find_matches(X, Y, num_matches=2)
    np.testing.assert_array_equal(matches[:, :2], [[400, 429], [100, 129]])
    assert matches[0, 2] < matches[1, 2]


def rng_documents(seed, count, length=300):
    rng = np.random.default_rng(seed)
    return [(f'doc{i}', unit_columns(rng, 12, length).astype(np.float32)) for i in range(count)]


def test_rank_documents_puts_document_containing_the_query_first():
    rng = np.random.default_rng(1)
    docs = rng_documents(2, 5)
    X = one_hot(np.cumsum(rng.integers(1, 12, 60)) % 12)
    docs[3][1][:, 100:160] = X
    matches = rank_documents(X, docs)
    assert [m.name for m in matches][0] == 'doc3'
    assert [m.rank for m in matches] == [1, 2, 3, 4, 5]
    assert np.all(np.diff([m.cost for m in matches]) >= 0)
    assert matches[0].cost == pytest.approx(0.0, abs=1e-6)
    assert (matches[0].start_frame, matches[0].end_frame) == (100, 159)
    assert (matches[0].start_time, matches[0].end_time) == pytest.approx((4.0, 6.4))


def test_rank_documents_accepts_a_dict_and_runs_sequentially_alike():
    rng = np.random.default_rng(4)
    docs = dict(rng_documents(8, 4))
    X = unit_columns(rng, 12, 30)
    parallel = rank_documents(X, docs, n_jobs=2)
    sequential = rank_documents(X, docs, n_jobs=1)
    assert parallel == sequential


def test_document_costs_are_matching_function_minima_in_input_order():
    rng = np.random.default_rng(6)
    docs = rng_documents(9, 4)
    X = unit_columns(rng, 12, 30)
    expected = [libfmp_delta(X, Y, 2).min() for _, Y in docs]
    np.testing.assert_allclose(document_costs(X, docs), expected, atol=1e-5)


def test_recording_too_short_for_the_query_ranks_last_without_times():
    rng = np.random.default_rng(2)
    X = unit_columns(rng, 12, 40)
    docs = [('short', unit_columns(rng, 12, 10)), ('long', unit_columns(rng, 12, 200))]
    matches = rank_documents(X, docs)
    assert [m.name for m in matches] == ['long', 'short']
    assert np.isinf(matches[1].cost) and matches[1].end_frame == -1
    assert np.isnan(matches[1].start_time)


def test_transposition_invariant_ranking_finds_and_reports_the_shift():
    rng = np.random.default_rng(12)
    docs = rng_documents(13, 4)
    X = one_hot(rng.integers(0, 12, 25).repeat(2))
    docs[2][1][:, 50:100] = np.roll(X, 5, axis=0)
    plain = rank_documents(X, docs)
    invariant = rank_documents(X, docs, transposition_invariant=True)
    assert plain[0].cost > 0.1
    assert invariant[0].name == 'doc2' and invariant[0].shift == 5
    assert invariant[0].cost == pytest.approx(0.0, abs=1e-6)


def test_multi_tempo_keeps_the_best_scaled_query():
    # performed at 12 frames per note; the score tempo gives 3 frames per note, a tempo
    # ratio of 4 that the step sizes (at most 2) cannot bridge, factor 4 matches exactly
    rng = np.random.default_rng(21)
    chromas = np.cumsum(rng.integers(1, 12, 12)) % 12
    Y = unit_columns(rng, 12, 400).astype(np.float32)
    Y[:, 100:244] = one_hot(chromas.repeat(12))
    queries = [(f, one_hot(chromas.repeat(int(round(3 * f))))) for f in (1.0, 1.5, 4.0)]
    best = rank_documents(queries, [('rec', Y)])[0]
    assert best.tempo_factor == 4.0
    assert best.cost == pytest.approx(0.0, abs=1e-6)
    # the first and last notes may be compressed up to twofold at no cost
    assert 100 <= best.start_frame <= 106 and 237 <= best.end_frame <= 243

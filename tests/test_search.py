"""Specification of the two-stage archive search (ctc_chroma_lib.search)."""
import numpy as np
import pytest

from ctc_chroma_lib.errors import CTCChromaError
from ctc_chroma_lib.retrieval import compute_matching_function
from ctc_chroma_lib.search import (COARSE_FACTOR, DocumentList, coarse_chroma, coarse_costs,
                                   search)


def unit_columns(A):
    return (A / np.linalg.norm(A, axis=0)).astype(np.float32)


def rows_of(documents):
    """Coarse rows, first rows and lengths of a list of chromagrams, as a pack stores them."""
    coarse = [coarse_chroma(Y) for Y in documents]
    lengths = np.array([c.shape[1] for c in coarse])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.ascontiguousarray(np.concatenate(coarse, axis=1).T), starts, lengths


def test_coarse_chroma_averages_blocks_of_frames_into_unit_frames():
    X = np.zeros((12, 9), dtype=np.float32)
    X[0, :4] = 1
    X[2, 4:] = 1
    Xc = coarse_chroma(X)
    assert Xc.shape == (12, 3) and COARSE_FACTOR == 4
    assert Xc[0, 0] == 1 and Xc[2, 1] == 1 and Xc[2, 2] == 1
    np.testing.assert_allclose(np.linalg.norm(Xc, axis=0), 1, rtol=1e-6)


def test_coarse_costs_equal_the_matching_function_of_each_recording_alone():
    rng = np.random.default_rng(0)
    documents = [unit_columns(rng.random((12, m))) for m in (37, 5, 120, 64)]
    query = unit_columns(rng.random((12, 30)))
    coarse, starts, lengths = rows_of(documents)
    costs = coarse_costs(query, coarse, starts, lengths, n_jobs=2)
    Xc = coarse_chroma(query)
    for d, Y in enumerate(documents):
        expected = compute_matching_function(Xc, coarse_chroma(Y)).min()
        assert costs[d] == pytest.approx(expected, rel=1e-5) or (
            np.isinf(costs[d]) and np.isinf(expected))


def test_no_coarse_match_spans_two_recordings():
    """A theme split over the end of one recording and the start of the next matches neither."""
    theme = np.zeros((12, 40), dtype=np.float32)
    theme[np.arange(40) % 12, np.arange(40)] = 1
    noise = unit_columns(np.random.default_rng(1).random((12, 80)))
    first = np.concatenate([noise, theme[:, :20]], axis=1)
    second = np.concatenate([theme[:, 20:], noise], axis=1)
    joined = np.concatenate([first, second], axis=1)  # the same frames as one recording
    coarse, starts, lengths = rows_of([first, second, joined])
    costs = coarse_costs(theme, coarse, starts, lengths)
    assert costs[2] < 0.02 and min(costs[0], costs[1]) > 0.1


def test_search_on_a_list_is_exhaustive_and_ranks_like_rank_documents():
    rng = np.random.default_rng(2)
    documents = [(f'r{i}', unit_columns(rng.random((12, 60)))) for i in range(5)]
    query = documents[3][1][:, 10:40]
    matches, info = search(documents, query, top=2)
    assert info == {'stage': 'exact', 'candidates': 5, 'recordings': 5}
    assert [m.name for m in matches][0] == 'r3' and len(matches) == 2
    with pytest.raises(CTCChromaError):
        search(documents, query, top=0)
    assert isinstance(DocumentList(documents).document(1), np.ndarray)


@pytest.fixture(scope='module')
def fold5():
    """Learned chroma (kind ctc) of the 100 recordings of fold 5, as a two-stage archive."""
    from ctc_chroma_lib.chroma import compute_chroma
    from ctc_chroma_lib.dataset import load_dataset
    items = load_dataset(folds=(5,))
    names = sorted({str(it.audio_path) for it in items})
    documents = [compute_chroma(name, 'ctc')[0] for name in names]
    coarse, starts, lengths = rows_of(documents)

    class Archive(DocumentList):
        pass
    archive = Archive(list(zip(names, documents)))
    archive.coarse, archive.coarse_starts, archive.coarse_lengths = coarse, starts, lengths
    return items, archive


def test_two_stage_top_10_agrees_with_the_exact_search_on_the_test_fold(fold5):
    """With 20 of the 100 recordings passed on, the two-stage top 10 keeps >= 90 % of the exact
    top 10 and finds the relevant recording as often (in the top 10) as the exact search."""
    from ctc_chroma_lib.query import build_queries
    items, archive = fold5
    agreement, found_two, found_exact = [], 0, 0
    for item in items[::5]:  # 20 themes
        queries = build_queries(item.theme)
        two, info = search(archive, queries, top=10, candidates=20)
        exact, _ = search(archive, queries, top=10, exact=True)
        assert info['stage'] == 'two-stage' and info['candidates'] == 20
        agreement.append(len({m.name for m in two} & {m.name for m in exact}) / 10)
        found_two += str(item.audio_path) in {m.name for m in two}
        found_exact += str(item.audio_path) in {m.name for m in exact}
        # what the exact stage reports is exact: the same cost for the same recording
        exact_cost = {m.name: m.cost for m in exact}
        for m in two:
            if m.name in exact_cost:
                assert m.cost == pytest.approx(exact_cost[m.name], abs=1e-9)
    assert np.mean(agreement) >= 0.9
    assert found_two >= found_exact - 1

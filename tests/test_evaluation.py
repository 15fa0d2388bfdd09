"""Specification of the retrieval evaluation (ctc_chroma_lib.evaluation)."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ctc_chroma_lib.cli import main
from ctc_chroma_lib.errors import CTCChromaError
from ctc_chroma_lib.evaluation import (TEST_FOLDS, available_kinds, evaluate, format_table,
                                       rank_of_relevant, retrieval_metrics)
from ctc_chroma_lib.query import query_chromagram
from ctc_chroma_lib.themes import ThemeNote


@dataclass(frozen=True)
class ToyItem:
    """The attributes of dataset.Item that the evaluation uses."""
    mtd_id: str
    audio_path: Path
    theme: tuple
    fold: int


def test_retrieval_metrics_of_known_ranks():
    m = retrieval_metrics([1, 2, 6, 20])
    assert (m['top1'], m['top5'], m['top10']) == (0.25, 0.5, 0.75)
    assert m['mrr'] == pytest.approx((1 + 1 / 2 + 1 / 6 + 1 / 20) / 4)
    assert m['n_queries'] == 4


def test_retrieval_metrics_without_queries_are_nan():
    m = retrieval_metrics([])
    assert m['n_queries'] == 0 and np.isnan(m['top1']) and np.isnan(m['mrr'])


def test_retrieval_metrics_reject_rank_zero():
    with pytest.raises(CTCChromaError):
        retrieval_metrics([0, 1])


def test_ties_count_against_the_relevant_document():
    assert rank_of_relevant([0.3, 0.1, 0.3, 0.5], relevant=0) == 3
    assert rank_of_relevant([0.3, 0.1, 0.3, 0.5], relevant=1) == 1
    assert rank_of_relevant([np.inf, np.inf], relevant=1) == 2


def test_default_test_fold_is_the_one_held_out_from_training():
    assert TEST_FOLDS == (5,)


def random_theme(rng):
    pitches = 60 + np.cumsum(rng.integers(1, 12, 8)) % 12
    return tuple(ThemeNote(0.2 * i, 0.2, int(p)) for i, p in enumerate(pitches))


def random_chroma(rng, n):
    A = rng.random((12, n)).astype(np.float32)
    return A / np.linalg.norm(A, axis=0)


def plant(Y, theme, at):
    X = query_chromagram(theme)
    Y[:, at:at + X.shape[1]] = X


@pytest.fixture
def toy():
    """Fold 1: a, b, c; fold 2: d, e. Every recording holds its own theme, except rec_c,
    which is random; theme c is planted in rec_a and rec_b instead, so query c ranks 3rd."""
    rng = np.random.default_rng(0)
    names = 'abcde'
    themes = {n: random_theme(rng) for n in names}
    recordings = {n: random_chroma(rng, 300) for n in names}
    for n in 'abde':
        plant(recordings[n], themes[n], 40)
    plant(recordings['a'], themes['c'], 150)
    plant(recordings['b'], themes['c'], 200)
    items = [ToyItem(n, Path(f'rec_{n}.ogg'), themes[n], 1 if n in 'abc' else 2) for n in names]
    calls = []

    def feature_fn(path, kind):
        calls.append((path, kind))
        return recordings[Path(path).stem[-1]], None
    return items, feature_fn, calls


def test_evaluate_ranks_each_theme_against_the_recordings_of_its_fold(toy):
    items, feature_fn, _ = toy
    result = evaluate(items, ['toy'], feature_fn=feature_fn, progress=False)
    m = result['features']['toy']
    assert m['ranks'] == {'a': 1, 'b': 1, 'c': 3, 'd': 1, 'e': 1}
    assert (m['top1'], m['top5'], m['n_queries']) == (0.8, 1.0, 5)
    assert m['mrr'] == pytest.approx((4 + 1 / 3) / 5)
    assert m['per_fold']['1']['top1'] == pytest.approx(2 / 3)
    assert m['per_fold']['2']['top1'] == 1.0
    assert result['folds'] == [1, 2]


def test_evaluate_computes_each_recording_once_per_kind(toy):
    items, feature_fn, calls = toy
    evaluate(items, ['k1', 'k2'], tempo=['score', 'multi'], feature_fn=feature_fn,
             progress=False)
    assert sorted(calls) == sorted((f'rec_{n}.ogg', k) for n in 'abcde' for k in ('k1', 'k2'))


def test_evaluate_names_results_by_kind_and_tempo_when_comparing(toy):
    items, feature_fn, _ = toy
    result = evaluate(items, ['toy'], tempo=['score', 'multi'], feature_fn=feature_fn,
                      progress=False)
    assert list(result['features']) == ['toy/score', 'toy/multi']
    assert result['settings']['tempo'] == ['score', 'multi']


def test_evaluate_rejects_no_items_and_unknown_tempo(toy):
    items, feature_fn, _ = toy
    with pytest.raises(CTCChromaError, match='no items'):
        evaluate([], ['toy'], feature_fn=feature_fn)
    with pytest.raises(CTCChromaError, match='tempo'):
        evaluate(items, ['toy'], tempo='fast', feature_fn=feature_fn)


def test_format_table_has_a_row_per_feature_and_the_paper_columns(toy):
    items, feature_fn, _ = toy
    table = format_table(evaluate(items, ['toy'], feature_fn=feature_fn, progress=False))
    header, row = table.splitlines()
    assert header.split() == ['Features', 'Top-1', 'Top-5', 'Top-10', 'MRR', '#queries']
    assert row.split() == ['toy', '0.800', '1.000', '1.000', '0.867', '5']


def test_available_kinds_separates_unknown_kinds():
    available, missing = available_kinds(['cqt', 'cens', 'published:no_such_model', 'bogus'])
    assert available == ['cqt', 'cens']
    assert set(missing) == {'published:no_such_model', 'bogus'}


def test_cli_rejects_an_explicitly_requested_unavailable_feature_type(capsys):
    assert main(['evaluate', '--features', 'cqt,bogus']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'bogus'" in err[0]


def test_ctc_fit_reports_learned_kinds_only(monkeypatch, tmp_path):
    from ctc_chroma_lib import evaluation
    from ctc_chroma_lib.dataset import load_dataset
    monkeypatch.setenv('CTC_CHROMA_CACHE', str(tmp_path))
    items = load_dataset(folds=(5,))[:2]
    fit = evaluation.ctc_fit(items, ['cqt', 'ctc'], progress=False)
    assert list(fit) == ['ctc']
    assert fit['ctc']['n_items'] == 2 and fit['ctc']['n_notes'] == sum(len(it.theme) for it in items)
    assert np.isfinite(fit['ctc']['loss_per_note']) and 0 <= fit['ctc']['blank_share'] <= 1
    table = evaluation.format_ctc_fit(fit).splitlines()
    assert table[0].split()[:3] == ['Model', 'CTC', 'loss/note'] and table[1].startswith('ctc')


# --- cross-validation ----------------------------------------------------------------------

def test_cv_feature_uses_the_model_of_the_split_that_held_the_fold_out():
    from ctc_chroma_lib.evaluation import cv_feature
    assert cv_feature('ctc', 5) == 'ctc'
    assert cv_feature('ctc', 1) == 'teaching-ctc-train234valid5'
    assert cv_feature('strong', 2) == 'teaching-strong-train345valid1'
    assert cv_feature('linear', 4) == 'teaching-linear-train512valid3'
    assert cv_feature('cqt', 3) == 'cqt'
    assert cv_feature('published:v2_ctc_train123valid4', 1) == 'published:v2_ctc_train123valid4'


def test_evaluate_cv_reports_means_and_stds_over_folds_and_the_models_used(toy):
    from ctc_chroma_lib.evaluation import evaluate_cv
    items, feature_fn, calls = toy
    result = evaluate_cv(items, ['ctc', 'toy'], feature_fn=feature_fn, progress=False)
    assert result['models'] == {'1': {'ctc': 'teaching-ctc-train234valid5', 'toy': 'toy'},
                                '2': {'ctc': 'teaching-ctc-train345valid1', 'toy': 'toy'}}
    # every fold's recordings are computed with that fold's model, and only those
    assert sorted(calls) == sorted(
        [(f'rec_{n}.ogg', 'teaching-ctc-train234valid5') for n in 'abc']
        + [(f'rec_{n}.ogg', 'teaching-ctc-train345valid1') for n in 'de']
        + [(f'rec_{n}.ogg', 'toy') for n in 'abcde'])
    m = result['features']['toy']
    assert result['per_fold']['1']['toy']['top1'] == pytest.approx(2 / 3)
    assert result['per_fold']['2']['toy']['top1'] == 1.0
    assert m['top1'] == pytest.approx((2 / 3 + 1) / 2)  # mean over folds, not over queries
    assert m['top1_std'] == pytest.approx(np.std([2 / 3, 1.0], ddof=1))
    assert m['n_queries'] == 5
    assert result['ranks']['toy'] == {'a': 1, 'b': 1, 'c': 3, 'd': 1, 'e': 1}
    assert set(result['features']['ctc']) >= {'top1', 'top5', 'top10', 'mrr', 'n_queries',
                                              'top1_std', 'mrr_std'}


def test_evaluate_cv_keeps_published_models_apart_and_tests_against_ctc(toy):
    from ctc_chroma_lib.evaluation import evaluate_cv, format_cv_table
    items, feature_fn, _ = toy
    result = evaluate_cv(items, ['ctc'], published=['published:x'], feature_fn=feature_fn,
                         progress=False)
    assert result['groups'] == {'project': ['ctc'], 'published': ['published:x']}
    assert result['models']['1']['published:x'] == 'published:x'
    # same features for both, so no query's reciprocal rank differs
    assert result['wilcoxon']['tests']['published:x']['n_differing'] == 0
    lines = format_cv_table(result).splitlines()
    assert lines[1].split()[:3] == ['Features', 'Top-1', 'Top-5']
    assert lines[2].split()[:4] == ['ctc', '0.833', '±', '0.236']
    assert "published" in lines[3] and lines[4].startswith('published:x')
    assert any(line.startswith('Wilcoxon') for line in lines)


def test_wilcoxon_on_reciprocal_ranks_pairs_queries():
    from ctc_chroma_lib.evaluation import wilcoxon_reciprocal_ranks
    ranks = {'ctc': {f'q{i}': 1 for i in range(20)},
             'cqt': {f'q{i}': 2 + i % 3 for i in range(20)}}
    test = wilcoxon_reciprocal_ranks(ranks)['cqt']
    assert test['n_queries'] == 20 and test['n_differing'] == 20
    assert test['mean_rr_difference'] > 0 and test['p_value'] < 1e-3


def test_cli_cv_names_the_missing_split_model_and_how_to_train_it(capsys, weights_dir):
    assert main(['evaluate', '--cv', '--features', 'ctc', '--published', 'none']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'make train' in err[0] and 'teaching-ctc' in err[0]


def test_cli_cv_rejects_folds(capsys):
    assert main(['evaluate', '--cv', '--folds', '5']) == 2
    assert '--folds' in capsys.readouterr().err


def small_dataset(root):
    """Three fold-5 items and one fold-4 item of the teaching dataset, copied to ``root``."""
    import csv
    import shutil

    from ctc_chroma_lib.dataset import DEFAULT_DATASET
    with open(DEFAULT_DATASET / 'MTD-teaching.csv', newline='') as f:
        rows = list(csv.reader(f, delimiter=';'))
    fold = rows[0].index('Fold')
    keep = [rows[0]] + [r for r in rows[1:] if r[fold] == '5'][:3] + \
        [r for r in rows[1:] if r[fold] == '4'][:1]
    for folder in ('data_AUDIO', 'data_CSV', 'data_ALIGNMENT'):
        (root / folder).mkdir(parents=True)
        for row in keep[1:]:
            for path in (DEFAULT_DATASET / folder).glob(f'{row[0]}.*'):
                shutil.copy(path, root / folder / path.name)
    with open(root / 'MTD-teaching.csv', 'w', newline='') as f:
        csv.writer(f, delimiter=';', lineterminator='\n').writerows(keep)
    return root


def test_cli_evaluates_the_default_test_fold_of_a_dataset(tmp_path, capsys):
    """Without --folds, the default test fold (5) of the given dataset is evaluated."""
    root = small_dataset(tmp_path / 'small')
    out = tmp_path / 'r.json'
    assert main(['evaluate', '--dataset', str(root), '--features', 'cqt', '--json', str(out)]) == 0
    import json
    result = json.loads(out.read_text())
    assert result['folds'] == [5] and result['features']['cqt']['n_queries'] == 3


def test_cli_evaluates_a_weights_file_like_the_model_it_holds(tmp_path, monkeypatch, capsys):
    """A model trained with `train --out` is evaluated by its path, with the same ranks and
    CTC fit as the same weights installed under a model name."""
    import json
    import shutil

    from ctc_chroma_lib.kinds import resolve
    monkeypatch.setenv('CTC_CHROMA_CACHE', str(tmp_path / 'cache'))
    shipped = resolve('ctc').weights
    if not shipped.is_file():
        pytest.skip('the shipped teaching model is not trained')
    mine = tmp_path / 'runs' / 'mine.weights.h5'
    mine.parent.mkdir()
    shutil.copyfile(shipped, mine)
    root = small_dataset(tmp_path / 'small')
    out = tmp_path / 'r.json'
    assert main(['evaluate', '--dataset', str(root), '--features', f'ctc,{mine}', '--ctc-fit',
                 '--json', str(out)]) == 0
    result = json.loads(out.read_text())
    assert result['features'][str(mine)] == result['features']['ctc']  # ranks included
    assert result['features']['ctc']['n_queries'] == 3
    assert result['ctc_fit'][str(mine)] == result['ctc_fit']['ctc']
    assert str(mine) in capsys.readouterr().out
    # the file's chroma is cached apart from the shipped model's, under its file name
    assert len(list((tmp_path / 'cache' / 'chroma').glob('*_mine.weights.h5_*.npz'))) == 3
    # a missing file is one line, and --cv refuses one model for all folds
    assert main(['evaluate', '--dataset', str(root), '--features',
                 str(tmp_path / 'none.weights.h5')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'weights file not found' in err[0]
    assert main(['evaluate', '--cv', '--features', str(mine), '--published', 'none']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'one model' in err[0] and '--folds' in err[0]

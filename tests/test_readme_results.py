"""README's cross-validated tables are the figures of the run stored in bench/results/cv.json."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text()
CV = json.loads((ROOT / 'bench' / 'results' / 'cv.json').read_text())

# README's row labels of the feature kinds (the published checkpoints are named by their ID)
LABELS = {'CTC (weak alignment)': 'ctc',
          'strong (frame-wise, strong alignment)': 'strong',
          'linear (frame-wise, linearly stretched weak alignment)': 'linear',
          'CQT chroma': 'cqt', 'CENS': 'cens', 'Basic Pitch': 'basic-pitch',
          'strong': 'strong', 'linear': 'linear'}


def kind_of(label):
    match = re.fullmatch(r'published `(v2_\w+)`', label)
    return f'published:{match.group(1)}' if match else LABELS[label]


def table(header_start):
    """The rows of the README table whose header row starts with ``header_start``."""
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith('|'):
            break
        rows.append([cell.strip().replace('**', '') for cell in line.strip('|').split('|')])
    return rows


def rounded(value, text):
    """``value`` rounded like ``text`` writes it (decimals, or significant digits of 2e-38)."""
    if 'e' in text:
        digits = len(text.split('e')[0].replace('.', '').lstrip('+-'))
        return float(f'{value:.{digits - 1}e}')
    decimals = len(text.split('.')[1]) if '.' in text else 0
    return round(value, decimals)


def number(text):
    return float(text.replace('\u2212', '-'))


CV_ROWS = table('| features (5 folds, 499 queries)')
WILCOXON_ROWS = table('| CTC against |')


def test_the_stored_run_is_the_full_cross_validation():
    settings = CV['settings']
    assert settings['n_items'] == 499
    assert set(settings['kinds']) == {'ctc', 'strong', 'linear', 'cqt', 'cens', 'basic-pitch'}
    assert all(scores['n_queries'] == 499 for scores in CV['features'].values())
    assert set(CV['per_fold']) == {'1', '2', '3', '4', '5'}


def test_the_cross_validated_table_has_a_row_for_every_kind_of_the_run():
    assert sorted(kind_of(row[0]) for row in CV_ROWS) == sorted(CV['features'])


@pytest.mark.parametrize('row', CV_ROWS, ids=[row[0] for row in CV_ROWS])
def test_a_cross_validated_row_is_the_runs_mean_and_std(row):
    scores = CV['features'][kind_of(row[0])]
    for cell, metric in zip(row[1:], ('top1', 'top5', 'top10', 'mrr')):
        mean, std = cell.split(' ± ')
        assert number(mean) == rounded(scores[metric], mean), (metric, cell)
        assert number(std) == rounded(scores[f'{metric}_std'], std), (metric, cell)


@pytest.mark.parametrize('row', WILCOXON_ROWS, ids=[row[0] for row in WILCOXON_ROWS])
def test_a_wilcoxon_row_is_the_runs_test(row):
    label, difference, differing, p = row
    assert CV['wilcoxon']['reference'] == 'ctc'
    tests = CV['wilcoxon']['tests']
    if label == 'published `v2_ctc_*` (each)':
        published = [test for name, test in tests.items() if name.startswith('published:')]
        low, high = difference.split(' to ')
        assert number(low) == rounded(min(t['mean_rr_difference'] for t in published), low)
        assert number(high) == rounded(max(t['mean_rr_difference'] for t in published), high)
        fewest, most = (int(x) for x in differing.split('\u2013'))
        assert (fewest, most) == (min(t['n_differing'] for t in published),
                                  max(t['n_differing'] for t in published))
        bound = p.split(' or less')[0]
        assert rounded(max(t['p_value'] for t in published), bound) <= number(bound)
        return
    test = tests[kind_of(label)]
    assert number(difference) == rounded(test['mean_rr_difference'], difference)
    assert int(differing) == test['n_differing']
    assert number(p) == rounded(test['p_value'], p)

"""Specification of the interactive explorers (ctc_chroma_lib.explorers), without a frontend."""
import matplotlib
import numpy as np
import pytest

matplotlib.use('Agg')

from ctc_chroma_lib import explorers  # noqa: E402
from ctc_chroma_lib.dataset import load_dataset  # noqa: E402
from ctc_chroma_lib.errors import CTCChromaError  # noqa: E402
from ctc_chroma_lib.query import query_chromagram  # noqa: E402

N_FRAMES = 150


@pytest.fixture(scope='module')
def items():
    """Two real test-fold items (their themes and alignments; features are faked)."""
    return load_dataset(folds=[5])[:2]


def fake_features(audio_path, kind):
    """Deterministic stand-in for compute_chroma(..., return_probs=True): no model needed."""
    seed = sum(map(ord, f'{audio_path}|{kind}'))
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(13), size=N_FRAMES).T.astype(np.float32)
    chroma = probs[:12] / np.linalg.norm(probs[:12], axis=0)
    times = (np.arange(N_FRAMES) / 25.0).astype(np.float32)
    return chroma, times, None if kind in ('cqt', 'cens') else probs


def shown_matrix(explorer):
    return explorer.figure.axes[0].images[-1].get_array()


def test_chroma_explorer_builds_without_a_frontend(items):
    explorer = explorers.ChromaExplorer(items, feature_fn=fake_features, clip_seconds=0)
    assert explorer.figure is not None
    assert repr(explorer) == (f"ChromaExplorer(item='{items[0].mtd_id}', feature='ctc', "
                              'normalize=True)')


def test_chroma_explorer_text_representation_has_no_widget_ids(items):
    explorer = explorers.ChromaExplorer(items, feature_fn=fake_features, clip_seconds=0)
    bundle = explorer._repr_mimebundle_()
    assert bundle['text/plain'] == repr(explorer)
    assert 'application/vnd.jupyter.widget-view+json' in bundle


def test_choosing_another_item_redraws_the_figure_for_it(items):
    explorer = explorers.ChromaExplorer(items, feature_fn=fake_features, clip_seconds=0)
    first = explorer.figure
    explorer.item_menu.value = items[1].mtd_id
    assert explorer.figure is not first
    assert items[1].mtd_id in explorer.figure.axes[0].get_title()


def test_image_widget_shows_the_current_figure_as_png(items):
    explorer = explorers.ChromaExplorer(items, feature_fn=fake_features, clip_seconds=0)
    first = explorer.image.value
    assert first[:8] == b'\x89PNG\r\n\x1a\n'
    explorer.feature_menu.value = 'cens'
    assert explorer.image.value[:8] == b'\x89PNG\r\n\x1a\n' and explorer.image.value != first


def test_probabilities_with_blank_show_thirteen_rows(items):
    explorer = explorers.ChromaExplorer(items, feature_fn=fake_features, clip_seconds=0)
    explorer.feature_menu.value = 'ctc-probs'
    assert shown_matrix(explorer).shape == (13, N_FRAMES)


def test_normalization_toggle_switches_between_probabilities_and_unit_frames(items):
    from ctc_chroma_lib.chroma import postprocess, smooth_chroma
    explorer = explorers.ChromaExplorer(items, feature_fn=fake_features, clip_seconds=0)
    _, _, probs = fake_features(items[0].audio_path, 'ctc')
    # the CTC chroma as retrieval uses it: blank removed, smoothed, unit-norm frames
    np.testing.assert_allclose(shown_matrix(explorer), postprocess(probs, 7), rtol=1e-5, atol=1e-6)
    explorer.normalize_box.value = False
    np.testing.assert_allclose(shown_matrix(explorer), smooth_chroma(probs[:12], 7), rtol=1e-5)
    assert not np.allclose(shown_matrix(explorer), probs[:12], rtol=1e-3)


def test_a_frame_wise_published_model_is_shown_without_smoothing(items):
    from ctc_chroma_lib.chroma import postprocess
    from ctc_chroma_lib.published import PUBLISHED_MODEL_IDS
    if 'v2_strong_train123valid4' not in PUBLISHED_MODEL_IDS:
        pytest.skip("the authors' package is not installed")
    explorer = explorers.ChromaExplorer(items, feature_fn=fake_features, clip_seconds=0,
                                        published='published:v2_strong_train123valid4')
    explorer.feature_menu.value = 'published'
    _, _, probs = fake_features(items[0].audio_path, 'published:v2_strong_train123valid4')
    np.testing.assert_allclose(shown_matrix(explorer), postprocess(probs), rtol=1e-5, atol=1e-6)


def test_published_feature_uses_the_published_model_spec(items):
    kinds = []

    def recording(audio_path, kind):
        kinds.append(kind)
        return fake_features(audio_path, kind)

    explorer = explorers.ChromaExplorer(items, feature_fn=recording, clip_seconds=0)
    explorer.feature_menu.value = 'published'
    assert kinds == ['ctc', explorers.PUBLISHED_SPEC]


def test_chroma_explorer_plays_a_short_clip_of_the_item(items):
    explorer = explorers.ChromaExplorer(items, feature_fn=fake_features, clip_seconds=2.0)
    assert explorer.audio.data[:4] == b'RIFF'
    assert explorer.player.value == explorer.audio.data


def test_unknown_feature_type_is_rejected():
    with pytest.raises(CTCChromaError, match='wavelet'):
        explorers.chroma_explorer_features(fake_features('x', 'ctc'), 'wavelet')


@pytest.fixture(scope='module')
def databases(items):
    """Per kind, a database in which each item's own recording holds its theme exactly."""
    rng = np.random.default_rng(0)
    database = {}
    for item in items:
        X = query_chromagram(item.theme)
        noise = rng.random((12, 60)).astype(np.float32)
        Y = np.concatenate([noise, X, noise], axis=1)
        database[str(item.audio_path)] = Y / np.linalg.norm(Y, axis=0)
    shuffled = {name: Y[::-1] for name, Y in database.items()}  # chroma rows reversed
    return {'exact': database, 'reversed': shuffled}


def test_retrieval_explorer_ranks_the_query_recording_first(items, databases):
    explorer = explorers.RetrievalExplorer(items, databases, clip_seconds=0)
    assert explorer.relevant_rank() == 1
    assert explorer.matches[0].name == str(items[0].audio_path)
    assert repr(explorer) == f"RetrievalExplorer(query='{items[0].mtd_id}', kind='exact')"


def test_choosing_another_query_updates_the_ranking(items, databases):
    explorer = explorers.RetrievalExplorer(items, databases, clip_seconds=0)
    explorer.query_menu.value = items[1].mtd_id
    assert explorer.matches[0].name == str(items[1].audio_path)
    assert '* relevant recording: rank 1 of 2' in explorer.ranking.value


def test_choosing_another_feature_kind_recomputes_the_costs(items, databases):
    explorer = explorers.RetrievalExplorer(items, databases, clip_seconds=0)
    exact = [m.cost for m in explorer.matches]
    explorer.kind_menu.value = 'reversed'
    assert [m.cost for m in explorer.matches] != exact
    assert 'reversed' in explorer.figure.axes[0].get_title()


def test_retrieval_explorer_plays_the_best_match(items, databases):
    explorer = explorers.RetrievalExplorer(items, databases, clip_seconds=1.0)
    assert explorer.audio.data[:4] == b'RIFF' and explorer.player.value == explorer.audio.data
    assert items[0].mtd_id in explorer.match_label.value


def test_ranking_table_marks_the_relevant_recording(items, databases):
    explorer = explorers.RetrievalExplorer(items, databases, clip_seconds=0)
    lines = explorers.ranking_table(explorer.matches, explorer.names,
                                    relevant=str(items[0].audio_path)).splitlines()
    assert lines[1].startswith('   1*') and items[0].mtd_id in lines[1]
    assert '*' not in lines[2]

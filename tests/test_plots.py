"""Specification of the figures (ctc_chroma_lib.plots): one return convention, 25 Hz items."""
import matplotlib

matplotlib.use('Agg')

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ctc_chroma_lib import plots  # noqa: E402
from ctc_chroma_lib.constants import FEATURE_RATE  # noqa: E402
from ctc_chroma_lib.dataset import load_dataset  # noqa: E402
from ctc_chroma_lib.errors import CTCChromaError  # noqa: E402


@pytest.fixture(scope='module')
def item():
    return next(it for it in load_dataset(folds=(5,)) if it.strong_alignment)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close('all')


def test_every_function_returns_fig_ax_im_and_makes_a_figure_without_ax(item, tmp_path):
    probs = np.random.default_rng(0).random((13, 50))
    log = tmp_path / 'x.log.csv'
    log.write_text('epoch,loss,val_loss\n0,5,6\n1,4,5\n')
    calls = [
        (lambda ax: plots.plot_class_matrix(probs, ax), True),
        (lambda ax: plots.plot_ctc_lattice(np.ones((7, 20)), [0, 0, 2], ax), True),
        (lambda ax: plots.plot_item_features(item, probs[:12], np.arange(50) / 25, ax), True),
        (lambda ax: plots.plot_alignment(item, ax), False),
        (lambda ax: plots.plot_blank_share(probs, ax), False),
        (lambda ax: plots.plot_matching_functions([np.linspace(1, 0, 30)], ax), False),
        (lambda ax: plots.plot_training_log(log, ax), False),
    ]
    for call, has_image in calls:
        fig, ax, im = call(None)
        assert isinstance(fig, matplotlib.figure.Figure) and ax.figure is fig
        assert (im is not None) == has_image
        given = plt.subplots()[1]
        fig2, ax2, _ = call(given)
        assert ax2 is given and fig2 is given.figure


def test_class_matrix_frames_are_centred_on_their_times_and_rows_named():
    _, ax, im = plots.plot_class_matrix(np.zeros((13, 25)))
    left, right, bottom, top = im.get_extent()
    assert left == pytest.approx(-0.5 / FEATURE_RATE) and right == pytest.approx(24.5 / FEATURE_RATE)
    assert [t.get_text() for t in ax.get_yticklabels()][-2:] == ['B', 'blank']
    _, ax, im = plots.plot_class_matrix(np.zeros((12, 10)), feature_rate=None)
    assert im.get_extent()[:2] == [-0.5, 9.5] and ax.get_xlabel() == 'Frame'
    with pytest.raises(CTCChromaError, match='12 or 13 rows'):
        plots.plot_class_matrix(np.zeros((84, 10)))


def test_item_features_are_at_the_feature_rate_of_the_hcqt(item):
    from ctc_chroma_lib.features import hcqt_file
    _, hcqt_times = hcqt_file(item.audio_path)
    for kind, rows in (('spectrogram', plots.SPECTROGRAM_N_PITCHES), ('chroma', 12)):
        features, times = plots.item_features(item, kind)
        assert features.shape == (rows, len(hcqt_times)) and features.dtype == np.float32
        np.testing.assert_allclose(times, hcqt_times, atol=1e-6)
    with pytest.raises(CTCChromaError, match='spectrogram'):
        plots.item_features(item, 'mel')


def test_the_one_alignment_overlay_draws_a_box_per_note_in_chroma_or_pitch_rows(item):
    _, ax, _ = plots.plot_alignment(item, rows='pitch', show_weak=False, legend=False)
    boxes = ax.patches
    assert len(boxes) == len(item.strong_alignment)
    assert boxes[0].get_y() == item.strong_alignment[0].pitch - 0.5
    _, ax, _ = plots.plot_alignment(item, show_weak=False)
    assert ax.patches[0].get_y() == item.strong_alignment[0].chroma - 0.5
    _, ax, im = plots.plot_item(item, 'spectrogram')
    notes = [p for p in ax.patches if not p.get_fill()]
    assert len(notes) == len(item.strong_alignment) and im is not None

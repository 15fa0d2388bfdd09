"""Specification of chroma features (ctc_chroma_lib.chroma) and the ``ctc-chroma chroma`` command."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import harmonic_tones, sine
from ctc_chroma_lib import chroma as chroma_lib
from ctc_chroma_lib import kinds
from ctc_chroma_lib import model as model_lib
from ctc_chroma_lib.cli import main
from ctc_chroma_lib.errors import CTCChromaError
from ctc_chroma_lib.published import PUBLISHED_MODEL_IDS

SR = 22050
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv('CTC_CHROMA_CACHE', str(tmp_path_factory.mktemp('cache')))


@pytest.fixture(scope='module')
def seeded_weights(tmp_path_factory):
    import keras
    keras.utils.set_random_seed(1)
    path = tmp_path_factory.mktemp('weights') / 'seeded.weights.h5'
    model_lib.build_model().save_weights(path)
    return path


@pytest.fixture
def shipped_teaching(seeded_weights, weights_dir):
    """Stand in for the shipped 'teaching' weights (created later by `make train`)."""
    return weights_dir('teaching-ctc', seeded_weights)


def write_tone(path, seconds=1.5, pitch=69, amplitude=0.3):
    sf.write(path, harmonic_tones([pitch], seconds, harmonics=3, gain=amplitude / 3), SR)
    return path


@pytest.fixture
def tone(tmp_path):
    return write_tone(tmp_path / 'tone.wav')


def assert_unit_columns(chroma):
    assert chroma.dtype == np.float32 and chroma.shape[0] == 12
    assert np.all(np.isfinite(chroma))
    np.testing.assert_allclose(np.linalg.norm(chroma, axis=0), 1.0, rtol=1e-5)


# --- postprocess -------------------------------------------------------------------------

def test_postprocess_drops_the_blank_row_and_normalizes_frames():
    probs = np.zeros((13, 2), dtype=np.float32)
    probs[9, 0], probs[12, 0] = 0.3, 0.7  # A plus blank
    probs[:12, 1] = 1.0 / 12
    probs[12, 1] = 0.0
    chroma = chroma_lib.postprocess(probs)
    assert chroma.shape == (12, 2)
    np.testing.assert_allclose(chroma[:, 0], np.eye(12)[9])
    assert_unit_columns(chroma)


def test_postprocess_maps_all_blank_frames_to_the_uniform_unit_vector():
    probs = np.zeros((13, 3), dtype=np.float32)
    probs[12] = 1.0
    chroma = chroma_lib.postprocess(probs)
    np.testing.assert_allclose(chroma, 1.0 / np.sqrt(12), rtol=1e-6)


def test_postprocess_rejects_wrong_shape():
    with pytest.raises(CTCChromaError, match='13'):
        chroma_lib.postprocess(np.ones((12, 4)))


def spike_probs(n_frames=21, spike_at=10, pitch_class=7, residual=1e-4):
    """A peaky CTC output: the blank wins every frame; one frame spikes on ``pitch_class``;
    elsewhere the chroma classes share a tiny, uneven residual."""
    rng = np.random.default_rng(0)
    probs = np.zeros((13, n_frames))
    probs[:12] = residual * rng.uniform(0.5, 1.5, (12, n_frames))
    probs[pitch_class] = residual * 0.25  # away from the spike, never the argmax
    probs[pitch_class, spike_at] = 0.4
    probs[12] = 1.0 - probs[:12].sum(axis=0)
    return probs.astype(np.float32)


def test_postprocess_smoothing_spreads_a_ctc_spike_over_its_neighbourhood():
    probs = spike_probs()
    plain = chroma_lib.postprocess(probs)
    smooth = chroma_lib.postprocess(probs, 7)
    assert_unit_columns(smooth)
    # without smoothing only the spike frame knows the note; with 7 frames its 3 neighbours
    # on either side do too, and frames further away do not
    assert [int(np.argmax(plain[:, t])) == 7 for t in range(21)].count(True) == 1
    assert all(np.argmax(smooth[:, t]) == 7 for t in range(7, 14))
    assert smooth[7, 5] < 0.5 and smooth[7, 15] < 0.5
    # the window is a centred moving average of the chroma probabilities, edges repeated
    chroma = probs[:12].astype(np.float64)
    padded = np.concatenate([np.repeat(chroma[:, :1], 3, 1), chroma, np.repeat(chroma[:, -1:], 3, 1)], 1)
    average = np.stack([padded[:, t:t + 7].mean(axis=1) for t in range(21)], axis=1)
    np.testing.assert_allclose(smooth, average / np.linalg.norm(average, axis=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('smoothing', [0, 2, -3, 1.0, True, '7'])
def test_postprocess_rejects_a_window_that_is_not_a_positive_odd_count(smoothing):
    with pytest.raises(CTCChromaError, match='odd'):
        chroma_lib.postprocess(spike_probs(), smoothing)


def test_ctc_models_are_smoothed_and_frame_wise_models_are_not(tmp_path):
    from ctc_chroma_lib.constants import CTC_SMOOTHING_FRAMES
    assert CTC_SMOOTHING_FRAMES == 7
    published = bool(PUBLISHED_MODEL_IDS)  # the authors' package is installed
    for name in ('ctc', 'teaching', 'teaching-ctc-train345valid1') + published * ('published:v1_ctc_train1234valid5',):
        assert kinds.resolve(name).smoothing == 7, name
    for name in ('strong', 'linear', 'teaching-strong-train234valid5', 'cqt', 'cens', 'basic-pitch') + published * (
            'published:v2_strong_train123valid4', 'published:v2_linear_train123valid4'):
        assert kinds.resolve(name).smoothing == 1, name
    # a weights file: what its JSON configuration says; a CTC model without one
    for training, expected in (('ctc', 7), ('strong', 1), ('linear', 1)):
        (tmp_path / f'{training}.json').write_text(f'{{"config": {{"kind": "{training}"}}}}')
        assert kinds.resolve(str(tmp_path / f'{training}.weights.h5')).smoothing == expected
    assert kinds.resolve(str(tmp_path / 'bare.weights.h5')).smoothing == 7


# --- learned_chroma / compute_chroma -----------------------------------------------------

def test_learned_chroma_of_an_array_returns_chroma_probs_and_25hz_times(seeded_weights):
    y = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    chroma, probs, times = chroma_lib.learned_chroma(y, model=seeded_weights)
    assert probs.shape == (13, chroma.shape[1]) and times.shape == (chroma.shape[1],)
    assert abs(chroma.shape[1] - 25) <= 1
    np.testing.assert_allclose(np.diff(times), 0.04, atol=1e-6)
    assert_unit_columns(chroma)


def test_compute_chroma_ctc_uses_the_teaching_model(tone, shipped_teaching):
    chroma, times = chroma_lib.compute_chroma(tone, 'ctc')
    expected, _, _ = chroma_lib.learned_chroma(tone, model=shipped_teaching)
    np.testing.assert_allclose(chroma, expected, atol=1e-6)
    assert times.shape == (chroma.shape[1],)


def test_compute_chroma_post_processes_each_learned_kind_as_its_training_needs(tone, seeded_weights,
                                                                              weights_dir):
    weights_dir('teaching-ctc', seeded_weights)
    weights_dir('teaching-strong', seeded_weights)
    for kind, smoothing in (('ctc', 7), ('strong', 1)):
        chroma, _, probs = chroma_lib.compute_chroma(tone, kind, return_probs=True)
        np.testing.assert_allclose(chroma, chroma_lib.postprocess(probs, smoothing), atol=1e-6)
    # same weights, so the two kinds differ by the smoothing alone
    assert not np.allclose(chroma_lib.compute_chroma(tone, 'ctc')[0],
                           chroma_lib.compute_chroma(tone, 'strong')[0], atol=1e-3)


def test_compute_chroma_caches_the_chroma(tone, shipped_teaching):
    first, _ = chroma_lib.compute_chroma(tone, 'ctc')
    cache_file = chroma_lib.chroma_cache_path(tone, 'ctc')
    assert cache_file.is_file() and cache_file.parent.name == 'chroma'
    second, _ = chroma_lib.compute_chroma(tone, 'ctc')
    np.testing.assert_array_equal(first, second)


def test_chroma_cache_key_depends_on_the_weights(tone, shipped_teaching, tmp_path, weights_dir):
    before = chroma_lib.chroma_cache_path(tone, 'ctc')
    other = tmp_path / 'other.weights.h5'
    model_lib.build_model().save_weights(other)
    weights_dir('teaching-ctc', other)
    assert chroma_lib.chroma_cache_path(tone, 'ctc') != before


def test_compute_chroma_without_cache_writes_no_cache(tone, shipped_teaching, tmp_path, monkeypatch):
    monkeypatch.setenv('CTC_CHROMA_CACHE', str(tmp_path / 'fresh'))
    chroma, _ = chroma_lib.compute_chroma(tone, 'ctc', cache=False)
    assert_unit_columns(chroma)
    assert not (tmp_path / 'fresh').exists()


@pytest.mark.skipif(not PUBLISHED_MODEL_IDS, reason="the authors' package is not installed")
def test_compute_chroma_published_model_finds_the_pitch_class_of_a_sine(tmp_path):
    a4 = tmp_path / 'a4.wav'
    sf.write(a4, sine(2.0, amplitude=0.3), SR)
    chroma, times = chroma_lib.compute_chroma(a4, 'published:v2_ctc_train123valid4')
    assert_unit_columns(chroma)
    # (Synthetic tones with overtones are outside what the published models learned;
    # a pure sine is unambiguous.)
    assert np.argmax(np.median(chroma[:, 5:-5], axis=1)) == 9


@pytest.mark.parametrize('kind', ['cqt', 'cens'])
def test_compute_chroma_standard_baselines(tone, kind):
    pytest.importorskip('ctc_chroma_lib.standard_chroma')
    chroma, times = chroma_lib.compute_chroma(tone, kind)
    assert_unit_columns(chroma)
    assert times.shape == (chroma.shape[1],)


def test_compute_chroma_unknown_kind_lists_the_valid_kinds(tone):
    with pytest.raises(CTCChromaError) as err:
        chroma_lib.compute_chroma(tone, 'chromagram')
    assert 'chromagram' in str(err.value)
    assert all(kind in str(err.value) for kind in kinds.FEATURE_TYPES)


def test_compute_chroma_missing_shipped_weights_say_make_train(tone, weights_dir):
    with pytest.raises(CTCChromaError, match='make train'):
        chroma_lib.compute_chroma(tone, 'strong')


def test_feature_types():
    assert kinds.FEATURE_TYPES == ('ctc', 'strong', 'linear', 'cqt', 'cens', 'basic-pitch')
    assert set(kinds.COMPUTED_KINDS) == {'cqt', 'cens', 'basic-pitch'}


# --- the command line --------------------------------------------------------------------

def test_cli_writes_chroma_probs_and_times_per_file(tmp_path, seeded_weights):
    a = write_tone(tmp_path / 'a.wav', pitch=60)
    b = write_tone(tmp_path / 'b.wav', pitch=64, seconds=1.0)
    out = tmp_path / 'out'
    assert main(['chroma', str(a), str(b), '--model', str(seeded_weights), '--out', str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ['a.npz', 'b.npz']
    with np.load(out / 'b.npz') as data:
        chroma, probs, times = data['chroma'], data['probs'], data['times']
    assert_unit_columns(chroma)
    assert probs.shape == (13, chroma.shape[1]) and times.shape == (chroma.shape[1],)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)


def test_cli_accepts_silence(tmp_path, seeded_weights):
    silent = tmp_path / 'silent.wav'
    sf.write(silent, np.zeros(SR, dtype=np.float32), SR)
    assert main(['chroma', str(silent), '--model', str(seeded_weights), '--out', str(tmp_path / 'o')]) == 0
    with np.load(tmp_path / 'o' / 'silent.npz') as data:
        assert_unit_columns(data['chroma'])
        assert np.all(np.isfinite(data['probs']))


def test_cli_standard_features_have_no_probs(tmp_path, tone):
    pytest.importorskip('ctc_chroma_lib.standard_chroma')
    assert main(['chroma', str(tone), '--features', 'cens', '--out', str(tmp_path / 'o')]) == 0
    with np.load(tmp_path / 'o' / 'tone.npz') as data:
        assert 'probs' not in data
        assert_unit_columns(data['chroma'])


def bad_inputs(tmp_path):
    empty = tmp_path / 'empty.wav'
    empty.touch()
    corrupt = tmp_path / 'corrupt.wav'
    corrupt.write_bytes(b'RIFF\x10\x00\x00\x00WAVEjunk' + bytes(range(256)) * 4)
    text = tmp_path / 'notes.txt'
    text.write_text('this is not audio\n' * 50)
    short = tmp_path / 'short.wav'
    sf.write(short, np.zeros(400, dtype=np.float32), SR)  # 18 ms < one 40 ms frame
    return {'missing': tmp_path / 'missing.wav', 'empty': empty, 'corrupt': corrupt,
            'non-audio': text, 'too short': short}


@pytest.mark.parametrize('case', ['missing', 'empty', 'corrupt', 'non-audio', 'too short'])
def test_cli_bad_audio_is_a_one_line_error_and_writes_nothing(case, tmp_path, tone, seeded_weights, capsys):
    bad = bad_inputs(tmp_path)[case]
    out = tmp_path / 'out'
    code = main(['chroma', str(tone), str(bad), '--model', str(seeded_weights), '--out', str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith('ctc-chroma chroma: error:') and bad.name in err[-1]
    assert 'Traceback' not in '\n'.join(err)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize('model, fragment', [
    ('published:v0_unknown', 'v2_ctc_train123valid4'),
    ('nonexistent.weights.h5', 'nonexistent.weights.h5'),
])
def test_cli_bad_model_is_a_one_line_error(model, fragment, tmp_path, tone, capsys):
    code = main(['chroma', str(tone), '--model', model, '--out', str(tmp_path / 'out')])
    err = capsys.readouterr().err.strip()
    assert code == 2 and fragment in err and 'Traceback' not in err
    assert not (tmp_path / 'out').exists()


def test_cli_incompatible_weights_is_a_one_line_error(tmp_path, tone, capsys):
    import keras
    path = tmp_path / 'small.weights.h5'
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).save_weights(path)
    code = main(['chroma', str(tone), '--model', str(path), '--out', str(tmp_path / 'out')])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and 'small.weights.h5' in err[-1]
    assert not (tmp_path / 'out').exists()


def test_cli_missing_shipped_weights_say_make_train(tmp_path, tone, weights_dir, capsys):
    assert main(['chroma', str(tone), '--out', str(tmp_path / 'out')]) == 2
    assert 'make train' in capsys.readouterr().err


def test_cli_program_reports_errors_without_traceback(tmp_path):
    exe = Path(sys.executable).parent / 'ctc-chroma'
    if not exe.exists():
        pytest.skip(f'{exe} not installed')
    result = subprocess.run([str(exe), 'chroma', str(tmp_path / 'missing.wav'), '--out', str(tmp_path / 'o')],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith('ctc-chroma chroma: error:')

"""Audio loading: mono float32 at 22050 Hz, and errors that name the offending file."""
import numpy as np
import pytest
import soundfile as sf

from ctc_chroma_lib.audio import audio_duration, load_audio
from conftest import sine
from ctc_chroma_lib.errors import CTCChromaError

SR = 22050


def test_load_audio_returns_mono_float32_at_22050(tmp_path):
    path = tmp_path / 'tone.wav'
    sf.write(path, sine(1.0), SR)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1 and len(y) == SR


def test_load_audio_mixes_stereo_down_to_the_channel_mean(tmp_path):
    path = tmp_path / 'stereo.wav'
    left = sine(0.5)
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), SR, subtype='FLOAT')
    y = load_audio(path)
    assert y.ndim == 1
    np.testing.assert_allclose(y, left / 2, atol=1e-6)


def test_load_audio_resamples_other_rates(tmp_path):
    path = tmp_path / 'tone_44k.wav'
    sf.write(path, sine(1.0, sr=44100), 44100)
    y = load_audio(path)
    assert len(y) == SR
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * SR / len(y) - 440.0) < 2.0


def test_load_audio_reads_ogg(tmp_path):
    path = tmp_path / 'tone.ogg'
    sf.write(path, sine(1.0), SR)
    assert abs(len(load_audio(path)) - SR) < 100


def test_missing_file_error_names_the_file(tmp_path):
    path = tmp_path / 'missing.wav'
    with pytest.raises(CTCChromaError, match='missing.wav'):
        load_audio(path)


def test_empty_file_error_names_the_file(tmp_path):
    path = tmp_path / 'empty.wav'
    path.write_bytes(b'')
    with pytest.raises(CTCChromaError, match='empty.wav'):
        load_audio(path)


def test_audio_file_without_samples_is_an_error(tmp_path):
    path = tmp_path / 'no_samples.wav'
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(CTCChromaError, match='no_samples.wav'):
        load_audio(path)


def test_corrupt_audio_error_names_the_file(tmp_path):
    path = tmp_path / 'corrupt.wav'
    path.write_bytes(b'RIFF\x24\x00\x00\x00WAVEfmt ' + bytes(range(256)) * 4)
    with pytest.raises(CTCChromaError, match='corrupt.wav'):
        load_audio(path)


def test_text_file_is_not_audio(tmp_path):
    path = tmp_path / 'notes.txt'
    path.write_text('this is not audio\n' * 100)
    with pytest.raises(CTCChromaError, match='notes.txt'):
        load_audio(path)


def test_directory_is_not_an_audio_file(tmp_path):
    with pytest.raises(CTCChromaError, match=tmp_path.name):
        load_audio(tmp_path)


def test_audio_duration_in_seconds(tmp_path):
    path = tmp_path / 'tone.wav'
    sf.write(path, sine(1.5), SR)
    assert audio_duration(path) == pytest.approx(1.5)


def test_audio_duration_of_missing_file_names_it(tmp_path):
    with pytest.raises(CTCChromaError, match='gone.wav'):
        audio_duration(tmp_path / 'gone.wav')

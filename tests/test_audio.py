"""core.audio: every common format decodes to float32 at the asked rate; bad inputs raise AudioDecodeError."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.audio import AudioDecodeError, audio_info, load_audio, resample, save_wav, to_int16

SR = 24000
SECONDS = 1.5


def tone(sr: int = SR, seconds: float = SECONDS, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def stereo() -> np.ndarray:
    return np.stack([tone(freq=440.0), tone(freq=660.0, amp=0.25)])  # (2, samples)


def ffmpeg(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *args, str(dst)], check=True)
    return dst


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_bit_depths_decode_to_float32(tmp_path, subtype):
    x = tone()
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, x, SR, subtype=subtype)
    audio, sr = load_audio(path)
    assert sr == SR and audio.dtype == np.float32 and audio.shape == x.shape
    tol = {"PCM_U8": 1e-2, "PCM_16": 1e-4}.get(subtype, 1e-6)
    np.testing.assert_allclose(audio, x, atol=tol)


def test_flac_is_lossless(tmp_path):
    x = tone()
    path = tmp_path / "a.flac"
    sf.write(path, x, SR, subtype="PCM_16")
    audio, sr = load_audio(path)
    assert sr == SR
    np.testing.assert_allclose(audio, x, atol=1e-4)


@pytest.mark.parametrize(
    "ext, args",
    [
        (".mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]),
        (".m4a", ["-c:a", "aac"]),
        (".ogg", ["-c:a", "libvorbis"]),
        (".opus", ["-c:a", "libopus"]),
    ],
)
def test_compressed_formats_decode(tmp_path, ext, args):
    src = tmp_path / "src.wav"
    sf.write(src, stereo().T, SR, subtype="PCM_16")
    path = ffmpeg(src, tmp_path / f"a{ext}", *args)
    audio, sr = load_audio(path, mono=False)
    # opus runs at 48 kHz inside; decoders may or may not restore the input rate stored in its header
    native = sr if ext == ".opus" and sr in (SR, 48000) else SR
    assert sr == native and audio.dtype == np.float32 and audio.shape[0] == 2
    expected = int(SECONDS * native)
    assert abs(audio.shape[1] - expected) <= 0.1 * native  # encoder delay/padding, at most ~100 ms
    # the content survives: the left channel is louder than the right, peak near 0.5
    assert 0.4 < np.abs(audio[0]).max() < 0.6 and np.abs(audio[1]).max() < 0.35
    mono, sr32 = load_audio(path, 32000)
    assert sr32 == 32000 and mono.ndim == 1 and abs(mono.shape[0] - int(SECONDS * 32000)) <= 3200


def test_mono_downmix_and_stereo_kept(tmp_path):
    x = stereo()
    path = tmp_path / "st.wav"
    sf.write(path, x.T, SR, subtype="FLOAT")
    both, _ = load_audio(path, mono=False)
    np.testing.assert_allclose(both, x, atol=1e-7)
    mono, _ = load_audio(path)
    np.testing.assert_allclose(mono, x.mean(axis=0), atol=1e-7)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.frames) == (SR, 2, x.shape[1])
    assert info.duration == pytest.approx(SECONDS)


@pytest.mark.parametrize("target", [16000, 32000, 44100, 48000])
def test_resampling_to_requested_rate(tmp_path, target):
    path = tmp_path / "a.wav"
    sf.write(path, tone(), SR, subtype="FLOAT")
    audio, sr = load_audio(path, target)
    assert sr == target and audio.dtype == np.float32
    assert audio.shape == (int(round(SECONDS * target)),)
    # the 440 Hz tone is still at 440 Hz
    spectrum = np.abs(np.fft.rfft(audio))
    peak_hz = np.argmax(spectrum) * target / audio.shape[0]
    assert abs(peak_hz - 440) < 2
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.02)


def test_resample_keeps_channels():
    x = stereo()
    y = resample(x, SR, 16000)
    assert y.shape == (2, int(SECONDS * 16000))


def test_save_wav_roundtrip_and_int16(tmp_path):
    x = tone()
    path = save_wav(tmp_path / "sub" / "o.wav", x, SR)
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    assert not list((tmp_path / "sub").glob(".*"))  # no temp file left behind
    np.testing.assert_array_equal(to_int16(np.array([1.5, -2.0, 0.5])), [32767, -32767, 16383])


def test_corrupt_file_raises_with_name(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioDecodeError, match="noise.wav"):
        load_audio(path)


def test_zero_length_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(AudioDecodeError, match=r"empty\.wav.*empty"):
        load_audio(path)


def test_text_renamed_mp3(tmp_path):
    path = tmp_path / "notes.mp3"
    path.write_text("this is not audio at all\n" * 50)
    with pytest.raises(AudioDecodeError, match="notes.mp3"):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(AudioDecodeError, match="missing.flac"):
        load_audio(tmp_path / "missing.flac")


def test_wav_header_without_samples(tmp_path):
    path = tmp_path / "nosamples.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(AudioDecodeError, match="nosamples.wav"):
        load_audio(path)


def test_truncated_mp3_still_decodes_what_is_there(tmp_path):
    src = tmp_path / "src.wav"
    sf.write(src, tone(seconds=3.0), SR, subtype="PCM_16")
    mp3 = ffmpeg(src, tmp_path / "a.mp3", "-c:a", "libmp3lame")
    data = mp3.read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) // 2])
    audio, sr = load_audio(cut)
    assert sr == SR and 0.8 * SR < audio.shape[0] < 2.2 * SR

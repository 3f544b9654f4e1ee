"""Tests for vocoder_ext.audio: Slaney filterbank, the two log-mel front ends, wav I/O.

References here are independent float64 numpy implementations written from the definitions
(Slaney mel scale, framing + rfft), not calls into the module under test.
"""
import math
import os
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from vocoder_ext.audio import (
    hann_window,
    load_wav,
    mel_filterbank,
    mel_spectrogram,
    save_wav,
    tacotron2_mel_spectrogram,
)


class SeededGenerator(np.random.Generator):
    """numpy Generator that remembers its seed, so a failure message can name it."""

    def __init__(self, seed):
        super().__init__(np.random.PCG64(seed))
        self.seed_value = seed


@pytest.fixture
def rng():
    """Fresh random data every run (seed from os.urandom; failure messages print it)."""
    return SeededGenerator(int.from_bytes(os.urandom(4), "little"))


def random_audio(rng, *shape):
    """Speech-like-ish random audio in [-1, 1]: white noise plus a few sines, never zeros."""
    t = np.arange(shape[-1])
    y = 0.3 * rng.uniform(-1.0, 1.0, size=shape)
    for _ in range(3):
        f = rng.uniform(50.0, 8000.0)
        y = y + 0.2 * np.sin(2 * np.pi * f * t / 22050.0 + rng.uniform(0, 2 * np.pi))
    return np.clip(y, -1.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Independent numpy references
# ---------------------------------------------------------------------------------------------
def np_hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    # Slaney: 3 mels per 200 Hz up to 1 kHz, then log spaced, 27 mels per factor 6.4.
    return np.where(f < 1000.0, 3.0 * f / 200.0, 15.0 + 27.0 * np.log(np.maximum(f, 1e-3) / 1000.0) / np.log(6.4))


def np_mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    return np.where(m < 15.0, 200.0 * m / 3.0, 1000.0 * 6.4 ** ((m - 15.0) / 27.0))


def np_slaney_filterbank(sr, n_fft, n_mels, fmin, fmax):
    if fmax is None:
        fmax = sr / 2.0
    bin_hz = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    edges = np_mel_to_hz(np.linspace(np_hz_to_mel(fmin), np_hz_to_mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, n_fft // 2 + 1))
    for i in range(n_mels):
        left, centre, right = edges[i], edges[i + 1], edges[i + 2]
        up = (bin_hz - left) / (centre - left)
        down = (right - bin_hz) / (right - centre)
        tri = np.maximum(0.0, np.minimum(up, down))
        fb[i] = tri * 2.0 / (right - left)
    return fb


def np_log_mel(y, sr, n_fft, n_mels, hop, win, fmin, fmax, pad, mag_eps, extra_center_pad=0):
    """y: [B, T] float64. Reflect pad, frame, periodic Hann (centred in n_fft), rfft, mel, log."""
    y = np.pad(y, ((0, 0), (pad, pad)), mode="reflect")
    if extra_center_pad:
        y = np.pad(y, ((0, 0), (extra_center_pad, extra_center_pad)), mode="reflect")
    n_frames = (y.shape[-1] - n_fft) // hop + 1
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left:left + win] = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)
    idx = np.arange(n_frames)[:, None] * hop + np.arange(n_fft)[None, :]
    frames = y[:, idx] * window  # [B, N, n_fft]
    spec = np.fft.rfft(frames, axis=-1)  # [B, N, n_fft//2+1]
    mag = np.sqrt(spec.real ** 2 + spec.imag ** 2 + mag_eps)
    fb = np_slaney_filterbank(sr, n_fft, n_mels, fmin, fmax)
    mel = np.einsum("mf,bnf->bmn", fb, mag)
    return np.log(np.maximum(mel, 1e-5))


# ---------------------------------------------------------------------------------------------
# Filterbank
# ---------------------------------------------------------------------------------------------
FB_CASES = [(22050, 1024, 80, 0, 8000), (22050, 1024, 80, 0, None), (16000, 512, 40, 50, 7000)]


@pytest.mark.parametrize("params", FB_CASES)
def test_filterbank_matches_numpy_slaney(params):
    ref = np_slaney_filterbank(*params)
    fb64 = mel_filterbank(*params, dtype=torch.float64)
    fb32 = mel_filterbank(*params)
    assert fb64.shape == (params[2], params[1] // 2 + 1)
    assert fb32.dtype == torch.float32 and fb64.dtype == torch.float64
    scale = ref.max()
    np.testing.assert_allclose(fb64.numpy(), ref, rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_allclose(fb32.numpy(), ref, rtol=1e-6, atol=1e-9 * scale)
    # Every band is a non-empty triangle for these settings.
    assert (fb64 > 0).any(dim=1).all()


def test_filterbank_known_librosa_values():
    """A few values of librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000)
    (librosa 0.11, float64), an anchor independent of both implementations above."""
    fb = mel_filterbank(22050, 1024, 80, 0, 8000, dtype=torch.float64)
    checks = {
        (0, 1): 0.015527720766997256,
        (1, 2): 0.004202025661720355,
        (40, 77): 0.000295855327132208,
        (79, 345): 0.00023797767680755662,
    }
    for (row, col), value in checks.items():
        assert fb[row, col].item() == pytest.approx(value, rel=1e-9)
    assert fb[0].sum().item() == pytest.approx(0.0453027804211076, rel=1e-9)
    assert fb[79].max().item() == pytest.approx(0.003265992825300361, rel=1e-9)
    assert fb.sum().item() == pytest.approx(3.7136882015278, rel=1e-9)
    assert fb[0, 0].item() == 0.0 and fb[79, 372:].abs().max().item() == 0.0


def test_filterbank_and_window_are_cached():
    a = mel_filterbank(22050, 1024, 80, 0, 8000)
    assert mel_filterbank(22050, 1024, 80, 0, 8000) is a
    assert mel_filterbank(22050, 1024, 80, 0, 8000, device="cpu") is a
    assert mel_filterbank(22050, 1024, 80, 0, None) is not a
    assert mel_filterbank(22050, 1024, 64, 0, 8000) is not a
    assert mel_filterbank(22050, 1024, 80, 0, 8000, dtype=torch.float64) is not a

    w = hann_window(1024)
    assert hann_window(1024, device="cpu") is w
    assert hann_window(512) is not w
    assert hann_window(1024, dtype=torch.float64) is not w
    assert torch.equal(w, torch.hann_window(1024, periodic=True))


def test_filterbank_bad_params():
    with pytest.raises(ValueError, match=r"fmin < fmax.*fmin=9000.*fmax=8000"):
        mel_filterbank(22050, 1024, 80, 9000, 8000)
    with pytest.raises(ValueError, match=r"num_mels must be a positive int, got 0"):
        mel_filterbank(22050, 1024, 0, 0, 8000)


def test_cache_built_under_inference_mode_still_supports_autograd(rng):
    """The first call happening under inference_mode must not poison the cache for training."""
    kwargs = dict(n_fft=512, num_mels=33, sampling_rate=12345, hop_size=128, win_size=500,
                  fmin=0, fmax=None)
    y = torch.from_numpy(random_audio(rng, 2, 4000)).float()
    with torch.inference_mode():
        mel_spectrogram(y, **kwargs)
    y.requires_grad_(True)
    mel = mel_spectrogram(y, **kwargs)
    mel.sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# HiFi-GAN front end
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "T, kw",
    [
        (22050 + 37, {}),
        (16000 + 11, dict(n_fft=512, num_mels=40, sampling_rate=16000, hop_size=160,
                          win_size=400, fmin=50, fmax=7000)),
        (8191, dict(fmax=None)),
    ],
)
def test_mel_spectrogram_matches_numpy(rng, T, kw):
    p = dict(n_fft=1024, num_mels=80, sampling_rate=22050, hop_size=256, win_size=1024,
             fmin=0, fmax=8000)
    p.update(kw)
    y = random_audio(rng, 2, T)
    out = mel_spectrogram(torch.from_numpy(y).float(), **p)
    pad = (p["n_fft"] - p["hop_size"]) // 2
    ref = np_log_mel(y, p["sampling_rate"], p["n_fft"], p["num_mels"], p["hop_size"],
                     p["win_size"], p["fmin"], p["fmax"], pad=pad, mag_eps=1e-9)
    n_frames = (T + 2 * pad - p["n_fft"]) // p["hop_size"] + 1
    assert out.shape == (2, p["num_mels"], n_frames)
    assert out.dtype == torch.float32
    if p["hop_size"] == 256:
        assert n_frames == T // 256
    err = np.abs(out.double().numpy() - ref).max()
    assert err < 1e-4, f"max abs err {err} (seed {rng.seed_value})"


def test_mel_spectrogram_float64_is_tight(rng):
    y = random_audio(rng, 2, 5000 + 3)
    out = mel_spectrogram(torch.from_numpy(y))
    assert out.dtype == torch.float64
    ref = np_log_mel(y, 22050, 1024, 80, 256, 1024, 0, 8000, pad=384, mag_eps=1e-9)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-9, rtol=0)


def test_mel_spectrogram_center_true_pads_twice_like_the_original(rng):
    y = random_audio(rng, 1, 3000 + 5)
    out = mel_spectrogram(torch.from_numpy(y).float(), center=True)
    ref = np_log_mel(y, 22050, 1024, 80, 256, 1024, 0, 8000, pad=384, mag_eps=1e-9,
                     extra_center_pad=512)
    assert out.shape == (1, 80, (3005 + 768) // 256 + 1)
    assert np.abs(out.double().numpy() - ref).max() < 1e-4


def test_mel_spectrogram_1d_input_returns_2d(rng):
    y = torch.from_numpy(random_audio(rng, 2, 6000 + 1)).float()
    single = mel_spectrogram(y[1])
    assert single.shape == (80, 6001 // 256)
    torch.testing.assert_close(single, mel_spectrogram(y)[1], rtol=0, atol=1e-5)
    single_t2 = tacotron2_mel_spectrogram(y[1])
    assert single_t2.shape == (80, 6001 // 256 + 1)
    torch.testing.assert_close(single_t2, tacotron2_mel_spectrogram(y)[1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_mel_spectrogram_half_input_is_computed_in_float32(rng, dtype):
    y = torch.from_numpy(random_audio(rng, 2, 4096 + 7)).to(dtype)
    out = mel_spectrogram(y)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, mel_spectrogram(y.float()), rtol=0, atol=0)


def test_mel_spectrogram_non_contiguous_input(rng):
    y = torch.from_numpy(random_audio(rng, 2, 2 * 5000)).float()
    strided = y[:, ::2]
    assert not strided.is_contiguous()
    torch.testing.assert_close(mel_spectrogram(strided), mel_spectrogram(strided.contiguous()))


def test_mel_spectrogram_bad_inputs():
    with pytest.raises(TypeError, match=r"floating-point audio tensor.*got dtype torch\.int16"):
        mel_spectrogram(torch.randint(-100, 100, (1, 4000), dtype=torch.int16))
    with pytest.raises(TypeError, match=r"expected audio as a torch\.Tensor, got ndarray"):
        mel_spectrogram(np.random.rand(4000))
    with pytest.raises(ValueError, match=r"shape \[T\] or \[B, T\], got shape \(2, 1, 4000\) \(3 dims\)"):
        mel_spectrogram(torch.rand(2, 1, 4000))
    with pytest.raises(ValueError, match=r"too short: need at least 385 samples.*got 300"):
        mel_spectrogram(torch.rand(1, 300) * 2 - 1)
    with pytest.raises(ValueError, match=r"win_size must be <= n_fft"):
        mel_spectrogram(torch.rand(1, 4000), 512, 80, 22050, 128, 1024)
    with pytest.raises(TypeError, match=r"floating-point audio tensor.*torch\.int64"):
        tacotron2_mel_spectrogram(torch.arange(4000))
    with pytest.raises(ValueError, match=r"3 dims"):
        tacotron2_mel_spectrogram(torch.rand(1, 1, 4000))
    with pytest.raises(ValueError, match=r"tacotron2_mel_spectrogram: audio too short: need at least 513 samples.*got 512"):
        tacotron2_mel_spectrogram(torch.rand(512))


def test_mel_spectrogram_shortest_accepted_input(rng):
    y = torch.from_numpy(random_audio(rng, 1, 385)).float()
    assert mel_spectrogram(y).shape == (1, 80, 1)


# ---------------------------------------------------------------------------------------------
# Tacotron2 / WaveGlow front end
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [22050 + 37, 513, 1000 + 3])
def test_tacotron2_mel_spectrogram_matches_numpy(rng, T):
    y = random_audio(rng, 2, T)
    out = tacotron2_mel_spectrogram(torch.from_numpy(y).float())
    ref = np_log_mel(y, 22050, 1024, 80, 256, 1024, 0, 8000, pad=512, mag_eps=0.0)
    assert out.shape == (2, 80, T // 256 + 1)
    err = np.abs(out.double().numpy() - ref).max()
    assert err < 1e-4, f"max abs err {err} (seed {rng.seed_value})"


def test_front_ends_differ_by_offset_and_length(rng):
    """Same audio: Tacotron2 has one more frame and a half-hop offset (JIK issue #53)."""
    y = torch.from_numpy(random_audio(rng, 1, 8192 + 100)).float()
    a, b = mel_spectrogram(y), tacotron2_mel_spectrogram(y)
    assert b.shape[-1] == a.shape[-1] + 1
    assert (a - b[..., :-1]).abs().max() > 1e-2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mel_spectrograms_on_cuda_match_cpu(rng):
    y = torch.from_numpy(random_audio(rng, 2, 22050 + 37)).float()
    for fn in (mel_spectrogram, tacotron2_mel_spectrogram):
        out = fn(y.cuda())
        assert out.device.type == "cuda"
        torch.testing.assert_close(out.cpu(), fn(y), rtol=0, atol=1e-4)
    assert mel_filterbank(22050, 1024, 80, 0, 8000, device="cuda") is mel_filterbank(
        22050, 1024, 80, 0, 8000, device=torch.device("cuda", torch.cuda.current_device()))


# ---------------------------------------------------------------------------------------------
# Wav I/O
# ---------------------------------------------------------------------------------------------
def test_wav_int16_round_trip(rng, tmp_path):
    x = rng.uniform(-1.0, 1.0, size=22050 + 37)
    x[:4] = [1.0, -1.0, 0.999999, -0.999999]
    path = tmp_path / "nested" / "dir" / "a.wav"  # parents are created
    save_wav(path, torch.from_numpy(x).float(), 22050)
    assert sf.info(str(path)).subtype == "PCM_16"
    y, sr = load_wav(path, sampling_rate=22050)
    assert sr == 22050
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32 and y.shape == (x.size,)
    assert np.abs(y.double().numpy() - x.astype(np.float32)).max() <= 1.0 / 32768 + 1e-9
    assert y.min().item() == -1.0 and y.max().item() == 32767 / 32768
    # Stored ints are round(x * 32768), clipped to int16.
    ints, _ = sf.read(str(path), dtype="int16")
    expect = np.clip(np.rint(x.astype(np.float32) * 32768.0), -32768, 32767)
    np.testing.assert_array_equal(ints, expect)
    # No temp file left behind.
    assert os.listdir(path.parent) == ["a.wav"]


def test_save_wav_clips_and_accepts_1xT_numpy(tmp_path, rng):
    x = rng.uniform(-0.5, 0.5, size=(1, 1000))
    x[0, :2] = [1.7, -3.0]
    path = tmp_path / "clip.wav"
    path.write_bytes(b"old content")  # overwritten atomically
    save_wav(str(path), x, 16000)
    y, sr = load_wav(str(path))
    assert sr == 16000 and y.shape == (1000,)
    assert y[0].item() == 32767 / 32768 and y[1].item() == -1.0
    assert np.abs(y[2:].numpy() - x[0, 2:]).max() <= 1.0 / 32768


def test_save_wav_float_subtype_keeps_values(tmp_path, rng):
    x = rng.uniform(-2.0, 2.0, size=777).astype(np.float32)
    path = tmp_path / "f.wav"
    save_wav(path, x, 22050, subtype="FLOAT")
    assert sf.info(str(path)).subtype == "FLOAT"
    y, _ = load_wav(path)
    np.testing.assert_array_equal(y.numpy(), x)


def test_load_float32_wav_written_by_soundfile(tmp_path, rng):
    x = rng.uniform(-1.0, 1.0, size=5003).astype(np.float32)
    x[0], x[1] = 1.5, -1.25  # out of range: kept as stored
    path = tmp_path / "float.wav"
    sf.write(str(path), x, 22050, subtype="FLOAT")
    y, sr = load_wav(path)
    assert sr == 22050 and y.dtype == torch.float32
    np.testing.assert_array_equal(y.numpy(), x)


def test_load_pcm24_wav(tmp_path, rng):
    x = rng.uniform(-1.0, 1.0, size=1001)
    path = tmp_path / "p24.wav"
    sf.write(str(path), x, 44100, subtype="PCM_24")
    y, sr = load_wav(path)
    assert sr == 44100
    assert np.abs(y.double().numpy() - x).max() <= 1.0 / 2 ** 23


def test_load_wav_sampling_rate_mismatch(tmp_path, rng):
    path = tmp_path / "rate16k.wav"
    save_wav(path, rng.uniform(-1, 1, size=500), 16000)
    with pytest.raises(ValueError) as e:
        load_wav(path, sampling_rate=22050)
    msg = str(e.value)
    assert "16000" in msg and "22050" in msg and "rate16k.wav" in msg


def test_load_wav_missing_file(tmp_path):
    path = tmp_path / "does_not_exist.wav"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        load_wav(path)


def test_load_wav_garbage_file(tmp_path, rng):
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"this is not a wav file" + rng.bytes(200))
    with pytest.raises(ValueError, match=r"cannot read audio file.*" + re.escape(str(path))):
        load_wav(path)


def test_load_wav_stereo_file(tmp_path, rng):
    path = tmp_path / "stereo.wav"
    sf.write(str(path), rng.uniform(-1, 1, size=(800, 2)), 22050, subtype="PCM_16")
    with pytest.raises(ValueError, match=r"expected a mono \(1-channel\) file, got 2 channels.*stereo\.wav"):
        load_wav(path)


def test_save_wav_bad_inputs(tmp_path):
    with pytest.raises(TypeError, match=r"expected float audio, got dtype int16"):
        save_wav(tmp_path / "a.wav", np.zeros(10, dtype=np.int16) + 5, 22050)
    with pytest.raises(ValueError, match=r"shape \[T\] or \[1, T\], got \(2, 10\)"):
        save_wav(tmp_path / "a.wav", np.random.rand(2, 10), 22050)
    with pytest.raises(ValueError, match=r"NaN or infinite"):
        save_wav(tmp_path / "a.wav", np.array([0.1, math.nan]), 22050)
    with pytest.raises(ValueError, match=r"unsupported WAV subtype 'MP3'"):
        save_wav(tmp_path / "a.wav", np.random.rand(10), 22050, subtype="mp3")
    with pytest.raises(ValueError, match=r"sampling_rate must be a positive int, got 0"):
        save_wav(tmp_path / "a.wav", np.random.rand(10), 0)
    assert os.listdir(tmp_path) == []

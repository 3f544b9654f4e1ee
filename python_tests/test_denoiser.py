"""vocoder_ext.models.denoiser.Denoiser against references written here: an explicit frame loop with
numpy's FFT (reflect-padded Hann-windowed frames, overlap-add with window-sum-square normalisation) and
NVIDIA's conv-basis STFT (Fourier basis, pseudo-inverse synthesis basis) rebuilt in numpy."""
import functools

import numpy as np
import pytest
import torch
from torch import nn

import vocoder_ext
from vocoder_ext.models.denoiser import Denoiser

TINY_HIFIGAN = {"resblock": "2", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
                "upsample_initial_channel": 16, "resblock_kernel_sizes": [3],
                "resblock_dilation_sizes": [[1, 2]]}  # hop 256, like the real ones
HAS_WAVEGLOW = hasattr(vocoder_ext, "WaveGlow")
STFT_CONFIGS = [dict(filter_length=1024, hop_length=256, win_length=1024),
                dict(filter_length=512, hop_length=128, win_length=400)]  # window zero-padded to the centre


class StandInWaveGlow(nn.Module):
    """WaveGlow-like: n_mel_channels and infer(mel, sigma) -> deterministic audio [B, T * 256]."""

    def __init__(self, n_mel_channels=80, dtype=torch.float32):
        super().__init__()
        self.n_mel_channels = n_mel_channels
        self.gain = nn.Parameter(torch.tensor(0.3, dtype=dtype))
        self.calls = []

    def infer(self, mel, sigma=0.9, z=None):
        self.calls.append(dict(shape=tuple(mel.shape), dtype=mel.dtype, sigma=sigma,
                               zeros=bool((mel == 0).all()), grad=torch.is_grad_enabled()))
        t = torch.arange(mel.shape[-1] * 256, dtype=torch.float64, device=mel.device)
        audio = torch.sin(0.05 * t) + 0.5 * torch.sin(0.31 * t + 1.0) + 0.2 * torch.cos(1.7 * t)
        audio = self.gain.double() * audio + sigma + mel.double().mean()
        return audio.to(mel.dtype).expand(mel.shape[0], -1)


def tiny_waveglow():
    # 8 mel channels: the 80-channel upsampling conv would dominate the file's time (and the denoiser
    # must read n_mel_channels from the vocoder anyway)
    wg = vocoder_ext.WaveGlow(n_mel_channels=8, n_flows=4, n_group=8, n_early_every=2, n_early_size=2,
                              WN_config=dict(n_layers=2, n_channels=8, kernel_size=3))
    with torch.no_grad():  # WN.end starts at zero (identity couplings: zero audio from z = 0); randomize it
        for name, p in wg.named_parameters():
            if ".end." in name:
                p.normal_(0.0, 0.1)
    return wg


@pytest.fixture(scope="module")
def hifigan():
    torch.manual_seed(0)
    return vocoder_ext.HiFiGAN(TINY_HIFIGAN).eval()


@pytest.fixture(scope="module")
def denoiser(hifigan):
    return Denoiser(hifigan)


BIAS_AUDIO = {}  # (id(vocoder), mel_frames) -> (vocoder, audio): each vocoder is run once


def bias_audio_of(vocoder, mel_frames=88):
    """The zero-mel audio [T] as float64 numpy, computed here (NVIDIA: zeros mel, WaveGlow sigma=0)."""
    cached = BIAS_AUDIO.get((id(vocoder), mel_frames))
    if cached is not None and cached[0] is vocoder:
        return cached[1]
    with torch.no_grad():
        if hasattr(vocoder, "infer"):
            audio = vocoder.infer(torch.zeros(1, vocoder.n_mel_channels, mel_frames), sigma=0.0)[0]
        else:
            audio = vocoder(torch.zeros(1, vocoder.config["num_mels"], mel_frames))[0, 0]
    audio = audio.double().numpy()
    BIAS_AUDIO[(id(vocoder), mel_frames)] = (vocoder, audio)  # keeps the vocoder alive: ids stay unique
    return audio


# ---- reference 1: explicit frame loop ---------------------------------------------------------
def hann(win_length, filter_length):
    n = np.arange(win_length)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * n / win_length)  # periodic
    left = (filter_length - win_length) // 2
    return np.pad(w, (left, filter_length - win_length - left))


def loop_stft(x, filter_length, hop_length, win_length):
    """x [T] -> complex frames [n_frames, F] of reflect-padded (filter_length // 2 each side) frames."""
    half = filter_length // 2
    padded = np.pad(x, (half, half), mode="reflect")
    w = hann(win_length, filter_length)
    n_frames = 1 + (len(padded) - filter_length) // hop_length
    return np.stack([np.fft.rfft(padded[i * hop_length:i * hop_length + filter_length] * w)
                     for i in range(n_frames)])


def loop_istft(frames, length, filter_length, hop_length, win_length):
    w = hann(win_length, filter_length)
    n = filter_length + hop_length * (len(frames) - 1)
    out, wss = np.zeros(n), np.zeros(n)
    for i, frame in enumerate(frames):
        out[i * hop_length:i * hop_length + filter_length] += np.fft.irfft(frame, filter_length) * w
        wss[i * hop_length:i * hop_length + filter_length] += w ** 2
    nz = wss > np.finfo(np.float32).tiny
    out[nz] /= wss[nz]
    return out[filter_length // 2:filter_length // 2 + length]


def loop_denoise(audio, bias_audio, strength, **stft):
    """audio [B, T] numpy -> (denoised [B, T], bias magnitude [F], fraction of clamped bins)."""
    bias = np.abs(loop_stft(bias_audio, **stft)[0])
    outs, clamped = [], []
    for x in audio:
        spec = loop_stft(x, **stft)
        mag = np.abs(spec) - strength * bias
        clamped.append((mag < 0).mean())
        spec = np.maximum(mag, 0.0) * np.exp(1j * np.angle(spec))
        outs.append(loop_istft(spec, len(x), **stft))
    return np.stack(outs), bias, float(np.mean(clamped))


# ---- reference 2: NVIDIA's conv-basis STFT, in numpy -------------------------------------------
def fourier_basis(n):
    """Rows: real then imaginary parts of the first n // 2 + 1 rows of the n-point DFT matrix."""
    fourier = np.fft.fft(np.eye(n))
    return np.vstack([np.real(fourier[:n // 2 + 1]), np.imag(fourier[:n // 2 + 1])])


@functools.lru_cache(maxsize=None)
def pseudo_inverse(n):
    """pinv of fourier_basis(n) [2F, n] (full column rank): (A^T A)^-1 A^T, solved in fp64 with torch
    (an SVD-based pinv takes seconds on a 2-core host)."""
    a = torch.from_numpy(fourier_basis(n))
    pinv = torch.linalg.solve(a.T @ a, a.T).numpy()  # [n, 2F]
    assert np.allclose(pinv @ fourier_basis(n), np.eye(n), atol=1e-9)
    return pinv

def nvidia_denoise(audio, bias_audio, strength, filter_length=1024, hop_length=256, win_length=1024):
    """NVIDIA's STFT.transform / inverse (Fourier basis conv, pinv synthesis basis, window-sum-square
    where > tiny, * filter/hop, trim filter/2 both ends): output [B, (T // hop) * hop]."""
    n, half, cutoff = filter_length, filter_length // 2, filter_length // 2 + 1
    fourier = fourier_basis(n)  # [2F, n]
    scale = n / hop_length
    w = hann(win_length, n)
    forward_basis = fourier * w
    inverse_basis = pseudo_inverse(n).T / scale * w  # pinv(scale * fourier).T, windowed: [2F, n]

    def transform(x):
        padded = np.pad(x, (half, half), mode="reflect")
        n_frames = 1 + (len(padded) - n) // hop_length
        frames = np.stack([padded[i * hop_length:i * hop_length + n] for i in range(n_frames)], 1)
        out = forward_basis @ frames  # [2F, n_frames]
        re, im = out[:cutoff], out[cutoff:]
        return np.sqrt(re ** 2 + im ** 2), np.arctan2(im, re)

    def inverse(mag, phase):
        combined = np.concatenate([mag * np.cos(phase), mag * np.sin(phase)])  # [2F, n_frames]
        n_frames = mag.shape[1]
        length = n + hop_length * (n_frames - 1)
        out, wss = np.zeros(length), np.zeros(length)
        for i in range(n_frames):
            out[i * hop_length:i * hop_length + n] += inverse_basis.T @ combined[:, i]
            wss[i * hop_length:i * hop_length + n] += w ** 2
        nz = wss > np.finfo(np.float32).tiny
        out[nz] /= wss[nz]
        out *= scale
        return out[half:-half]

    bias = transform(bias_audio)[0][:, :1]
    outs = []
    for x in audio:
        mag, phase = transform(x)
        outs.append(inverse(np.maximum(mag - strength * bias, 0.0), phase))
    return np.stack(outs), bias[:, 0]


# ---- tests ---------------------------------------------------------------------------------------
NEEDS_WAVEGLOW = pytest.mark.skipif(not HAS_WAVEGLOW, reason="vocoder_ext.WaveGlow not there yet")
CASES = [pytest.param(kind, stft, id=f"{kind}-{name}")
         for name, stft in zip(["1024-256-1024", "512-128-400"], STFT_CONFIGS)
         for kind in ["hifigan", "standin"]]
# the real WaveGlow's eager CPU path is slow here: default STFT only
CASES.append(pytest.param("waveglow", STFT_CONFIGS[0], id="waveglow-1024-256-1024", marks=NEEDS_WAVEGLOW))


@pytest.fixture(scope="module")
def waveglow():
    torch.manual_seed(1)
    return tiny_waveglow().eval()


def make_vocoder(kind, request):
    if kind == "standin":
        return StandInWaveGlow()
    return request.getfixturevalue(kind)


@pytest.mark.parametrize("kind, stft", CASES)
def test_matches_frame_loop_reference(kind, stft, request):
    """bias_spec and the denoised audio of every vocoder kind (stand-in WaveGlow, real WaveGlow with
    random couplings, tiny HiFi-GAN) against the frame loop, with enough strength to clamp bins."""
    vocoder = make_vocoder(kind, request)
    d = Denoiser(vocoder, **stft)
    bias_audio = bias_audio_of(vocoder)
    assert bias_audio.shape == (88 * 256,) and np.abs(bias_audio).max() > 1e-4
    audio = torch.rand(2, 4099) * 2 - 1  # odd length, not a multiple of the hop
    # scale the strength so that a good share of the bins is clamped at 0
    strength = 0.5 * float(np.median(np.abs(loop_stft(audio[0].double().numpy(), **stft))) /
                           np.median(np.abs(loop_stft(bias_audio, **stft)[0])))
    want, bias, clamped = loop_denoise(audio.double().numpy(), bias_audio, strength, **stft)
    assert 0.05 < clamped < 0.95
    np.testing.assert_allclose(d.bias_spec[:, 0].double().numpy(), bias, rtol=1e-4,
                               atol=1e-5 * np.abs(bias).max())
    assert d.bias_spec.shape == (stft["filter_length"] // 2 + 1, 1)
    got = d(audio, strength)
    assert got.shape == audio.shape and got.dtype == torch.float32
    np.testing.assert_allclose(got.double().numpy(), want, atol=2e-5, rtol=0)
    assert not np.allclose(want, audio.double().numpy(), atol=1e-2)  # the denoising did something


@pytest.mark.parametrize("stft", STFT_CONFIGS, ids=["1024-256-1024", "512-128-400"])
def test_matches_nvidia_conv_stft(stft, hifigan):
    """NVIDIA's output is [B, (T // hop) * hop]; ours keeps T samples and agrees on that prefix."""
    denoiser = Denoiser(hifigan, **stft)
    hop = stft["hop_length"]
    audio = torch.rand(3, 3001) * 2 - 1
    want, bias = nvidia_denoise(audio.double().numpy(), bias_audio_of(hifigan), 0.7, **stft)
    np.testing.assert_allclose(denoiser.bias_spec[:, 0].double().numpy(), bias, rtol=1e-4,
                               atol=1e-5 * bias.max())
    got = denoiser(audio, 0.7)
    assert want.shape == (3, (3001 // hop) * hop) and got.shape == (3, 3001)
    np.testing.assert_allclose(got[:, :want.shape[1]].double().numpy(), want, atol=2e-5, rtol=0)


def test_waveglow_bias_uses_zero_mel_and_sigma_zero():
    vocoder = StandInWaveGlow(n_mel_channels=12, dtype=torch.bfloat16)
    d = Denoiser(vocoder, mel_frames=9)
    assert vocoder.calls == [dict(shape=(1, 12, 9), dtype=torch.bfloat16, sigma=0.0, zeros=True, grad=False)]
    assert d.bias_spec.dtype == torch.float32 and d.bias_spec.shape == (513, 1)
    assert [name for name, _ in d.named_buffers()] == ["bias_spec"]
    assert list(d.state_dict()) == ["bias_spec"] and not list(d.parameters())  # the vocoder is not kept


@pytest.mark.parametrize("length", [513, 1003, 4097, 22050])
def test_strength_zero_round_trip_and_length(denoiser, length):
    audio = torch.rand(2, length) * 2 - 1
    out = denoiser(audio, 0.0)
    assert out.shape == audio.shape
    assert (out - audio).abs().max() < 1e-5


def test_default_strength_is_the_constructors():
    d = Denoiser(StandInWaveGlow(), strength=0.3)
    audio = torch.rand(1, 3000) * 2 - 1
    assert d.strength == 0.3
    torch.testing.assert_close(d(audio), d(audio, 0.3), rtol=0, atol=0)
    assert not torch.allclose(d(audio), d(audio, 0.0))


def test_larger_strength_reduces_energy(denoiser):
    audio = (torch.rand(2, 8193) * 2 - 1) * 0.05
    energies = [denoiser(audio, s).pow(2).sum().item() for s in (0.0, 0.01, 0.1, 1.0, 10.0)]
    assert all(a > b for a, b in zip(energies, energies[1:])), energies


def test_layout_preserved(denoiser):
    audio = torch.rand(3, 1, 2501) * 2 - 1
    out = denoiser(audio, 0.1)
    assert out.shape == (3, 1, 2501)
    torch.testing.assert_close(out[:, 0], denoiser(audio[:, 0], 0.1))
    strided = (torch.rand(2, 5000) * 2 - 1)[:, ::2]  # non-contiguous
    torch.testing.assert_close(denoiser(strided, 0.1), denoiser(strided.contiguous(), 0.1))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_audio(denoiser, dtype):
    audio = (torch.rand(2, 1, 3001) * 2 - 1).to(dtype)
    out = denoiser(audio, 0.05)
    assert out.dtype == dtype and out.shape == audio.shape
    want = denoiser(audio.float(), 0.05)  # computed in fp32 from the same samples, rounded once
    assert (out.float() - want).abs().max() <= 2 * torch.finfo(dtype).eps
    back = denoiser(audio, 0.0)
    assert (back.float() - audio.float()).abs().max() <= torch.finfo(dtype).eps


def test_to_float64_moves_the_buffer(hifigan):
    d = Denoiser(hifigan).to(torch.float64)
    assert d.bias_spec.dtype == torch.float64
    audio = torch.rand(2, 2999, dtype=torch.float64) * 2 - 1
    out = d(audio, 0.2)
    assert out.dtype == torch.float64
    want, _, _ = loop_denoise(audio.numpy(), bias_audio_of(hifigan), 0.2,
                              filter_length=1024, hop_length=256, win_length=1024)
    np.testing.assert_allclose(out.numpy(), want, atol=1e-5, rtol=0)  # bias_spec was made in fp32
    assert (d(audio, 0.0) - audio).abs().max() < 1e-12


def test_gradient_flows(denoiser):
    audio = (torch.rand(1, 2000) * 2 - 1).requires_grad_()
    denoiser(audio, 0.1).pow(2).sum().backward()
    assert audio.grad is not None and torch.isfinite(audio.grad).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda(hifigan):
    d = Denoiser(StandInWaveGlow().cuda().half())
    assert d.bias_spec.is_cuda and d.bias_spec.dtype == torch.float32
    audio = (torch.rand(2, 1, 4001, device="cuda") * 2 - 1).half()
    out = d(audio, 0.05)
    assert out.is_cuda and out.dtype == torch.float16 and out.shape == audio.shape
    torch.testing.assert_close(out.float().cpu(), d.cpu()(audio.float().cpu(), 0.05), atol=2e-3, rtol=0)


def test_bad_audio(denoiser):
    with pytest.raises(TypeError, match=r"expected a torch.Tensor.*got ndarray"):
        denoiser(np.zeros((1, 2000), dtype=np.float32))
    with pytest.raises(TypeError, match=r"expected a floating-point tensor, got dtype torch.int16"):
        denoiser(torch.zeros(1, 2000, dtype=torch.int16))
    with pytest.raises(TypeError, match=r"floating-point.*complex64"):
        denoiser(torch.zeros(1, 2000, dtype=torch.complex64))
    for shape in [(2000,), (1, 2, 2000), (1, 1, 1, 2000)]:
        with pytest.raises(ValueError, match=r"expected shape \[B, T\] or \[B, 1, T\], got \("):
            denoiser(torch.zeros(shape))
    with pytest.raises(ValueError, match=r"more than filter_length // 2 = 512 samples.*got 512"):
        denoiser(torch.zeros(1, 512))


def test_bad_strength(denoiser, hifigan):
    audio = torch.rand(1, 2000)
    with pytest.raises(ValueError, match=r"strength: expected a real number >= 0, got -0.1"):
        denoiser(audio, -0.1)
    with pytest.raises(ValueError, match=r"strength: expected a real number >= 0, got nan"):
        denoiser(audio, float("nan"))
    with pytest.raises(TypeError, match=r"strength: expected a real number >= 0, got str"):
        denoiser(audio, "0.1")
    with pytest.raises(TypeError, match=r"strength: .* got bool"):
        denoiser(audio, True)
    with pytest.raises(ValueError, match=r"strength: expected a real number >= 0, got -1"):
        Denoiser(hifigan, strength=-1)


def test_bad_vocoder_and_config(hifigan):
    for bad, got in [(nn.Linear(2, 2), "Linear"), (object(), "object")]:
        with pytest.raises(TypeError, match=rf"WaveGlow-like.*HiFi-GAN-like.*got {got}"):
            Denoiser(bad)
    no_mels = StandInWaveGlow()
    del no_mels.n_mel_channels
    with pytest.raises(TypeError, match=r"has infer\(\) but no n_mel_channels"):
        Denoiser(no_mels)
    with pytest.raises(ValueError, match=r"win_length: expected <= filter_length \(512\), got 1024"):
        Denoiser(hifigan, filter_length=512)
    with pytest.raises(ValueError, match=r"hop_length: expected <= win_length \(1024\)"):
        Denoiser(hifigan, hop_length=2048)
    with pytest.raises(ValueError, match=r"mel_frames: expected a positive int, got 0"):
        Denoiser(hifigan, mel_frames=0)
    with pytest.raises(ValueError, match=r"too short for filter_length 1024"):
        Denoiser(StandInWaveGlow(), mel_frames=2)

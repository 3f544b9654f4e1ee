"""Audio front ends and wav I/O.

Two log-mel front ends are provided, because the two vocoders were trained on different ones:

- :func:`mel_spectrogram` -- HiFi-GAN's (jik876 ``meldataset.mel_spectrogram``): reflect pad
  ``(n_fft - hop) // 2`` on each side, un-centered STFT, magnitude ``sqrt(re^2 + im^2 + 1e-9)``.
  ``T // hop`` frames.
- :func:`tacotron2_mel_spectrogram` -- Tacotron2 / WaveGlow's (NVIDIA ``TacotronSTFT``): centered
  STFT (reflect pad ``n_fft // 2``), magnitude ``sqrt(re^2 + im^2)``. ``T // hop + 1`` frames.

Both use the same Slaney mel filterbank (:func:`mel_filterbank`, equal to
``librosa.filters.mel(htk=False, norm="slaney")``) and the same compression ``log(clamp(x, 1e-5))``.
:func:`mel_filterbank` also builds HTK-scale and unnormalised banks, for other toolkits' front ends
(``vocoder_ext.features``). Only torch is needed at run time.

Wav files are read and written with ``soundfile`` (:func:`load_wav`, :func:`save_wav`).
"""
from __future__ import annotations

import functools
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from .atomic import atomic_file

__all__ = [
    "mel_filterbank",
    "hann_window",
    "mel_spectrogram",
    "tacotron2_mel_spectrogram",
    "load_wav",
    "save_wav",
]

LOG_CLAMP = 1e-5  # floor applied before log in both front ends
HIFIGAN_MAG_EPS = 1e-9  # added under the sqrt in HiFi-GAN's magnitude


# --------------------------------------------------------------------------------------------
# Slaney mel scale
# --------------------------------------------------------------------------------------------
# Linear below 1000 Hz (200/3 Hz per mel), logarithmic above (a factor 6.4 every 27 mels).
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # = 15
_LOGSTEP = math.log(6.4) / 27.0


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    linear = hz / _F_SP
    log = _MIN_LOG_MEL + torch.log(torch.clamp(hz, min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(hz >= _MIN_LOG_HZ, log, linear)


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    linear = mel * _F_SP
    log = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (mel - _MIN_LOG_MEL))
    return torch.where(mel >= _MIN_LOG_MEL, log, linear)


# HTK mel scale (librosa htk=True, torchaudio mel_scale="htk"): 2595 * log10(1 + f / 700).
def _hz_to_mel_htk(hz: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def _mel_to_hz_htk(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (torch.pow(10.0, mel / 2595.0) - 1.0)


_MEL_SCALES = {"slaney": (_hz_to_mel, _mel_to_hz), "htk": (_hz_to_mel_htk, _mel_to_hz_htk)}
_MEL_NORMS = ("slaney", None)


def _canonical_device(device) -> torch.device:
    """``None`` -> cpu; ``"cuda"`` -> ``cuda:<current>`` so equal devices share one cache entry."""
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


@functools.lru_cache(maxsize=None)
def _cached_filterbank(sampling_rate, n_fft, num_mels, fmin, fmax, device, dtype, mel_scale="slaney",
                       norm="slaney"):
    # Built outside inference mode so a filterbank first made under torch.inference_mode()
    # can still be used later in a graph that needs gradients (e.g. the mel loss).
    with torch.inference_mode(False), torch.no_grad():
        f64 = torch.float64
        hz_to_mel, mel_to_hz = _MEL_SCALES[mel_scale]
        # Centre frequency of each onesided FFT bin: k * sr / n_fft
        # (equals linspace(0, sr/2, n_fft//2 + 1) for even n_fft).
        fft_hz = torch.arange(n_fft // 2 + 1, dtype=f64) * (sampling_rate / n_fft)
        # num_mels + 2 band edges, evenly spaced on the mel scale.
        lo, hi = hz_to_mel(torch.tensor([fmin, fmax], dtype=f64))
        edges_hz = mel_to_hz(torch.linspace(lo.item(), hi.item(), num_mels + 2, dtype=f64))

        widths = edges_hz[1:] - edges_hz[:-1]  # [num_mels + 1]
        ramps = edges_hz[:, None] - fft_hz[None, :]  # [num_mels + 2, n_freq]
        rising = -ramps[:-2] / widths[:-1, None]  # [num_mels, n_freq]
        falling = ramps[2:] / widths[1:, None]
        weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
        if norm == "slaney":  # area normalisation: each triangle has (roughly) unit area
            weights = weights * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
        return weights.to(device=device, dtype=dtype)


def mel_filterbank(sampling_rate, n_fft, num_mels, fmin, fmax, device=None, dtype=torch.float32, *,
                   mel_scale="slaney", norm="slaney"):
    """Mel filterbank, equal to ``librosa.filters.mel(htk=mel_scale == "htk", norm=norm)``; the defaults
    give the Slaney filterbank of HiFi-GAN and Tacotron2.

    Args:
        sampling_rate: sample rate in Hz.
        n_fft: FFT size; the filterbank covers the ``n_fft // 2 + 1`` onesided bins.
        num_mels: number of mel bands.
        fmin, fmax: lowest / highest band edge in Hz; ``fmax=None`` means ``sampling_rate / 2``.
        device, dtype: where and in which dtype to return it (computed in float64, then cast).
        mel_scale: ``"slaney"`` (linear below 1 kHz, logarithmic above) or ``"htk"``
            (``2595 * log10(1 + f / 700)``).
        norm: ``"slaney"`` (each triangle divided by half its width in Hz) or ``None`` (peak 1).

    Returns:
        Tensor ``[num_mels, n_fft // 2 + 1]``. The result is cached per
        ``(parameters, device, dtype)`` and the same tensor object is returned on every call:
        do not modify it in place.
    """
    if not (isinstance(n_fft, int) and n_fft > 0):
        raise ValueError(f"n_fft must be a positive int, got {n_fft!r}")
    if not (isinstance(num_mels, int) and num_mels > 0):
        raise ValueError(f"num_mels must be a positive int, got {num_mels!r}")
    if not sampling_rate > 0:
        raise ValueError(f"sampling_rate must be positive, got {sampling_rate!r}")
    if fmax is None:
        fmax = sampling_rate / 2.0
    if not 0 <= fmin < fmax:
        raise ValueError(f"need 0 <= fmin < fmax, got fmin={fmin!r}, fmax={fmax!r}")
    if mel_scale not in _MEL_SCALES:
        raise ValueError(f"mel_scale must be one of {sorted(_MEL_SCALES)}, got {mel_scale!r}")
    if norm not in _MEL_NORMS:
        raise ValueError(f"norm must be one of {_MEL_NORMS}, got {norm!r}")
    return _cached_filterbank(
        float(sampling_rate), n_fft, num_mels, float(fmin), float(fmax),
        _canonical_device(device), dtype, mel_scale, norm,
    )


@functools.lru_cache(maxsize=None)
def _cached_hann_window(win_size, device, dtype):
    with torch.inference_mode(False), torch.no_grad():
        return torch.hann_window(win_size, periodic=True, device=device, dtype=dtype)


def hann_window(win_size, device=None, dtype=torch.float32):
    """Periodic Hann window ``[win_size]`` (``torch.hann_window``), cached per (size, device, dtype).

    The same tensor object is returned on every call: do not modify it in place.
    """
    if not (isinstance(win_size, int) and win_size > 0):
        raise ValueError(f"win_size must be a positive int, got {win_size!r}")
    return _cached_hann_window(win_size, _canonical_device(device), dtype)


# --------------------------------------------------------------------------------------------
# Log-mel front ends
# --------------------------------------------------------------------------------------------
def _check_stft_params(n_fft, hop_size, win_size):
    for name, value in (("n_fft", n_fft), ("hop_size", hop_size), ("win_size", win_size)):
        if not (isinstance(value, int) and value > 0):
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if win_size > n_fft:
        raise ValueError(f"win_size must be <= n_fft, got win_size={win_size}, n_fft={n_fft}")
    if hop_size > n_fft:
        raise ValueError(f"hop_size must be <= n_fft, got hop_size={hop_size}, n_fft={n_fft}")


def _as_batched_float_audio(y, fn_name):
    """Validate ``y`` ([T] or [B, T], floating) and return it as ``[B, T]`` in the compute dtype.

    float32 and float64 are kept; float16 / bfloat16 are upcast to float32.
    """
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{fn_name}: expected audio as a torch.Tensor, got {type(y).__name__}")
    if not y.is_floating_point():
        raise TypeError(
            f"{fn_name}: expected a floating-point audio tensor (float32, float64, float16 or "
            f"bfloat16) with samples in [-1, 1], got dtype {y.dtype}"
        )
    if y.dim() not in (1, 2):
        raise ValueError(
            f"{fn_name}: expected audio of shape [T] or [B, T], got shape {tuple(y.shape)} "
            f"({y.dim()} dims)"
        )
    if y.dtype not in (torch.float32, torch.float64):
        y = y.float()
    return y if y.dim() == 2 else y.unsqueeze(0)


def _log_mel(magnitude, sampling_rate, n_fft, num_mels, fmin, fmax):
    """``[B, n_fft//2+1, N]`` magnitudes -> ``[B, num_mels, N]`` log-mel."""
    fb = mel_filterbank(sampling_rate, n_fft, num_mels, fmin, fmax,
                        device=magnitude.device, dtype=magnitude.dtype)
    return torch.log(torch.clamp(torch.matmul(fb, magnitude), min=LOG_CLAMP))


def mel_spectrogram(y, n_fft=1024, num_mels=80, sampling_rate=22050, hop_size=256,
                    win_size=1024, fmin=0, fmax=8000, center=False):
    """HiFi-GAN log-mel spectrogram (same math and positional signature as jik876
    ``meldataset.mel_spectrogram``).

    Steps: reflect pad ``(n_fft - hop_size) // 2`` samples on each side; ``torch.stft`` with a
    periodic Hann window of ``win_size`` (centred in ``n_fft`` if shorter), onesided, ``center``
    passed through (``center=True`` pads another ``n_fft // 2`` per side, as the original does);
    magnitude ``sqrt(re^2 + im^2 + 1e-9)``; Slaney mel filterbank (``fmax=None``: ``sr / 2``);
    ``log(clamp(mel, min=1e-5))``.

    Args:
        y: audio in [-1, 1], shape ``[B, T]`` or ``[T]``, any floating dtype, CPU or CUDA.
           float32/float64 are computed in their own dtype; float16/bfloat16 are upcast and
           computed in float32 (the output is then float32). Values are not range-checked.
    Returns:
        ``[B, num_mels, frames]`` for ``[B, T]`` input, ``[num_mels, frames]`` for ``[T]`` input,
        with ``frames = T // hop_size`` for the default ``center=False`` when ``n_fft - hop_size``
        is even (in general ``(T + 2*pad - n_fft) // hop_size + 1``).
    Raises:
        TypeError: ``y`` is not a floating-point tensor.
        ValueError: ``y`` is not 1-D or 2-D, is too short for one frame, or a size is invalid.
    """
    _check_stft_params(n_fft, hop_size, win_size)
    squeeze = isinstance(y, torch.Tensor) and y.dim() == 1
    y = _as_batched_float_audio(y, "mel_spectrogram")

    pad = (n_fft - hop_size) // 2
    # Reflect padding needs more than `pad` samples; one un-centered frame needs n_fft in total.
    min_len = max(pad + 1, n_fft - 2 * pad) if not center else pad + 1
    if y.shape[-1] < min_len:
        raise ValueError(
            f"mel_spectrogram: audio too short: need at least {min_len} samples for one frame "
            f"(n_fft={n_fft}, hop_size={hop_size}), got {y.shape[-1]}"
        )
    y = F.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    spec = torch.stft(
        y, n_fft, hop_length=hop_size, win_length=win_size,
        window=hann_window(win_size, device=y.device, dtype=y.dtype),
        center=center, pad_mode="reflect", normalized=False, onesided=True, return_complex=True,
    )
    magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + HIFIGAN_MAG_EPS)
    mel = _log_mel(magnitude, sampling_rate, n_fft, num_mels, fmin, fmax)
    return mel.squeeze(0) if squeeze else mel


def tacotron2_mel_spectrogram(y, n_fft=1024, num_mels=80, sampling_rate=22050, hop_size=256,
                              win_size=1024, fmin=0, fmax=8000):
    """Tacotron2 / WaveGlow log-mel spectrogram (NVIDIA ``TacotronSTFT.mel_spectrogram``).

    Steps: centered STFT (reflect pad ``n_fft // 2`` on each side, periodic Hann window of
    ``win_size`` centred in ``n_fft``); plain magnitude ``sqrt(re^2 + im^2)``; Slaney mel
    filterbank (``fmax=None``: ``sr / 2``); ``log(clamp(mel, min=1e-5))``.

    Args:
        y: audio in [-1, 1], shape ``[B, T]`` or ``[T]`` (dtype rules as :func:`mel_spectrogram`;
           the original asserts the range, this function does not check it).
    Returns:
        ``[B, num_mels, T // hop_size + 1]`` (``[num_mels, T // hop_size + 1]`` for ``[T]`` input).
    Raises:
        TypeError / ValueError as :func:`mel_spectrogram`.
    """
    _check_stft_params(n_fft, hop_size, win_size)
    squeeze = isinstance(y, torch.Tensor) and y.dim() == 1
    y = _as_batched_float_audio(y, "tacotron2_mel_spectrogram")

    min_len = n_fft // 2 + 1  # reflect padding by n_fft // 2 needs more samples than that
    if y.shape[-1] < min_len:
        raise ValueError(
            f"tacotron2_mel_spectrogram: audio too short: need at least {min_len} samples "
            f"(n_fft={n_fft}), got {y.shape[-1]}"
        )
    spec = torch.stft(
        y, n_fft, hop_length=hop_size, win_length=win_size,
        window=hann_window(win_size, device=y.device, dtype=y.dtype),
        center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True,
    )
    magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2))
    mel = _log_mel(magnitude, sampling_rate, n_fft, num_mels, fmin, fmax)
    return mel.squeeze(0) if squeeze else mel


# --------------------------------------------------------------------------------------------
# Wav I/O
# --------------------------------------------------------------------------------------------
def load_wav(path, sampling_rate=None):
    """Read a mono audio file as float32 samples.

    Integer PCM is scaled to [-1, 1) (int16 / 32768, int24 / 2**23, int32 / 2**31); float files are
    returned as stored, so values outside [-1, 1] are kept (not clipped, not normalised).

    Args:
        path: file path (str or os.PathLike).
        sampling_rate: if given, the file's rate must equal it (no resampling is done).
    Returns:
        ``(audio, sr)``: float32 tensor ``[T]`` on the CPU, and the file's sample rate (int).
    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file cannot be decoded, is not mono, or its rate differs from
            ``sampling_rate``.
    """
    import soundfile as sf

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_wav: no such audio file: {path!r}")
    try:
        info = sf.info(path)
    except (sf.SoundFileError, RuntimeError) as e:
        raise ValueError(f"load_wav: cannot read audio file {path!r}: {e}") from e
    if info.channels != 1:
        raise ValueError(
            f"load_wav: expected a mono (1-channel) file, got {info.channels} channels in {path!r}"
        )
    if sampling_rate is not None and info.samplerate != sampling_rate:
        raise ValueError(
            f"load_wav: {path!r} has sampling rate {info.samplerate} Hz, expected "
            f"{sampling_rate} Hz (resample the file first)"
        )
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=False)
    except (sf.SoundFileError, RuntimeError) as e:
        raise ValueError(f"load_wav: cannot read audio file {path!r}: {e}") from e
    return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)), int(sr)


def save_wav(path, audio, sampling_rate, subtype="PCM_16"):
    """Write mono audio to a WAV file, atomically (temp file in the same folder + ``os.replace``).

    Args:
        path: destination; missing parent folders are created.
        audio: float samples in [-1, 1], tensor (any device) or ndarray, shape ``[T]`` or ``[1, T]``.
        sampling_rate: sample rate in Hz (positive int).
        subtype: a soundfile WAV subtype, e.g. ``"PCM_16"`` (default), ``"PCM_24"``, ``"FLOAT"``.
            For integer (PCM) subtypes the audio is clipped to [-1, 1] first; ``PCM_16`` stores
            ``clip(round(x * 32768), -32768, 32767)``, the inverse of :func:`load_wav`'s scaling.
            Float subtypes store the values unchanged.
    Raises:
        TypeError: audio is not a float tensor/array.
        ValueError: bad shape, non-finite samples, bad rate or unsupported subtype.
    """
    import soundfile as sf

    if isinstance(audio, torch.Tensor):
        if not audio.is_floating_point():
            raise TypeError(f"save_wav: expected float audio, got dtype {audio.dtype}")
        audio = audio.detach().to(device="cpu", dtype=torch.float32).numpy()
    elif isinstance(audio, np.ndarray):
        if not np.issubdtype(audio.dtype, np.floating):
            raise TypeError(f"save_wav: expected float audio, got dtype {audio.dtype}")
    else:
        raise TypeError(
            f"save_wav: expected audio as a torch.Tensor or numpy.ndarray, got {type(audio).__name__}"
        )
    if audio.ndim == 2 and audio.shape[0] == 1:
        audio = audio[0]
    if audio.ndim != 1:
        raise ValueError(f"save_wav: expected audio of shape [T] or [1, T], got {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("save_wav: audio contains NaN or infinite samples")
    if not (isinstance(sampling_rate, (int, np.integer)) and sampling_rate > 0):
        raise ValueError(f"save_wav: sampling_rate must be a positive int, got {sampling_rate!r}")
    subtype = subtype.upper()
    if not sf.check_format("WAV", subtype):
        raise ValueError(
            f"save_wav: unsupported WAV subtype {subtype!r}; "
            f"choose one of {sorted(sf.available_subtypes('WAV'))}"
        )

    if subtype == "PCM_16":
        data = np.clip(np.rint(np.clip(audio, -1.0, 1.0) * 32768.0), -32768, 32767).astype(np.int16)
    elif subtype in ("FLOAT", "DOUBLE"):
        data = audio.astype(np.float32 if subtype == "FLOAT" else np.float64)
    else:
        data = np.clip(audio, -1.0, 1.0).astype(np.float32)

    with atomic_file(path) as f:
        sf.write(f, data, int(sampling_rate), subtype=subtype, format="WAV")

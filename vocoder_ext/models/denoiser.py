"""Denoiser: removes a vocoder's constant "bias" noise from its audio by spectral subtraction.

The same method as NVIDIA Deep Learning Examples' `Denoiser` (Tacotron2/waveglow/denoiser.py for
WaveGlow, HiFiGAN/hifigan/models.py for HiFi-GAN), written on torch.stft instead of NVIDIA's
conv-based STFT module; the two compute the same transform (see `Denoiser`).
"""
import numbers

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Denoiser"]

_TINY = torch.finfo(torch.float32).tiny  # NVIDIA normalises by the window sum only where it exceeds this


class Denoiser(nn.Module):
    """Subtract a vocoder's bias spectrum from audio it produced.

    At construction the vocoder synthesises audio from an all-zero mel [1, n_mel, mel_frames] (WaveGlow
    with sigma=0, so the result is deterministic); the STFT magnitude of that audio's first frame is the
    bias spectrum, the noise floor the vocoder adds whatever the mel. `forward` takes the STFT of the
    audio, subtracts `strength * bias_spec` from every frame's magnitude, clamps at 0 and inverts with
    the audio's own phase.

    vocoder: a WaveGlow-like module (has `infer(mel, sigma=...)` -> audio [B, T] and `n_mel_channels`)
        or a HiFi-GAN-like module (`vocoder(mel)` -> audio [B, 1, T], mel channels in
        `vocoder.config["num_mels"]`). The bias is computed under torch.no_grad() on the device and
        dtype of the vocoder's first parameter; the vocoder is not kept.
    strength: default subtraction factor for `forward` (>= 0; NVIDIA's inference scripts use 0.01 for
        WaveGlow and 0.005 in the HiFi-GAN hub example).
    filter_length, hop_length, win_length: the STFT's n_fft, hop and (periodic) Hann window length;
        NVIDIA's defaults 1024 / 256 (filter_length / 4) / 1024.
    mel_frames: frames of the zero mel (NVIDIA: 88).

    Buffer `bias_spec` [filter_length // 2 + 1, 1], fp32 (moved by `.to()`); NVIDIA keeps the same
    values as [1, F, 1].

    NVIDIA equivalence: NVIDIA's STFT reflect-pads filter_length // 2 samples on both sides, takes
    frames every hop_length samples through a conv1d with the windowed Fourier basis (magnitude
    sqrt(re^2 + im^2), phase atan2(im, re)), and inverts with conv_transpose1d of the windowed
    pseudo-inverse basis, divides by the window-sum-square envelope where it is > tiny(float32),
    scales by filter_length / hop_length and trims filter_length // 2 samples at both ends. That is
    torch.stft(center=True, pad_mode="reflect", periodic Hann window zero-padded to the centre,
    normalized=False) followed by irfft, windowed overlap-add and the same envelope division, which
    is what this module does. Differences: NVIDIA's output is [B, 1, (T // hop) * hop] (it drops the
    last T % hop samples) while this returns the input's layout and full length (the first
    (T // hop) * hop samples agree with NVIDIA's); the STFT runs in fp32 (fp64 for fp64 audio) and the
    result is cast back to the input dtype; NVIDIA's `forward` default strength is 0.1, here it is the
    constructor's `strength`.
    """

    def __init__(self, vocoder, strength=0.01, filter_length=1024, hop_length=256, win_length=1024,
                 mel_frames=88):
        super().__init__()
        for name, value in (("filter_length", filter_length), ("hop_length", hop_length),
                            ("win_length", win_length), ("mel_frames", mel_frames)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if win_length > filter_length:
            raise ValueError(f"win_length: expected <= filter_length ({filter_length}), got {win_length}")
        if hop_length > win_length:
            raise ValueError(f"hop_length: expected <= win_length ({win_length}) so that every sample is "
                             f"in some window, got {hop_length}")
        self.strength = _check_strength(strength)
        self.filter_length, self.hop_length, self.win_length = filter_length, hop_length, win_length
        self.mel_frames = mel_frames

        bias_audio = self._bias_audio(vocoder, mel_frames)
        if bias_audio.shape[-1] <= filter_length // 2:
            raise ValueError(f"the vocoder's bias audio has {bias_audio.shape[-1]} samples, too short for "
                             f"filter_length {filter_length}; expected more than {filter_length // 2} "
                             f"(raise mel_frames)")
        with torch.no_grad():
            spec = self._stft(bias_audio.float())  # [1, F, frames]
        self.register_buffer("bias_spec", spec[0, :, :1].abs().contiguous())  # [F, 1]

    @staticmethod
    def _bias_audio(vocoder, mel_frames):
        """Audio [1, T] the vocoder makes from an all-zero mel, on its device and in its dtype."""
        expected = ("expected a WaveGlow-like module (infer(mel, sigma) and n_mel_channels) or a "
                    "HiFi-GAN-like module (called on a mel, config['num_mels'])")
        if not isinstance(vocoder, nn.Module):
            raise TypeError(f"vocoder: {expected}, got {type(vocoder).__name__}")
        if hasattr(vocoder, "infer"):
            if not hasattr(vocoder, "n_mel_channels"):
                raise TypeError(f"vocoder: {expected}; {type(vocoder).__name__} has infer() but no "
                                "n_mel_channels")
            n_mel, kind = int(vocoder.n_mel_channels), "waveglow"
        else:
            config = getattr(vocoder, "config", None)
            try:
                n_mel = int(config["num_mels"])
            except (TypeError, KeyError, ValueError):
                raise TypeError(f"vocoder: {expected}, got {type(vocoder).__name__} (no infer() and no "
                                "config['num_mels'])") from None
            kind = "hifigan"
        param = next(vocoder.parameters(), None)
        if param is None:
            raise TypeError(f"vocoder: {expected}, got a {type(vocoder).__name__} without parameters "
                            "(its device and dtype come from its first parameter)")
        mel = torch.zeros(1, n_mel, mel_frames, device=param.device, dtype=param.dtype)
        with torch.no_grad():
            audio = vocoder.infer(mel, sigma=0.0) if kind == "waveglow" else vocoder(mel)[:, 0]
        if audio.dim() != 2 or audio.shape[0] != 1:
            raise ValueError(f"vocoder: its bias audio should be [1, T], got shape {tuple(audio.shape)}")
        return audio

    # ---- STFT --------------------------------------------------------------------------------
    def _window(self, device, dtype):
        """Periodic Hann window of win_length, zero-padded at both sides to filter_length (centred)."""
        w = torch.hann_window(self.win_length, periodic=True, device=device, dtype=dtype)
        left = (self.filter_length - self.win_length) // 2
        return F.pad(w, (left, self.filter_length - self.win_length - left))

    def _stft(self, audio):
        """audio [B, T] (fp32/fp64) -> complex spectrum [B, filter_length // 2 + 1, T // hop + 1]."""
        return torch.stft(audio, self.filter_length, self.hop_length,
                          window=self._window(audio.device, audio.dtype), center=True,
                          pad_mode="reflect", normalized=False, onesided=True, return_complex=True)

    def _istft(self, spec, length):
        """Windowed overlap-add of the inverse frames, divided by the window-sum-square envelope where
        it is > tiny (NVIDIA's rule), trimmed to [filter_length // 2, filter_length // 2 + length)."""
        n_fft, hop = self.filter_length, self.hop_length
        n_frames = spec.shape[-1]
        window = self._window(spec.device, spec.real.dtype)
        frames = torch.fft.irfft(spec, n=n_fft, dim=1) * window[:, None]  # [B, n_fft, frames]
        full = n_fft + hop * (n_frames - 1)
        fold = dict(output_size=(1, full), kernel_size=(1, n_fft), stride=(1, hop))
        audio = F.fold(frames, **fold).flatten(1)  # [B, full]
        envelope = F.fold((window ** 2)[None, :, None].expand(1, n_fft, n_frames), **fold).flatten()
        audio = torch.where(envelope > _TINY, audio / envelope.clamp_min(_TINY), audio)
        start = n_fft // 2
        audio = audio[:, start:start + length]
        if audio.shape[1] < length:  # only when hop > filter_length / 2: samples no frame reached
            audio = F.pad(audio, (0, length - audio.shape[1]))
        return audio

    # ---- forward -----------------------------------------------------------------------------
    def forward(self, audio, strength=None):
        """audio [B, T] or [B, 1, T], floating point -> denoised audio, same shape and dtype.

        strength: subtraction factor (>= 0); None uses the constructor's.
        """
        strength = self.strength if strength is None else _check_strength(strength)
        if not isinstance(audio, torch.Tensor):
            raise TypeError(f"audio: expected a torch.Tensor [B, T] or [B, 1, T], got {type(audio).__name__}")
        if not audio.is_floating_point():
            raise TypeError(f"audio: expected a floating-point tensor, got dtype {audio.dtype}")
        if not (audio.dim() == 2 or (audio.dim() == 3 and audio.shape[1] == 1)):
            raise ValueError(f"audio: expected shape [B, T] or [B, 1, T], got {tuple(audio.shape)}")
        length = audio.shape[-1]
        if length <= self.filter_length // 2:
            raise ValueError(f"audio: expected more than filter_length // 2 = {self.filter_length // 2} "
                             f"samples (the STFT reflect-pads that many), got {length}")
        if audio.device != self.bias_spec.device:
            raise ValueError(f"audio is on {audio.device} but the denoiser is on {self.bias_spec.device}; "
                             "move one with .to()")
        if audio.shape[0] == 0:
            return audio.clone()

        compute = torch.float64 if audio.dtype == torch.float64 else torch.float32
        x = audio.reshape(audio.shape[0], length).to(compute)
        spec = self._stft(x)
        magnitude, phase = spec.abs(), spec.angle()
        magnitude = (magnitude - strength * self.bias_spec.to(compute)).clamp_min(0.0)
        out = self._istft(torch.polar(magnitude, phase), length)
        return out.to(audio.dtype).reshape(audio.shape)

    def extra_repr(self):
        return (f"strength={self.strength}, filter_length={self.filter_length}, "
                f"hop_length={self.hop_length}, win_length={self.win_length}, mel_frames={self.mel_frames}")


def _check_strength(strength):
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real):
        raise TypeError(f"strength: expected a real number >= 0, got {type(strength).__name__}")
    if not strength >= 0:  # also rejects NaN
        raise ValueError(f"strength: expected a real number >= 0, got {strength}")
    return float(strength)

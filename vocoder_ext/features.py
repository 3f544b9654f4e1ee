"""A toolkit's input features, computed exactly.

A HiFi-GAN trained by another toolkit expects that toolkit's mel spectrogram, not jik876's: other framing,
window, filterbank, log base and floor, and often a normalisation. The toolkit readers
(``vocoder_ext.checkpoint.toolkits``) describe it as a ``features`` dict (``HiFiGAN.from_pretrained`` sets it
as ``model.features``); this module computes it from audio and converts between descriptions where that is
exact. Only torch is needed at run time. The module is over 400 lines because the schema, the pipeline that
computes it and the exactness rules of `convert` are one idea: splitting them would split the schema.

- :func:`mel_spectrogram` ``(wav, features, *, sample_rate=None)``: wav ``[T]`` or ``[B, T]`` ->
  ``[B, n_mels, frames]``, in the wav's dtype (float32 or float64; float16/bfloat16 are computed in float32).
- :func:`convert` ``(mel, src_features, dst_features)``: one toolkit's mel to another's, only where the two
  share the linear mel (same sample rate, framing, window, magnitude, filterbank) and differ after it by
  what can be undone: a log-base change, a gain, an affine (range or mean/std) normalisation, a higher clamp
  floor, a narrower range clip. Anything else raises ValueError naming each differing field with both values.
- :func:`check_mel` ``(mel, features)``, :func:`check_sample_rate` ``(sample_rate, features)``: the mel's bin
  count / the audio's rate against the features', errors naming both sides.
- :func:`describe` ``(**values)``: a complete dict (every key below, neutral values for what is not given);
  the readers build theirs with it.

The pipeline, in order (a step whose key is at its neutral value is skipped):

    wav * wav_gain -> pre-emphasis (before or after the pad) -> pad `pad` samples each side (pad_mode)
    -> STFT(n_fft, hop_length, window of win_length centred in n_fft, no further padding) [/ stft_normalized]
    -> |X| = sqrt(re^2 + im^2 [+ or max] magnitude_guard) -> |X| ** magnitude_power
    -> filterbank @ |X| -> log(max(x, log_floor) or x + log_floor) in base `log` -> * log_gain
    -> normalization -> masked_tail (last frame = pad_value) -> pad_to (frames padded with pad_value)

The schema (every toolkit's dict has every key; ``None`` marks a step that is off, or, for a key listed in
``missing``, a value nobody knows):

| key | values | meaning |
|---|---|---|
| toolkit, source | str | "parallel_wavegan", "espnet", "coqui", "speechbrain", "nemo", "huggingface"; file(s) read |
| sample_rate | int Hz | the rate the wav must have (no resampling is done) |
| n_fft, win_length, hop_length | int samples | FFT size; window length (<= n_fft, centred in it); frame step |
| n_mels | int | mel bins (the generator's input channels) |
| wav_gain | float | factor on the wav before anything else (PWG `global_gain_scale`); 1.0 |
| preemphasis | float or None | c in y[0] = x[0], y[n] = x[n] - c x[n-1] (Coqui, NeMo) |
| preemphasis_after_pad | bool | applied to the padded signal (NeMo with exact_pad), else to the wav |
| dither | float | NeMo's noise; never applied (1) |
| framing | "centered", "padded" | a label for `pad`: n_fft // 2 (center=True), or (n_fft - hop) // 2 (jik876, NeMo exact_pad) |
| pad | int samples | added at each end before un-centred framing (None: derived from framing) |
| pad_mode | "reflect", "constant", "replicate" | how the pad is filled ("constant": zeros; librosa's "edge" is "replicate") |
| window, window_periodic | "hann", "hamming", "blackman", "bartlett", "ones"; bool | periodic (torch, librosa) or symmetric (NeMo) |
| window_weights | tensor [win_length] or None | the toolkit's stored window (NeMo), used instead of the two above |
| stft_normalized | None, "window", "frame_length" | STFT / sqrt(sum window^2) (torchaudio), / sqrt(n_fft) (torch.stft) |
| magnitude_guard_type | None, "add", "clamp" | sqrt(re^2 + im^2 + g) (jik876, NeMo use_grads), sqrt(max(re^2 + im^2, g)) (ESPnet) |
| magnitude_guard | float | that g |
| magnitude_power | float | 1.0 magnitude, 2.0 power |
| fmin, fmax | float Hz | mel band edges (fmax resolved: a file's null is sample_rate / 2) |
| mel_scale, mel_norm | "slaney" or "htk"; "slaney" or None | mel scale; Slaney area normalisation or none (peak 1) |
| filterbank | tensor [n_mels, n_fft // 2 + 1] or None | the toolkit's stored mel matrix (NeMo `fb`, ESPnet `melmat`), used instead of the four above |
| filterbank_dtype | "float32", "float64" | the precision the toolkit keeps its matrix in (librosa, torchaudio: float32): it is rounded to it |
| log | None, "ln", "log10", "log2" | the log of the mel; None: a linear mel |
| log_guard, log_floor | None, "clamp", "add"; float | log(max(x, floor)) or log(x + floor) |
| log_gain | float > 0 | factor after the log (Coqui `spec_gain`: 20 for dB); 1.0 |
| normalization | None or dict | after the log (2) |
| masked_tail | bool | NeMo >= 2025-07's length mask (3); False elsewhere |
| pad_value, pad_to | float; int | value of frames past the valid length (NeMo); frames padded with it to a multiple of pad_to (0: off) |
| inference_padding | int | frames the toolkit's inference() replicate-pads around the generator's input (Coqui, SpeechBrain: 5) |
| unsupported | list of str | settings of the toolkit's front end not reproduced here: computing raises naming them |
| missing | list of str | keys the file does not give and the toolkit has no default for: None, unknown; computing raises naming them |
| defaults | list of str | keys the file does not give, set to the toolkit's own default (what it computes from that file) |
| notes | list of str | caveats |

(1) NeMo dithers only in training mode, so a trained model's inference-time features have no dither.
(2) By "type": "mean_scale" {mean, scale: tensors [n_mels]}: (x - mean) / scale (PWG stats, ESPnet GlobalMVN's
    std, SpeechT5HifiGan's buffers, Coqui's mean-var stats); "range" {ref_level_db, min_level_db, max_norm,
    symmetric, clip_norm}: Coqui's signal_norm; "per_feature" / "all_features": NeMo's per-utterance
    (x - mean) / (std + 1e-5), std with n - 1, over the valid frames. Other entries (source, note) inform.
(3) NeMo #13827 counts one frame fewer as valid: the last frame is pad_value and left out of per-utterance
    statistics, and with pre-emphasis after the pad the padded signal is zeroed from sample T on.

Readers may add informational keys (e.g. SpeechBrain's `recipe_defaults`, PWG's `format`).

What each toolkit sets (the readers fill the rest from the file; each module's docstring says where from):

- parallel_wavegan: librosa front end: centered (pad n_fft // 2, reflect), periodic window, |X|, librosa
  Slaney filterbank (float32), log10(max(x, 1e-10)), mean_scale from stats.npy / stats.h5; wav_gain =
  global_gain_scale.
- espnet: LogMelFbank: torch.stft centered, sqrt(max(|X|^2, 1e-10)), stored melmat, log10(max(x, 1e-10)),
  GlobalMVN as mean_scale.
- coqui: AudioProcessor.melspectrogram: pre-emphasis, librosa STFT (centered, stft_pad_mode), |X|,
  Slaney filterbank (float32), spec_gain * log10 (or ln) (max(x, 1e-8)), then signal_norm: range
  (ref_level_db, min_level_db, max_norm, symmetric, clip) or mean_scale (scale_stats.npy: a pickled dict,
  not loaded, so its mean/scale are None).
- speechbrain: torchaudio MelSpectrogram (centered, reflect, periodic Hann, power, normalized, norm,
  mel_scale; float32 filterbank), ln(max(x, 1e-5)).
- nemo: FilterbankFeatures: exact_pad -> padded framing, else centered; symmetric window (stored), |X| **
  mag_power, stored fb, ln with add/clamp guard, per_feature/all_features, pad_value, pad_to; pad_mode
  "reflect" and masked_tail False (before NeMo #13827, 2025-07; set "constant" and True for later models).
- huggingface: SpeechT5FeatureExtractor (preprocessor_config.json): centered reflect, periodic window, |X|,
  float64 Slaney filterbank, log10(max(x, mel_floor)); SpeechT5HifiGan's mean/scale buffers.

Exactness: float64 input gives the toolkit's math in float64 (the toolkits themselves mostly run in float32:
expect float32-level differences from their own outputs); constants the toolkit stores in float32 (a
filterbank, a window) are used as stored. :func:`convert` compares stored matrices to described ones to
float32 precision.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from . import audio

__all__ = ["mel_spectrogram", "convert", "check_mel", "check_sample_rate", "describe", "SCHEMA_KEYS"]

# The neutral value of every key: the step it controls is off (None where there is no neutral value).
_NEUTRAL = {
    "toolkit": None, "source": None, "sample_rate": None, "n_fft": None, "win_length": None, "hop_length": None,
    "n_mels": None, "wav_gain": 1.0, "preemphasis": None, "preemphasis_after_pad": False, "dither": 0.0,
    "framing": None, "pad": None, "pad_mode": "reflect", "window": "hann", "window_periodic": True,
    "window_weights": None, "stft_normalized": None, "magnitude_guard_type": None, "magnitude_guard": 0.0,
    "magnitude_power": 1.0, "fmin": None, "fmax": None, "mel_scale": "slaney", "mel_norm": "slaney",
    "filterbank": None, "filterbank_dtype": "float64", "log": None, "log_guard": None, "log_floor": None,
    "log_gain": 1.0, "normalization": None, "masked_tail": False, "pad_value": 0.0, "pad_to": 0,
    "inference_padding": 0, "unsupported": (), "missing": (), "defaults": (), "notes": (),
}
SCHEMA_KEYS = tuple(_NEUTRAL)

_WINDOWS = {"hann": torch.hann_window, "hamming": torch.hamming_window, "blackman": torch.blackman_window,
            "bartlett": torch.bartlett_window, "ones": None}
_LOGS = {"ln": (torch.log, 1.0), "log10": (torch.log10, math.log(10.0)), "log2": (torch.log2, math.log(2.0))}
_CHOICES = {"framing": ("centered", "padded", None), "pad_mode": ("reflect", "constant", "replicate"),
            "window": tuple(_WINDOWS), "stft_normalized": (None, "window", "frame_length"),
            "magnitude_guard_type": (None, "add", "clamp"), "mel_scale": ("slaney", "htk"),
            "mel_norm": ("slaney", None), "filterbank_dtype": ("float32", "float64"), "log": (None, *_LOGS),
            "log_guard": (None, "clamp", "add")}
_NORMALIZATIONS = {"mean_scale": ("mean", "scale"),
                   "range": ("ref_level_db", "min_level_db", "max_norm", "symmetric", "clip_norm"),
                   "per_feature": (), "all_features": ()}
_NEMO_STD_GUARD = 1e-5  # NeMo's CONSTANT added to the per-utterance std
# A stored matrix and a described one (or two stored ones) are the same filterbank if they agree to float32
# precision: the toolkits keep them in float32.
_MATRIX_RTOL = 1e-5


def describe(**values):
    """A features dict with every schema key: `values`, and the neutral value (step off) for the rest.
    Raises ValueError for a key that is not in the schema (a misspelling would silently be ignored)."""
    unknown = sorted(set(values) - set(_NEUTRAL))
    if unknown:
        raise ValueError(f"describe: {unknown} are not feature keys (the keys are {list(SCHEMA_KEYS)})")
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in _NEUTRAL.items()}
    out.update(values)
    return out


# ---- reading a features dict -------------------------------------------------------------------------
def _name(features):
    return f"{features.get('toolkit') or 'the given'} features"


def _resolve(features, doing):
    """The features completed with neutral values, validated: raises ValueError naming unknown values (None and
    listed in `missing`, or None where None means nothing), unsupported settings and invalid values."""
    if not isinstance(features, Mapping):
        raise TypeError(f"{doing}: features must be a dict (a toolkit reader's `features`, model.features), "
                        f"got {type(features).__name__}")
    f = {**_NEUTRAL, **features}
    who = _name(f)
    if f["pad"] is None and f["framing"] is not None and isinstance(f["n_fft"], int) \
            and isinstance(f["hop_length"], int):
        f["pad"] = f["n_fft"] // 2 if f["framing"] == "centered" else (f["n_fft"] - f["hop_length"]) // 2
    required = ["sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "pad", "pad_mode", "wav_gain",
                "magnitude_power", "log_gain", "filterbank_dtype", "preemphasis_after_pad", "masked_tail"]
    if f["window_weights"] is None:
        required += ["window", "window_periodic"]
    if f["filterbank"] is None:
        required += ["fmin", "fmax", "mel_scale"]
    if f["log"] is not None:
        required += ["log_floor"] if f["log_guard"] is not None else []
    if f["magnitude_guard_type"] is not None:
        required.append("magnitude_guard")
    if f["masked_tail"] or f["pad_to"]:
        required.append("pad_value")
    listed = set(f["missing"] or ())
    unknown = [k for k in SCHEMA_KEYS if f[k] is None and (k in required or k in listed)]
    norm = f["normalization"]
    if isinstance(norm, Mapping):
        unknown += [f"normalization[{k!r}]" for k in _NORMALIZATIONS.get(norm.get("type"), ()) if norm.get(k) is None]
    if unknown:
        notes = " ".join([*(f["notes"] or ()), *([norm["note"]] if isinstance(norm, Mapping) and norm.get("note")
                                                 else [])])
        raise ValueError(f"{doing}: {who} do not say {', '.join(unknown)} (None; "
                         f"{'the file does not give them, see missing' if listed else 'required'}). Fill them in "
                         f"the dict from the toolkit's training config" + (f". Notes: {notes}" if notes else ""))
    if f["unsupported"]:
        raise ValueError(f"{doing}: {who} use settings this module does not reproduce exactly: "
                         f"{'; '.join(map(str, f['unsupported']))}")
    for key, allowed in _CHOICES.items():
        if f[key] not in allowed:
            raise ValueError(f"{doing}: {who} have {key} = {f[key]!r}; expected one of {list(allowed)}")
    for key in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
        if not (isinstance(f[key], int) and not isinstance(f[key], bool) and f[key] > 0):
            raise ValueError(f"{doing}: {who} have {key} = {f[key]!r}; expected a positive int")
    if f["win_length"] > f["n_fft"]:
        raise ValueError(f"{doing}: {who} have win_length {f['win_length']} > n_fft {f['n_fft']}")
    if not (isinstance(f["pad"], int) and f["pad"] >= 0):
        raise ValueError(f"{doing}: {who} have pad = {f['pad']!r}; expected an int >= 0")
    if not (isinstance(f["pad_to"], int) and f["pad_to"] >= 0):
        raise ValueError(f"{doing}: {who} have pad_to = {f['pad_to']!r}; expected an int >= 0 (NeMo's "
                         "pad_to 'max' is not reproduced)")
    if not f["log_gain"] > 0:
        raise ValueError(f"{doing}: {who} have log_gain = {f['log_gain']!r}; expected > 0")
    if f["log"] is not None and f["log_guard"] is not None and not f["log_floor"] > 0:
        raise ValueError(f"{doing}: {who} have log_floor = {f['log_floor']!r}; expected > 0")
    if f["filterbank"] is None:
        fmin, fmax = f["fmin"], f["fmax"]
        if not 0 <= fmin < fmax <= f["sample_rate"] / 2:
            raise ValueError(f"{doing}: {who} have fmin {fmin}, fmax {fmax}; expected 0 <= fmin < fmax <= "
                             f"sample_rate / 2 = {f['sample_rate'] / 2}")
    if norm is not None:
        if not isinstance(norm, Mapping) or norm.get("type") not in _NORMALIZATIONS:
            raise ValueError(f"{doing}: {who} have normalization {norm!r}; expected None or a dict with type in "
                             f"{list(_NORMALIZATIONS)}")
        if norm["type"] == "range" and not (norm["min_level_db"] < 0 and norm["max_norm"] > 0):
            raise ValueError(f"{doing}: {who} have a range normalization with min_level_db "
                             f"{norm['min_level_db']} and max_norm {norm['max_norm']}; expected < 0 and > 0")
        if norm["type"] == "mean_scale":
            for key in ("mean", "scale"):
                shape = tuple(torch.as_tensor(norm[key]).shape)
                if shape != (f["n_mels"],):
                    raise ValueError(f"{doing}: {who} have normalization[{key!r}] of shape {list(shape)}; "
                                     f"expected [{f['n_mels']}] (n_mels)")
    return f


def _tensor_or_none(value, shape, key, f, device, dtype):
    if value is None:
        return None
    t = torch.as_tensor(value)
    if tuple(t.shape) != shape and t.dim() == len(shape) + 1 and t.shape[0] == 1:
        t = t[0]  # NeMo keeps fb as [1, n_mels, n_freq]
    if tuple(t.shape) != shape:
        raise ValueError(f"{_name(f)} have a stored {key} of shape {list(t.shape)}; expected {list(shape)}")
    return t.to(device=device, dtype=dtype)


def _window(f, device, dtype):
    stored = _tensor_or_none(f["window_weights"], (f["win_length"],), "window_weights", f, device, dtype)
    if stored is not None:
        return stored
    if f["window"] == "ones":
        return torch.ones(f["win_length"], device=device, dtype=dtype)
    return _WINDOWS[f["window"]](f["win_length"], periodic=f["window_periodic"], device=device, dtype=dtype)


def _filterbank(f, device, dtype):
    shape = (f["n_mels"], f["n_fft"] // 2 + 1)
    stored = _tensor_or_none(f["filterbank"], shape, "filterbank", f, device, dtype)
    if stored is not None:
        return stored
    fb = audio.mel_filterbank(f["sample_rate"], f["n_fft"], f["n_mels"], f["fmin"], f["fmax"], device=device,
                              dtype=torch.float64, mel_scale=f["mel_scale"], norm=f["mel_norm"])
    if f["filterbank_dtype"] == "float32":
        fb = fb.float()
    return fb.to(dtype)


# ---- the front end ------------------------------------------------------------------------------------
def check_sample_rate(sample_rate, features):
    """Raise ValueError unless `sample_rate` (Hz) is the features' rate (no resampling is done)."""
    want = features.get("sample_rate") if isinstance(features, Mapping) else None
    if want is None:
        raise ValueError(f"{_name(features) if isinstance(features, Mapping) else 'these features'} do not say "
                         f"their sample rate, so a {sample_rate} Hz wav cannot be checked against it")
    if sample_rate != want:
        raise ValueError(f"the wav is at {sample_rate} Hz but {_name(features)} are computed at {want} Hz; "
                         "resample it first")


def _as_batched_wav(wav):
    if not isinstance(wav, torch.Tensor):
        raise TypeError(f"mel_spectrogram: expected the wav as a torch.Tensor, got {type(wav).__name__}")
    if not wav.is_floating_point():
        raise TypeError(f"mel_spectrogram: expected a floating-point wav (float32 or float64, samples in [-1, 1]), "
                        f"got dtype {wav.dtype}")
    if wav.dim() not in (1, 2):
        raise ValueError(f"mel_spectrogram: expected a wav of shape [T] or [B, T], got shape {list(wav.shape)}")
    if wav.dtype not in (torch.float32, torch.float64):
        wav = wav.float()
    return wav if wav.dim() == 2 else wav.unsqueeze(0)


def _preemphasis(x, c):
    return torch.cat([x[:, :1], x[:, 1:] - c * x[:, :-1]], dim=1)


def _linear_mel(wav, f):
    """[B, T] -> the filterbank's output [B, n_mels, frames] (before any log)."""
    length, pad = wav.shape[-1], f["pad"]
    x = wav * f["wav_gain"] if f["wav_gain"] != 1 else wav
    after_pad = f["preemphasis_after_pad"] and pad > 0
    if f["preemphasis"] is not None and not after_pad:
        x = _preemphasis(x, f["preemphasis"])
    if pad > 0:
        if f["pad_mode"] != "constant" and length <= pad:
            raise ValueError(f"mel_spectrogram: the wav has {length} samples; {f['pad_mode']} padding of {pad} "
                             f"samples ({_name(f)}) needs more than {pad}")
        x = F.pad(x.unsqueeze(1), (pad, pad), mode=f["pad_mode"]).squeeze(1)
    if f["preemphasis"] is not None and after_pad:
        x = _preemphasis(x, f["preemphasis"])
        if f["masked_tail"]:  # NeMo >= 2025-07 masks the padded signal with the unpadded length
            x = x.clone()
            x[:, length:] = 0
    if x.shape[-1] < f["n_fft"]:
        raise ValueError(f"mel_spectrogram: the wav has {length} samples; one frame of {_name(f)} needs "
                         f"{f['n_fft'] - 2 * pad} or more (n_fft {f['n_fft']}, pad {pad} per side)")
    window = _window(f, x.device, x.dtype)
    spec = torch.stft(x, f["n_fft"], hop_length=f["hop_length"], win_length=f["win_length"], window=window,
                      center=False, onesided=True, return_complex=True)
    if f["stft_normalized"] == "window":
        spec = spec / window.pow(2).sum().sqrt()
    elif f["stft_normalized"] == "frame_length":
        spec = spec / math.sqrt(f["n_fft"])
    power = spec.real.pow(2) + spec.imag.pow(2)
    if f["magnitude_guard_type"] == "add":
        power = power + f["magnitude_guard"]
    elif f["magnitude_guard_type"] == "clamp":
        power = torch.clamp(power, min=f["magnitude_guard"])
    magnitude = torch.sqrt(power)
    if f["magnitude_power"] != 1:
        magnitude = magnitude.pow(f["magnitude_power"])
    return torch.matmul(_filterbank(f, x.device, x.dtype), magnitude)


def _log(mel, f):
    if f["log"] is None:
        return mel
    if f["log_guard"] == "clamp":
        mel = torch.clamp(mel, min=f["log_floor"])
    elif f["log_guard"] == "add":
        mel = mel + f["log_floor"]
    out = _LOGS[f["log"]][0](mel)
    return out * f["log_gain"] if f["log_gain"] != 1 else out


def _valid_frames(f, frames):
    return frames - 1 if f["masked_tail"] else frames


def _normalize(x, f):
    norm = f["normalization"]
    if norm is None:
        return x
    kind = norm["type"]
    if kind == "mean_scale":
        mean = torch.as_tensor(norm["mean"]).to(device=x.device, dtype=x.dtype)[:, None]
        scale = torch.as_tensor(norm["scale"]).to(device=x.device, dtype=x.dtype)[:, None]
        return (x - mean) / scale
    if kind == "range":  # Coqui AudioProcessor.normalize, step for step
        m = norm["max_norm"]
        s = (x - norm["ref_level_db"] - norm["min_level_db"]) / (-norm["min_level_db"])
        if norm["symmetric"]:
            s = (2 * m) * s - m
            return torch.clamp(s, -m, m) if norm["clip_norm"] else s
        s = m * s
        return torch.clamp(s, 0, m) if norm["clip_norm"] else s
    valid = _valid_frames(f, x.shape[-1])
    if valid < 2:
        raise ValueError(f"{_name(f)}: {kind} normalisation needs 2 or more valid frames (an unbiased std), "
                         f"got {valid}")
    v = x[..., :valid]
    dims = (-1,) if kind == "per_feature" else (-2, -1)
    mean = v.mean(dim=dims, keepdim=True)
    std = v.std(dim=dims, keepdim=True) + _NEMO_STD_GUARD
    return (x - mean) / std


def _finish(x, f):
    """NeMo's length mask and frame padding."""
    if f["masked_tail"]:
        x = x.clone()
        x[..., -1] = f["pad_value"]
    if f["pad_to"] and x.shape[-1] % f["pad_to"]:
        x = F.pad(x, (0, f["pad_to"] - x.shape[-1] % f["pad_to"]), value=f["pad_value"])
    return x


def mel_spectrogram(wav, features, *, sample_rate=None):
    """The features a toolkit's model was trained on, computed from audio exactly as that toolkit does.

    Args:
        wav: float tensor [T] or [B, T] at the features' sample rate, samples in [-1, 1] (not checked), any
            device. float32 and float64 are computed in their own dtype; float16/bfloat16 in float32.
        features: a toolkit reader's dict (model.features), the schema of this module's docstring.
        sample_rate: the wav's rate, if known: checked against the features' (check_sample_rate).
    Returns:
        [B, n_mels, frames] (B = 1 for a [T] wav); frames = (T + 2 * pad - n_fft) // hop_length + 1, plus
        NeMo's pad_to padding.
    Raises:
        TypeError: wav is not a floating-point tensor, or features not a dict.
        ValueError: a wav of another shape, too short for the padding or one frame; a sample rate other than the
            features'; features that leave a needed value unknown (named, with the toolkit), use a setting
            listed in `unsupported`, or hold an invalid value.
    """
    f = _resolve(features, "mel_spectrogram")
    if sample_rate is not None:
        check_sample_rate(sample_rate, f)
    wav = _as_batched_wav(wav)
    x = _log(_linear_mel(wav, f), f)
    return _finish(_normalize(x, f), f)


# ---- checking and converting mels ---------------------------------------------------------------------
def check_mel(mel, features):
    """Raise unless `mel` ([B, n_mels, frames] or [n_mels, frames], floating) has the features' bin count.
    Returns mel unchanged."""
    if not isinstance(mel, torch.Tensor):
        raise TypeError(f"expected the mel as a torch.Tensor, got {type(mel).__name__}")
    if not mel.is_floating_point():
        raise TypeError(f"expected a floating-point mel, got dtype {mel.dtype}")
    if mel.dim() not in (2, 3):
        raise ValueError(f"expected a mel of shape [B, n_mels, frames] or [n_mels, frames], got shape "
                         f"{list(mel.shape)}")
    want = features.get("n_mels") if isinstance(features, Mapping) else None
    if want is None:
        raise ValueError(f"{_name(features) if isinstance(features, Mapping) else 'these features'} do not say "
                         f"n_mels, so a mel of shape {list(mel.shape)} cannot be checked against them")
    if mel.shape[-2] != want:
        raise ValueError(f"the mel has {mel.shape[-2]} bins (shape {list(mel.shape)}) but {_name(features)} have "
                         f"n_mels {want}")
    return mel


def _describe_window(f):
    if f["window_weights"] is not None:
        return f"stored window [{f['win_length']}]"
    return f"{'periodic' if f['window_periodic'] else 'symmetric'} {f['window']}"


def _describe_filterbank(f):
    if f["filterbank"] is not None:
        return f"stored matrix {list(torch.as_tensor(f['filterbank']).shape)}"
    return f"{f['mel_scale']} scale, norm {f['mel_norm']}, {f['fmin']}-{f['fmax']} Hz"


def _same_matrix(a, b):
    a, b = a.to(torch.float64), b.to(torch.float64)
    if a.shape != b.shape:
        return False
    return bool(torch.allclose(a, b, rtol=_MATRIX_RTOL, atol=_MATRIX_RTOL * float(a.abs().max())))


def _linear_differences(s, d):
    """(field, source value, destination value) for every difference that changes the linear mel."""
    out = []

    def cmp(key, when=True):
        a, b = s[key], d[key]
        same = math.isclose(a, b, rel_tol=1e-12) if isinstance(a, float) and isinstance(b, float) else a == b
        if when and not same:
            out.append((key, a, b))

    for key in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "wav_gain", "preemphasis", "framing",
                "pad"):
        cmp(key)
    cmp("preemphasis_after_pad", s["preemphasis"] is not None and s["pad"] > 0)
    cmp("pad_mode", s["pad"] > 0)
    if s["window_weights"] is None and d["window_weights"] is None:
        cmp("window")
        cmp("window_periodic")
    elif not _same_matrix(_window(s, "cpu", torch.float64), _window(d, "cpu", torch.float64)):
        out.append(("window", _describe_window(s), _describe_window(d)))
    for key in ("stft_normalized", "magnitude_guard_type", "magnitude_power"):
        cmp(key)
    cmp("magnitude_guard", s["magnitude_guard_type"] is not None)
    if s["filterbank"] is None and d["filterbank"] is None:
        for key in ("fmin", "fmax", "mel_scale", "mel_norm"):
            cmp(key)
    elif not _same_matrix(_filterbank(s, "cpu", torch.float64), _filterbank(d, "cpu", torch.float64)):
        out.append(("filterbank", _describe_filterbank(s), _describe_filterbank(d)))
    return out


def _log_interval(f):
    """The natural-log range of the mel the pipeline keeps: (lowest, highest, what sets each); values outside
    are clipped to it, so lost."""
    lo, hi, lo_by, hi_by = -math.inf, math.inf, None, None
    if f["log_guard"] == "clamp":
        lo, lo_by = math.log(f["log_floor"]), f"log_floor {f['log_floor']}"
    norm = f["normalization"]
    if norm is not None and norm["type"] == "range" and norm["clip_norm"]:
        # Coqui clips the dB value S = log_gain * log(x) to [ref_level_db + min_level_db, ref_level_db]
        per_db = _LOGS[f["log"]][1] / f["log_gain"]
        clip_lo = (norm["ref_level_db"] + norm["min_level_db"]) * per_db
        if clip_lo > lo:
            lo, lo_by = clip_lo, "normalization clip_norm (ref_level_db + min_level_db)"
        hi, hi_by = norm["ref_level_db"] * per_db, "normalization clip_norm (ref_level_db)"
    return lo, hi, lo_by, hi_by


def _rounded_exp(x):  # a readable mel value for messages: 1e-05, not 9.999999999999997e-06
    return float(f"{math.exp(x):.6g}")


def _chain_differences(s, d):
    """Why the value chain after the filterbank cannot be undone and redone exactly, as (field, src, dst)."""
    out = []
    norm = s["normalization"]
    if norm is not None and norm["type"] in ("per_feature", "all_features"):
        out.append(("normalization", f"{norm['type']} (per-utterance statistics, not stored)",
                    d["normalization"]["type"] if d["normalization"] else None))
    if s["log"] is not None and d["log"] is None:
        out.append(("log", s["log"], None))
    if s["log"] is None and norm is not None and norm["type"] == "range" and norm["clip_norm"]:
        out.append(("normalization", "range with clip_norm on a linear mel", d["normalization"]))
    if s["log"] is not None and d["log"] is not None:
        if s["log_guard"] != d["log_guard"]:
            out.append(("log_guard", s["log_guard"], d["log_guard"]))
        elif s["log_guard"] == "add" and not math.isclose(s["log_floor"], d["log_floor"], rel_tol=1e-12):
            out.append(("log_floor", s["log_floor"], d["log_floor"]))
        else:
            s_lo, s_hi, s_lo_by, s_hi_by = _log_interval(s)
            d_lo, d_hi, d_lo_by, d_hi_by = _log_interval(d)
            if d_lo < s_lo - 1e-12 * max(1.0, abs(s_lo)):
                out.append((f"lowest mel value kept ({s_lo_by} vs {d_lo_by or 'no floor'})", _rounded_exp(s_lo),
                            _rounded_exp(d_lo)))
            if d_hi > s_hi + 1e-12 * max(1.0, abs(s_hi)):
                out.append((f"highest mel value kept ({s_hi_by} vs {d_hi_by or 'no ceiling'})", _rounded_exp(s_hi),
                            _rounded_exp(d_hi)))
    if s["masked_tail"] and not d["masked_tail"]:
        out.append(("masked_tail", True, False))
    for key in ("pad_to",):
        if s[key] or d[key]:
            out.append((key, s[key], d[key]))
    return out


def _denormalize(y, f):
    norm = f["normalization"]
    if norm is None:
        return y
    if norm["type"] == "mean_scale":
        mean = torch.as_tensor(norm["mean"]).to(device=y.device, dtype=y.dtype)[:, None]
        scale = torch.as_tensor(norm["scale"]).to(device=y.device, dtype=y.dtype)[:, None]
        return y * scale + mean
    m = norm["max_norm"]
    s = (y + m) / (2 * m) if norm["symmetric"] else y / m
    return s * (-norm["min_level_db"]) + norm["min_level_db"] + norm["ref_level_db"]


def convert(mel, src_features, dst_features):
    """Turn a mel computed with `src_features` into the one `dst_features` would give for the same audio, where
    that is exact (see the module docstring); else raise ValueError naming each field that differs, with both
    values.

    Exact means: the same linear mel (sample rate, n_fft, window, hop, framing and padding, magnitude and its
    guard, pre-emphasis, gain, and the same filterbank: equal parameters, or equal matrices to float32
    precision), and a value chain that can be undone: mean/scale and range normalisations are inverted, the log
    base and gain changed; a clamp floor may only rise (values under the source's floor are lost) and a range
    clip only narrow; "add" guards must be equal; per-utterance normalisations (NeMo per_feature) cannot be
    undone, only applied.

    Args:
        mel: [B, n_mels, frames] or [n_mels, frames], floating, computed with src_features.
    Returns:
        the converted mel, same shape and dtype.
    """
    s = _resolve(src_features, "convert (source)")
    d = _resolve(dst_features, "convert (destination)")
    check_mel(mel, s)
    problems = _linear_differences(s, d) + _chain_differences(s, d)
    if problems:
        listed = "; ".join(f"{key}: {a!r} vs {b!r}" for key, a, b in problems)
        raise ValueError(f"cannot convert {_name(s)} to {_name(d)} exactly: {listed} (source vs destination). "
                         "Compute the destination's mel from the audio instead (mel_spectrogram)")
    squeeze = mel.dim() == 2
    y = mel.unsqueeze(0) if squeeze else mel
    if s["masked_tail"]:
        y = y[..., :-1]  # pad_value, not audio; the destination masks it too (checked above)
    v = _denormalize(y, s)
    if s["log"] is None:
        x = _log(v, d)
    else:
        nat = v * (_LOGS[s["log"]][1] / s["log_gain"])  # natural log of the guarded mel
        if d["log_guard"] == "clamp":
            nat = torch.clamp(nat, min=math.log(d["log_floor"]))
        x = nat * (d["log_gain"] / _LOGS[d["log"]][1])
    if s["masked_tail"]:
        x = torch.cat([x, x[..., -1:]], dim=-1)  # a placeholder frame: _finish overwrites it
    out = _finish(_normalize(x, d), d)
    return out.squeeze(0) if squeeze else out

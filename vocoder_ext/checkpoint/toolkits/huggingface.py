"""Hugging Face transformers HiFi-GAN vocoders (`SpeechT5HifiGan`, `FastSpeech2ConformerHifiGan`).

On disk: a folder with `config.json` (`model_in_dim, upsample_initial_channel, upsample_rates,
upsample_kernel_sizes, resblock_kernel_sizes, resblock_dilation_sizes, leaky_relu_slope, normalize_before,
sampling_rate`) and `model.safetensors` (read with the `safetensors` package) or `pytorch_model.bin` (a plain
state dict, read with weights_only=True). Keys: `conv_pre`, `upsampler.{i}` (our `ups.{i}`),
`resblocks.{n}.convs1/convs2.{m}`, `conv_post`, plus the `mean`/`scale` buffers. The math is jik876's
(ConvTranspose padding (k-u)//2, LeakyReLU `leaky_relu_slope` inside, the default 0.01 before conv_post, tanh),
always with ResBlock1-style blocks. Weights are usually saved with weight norm removed (plain `weight`);
`weight_g/weight_v` and `parametrizations.weight.original0/1` are accepted too.

Refused (CheckpointError naming the folder and the field or key): `leaky_relu_slope` other than 0.1 (our
generator's fixed slope), ResBlock2-style `convs.{m}` keys, keys of any other layer, missing keys, shapes that
contradict config.json, a sharded checkpoint.

features: vocoder_ext.features' schema (the table is in that module's docstring; `features.mel_spectrogram`
computes them), plus `model_class` and `input_layout` (transformers takes [B, T, n_mels] and returns
[B, samples]; HiFiGAN takes [B, n_mels, T]):
    normalization: None, or "mean_scale" with the `mean`/`scale` buffers when normalize_before is true:
        transformers feeds `(x - mean) / scale` to conv_pre (not folded into conv_pre: zero padding would differ);
    the front end: SpeechT5FeatureExtractor's, from a `preprocessor_config.json` beside config.json
        (its defaults for absent fields, listed in `defaults`): win/hop = ms * sampling_rate // 1000 samples,
        n_fft the next power of two, "centered" framing (reflect), periodic window (`win_function`), |X|,
        a float64 Slaney filterbank (fmin, fmax), log10(max(x, mel_floor)). Without that file (or for
        FastSpeech2ConformerHifiGan, whose features are ESPnet's) the front-end values are None and listed in
        `missing`: the vocoder folder does not say, and we do not guess;
    inference_padding: 0 (transformers pads nothing).
"""
import json
import math
import os

import torch

from ...features import describe
from ..files import CheckpointError, safe_load
from .layout import check_generator_keys, config_mismatch, infer_architecture, rename_weight_norm

CONFIG_NAME = "config.json"
WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")
MODEL_CLASSES = ("SpeechT5HifiGan", "FastSpeech2ConformerHifiGan")
HIFIGAN_FIELDS = ("model_in_dim", "upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes",
                  "resblock_dilation_sizes", "upsample_initial_channel")
OUR_SLOPE = 0.1  # vocoder_ext.models.hifigan.LRELU_SLOPE (fixed); the final LeakyReLU is 0.01 everywhere

# ---- Hugging Face folders ----------------------------------------------------------------------------
def _folder(path):
    path = os.fspath(path)
    if os.path.isdir(path):
        return path
    if os.path.isfile(path) and os.path.basename(path) in (CONFIG_NAME, *WEIGHT_NAMES):
        return os.path.dirname(os.path.abspath(path))
    return None


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _is_hifigan_config(cfg):
    if not isinstance(cfg, dict) or not all(f in cfg for f in ("model_in_dim", "upsample_rates")):
        return False
    archs = cfg.get("architectures")
    return not archs or any(a in MODEL_CLASSES for a in archs)


def detect(path):
    """A transformers HiFi-GAN folder (or its config.json / weights file): config.json with the HiFi-GAN
    fields and a weights file beside it."""
    folder = _folder(path)
    if folder is None or not os.path.isfile(os.path.join(folder, CONFIG_NAME)):
        return False
    if not any(os.path.isfile(os.path.join(folder, n)) for n in WEIGHT_NAMES):
        return False
    try:
        return _is_hifigan_config(_read_json(os.path.join(folder, CONFIG_NAME)))
    except (OSError, ValueError):
        return False


def _load_weights(folder, map_location):
    st, bin_ = (os.path.join(folder, n) for n in WEIGHT_NAMES)
    if os.path.isfile(st):
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise CheckpointError(f"{st}: reading safetensors needs the `safetensors` package "
                                  "(pip install safetensors)") from e
        try:
            sd = load_file(st, device="cpu")
        except Exception as e:  # safetensors raises its own SafetensorError, OSError, ...
            raise CheckpointError(f"{st} is not a readable safetensors file: {e}") from e
        if isinstance(map_location, (str, torch.device)):
            sd = {k: v.to(map_location) for k, v in sd.items()}
        return sd, st
    if os.path.isfile(bin_):
        return safe_load(bin_, map_location), bin_
    sharded = [n for n in os.listdir(folder) if n.endswith(".index.json")]
    if sharded:
        raise CheckpointError(f"{folder}: sharded checkpoints ({sharded[0]}) are not supported for a vocoder")
    raise CheckpointError(f"{folder}: no weights: expected {WEIGHT_NAMES[0]} or {WEIGHT_NAMES[1]}")


def _to_jik876(key):
    key = rename_weight_norm(key)
    return "ups." + key[len("upsampler."):] if key.startswith("upsampler.") else key


def _from_jik876(key):  # for error messages: the key as the file spells it
    return "upsampler." + key[len("ups."):] if key.startswith("ups.") else key


# SpeechT5FeatureExtractor's defaults (hop_length and win_length in ms)
_SPEECHT5_DEFAULTS = {"sampling_rate": 16000, "num_mel_bins": 80, "hop_length": 16, "win_length": 64,
                      "win_function": "hann_window", "fmin": 80, "fmax": 7600, "mel_floor": 1e-10}
_SPEECHT5_OURS = {"sampling_rate": "sample_rate", "num_mel_bins": "n_mels", "hop_length": "hop_length",
                  "win_length": "win_length", "win_function": "window", "fmin": "fmin", "fmax": "fmax",
                  "mel_floor": "log_floor"}
_FRONT_END = ("n_fft", "win_length", "hop_length", "framing", "pad", "window", "fmin", "fmax", "log", "log_guard",
              "log_floor")


def _features(folder, cfg, model_class, normalization):
    """config.json + preprocessor_config.json (SpeechT5FeatureExtractor) -> vocoder_ext.features' schema."""
    common = dict(toolkit="huggingface", sample_rate=cfg.get("sampling_rate"), n_mels=cfg["model_in_dim"],
                  normalization=normalization, inference_padding=0)
    extra = {"model_class": model_class,
             "input_layout": "[B, T, n_mels] in transformers; HiFiGAN takes [B, n_mels, T]"}
    pre_path = os.path.join(folder, "preprocessor_config.json")
    if not os.path.isfile(pre_path):
        note = ("the vocoder folder does not describe its front end: take it from the processor the vocoder was "
                "trained with (for SpeechT5, its preprocessor_config.json)")
        if model_class == "FastSpeech2ConformerHifiGan":
            note += "; FastSpeech2ConformerHifiGan was converted from ESPnet: ESPnet's LogMelFbank features"
        return {**describe(**common, source=os.path.join(folder, CONFIG_NAME), framing=None, window=None,
                           fmin=None, fmax=None, missing=list(_FRONT_END), notes=[note]), **extra}
    try:
        pre = _read_json(pre_path)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{pre_path}: not readable as JSON ({e})") from e
    given = {**_SPEECHT5_DEFAULTS, **{k: v for k, v in pre.items() if v is not None}}
    defaults = [ours for key, ours in _SPEECHT5_OURS.items() if pre.get(key) is None]
    unsupported, notes = [], ["transformers casts the wav to float32 before computing the features"]
    kind = pre.get("feature_extractor_type", "SpeechT5FeatureExtractor")
    if kind != "SpeechT5FeatureExtractor":
        unsupported.append(f"feature_extractor_type = {kind!r} (only SpeechT5FeatureExtractor is described)")
    sr = given["sampling_rate"]
    win = int(given["win_length"] * sr // 1000)
    hop = int(given["hop_length"] * sr // 1000)
    n_fft = 2 ** math.ceil(math.log2(win))
    if (n_fft - win) % 2:  # its frames start win // 2 before the hop, not where a window centred in n_fft lies
        unsupported.append(f"win_length = {win} samples with n_fft {n_fft} (an odd difference)")
    if sr % 2:
        unsupported.append(f"sampling_rate = {sr} (odd: transformers places the FFT bins up to sampling_rate // 2)")
    window = str(given["win_function"]).removesuffix("_window")
    if window not in ("hann", "hamming", "blackman", "bartlett"):
        unsupported.append(f"win_function = {given['win_function']!r}")
    if common["sample_rate"] is not None and common["sample_rate"] != sr:
        notes.append(f"config.json says sampling_rate {common['sample_rate']}, {pre_path} {sr}: the latter is used")
    if pre.get("num_mel_bins", common["n_mels"]) != common["n_mels"]:
        raise config_mismatch(pre_path, "num_mel_bins", pre.get("num_mel_bins"), common["n_mels"])
    return {**describe(
        **{**common, "sample_rate": sr}, source=pre_path, n_fft=n_fft, win_length=win, hop_length=hop,
        framing="centered", pad=win // 2 + (n_fft - win) // 2, pad_mode="reflect", window=window,
        window_periodic=True, fmin=float(given["fmin"]), fmax=float(given["fmax"]), mel_scale="slaney",
        mel_norm="slaney", filterbank_dtype="float64", log="log10", log_guard="clamp",
        log_floor=float(given["mel_floor"]), unsupported=unsupported, defaults=defaults, notes=notes), **extra}


def read(path, map_location="cpu"):
    """-> (state_dict in jik876 keys, HiFiGAN config dict, features); see the module docstring."""
    folder = _folder(path)
    if folder is None:
        raise CheckpointError(f"{path}: expected a transformers model folder (config.json + model.safetensors "
                              "or pytorch_model.bin)")
    cfg_path = os.path.join(folder, CONFIG_NAME)
    if not os.path.isfile(cfg_path):
        raise CheckpointError(f"{folder}: no {CONFIG_NAME}: a transformers HiFi-GAN folder needs one")
    try:
        cfg = _read_json(cfg_path)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{cfg_path}: not readable as JSON ({e})") from e
    if not _is_hifigan_config(cfg):
        raise CheckpointError(f"{cfg_path}: not a HiFi-GAN vocoder config (expected fields {HIFIGAN_FIELDS} and "
                              f"architectures among {MODEL_CLASSES}; got architectures {cfg.get('architectures')})")
    for field in ("upsample_rates", "resblock_dilation_sizes"):
        if field not in cfg:
            raise CheckpointError(f"{cfg_path}: missing field {field} (the weights do not determine it)")
    slope = cfg.get("leaky_relu_slope", OUR_SLOPE)
    if slope != OUR_SLOPE:
        raise CheckpointError(f"{cfg_path}: leaky_relu_slope = {slope}; our generator's LeakyReLU slope is fixed "
                              f"at {OUR_SLOPE}, so this model cannot be reproduced exactly")
    raw, weights_path = _load_weights(folder, map_location)
    where = weights_path
    sd = {_to_jik876(k): v for k, v in raw.items()}
    stats = {k: sd.pop(k) for k in ("mean", "scale") if k in sd}
    normalize = cfg.get("normalize_before", True)
    if normalize and len(stats) != 2:
        raise CheckpointError(f"{where}: config.json has normalize_before true but the weights lack "
                              f"{' and '.join(k for k in ('mean', 'scale') if k not in stats)}")
    arch = infer_architecture(sd, where, _from_jik876)
    if arch["resblock"] != "1":
        bad = sorted(k for k in sd if ".convs." in k)[:3]
        raise CheckpointError(f"{where}: unexpected keys {bad}: transformers' HiFi-GAN has only ResBlock1-style "
                              "blocks (convs1/convs2)")
    for field, found in (("model_in_dim", arch["num_mels"]),
                         ("upsample_initial_channel", arch["upsample_initial_channel"]),
                         ("upsample_kernel_sizes", arch["upsample_kernel_sizes"]),
                         ("resblock_kernel_sizes", arch["resblock_kernel_sizes"])):
        claimed = cfg.get(field, found)
        if (list(claimed) if isinstance(found, list) else claimed) != found:
            raise config_mismatch(cfg_path, field, claimed, found)
    if len(cfg["upsample_rates"]) != len(arch["upsample_kernel_sizes"]):
        raise config_mismatch(cfg_path, "upsample_rates", cfg["upsample_rates"],
                              f"{len(arch['upsample_kernel_sizes'])} upsampling layers")
    dils = [list(d) for d in cfg["resblock_dilation_sizes"]]
    if [len(d) for d in dils] != arch["convs_per_block"]:
        raise config_mismatch(cfg_path, "resblock_dilation_sizes", dils,
                              f"{arch['convs_per_block']} dilated convs per block")
    h = {"resblock": "1", "upsample_rates": list(cfg["upsample_rates"]),
         "upsample_kernel_sizes": arch["upsample_kernel_sizes"],
         "upsample_initial_channel": arch["upsample_initial_channel"],
         "resblock_kernel_sizes": arch["resblock_kernel_sizes"], "resblock_dilation_sizes": dils,
         "num_mels": arch["num_mels"]}
    if cfg.get("sampling_rate") is not None:
        h["sampling_rate"] = cfg["sampling_rate"]
    check_generator_keys(sd, h, where, _from_jik876)
    archs = cfg.get("architectures") or [None]
    normalization = ({"type": "mean_scale", "formula": "(x - mean) / scale", "mean": stats["mean"],
                      "scale": stats["scale"]} if normalize else None)
    return sd, h, _features(folder, cfg, archs[0], normalization)

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

features (metadata, nothing is applied):
    toolkit, model_class, sampling_rate, n_mels;
    input_layout: transformers takes [B, T, n_mels] (and returns [B, samples]); HiFiGAN takes [B, n_mels, T];
    normalization: None, or {"type": "mean_scale", "mean": tensor, "scale": tensor} when
        normalize_before is true: transformers feeds `(x - mean) / scale` to conv_pre, so the caller must
        normalize the features before HiFiGAN (it is not folded into conv_pre: zero padding would differ);
    n_fft, hop_length, win_length (samples), fmin, fmax, log_base, log_floor, window, center: from a
        `preprocessor_config.json` beside config.json when one is there (SpeechT5FeatureExtractor: hop and win
        in ms, log10 of max(mel_floor, mel)); otherwise None: the vocoder folder does not say, and we do not guess;
    inference_padding: 0 (transformers pads nothing).
"""
import json
import math
import os

import torch

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


def _features(folder, cfg, model_class, normalization):
    feats = {"toolkit": "huggingface", "model_class": model_class, "sampling_rate": cfg.get("sampling_rate"),
             "n_mels": cfg["model_in_dim"], "input_layout": "[B, T, n_mels] in transformers; HiFiGAN takes "
             "[B, n_mels, T]", "normalization": normalization, "n_fft": None, "hop_length": None,
             "win_length": None, "fmin": None, "fmax": None, "log_base": None, "log_floor": None,
             "window": None, "center": None, "inference_padding": 0, "feature_source": None}
    pre_path = os.path.join(folder, "preprocessor_config.json")
    if os.path.isfile(pre_path):
        try:
            pre = _read_json(pre_path)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{pre_path}: not readable as JSON ({e})") from e
        sr = pre.get("sampling_rate", feats["sampling_rate"])
        ms = lambda v: None if v is None or sr is None else int(round(v * sr / 1000))  # noqa: E731
        win = ms(pre.get("win_length"))
        feats.update(feature_source=pre_path, hop_length=ms(pre.get("hop_length")), win_length=win,
                     n_fft=None if win is None else 2 ** math.ceil(math.log2(win)), fmin=pre.get("fmin"),
                     fmax=pre.get("fmax"), window=pre.get("win_function"), log_floor=pre.get("mel_floor"))
        if pre.get("feature_extractor_type") == "SpeechT5FeatureExtractor":
            feats["log_base"] = 10
        if pre.get("num_mel_bins", feats["n_mels"]) != feats["n_mels"]:
            raise config_mismatch(pre_path, "num_mel_bins", pre.get("num_mel_bins"), feats["n_mels"])
    return feats


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

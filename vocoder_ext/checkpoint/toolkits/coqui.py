"""Coqui TTS HiFi-GAN vocoder checkpoints (`best_model.pth`, `checkpoint_*.pth`, `model_file.pth(.tar)`, ...).

On disk: a torch.save dict `{"config": dict, "model": state_dict, "optimizer": ..., "step": ..., ...}` where the
generator's keys carry the `model_g.` prefix (the discriminator's `model_d.` keys are dropped), or the legacy
(< v0.0.15) layout: unprefixed generator keys in `"model"` and the discriminator in `"model_disc"`. The config
comes from `ckpt["config"]`, else from `config.json` beside the file (`//` comments allowed, as Coqui's
`read_json_with_comments`). Generator: `generator_model_params` {upsample_factors, upsample_kernel_sizes,
upsample_initial_channel, resblock_kernel_sizes, resblock_dilation_sizes, resblock_type, inference_padding,
cond_channels, conv_post_bias, ...}, in_channels = `audio.num_mels`. The math is jik876's. Weight norm:
`weight_g/weight_v` (<= v0.20.2) or `parametrizations.weight.original0/1` (>= v0.20.3) or plain `weight`.

Block type comes from the keys. Coqui builds `ResBlock1 if resblock_type == "1" else ResBlock2`, so an integer 1
means ResBlock2 (Coqui #1068); only a string claim that contradicts the keys is an error. ResBlock1 uses the first
3 dilations of each list, ResBlock2 the first 2, as Coqui's code does.

Read with torch.load(weights_only=True) only: a file that pickles other objects (an old `AttrDict` config,
numpy scalars, `mozilla_voice_tts` classes) is refused with the global named, and nothing in it is run.
Refused as well (CheckpointError naming the file and the key or field): `cond_channels > 0` / `cond_layer` or
IDIAP `conds.{i}` keys, another `generator_model`, missing or unexpected keys. `conv_post_bias: false` gives a
bias-free conv_post (config `conv_post_bias`).

features (metadata from `config["audio"]`, nothing is applied):
    toolkit, sampling_rate, n_fft, hop_length, win_length (samples; from frame_*_ms when the sample counts are
    null), n_mels, fmin, fmax (None = sampling_rate / 2), log_base (10 for "np.log10", e for "np.log"),
    log_floor (1e-8), spec_gain, preemphasis, center (True: librosa STFT), pad_mode (stft_pad_mode), window;
    normalization: None, or {"type": "range", symmetric, max_norm, clip_norm, ref_level_db, min_level_db}, or
        {"type": "mean_var", "stats_path": ...} (scale_stats.npy is a pickled dict, so it is not loaded);
    inference_padding: frames Coqui's `inference()` replicate-pads on each side (default 5), output not trimmed.
"""
import json
import math
import os
import re

from ..files import CheckpointError, safe_load
from .layout import check_generator_keys, config_mismatch, infer_architecture, rename_weight_norm

GENERATOR_PREFIX, DISCRIMINATOR_PREFIX = "model_g.", "model_d."
_REQUIRED = ("upsample_factors", "resblock_dilation_sizes")
_KNOWN = {"upsample_factors", "upsample_kernel_sizes", "upsample_initial_channel", "resblock_kernel_sizes",
          "resblock_dilation_sizes", "resblock_type", "inference_padding", "cond_channels", "conv_pre_weight_norm",
          "conv_post_weight_norm", "conv_post_bias", "cond_in_each_up_layer"}
_COMMENT = re.compile(r'("(?:[^"\\]|\\.)*")|//[^\n]*|/\*.*?\*/', re.S)


def read_json_with_comments(path):
    """JSON with `//` and `/* */` comments (outside strings, so URLs survive), as Coqui writes configs."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return json.loads(_COMMENT.sub(lambda m: m.group(1) or "", text))


def _generator_keys(ckpt):
    """-> (generator state dict unprefixed, how keys were spelled: prefix) or None if not Coqui's layout."""
    model = ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(model, dict):
        return None
    if any(isinstance(k, str) and k.startswith(GENERATOR_PREFIX + "conv_pre.") for k in model):
        return model, GENERATOR_PREFIX
    if "model_disc" in ckpt and any(isinstance(k, str) and k.startswith("conv_pre.") for k in model):
        return model, ""
    return None


def detect(path):
    """A file whose weights-only load is a dict with "model" holding `model_g.conv_pre.*` keys (or the legacy
    unprefixed layout with a "model_disc" entry)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        return False
    try:
        return _generator_keys(safe_load(path)) is not None
    except (CheckpointError, OSError):
        return False


def _load(path, map_location):
    try:
        return safe_load(path, map_location)
    except CheckpointError as e:
        if "refusing to load" in str(e):
            named = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e.__cause__))
            what = f" (the first one it names: {named.group(1)})" if named else ""
            raise CheckpointError(f"{e}\n  This Coqui checkpoint pickles Python objects besides tensors and plain "
                                  f"containers{what} (an old config object, numpy scalars, TTS/mozilla_voice_tts "
                                  "classes); "
                                  "loading them would run code, so it is refused. Re-save the generator from a "
                                  "trusted environment: torch.save({'model': {k: v for k, v in "
                                  "state['model'].items()}, 'config': dict(config)}, path).") from e
        raise


def _config(ckpt, path):
    cfg = ckpt.get("config")
    if isinstance(cfg, dict) and "generator_model_params" in cfg:
        return cfg, f"{path} (embedded config)"
    json_path = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
    if not os.path.isfile(json_path):
        raise CheckpointError(f"{path} holds no config (no ckpt['config'] with generator_model_params) and there "
                              f"is no config.json beside it ({json_path})")
    try:
        cfg = read_json_with_comments(json_path)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{json_path}: not readable as JSON, even with // comments removed ({e})") from e
    if not isinstance(cfg, dict) or "generator_model_params" not in cfg:
        raise CheckpointError(f"{json_path}: not a Coqui vocoder config (no generator_model_params)")
    return cfg, json_path


def _features(cfg, params, source):
    audio = cfg.get("audio") or {}
    sr = audio.get("sample_rate")

    def samples(key, ms_key):
        if audio.get(key) is not None:
            return audio[key]
        ms = audio.get(ms_key)
        return None if ms is None or sr is None else int(ms / 1000.0 * sr)

    log_func = audio.get("log_func", "np.log10")
    if audio.get("signal_norm", True) is False:
        norm = None
    elif audio.get("stats_path"):
        norm = {"type": "mean_var", "formula": "(S_db - mel_mean) / mel_std", "stats_path": audio["stats_path"],
                "stats_loaded": False, "note": "scale_stats.npy is a pickled dict; not loaded (unsafe)"}
    else:
        norm = {"type": "range", "symmetric": audio.get("symmetric_norm", True), "max_norm": audio.get("max_norm", 4.0),
                "clip_norm": audio.get("clip_norm", True), "ref_level_db": audio.get("ref_level_db", 20),
                "min_level_db": audio.get("min_level_db", -100)}
    return {"toolkit": "coqui", "config_source": source, "sampling_rate": sr, "n_fft": audio.get("fft_size"),
            "hop_length": samples("hop_length", "frame_shift_ms"),
            "win_length": samples("win_length", "frame_length_ms"),
            "n_mels": audio.get("num_mels"), "fmin": audio.get("mel_fmin", 0), "fmax": audio.get("mel_fmax"),
            "log_base": {"np.log10": 10, "np.log": math.e}.get(log_func, log_func), "log_floor": 1e-8,
            "spec_gain": audio.get("spec_gain", 20), "amp_to_db": audio.get("do_amp_to_db_mel", True),
            "preemphasis": audio.get("preemphasis", 0.0), "center": True, "window": "hann",
            "pad_mode": audio.get("stft_pad_mode", "reflect"), "normalization": norm,
            "inference_padding": params.get("inference_padding", 5), "inference_padding_mode": "replicate",
            "output_trimmed": False}


def read(path, map_location="cpu"):
    """-> (state_dict in jik876 keys, HiFiGAN config dict, features); see the module docstring."""
    path = os.fspath(path)
    ckpt = _load(path, map_location)
    found = _generator_keys(ckpt)
    if found is None:
        raise CheckpointError(f"{path}: not a Coqui HiFi-GAN vocoder checkpoint (expected ckpt['model'] with "
                              f"{GENERATOR_PREFIX}conv_pre.* keys, or the legacy layout with 'model_disc'); "
                              f"top-level keys {sorted(map(str, ckpt))[:10]}")
    model, prefix = found
    name = lambda k: prefix + k  # noqa: E731  (keys as the file spells them, for errors)
    sd, unexpected = {}, []
    for key, value in model.items():
        if prefix and key.startswith(DISCRIMINATOR_PREFIX):
            continue
        if not key.startswith(prefix):
            unexpected.append(key)
            continue
        sd[rename_weight_norm(key[len(prefix):])] = value
    if unexpected:
        raise CheckpointError(f"{path}: unexpected keys in ckpt['model'] (neither {GENERATOR_PREFIX} nor "
                              f"{DISCRIMINATOR_PREFIX}): {', '.join(sorted(unexpected)[:10])}")
    cond = sorted(name(k) for k in sd if k.startswith(("cond_layer.", "conds.")))
    if cond:
        raise CheckpointError(f"{path}: conditioning layers ({', '.join(cond)}) are not supported: our generator "
                              "has no conditioning input")
    cfg, source = _config(ckpt, path)
    if cfg.get("generator_model", "hifigan_generator") != "hifigan_generator":
        raise CheckpointError(f"{source}: generator_model = {cfg['generator_model']!r}, expected 'hifigan_generator'")
    params = cfg["generator_model_params"]
    for field in _REQUIRED:
        if field not in params:
            raise CheckpointError(f"{source}: generator_model_params lacks {field} (the weights do not determine it)")
    extra = sorted(set(params) - _KNOWN)
    if extra:
        raise CheckpointError(f"{source}: unsupported generator_model_params fields {extra}")
    if params.get("cond_channels", 0) or params.get("cond_in_each_up_layer", False):
        raise CheckpointError(f"{source}: generator_model_params.cond_channels = {params.get('cond_channels')} "
                              "(conditioning) is not supported: our generator has no conditioning input")
    arch = infer_architecture(sd, path, name)
    claim = params.get("resblock_type", "1")
    coqui_builds = "1" if claim == "1" else "2"  # Coqui's own test: the integer 1 builds ResBlock2
    if isinstance(claim, str) and coqui_builds != arch["resblock"]:
        raise config_mismatch(source, "generator_model_params.resblock_type", claim,
                              f"ResBlock{arch['resblock']} keys "
                              f"({'convs1/convs2' if arch['resblock'] == '1' else 'convs'})")
    num_mels = (cfg.get("audio") or {}).get("num_mels", arch["num_mels"])
    for field, claimed, got in (("audio.num_mels", num_mels, arch["num_mels"]),
                                ("generator_model_params.upsample_initial_channel",
                                 params.get("upsample_initial_channel", arch["upsample_initial_channel"]),
                                 arch["upsample_initial_channel"]),
                                ("generator_model_params.upsample_kernel_sizes",
                                 list(params.get("upsample_kernel_sizes", arch["upsample_kernel_sizes"])),
                                 arch["upsample_kernel_sizes"]),
                                ("generator_model_params.resblock_kernel_sizes",
                                 list(params.get("resblock_kernel_sizes", arch["resblock_kernel_sizes"])),
                                 arch["resblock_kernel_sizes"]),
                                ("generator_model_params.upsample_factors", len(params["upsample_factors"]),
                                 len(arch["upsample_kernel_sizes"]))):
        if claimed != got:
            raise config_mismatch(source, field, claimed, got)
    uses = 3 if arch["resblock"] == "1" else 2  # Coqui's ResBlock1/ResBlock2 hard-code 3 and 2 dilations
    dils = [list(d) for d in params["resblock_dilation_sizes"]]
    if len(dils) != len(arch["resblock_kernel_sizes"]) or any(len(d) < uses for d in dils) \
            or any(n != uses for n in arch["convs_per_block"]):
        raise config_mismatch(source, "generator_model_params.resblock_dilation_sizes", dils,
                              f"{arch['convs_per_block']} dilated convs per block (Coqui's ResBlock"
                              f"{arch['resblock']} uses {uses} dilations each)")
    h = {"resblock": arch["resblock"], "upsample_rates": list(params["upsample_factors"]),
         "upsample_kernel_sizes": arch["upsample_kernel_sizes"],
         "upsample_initial_channel": arch["upsample_initial_channel"],
         "resblock_kernel_sizes": arch["resblock_kernel_sizes"], "resblock_dilation_sizes": [d[:uses] for d in dils],
         "num_mels": arch["num_mels"], "conv_post_bias": bool(params.get("conv_post_bias", True))}
    features = _features(cfg, params, source)
    if features["sampling_rate"] is not None:
        h["sampling_rate"] = features["sampling_rate"]
    check_generator_keys(sd, h, path, name)
    return sd, h, features

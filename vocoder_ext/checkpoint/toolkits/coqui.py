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

features: vocoder_ext.features' schema (the table is in that module's docstring; `features.mel_spectrogram`
computes them), from `config["audio"]` (BaseAudioConfig's defaults for absent fields, listed in `defaults`), as
Coqui's AudioProcessor.melspectrogram does: pre-emphasis (when not 0), librosa's STFT ("centered" framing,
`stft_pad_mode`, periodic Hann; win/hop from frame_*_ms when hop_length is null), |X|, librosa's Slaney
filterbank (float32; mel_fmax null -> sample_rate / 2), `spec_gain * log10` (or ln for "np.log") of
max(x, 1e-8) when do_amp_to_db_mel (log_gain = spec_gain), then signal_norm: a "range" normalization
{ref_level_db, min_level_db, max_norm, symmetric, clip_norm}, or with `stats_path` a "mean_scale" one whose
mean/scale are None (scale_stats.npy is a pickled dict: not loaded, as loading could run code). `power` is
Griffin-Lim's only. do_trim_silence / do_sound_norm / do_rms_norm (Coqui's wav loading, not its mel) are
only noted. `inference_padding`: frames Coqui's `inference()` replicate-pads on each side (default 5), output
not trimmed.
"""
import json
import os
import re

from ...features import describe
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


# BaseAudioConfig's defaults (Coqui v0.22.0, TTS/config/shared_configs.py) for the fields the mel uses
_AUDIO_DEFAULTS = {"sample_rate": 22050, "fft_size": 1024, "win_length": 1024, "hop_length": 256,
                   "frame_shift_ms": None, "frame_length_ms": None, "stft_pad_mode": "reflect", "preemphasis": 0.0,
                   "num_mels": 80, "mel_fmin": 0.0, "mel_fmax": None, "log_func": "np.log10", "spec_gain": 20,
                   "do_amp_to_db_mel": True, "signal_norm": True, "symmetric_norm": True, "max_norm": 4.0,
                   "clip_norm": True, "ref_level_db": 20, "min_level_db": -100, "stats_path": None}
_OURS = {"sample_rate": "sample_rate", "fft_size": "n_fft", "win_length": "win_length", "hop_length": "hop_length",
         "stft_pad_mode": "pad_mode", "preemphasis": "preemphasis", "num_mels": "n_mels", "mel_fmin": "fmin",
         "mel_fmax": "fmax", "log_func": "log", "spec_gain": "log_gain", "do_amp_to_db_mel": "log",
         "signal_norm": "normalization", "stats_path": "normalization"}


def _features(cfg, params, source):
    """config["audio"] -> vocoder_ext.features' schema, as AudioProcessor.melspectrogram computes it."""
    given = cfg.get("audio") or {}
    audio = {**_AUDIO_DEFAULTS, **given}
    defaults = sorted({_OURS[k] for k in _OURS if k not in given})
    unsupported, notes = [], []
    sr = audio["sample_rate"]
    if audio["hop_length"] is None and audio["frame_length_ms"] is not None and sr:  # Coqui's millisec_to_length
        win = int(audio["frame_length_ms"] / 1000.0 * sr)
        hop = int(win / float(audio["frame_length_ms"] / audio["frame_shift_ms"]))
    else:
        win, hop = audio["win_length"], audio["hop_length"]
    n_fft = audio["fft_size"]
    pad_mode = {"edge": "replicate"}.get(audio["stft_pad_mode"], audio["stft_pad_mode"])
    if pad_mode not in ("reflect", "constant", "replicate"):
        unsupported.append(f"stft_pad_mode = {audio['stft_pad_mode']!r}")
    log = {"np.log10": "log10", "np.log": "ln"}.get(audio["log_func"])
    if log is None:
        unsupported.append(f"log_func = {audio['log_func']!r} (Coqui itself accepts only np.log10 and np.log)")
    if not audio["signal_norm"]:
        norm = None
    elif audio["stats_path"]:
        norm = {"type": "mean_scale", "mean": None, "scale": None, "source": audio["stats_path"],
                "note": "Coqui's mean-var stats (mel_mean, mel_std) are in scale_stats.npy, a pickled dict: not "
                        "loaded (unpickling could run code); fill mean and scale from a trusted copy"}
    else:
        norm = {"type": "range", **{k: audio[k] for k in ("ref_level_db", "min_level_db", "max_norm",
                                                           "symmetric_norm", "clip_norm")}}
        norm["symmetric"] = norm.pop("symmetric_norm")
    for step in ("do_trim_silence", "do_sound_norm", "do_rms_norm"):
        if given.get(step, step == "do_trim_silence"):  # BaseAudioConfig trims silence by default
            notes.append(f"{step}: Coqui applies it to wavs it loads for training, not in melspectrogram; "
                         "apply it to the wav first for the training conditions")
    amp_to_db = bool(audio["do_amp_to_db_mel"])
    return {**describe(
        toolkit="coqui", source=source, sample_rate=sr, n_fft=n_fft, win_length=win, hop_length=hop,
        n_mels=audio["num_mels"], preemphasis=audio["preemphasis"] or None, framing="centered",
        pad=n_fft // 2 if isinstance(n_fft, int) else None, pad_mode=pad_mode, window="hann",
        window_periodic=True, fmin=float(audio["mel_fmin"] or 0.0),
        fmax=float(audio["mel_fmax"]) if audio["mel_fmax"] is not None else (sr / 2 if sr else None),
        mel_scale="slaney", mel_norm="slaney", filterbank_dtype="float32", log=log if amp_to_db else None,
        log_guard="clamp" if amp_to_db else None, log_floor=1e-8 if amp_to_db else None,
        log_gain=float(audio["spec_gain"]) if amp_to_db else 1.0, normalization=norm,
        inference_padding=params.get("inference_padding", 5), unsupported=unsupported, defaults=defaults,
        notes=notes),
        "inference_padding_mode": "replicate", "output_trimmed": False}


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
    if features["sample_rate"] is not None:
        h["sampling_rate"] = features["sample_rate"]
    check_generator_keys(sd, h, path, name)
    return sd, h, features

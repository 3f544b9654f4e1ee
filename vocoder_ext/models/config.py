"""HiFi-GAN generator configs: the published presets, or any dict / JSON file with the original keys."""
import copy
import json
import os

from ..generator_options import OPTIONS, PADDING_MODES, option

ARCH_KEYS = ("resblock", "upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel",
             "resblock_kernel_sizes", "resblock_dilation_sizes")

_V1_V2_RESBLOCKS = {"resblock": "1", "resblock_kernel_sizes": [3, 7, 11],
                    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]]}
# HiFi-GAN's audio settings (config_v1.json), which every preset shares.
AUDIO_DEFAULTS = {"num_mels": 80, "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": 22050,
          "fmin": 0, "fmax": 8000, "fmax_for_loss": None, "segment_size": 8192}

PRESETS = {
    "v1": {"upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
           "upsample_initial_channel": 512, **_V1_V2_RESBLOCKS, **AUDIO_DEFAULTS},
    "v2": {"upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
           "upsample_initial_channel": 128, **_V1_V2_RESBLOCKS, **AUDIO_DEFAULTS},
    "v3": {"resblock": "2", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
           "upsample_initial_channel": 256, "resblock_kernel_sizes": [3, 5, 7],
           "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]], **AUDIO_DEFAULTS},
}


class ConfigError(ValueError):
    pass


def resolve_config(config):
    """A preset name ("v1", "v2", "v3"), a path to a JSON file, or a dict -> a validated dict (a copy).

    Keys beyond the generator's (training and audio settings of the original config.json) are kept
    as they are; `num_mels` defaults to 80 as the original hard-codes it."""
    if isinstance(config, str):
        if config.lower() in PRESETS:
            h = copy.deepcopy(PRESETS[config.lower()])
        elif os.path.isfile(config):
            try:
                with open(config) as f:
                    h = json.load(f)
            except (OSError, json.JSONDecodeError) as e:
                raise ConfigError(f"config file {config}: not readable as JSON ({e})") from e
            if not isinstance(h, dict):
                raise ConfigError(f"config file {config}: expected a JSON object, got {type(h).__name__}")
        else:
            raise ConfigError(f"config: expected one of {sorted(PRESETS)} or a path to a JSON file, "
                              f"got {config!r} (no such preset or file)")
    elif isinstance(config, dict):
        h = copy.deepcopy(config)
    else:
        raise ConfigError(f"config: expected a preset name, JSON path or dict, got {type(config).__name__}")
    _validate(h)
    return h


def _validate(h):
    missing = [k for k in ARCH_KEYS if k not in h]
    if missing:
        raise ConfigError(f"config: missing generator keys {missing} (got keys {sorted(h)})")
    h["resblock"] = str(h["resblock"])
    if h["resblock"] not in ("1", "2"):
        raise ConfigError(f"config: resblock must be '1' or '2', got {h['resblock']!r}")
    h.setdefault("num_mels", 80)
    if len(h["upsample_rates"]) != len(h["upsample_kernel_sizes"]):
        raise ConfigError(f"config: upsample_rates {h['upsample_rates']} and upsample_kernel_sizes "
                          f"{h['upsample_kernel_sizes']} must have the same length")
    if len(h["resblock_kernel_sizes"]) != len(h["resblock_dilation_sizes"]):
        raise ConfigError(f"config: resblock_kernel_sizes {h['resblock_kernel_sizes']} and resblock_dilation_sizes "
                          f"{h['resblock_dilation_sizes']} must have the same length")
    for k in h["resblock_kernel_sizes"]:
        if k % 2 != 1:
            raise ConfigError(f"config: resblock kernel sizes must be odd ('same' padding), got {k}")
    if h["resblock"] == "2" and any(len(d) != 2 for d in h["resblock_dilation_sizes"]):
        raise ConfigError(f"config: resblock '2' takes two dilations per kernel, got {h['resblock_dilation_sizes']}")
    _validate_options(h)
    channels = h["upsample_initial_channel"]
    if channels % (2 ** len(h["upsample_rates"])):
        raise ConfigError(f"config: upsample_initial_channel {channels} must halve cleanly "
                          f"{len(h['upsample_rates'])} times")


def _validate_options(h):
    stages = len(h["upsample_rates"])
    for key in ("upsample_paddings", "upsample_output_paddings"):
        value = option(h, key)
        if (not isinstance(value, (list, tuple)) or len(value) != stages
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
            raise ConfigError(f"config: {key} must list one int >= 0 per upsampling layer ({stages}), got {value!r}")
    for i, (u, op) in enumerate(zip(h["upsample_rates"], option(h, "upsample_output_paddings"))):
        if op >= u:
            raise ConfigError(f"config: upsample_output_paddings[{i}] = {op} must be smaller than the layer's "
                              f"upsample rate {u}")
    if option(h, "padding_mode") not in PADDING_MODES:
        raise ConfigError(f"config: padding_mode must be one of {PADDING_MODES}, got {option(h, 'padding_mode')!r}")
    for key in ("conv_pre_kernel_size", "conv_post_kernel_size"):
        k = option(h, key)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k % 2 != 1:
            raise ConfigError(f"config: {key} must be an odd int ('same' padding), got {k!r}")
    for key in ("conv_pre_bias", "upsample_bias", "resblock_bias", "conv_post_bias"):
        if not isinstance(option(h, key), bool):
            raise ConfigError(f"config: {key} must be true or false, got {option(h, key)!r}")


def arch(h):
    """The generator-defining part of a config (what NVIDIA's checkpoints store)."""
    return {k: copy.deepcopy(h[k]) for k in ARCH_KEYS + ("num_mels",) + tuple(OPTIONS) if k in h}

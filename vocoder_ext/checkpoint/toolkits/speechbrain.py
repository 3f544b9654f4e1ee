"""SpeechBrain HiFi-GAN vocoders (`generator.ckpt` + `hyperparams.yaml`) -> our state dict, config and features.

Detection (`detect(path)`), by structure: `path` is a folder holding `generator.ckpt` and `hyperparams.yaml`,
or a file beside a `hyperparams.yaml` (`generator.ckpt` itself, or the yaml); the checkpoint must be a
torch zip file whose pickled key names include `conv_pre.conv.` (SpeechBrain's conv wrapper). Only the key
names in the zip's data.pkl are looked at (as bytes); nothing is unpickled to detect.

`read(path, map_location="cpu") -> (state_dict, config, features)`:
- state_dict: generator.ckpt (a flat `module.state_dict()`, read with safe_load, weights only) with the
  `.conv` wrapper segment dropped (`conv_pre.conv.weight_g` -> `conv_pre.weight_g`), so the jik876 names.
  Weight norm kept as stored, like `read_generator_checkpoint` (`weight_g`/`weight_v`; the torch>=2.1
  `parametrizations.weight.original0/1` renamed to them; or a plain `weight`). Strict: missing,
  unexpected (e.g. `cond_layer.*` of a conditioned generator, a key without the wrapper) and wrongly
  shaped keys raise one CheckpointError naming them.
- config: for `HiFiGAN(config)`: the block type from the keys (SpeechBrain's `resblock_type` is not
  trusted: the integer 1 builds ResBlock2 there), strides (`upsample_factors`), kernel sizes, channels and
  dilations from the `!new:...HifiganGenerator` entry of hyperparams.yaml (its `!ref <x>` resolved), `num_mels`
  from conv_pre's weight, `sampling_rate` when the yaml has `sample_rate`, and
  **`padding_mode: "reflect"`**: SpeechBrain pads every stride-1 conv (conv_pre, all resblock convs,
  conv_post) with reflect padding (zero padding would change the audio at every utterance edge); our
  generator does the same, eager and fused, from that option. `conv_post_bias` as the yaml says.
- features: vocoder_ext.features' schema (the table is in that module's docstring; `features.mel_spectrogram`
  computes them). SpeechBrain computes mels with torchaudio's MelSpectrogram (center=True: "centered" framing,
  reflect pad n_fft // 2, periodic Hann; `power`; `mel_normalized` -> stft_normalized "window"; `norm`,
  `mel_scale`; a float32 filterbank) then ln(clamp(x, 1e-5)) when `dynamic_range_compression` is on. The
  released hyperparams.yaml usually lacks the mel settings (they live in the training recipe): those not in the
  file are None and listed in `missing` (SpeechBrain's mel function has no defaults for them), and
  `recipe_defaults` holds the LJSpeech recipe's values (22.05 kHz; LibriTTS's 16 kHz recipe differs only in
  the rate) to use knowingly: `features.update(features["recipe_defaults"], missing=[])`. `inference_padding` is the
  number of mel frames SpeechBrain's `inference()` replicate-pads on each side, untrimmed.

hyperparams.yaml is HyperPyYAML: `!new:`, `!name:`, `!apply:`, `!ref`, ... tags are parsed by a SafeLoader
subclass into inert `Tagged(tag, value)` values; nothing they name is imported or run.
"""
import os
import re
import zipfile

import torch
import yaml

from ...features import describe
from ..files import CheckpointError, safe_load
from .layout import block_type, check_generator_keys, config_field, conv_weight, rename_weight_norm

__all__ = ["detect", "read"]

CKPT_NAME = "generator.ckpt"
YAML_NAME = "hyperparams.yaml"
_WRAPPED_TAILS = ("weight_g", "weight_v", "weight", "bias",
                  "parametrizations.weight.original0", "parametrizations.weight.original1")
RECIPE_DEFAULTS = {"sample_rate": 22050, "n_fft": 1024, "win_length": 1024, "hop_length": 256, "fmin": 0.0,
                   "fmax": 8000.0, "mel_norm": "slaney", "mel_scale": "slaney", "magnitude_power": 1.0,
                   "stft_normalized": None, "log": "ln", "log_guard": "clamp", "log_floor": 1e-5}


class Tagged:
    """A HyperPyYAML tagged value (`!new:module.Class`, `!ref <x>`, ...), kept as data."""

    def __init__(self, tag, value):
        self.tag, self.value = tag, value

    def __repr__(self):
        return f"{self.tag} {self.value!r}"


class TolerantLoader(yaml.SafeLoader):
    """yaml.SafeLoader that turns every local `!tag` into a Tagged value instead of failing."""


def _construct_tagged(loader, suffix, node):
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return Tagged("!" + suffix, value)


TolerantLoader.add_multi_constructor("!", _construct_tagged)


def _paths(path):
    """(folder, checkpoint path, yaml path) for a folder or a file inside it."""
    path = str(path)
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    ckpt = path if os.path.isfile(path) and os.path.basename(path) != YAML_NAME else os.path.join(folder, CKPT_NAME)
    return folder, ckpt, os.path.join(folder, YAML_NAME)


def _has_wrapper_keys(ckpt):
    """True when the torch zip's pickled key names include `conv_pre.conv.` (read as bytes, not unpickled)."""
    try:
        if not zipfile.is_zipfile(ckpt):
            return False
        with zipfile.ZipFile(ckpt) as z:
            pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            return len(pkl) == 1 and z.getinfo(pkl[0]).file_size < (64 << 20) and b"conv_pre.conv." in z.read(pkl[0])
    except (OSError, zipfile.BadZipFile):
        return False


def detect(path):
    """True for a SpeechBrain HiFi-GAN folder (or a file of one): generator.ckpt with `.conv.` keys + hyperparams.yaml."""
    _, ckpt, yml = _paths(path)
    return os.path.isfile(ckpt) and os.path.isfile(yml) and _has_wrapper_keys(ckpt)


def load_hyperparams(path):
    """hyperparams.yaml -> a dict, `!ref <x>` resolved against the top level; other tags stay Tagged."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.load(f, Loader=TolerantLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise CheckpointError(f"{path}: not readable as (Hyper)YAML: {e}") from e
    if not isinstance(doc, dict):
        raise CheckpointError(f"{path}: expected a mapping at the top, got {type(doc).__name__}")
    return _resolve(doc, doc, 0)


_REF = re.compile(r"^<([^<>\[\]]+)((?:\[[^\[\]]+\])*)>$")


def _resolve(node, root, depth):
    if depth > 50:
        return node
    if isinstance(node, Tagged) and node.tag in ("!ref", "!copy") and isinstance(node.value, str):
        m = _REF.match(node.value.strip())
        if not m:
            return node  # arithmetic or string interpolation: left as written
        value = root.get(m.group(1), node) if isinstance(root, dict) else node
        for sub in re.findall(r"\[([^\[\]]+)\]", m.group(2)):
            value = value.get(sub, node) if isinstance(value, dict) else node
        return node if value is node else _resolve(value, root, depth + 1)
    if isinstance(node, Tagged):
        return Tagged(node.tag, _resolve(node.value, root, depth + 1))
    if isinstance(node, dict):
        return {k: _resolve(v, root, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, root, depth + 1) for v in node]
    return node


def _find_generator(node):
    """The first `!new:...HifiganGenerator` (or UnitHifiganGenerator) in the document, top-level `generator` first."""
    if isinstance(node, dict):
        items = sorted(node.items(), key=lambda kv: kv[0] != "generator")
        for _, v in items:
            found = _find_generator(v)
            if found is not None:
                return found
    elif isinstance(node, list):
        for v in node:
            found = _find_generator(v)
            if found is not None:
                return found
    elif isinstance(node, Tagged):
        if node.tag.startswith("!new:") and node.tag.endswith("HifiganGenerator"):
            return node
        return _find_generator(node.value)
    return None


def _generator_section(doc, where):
    gen = _find_generator(doc)
    if gen is None:
        if "upsample_factors" in doc:
            return doc  # a flat hparams file with the generator's arguments at the top
        raise CheckpointError(f"{where}: no '!new:speechbrain.lobes.models.HifiGAN.HifiganGenerator' entry and no "
                              "top-level upsample_factors: not a SpeechBrain HiFi-GAN hyperparams file")
    if gen.tag.endswith("UnitHifiganGenerator"):
        raise CheckpointError(f"{where}: {gen.tag[5:]} is SpeechBrain's discrete-unit HiFi-GAN (unit embeddings in, "
                              "not a mel spectrogram): not supported")
    if not isinstance(gen.value, dict):
        raise CheckpointError(f"{where}: {gen.tag} takes positional arguments ({gen.value!r}); expected named ones")
    return gen.value


def _state_dict(raw, where):
    sd, bare = {}, []
    for key, value in raw.items():
        for tail in _WRAPPED_TAILS:
            if key.endswith(".conv." + tail):
                key = rename_weight_norm(key[: -len(".conv." + tail)] + "." + tail)
                break
        else:
            bare.append(key)
            continue
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{where}: {key} is a {type(value).__name__}, expected a tensor")
        sd[key] = value
    if not sd:
        raise CheckpointError(f"{where}: no keys with SpeechBrain's '.conv.' wrapper (found {sorted(raw)[:6]}); a "
                              "pre-2022-03 plain-conv SpeechBrain generator is a bare jik876 state dict: read it with "
                              "read_generator_checkpoint and its config")
    if bare:
        raise CheckpointError(f"{where}: unexpected keys without the '.conv.' wrapper ({len(bare)}): {', '.join(bare)}")
    return sd


def _features(doc, gen):
    """hyperparams.yaml's mel settings (the arguments of SpeechBrain's `mel_spectogram`) -> features' schema."""
    missing, unsupported = [], []

    def get(key, ours):
        if key in doc and not isinstance(doc[key], Tagged):
            return doc[key]
        missing.append(ours)
        return None

    sr, n_fft = get("sample_rate", "sample_rate"), get("n_fft", "n_fft")
    win = get("win_length", "win_length")
    hop = get("hop_length", "hop_length")
    if "win_length" in doc and win is None:  # torchaudio's defaults for an explicit null
        win = n_fft
    if "hop_length" in doc and hop is None and isinstance(win, int):
        hop = win // 2
    fmax = get("mel_fmax", "fmax")
    if "mel_fmax" in doc and fmax is None and sr:
        fmax = sr / 2
    fmin = get("mel_fmin", "fmin")
    power = get("power", "magnitude_power")
    normalized = get("mel_normalized", "stft_normalized")
    norm, mel_scale = get("norm", "mel_norm"), get("mel_scale", "mel_scale")
    compression = get("dynamic_range_compression", "log")
    if compression is None:
        missing.extend(["log_guard", "log_floor"])
    if isinstance(sr, int) and sr % 2:
        unsupported.append(f"sample_rate = {sr} (odd: torchaudio places the FFT bins up to sample_rate // 2)")
    return {**describe(
        toolkit="speechbrain", source=f"{YAML_NAME} (mel settings the file lacks: see missing, recipe_defaults)",
        sample_rate=sr, n_fft=n_fft, win_length=win, hop_length=hop,
        n_mels=gen.get("in_channels", doc.get("n_mel_channels")),
        framing="centered", pad=n_fft // 2 if isinstance(n_fft, int) else None, pad_mode="reflect",
        window="hann", window_periodic=True,
        stft_normalized=("window" if normalized else None) if normalized is not None else None,
        magnitude_power=float(power) if power is not None else None,
        fmin=float(fmin) if fmin is not None else None, fmax=float(fmax) if fmax is not None else None,
        mel_scale=mel_scale, mel_norm=norm, filterbank_dtype="float32",
        log=("ln" if compression else None) if compression is not None else None,
        log_guard="clamp" if compression else None, log_floor=1e-5 if compression else None,
        inference_padding=gen.get("inference_padding", 5), unsupported=unsupported, missing=missing,
        notes=["SpeechBrain's inference() replicate-pads inference_padding mel frames on each side and does not "
               "trim the extra inference_padding * hop samples per side",
               "torchaudio builds the filterbank in float32 arithmetic: it agrees with this float64 one "
               "rounded to float32 to about 1e-6 relative"]),
        "recipe_defaults": dict(RECIPE_DEFAULTS)}


def read(path, map_location="cpu"):
    """-> (state_dict in our jik876 keys, config with padding_mode "reflect", features). See the module doc."""
    folder, ckpt, yml = _paths(path)
    for needed in (ckpt, yml):
        if not os.path.isfile(needed):
            raise CheckpointError(f"{folder}: not a SpeechBrain HiFi-GAN folder: {os.path.basename(needed)} "
                                  f"is missing ({needed})")
    doc = load_hyperparams(yml)
    gen = _generator_section(doc, yml)
    config = {"upsample_rates": config_field(gen, "upsample_factors", yml, "ints"),
              "upsample_kernel_sizes": config_field(gen, "upsample_kernel_sizes", yml, "ints"),
              "upsample_initial_channel": config_field(gen, "upsample_initial_channel", yml, "int"),
              "resblock_kernel_sizes": config_field(gen, "resblock_kernel_sizes", yml, "ints"),
              "resblock_dilation_sizes": config_field(gen, "resblock_dilation_sizes", yml, "int_lists")}
    sd = _state_dict(safe_load(ckpt, map_location), ckpt)
    config["resblock"] = block_type(sd, ckpt)
    pre = conv_weight(sd, "conv_pre")
    config["num_mels"] = int(pre.shape[1]) if pre is not None and pre.dim() == 3 else int(gen.get("in_channels", 80))
    if isinstance(doc.get("sample_rate"), (int, float)):
        config["sampling_rate"] = int(doc["sample_rate"])
    config["padding_mode"] = "reflect"
    config["conv_post_bias"] = bool(gen.get("conv_post_bias", True))
    check_generator_keys(sd, config, ckpt)
    return sd, config, _features(doc, gen)

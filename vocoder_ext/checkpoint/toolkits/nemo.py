"""NVIDIA NeMo HiFi-GAN vocoders (`.nemo` archives) -> our generator's state dict, config and features.

Detection (`detect(path)`), by structure, never by the file name: a tar archive, uncompressed or gzip
(NeMo's reader tries "r:" then "r:gz"), whose members include `model_config.yaml` and
`model_weights.ckpt`, each possibly with a leading "./" (NeMo writes them with arcname ".").

`read(path, map_location="cpu") -> (state_dict, config, features)`:
- state_dict: the `generator.` sub-tree of model_weights.ckpt in OUR keys (the jik876 names): nested
  `resblocks.{i}.{j}.*` (NeMo since 2021-05) becomes `resblocks.{i*K+j}.*` with K =
  len(resblock_kernel_sizes); the legacy flat `resblocks.{n}.*` is kept as it is. Weight norm is kept
  as stored, like `read_generator_checkpoint`: `weight_g`/`weight_v` (torch.nn.utils.weight_norm, what NeMo
  saves), `parametrizations.weight.original0/1` renamed to `weight_g`/`weight_v`, or a plain `weight`
  (HiFiGAN.from_pretrained removes the model's weight norm when conv_pre has a plain weight).
  Everything outside `generator.` (mpd, msd, the mel preprocessors' buffers) is not part of it.
  Strict: missing, unexpected and wrongly shaped generator keys raise one CheckpointError naming them.
- config: a dict `HiFiGAN(config)` accepts. The resblock type comes from the keys (convs1/convs2 -> "1",
  convs -> "2"), never from the config's integer; strides, kernel sizes, channels and dilations come
  from model_config.yaml's `generator`; `num_mels` from conv_pre's weight; `sampling_rate` when known.
- features: vocoder_ext.features' schema (the table is in that module's docstring; `features.mel_spectrogram`
  computes them), from model_config.yaml's `preprocessor` (FilterbankFeatures, or
  AudioToMelSpectrogramPreprocessor with window_size/window_stride in seconds) and the stored
  `audio_to_melspec_precessor.fb` / `.window` buffers (`filterbank`, `window_weights`, used as stored).
  exact_pad -> "padded" framing (pad (n_fft - hop) // 2), else "centered"; symmetric window; |X| ** mag_power
  (use_grads adds 1e-5 under the sqrt); ln with log_zero_guard_type/value ("tiny"/"eps": float32's);
  normalize -> normalization "per_feature"/"all_features"; preemph applied after the exact pad; pad_value,
  pad_to. Values the file leaves out take FilterbankFeatures' defaults (NeMo 8cfedd7) and are listed in
  `defaults`. `dither` is recorded but never applied (NeMo dithers in training mode only). frame_splicing > 1,
  pad_to "max", fixed_mean/fixed_std normalisation, stft_conv and window "none" go to `unsupported`.
  NeMo #13827 (2025-07) changed the padding from "reflect" to "constant" (zeros) and made the last frame
  pad_value (`masked_tail`); the file does not say which version trained it, so the dict describes the
  earlier one (pad_mode "reflect", masked_tail False) and a note says what to change for a later model.

Safety: members are streamed, never extracted under their own names: the weights go to a fixed name in a
private temporary folder and are read with `safe_load` (torch.load weights_only=True); the YAML is parsed
with yaml.safe_load. An archive with an absolute or `..` member name, a link or non-file member under the
two names, or duplicated members is refused.
"""
import math
import os
import shutil
import tarfile
import tempfile

import torch
import yaml

from ...features import describe
from ..files import CheckpointError, safe_load
from .layout import block_type, check_generator_keys, config_field, conv_weight, rename_weight_norm

__all__ = ["detect", "read"]

CONFIG_MEMBER = "model_config.yaml"
WEIGHTS_MEMBER = "model_weights.ckpt"
PREFIX = "generator."
_MAX_CONFIG_BYTES = 16 << 20


# ---- the .nemo archive -------------------------------------------------------------------------------
def _open_tar(path):
    """The archive opened "r:" then "r:gz" (as NeMo reads it), or None when it is neither."""
    if not os.path.isfile(path):
        return None
    for mode in ("r:", "r:gz"):
        try:
            return tarfile.open(path, mode)
        except (tarfile.TarError, OSError, EOFError):
            continue
    return None


def _member_name(name):
    while name.startswith("./"):
        name = name[2:]
    return name


def detect(path):
    """True when `path` is a tar (plain or gzip) holding model_config.yaml and model_weights.ckpt."""
    tar = _open_tar(str(path))
    if tar is None:
        return False
    with tar:
        try:
            names = {_member_name(m.name) for m in tar.getmembers()}
        except (tarfile.TarError, OSError, EOFError):
            return False
    return {CONFIG_MEMBER, WEIGHTS_MEMBER} <= names


def _members(tar, path):
    """{config member, weights member}, after refusing unsafe or ambiguous member names."""
    found = {}
    for m in tar.getmembers():
        name = _member_name(m.name)
        parts = name.replace("\\", "/").split("/")
        if m.name.startswith(("/", "\\")) or os.path.isabs(m.name) or ".." in parts:
            raise CheckpointError(f"{path}: refusing a .nemo archive with the unsafe member name {m.name!r} "
                                  "(absolute or '..' paths could write outside the extraction folder)")
        if name in (CONFIG_MEMBER, WEIGHTS_MEMBER):
            if not m.isfile():
                raise CheckpointError(f"{path}: archive member {m.name!r} is a link or special file, expected a "
                                      "regular file")
            if name in found:
                raise CheckpointError(f"{path}: archive holds {name} twice ({found[name].name!r}, {m.name!r})")
            found[name] = m
    absent = [n for n in (CONFIG_MEMBER, WEIGHTS_MEMBER) if n not in found]
    if absent:
        raise CheckpointError(f"{path}: not a NeMo model archive: the tar has no {' or '.join(absent)} member "
                              f"(members: {sorted(m.name for m in tar.getmembers())[:10]})")
    return found[CONFIG_MEMBER], found[WEIGHTS_MEMBER]


def _load_archive(path, map_location):
    tar = _open_tar(path)
    if tar is None:
        if not os.path.exists(path):
            raise FileNotFoundError(f"checkpoint not found: {path}")
        raise CheckpointError(f"{path}: not a .nemo archive (expected a tar archive, uncompressed or gzip)")
    with tar:
        try:
            config_member, weights_member = _members(tar, path)
            if config_member.size > _MAX_CONFIG_BYTES:
                raise CheckpointError(f"{path}: {CONFIG_MEMBER} is {config_member.size} bytes, too large for a config")
            text = tar.extractfile(config_member).read().decode("utf-8")
            with tempfile.TemporaryDirectory(prefix="vocoder_ext_nemo_") as tmp:
                weights_path = os.path.join(tmp, WEIGHTS_MEMBER)  # our name, never the member's
                with tar.extractfile(weights_member) as src, open(weights_path, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                try:
                    weights = safe_load(weights_path, map_location)
                except CheckpointError as e:
                    raise CheckpointError(str(e).replace(weights_path, f"{path}:{WEIGHTS_MEMBER}")) from e
        except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path}: damaged .nemo archive ({type(e).__name__}: {e})") from e
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CheckpointError(f"{path}: {CONFIG_MEMBER} is not valid YAML: {e}") from e
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: {CONFIG_MEMBER} should be a mapping, got {type(cfg).__name__}")
    return _resolve_interpolations(cfg, cfg), weights


def _resolve_interpolations(node, root):
    """OmegaConf `${a.b}` values that fill a whole field (a config saved unresolved), looked up from the root;
    anything else is left as written."""
    if isinstance(node, dict):
        return {k: _resolve_interpolations(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_interpolations(v, root) for v in node]
    if isinstance(node, str) and node.startswith("${") and node.endswith("}") and node.count("${") == 1:
        value = root
        for part in node[2:-1].split("."):
            if not isinstance(value, dict) or part not in value:
                return node
            value = value[part]
        return _resolve_interpolations(value, root) if value is not node else node
    return node


# ---- key conversion and config -----------------------------------------------------------------------
def _generator_state_dict(weights, nk, where):
    """The `generator.` sub-tree with flat jik876 resblock indices."""
    sd = {}
    for key, value in weights.items():
        if not key.startswith(PREFIX):
            continue
        key = rename_weight_norm(key[len(PREFIX):])
        parts = key.split(".")
        if parts[0] == "resblocks" and len(parts) >= 3 and parts[1].isdigit() and parts[2].isdigit():
            i, j = int(parts[1]), int(parts[2])
            if j >= nk:
                raise CheckpointError(f"{where}: key generator.{key} has kernel index {j}, but the config lists "
                                      f"{nk} resblock kernel sizes")
            key = ".".join(["resblocks", str(i * nk + j)] + parts[3:])
        if key in sd:
            raise CheckpointError(f"{where}: generator key {key} appears in both the nested and the flat layout")
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{where}: generator.{key} is a {type(value).__name__}, expected a tensor")
        sd[key] = value
    if not sd:
        raise CheckpointError(f"{where}: no 'generator.*' weights in {WEIGHTS_MEMBER} (found keys "
                              f"{sorted(weights)[:10]}); not a NeMo HiFi-GAN model")
    return sd


def _config(cfg, sd, where):
    gen = cfg.get("generator")
    if not isinstance(gen, dict):
        raise CheckpointError(f"{where}: {CONFIG_MEMBER} has no 'generator' section (found {sorted(cfg)})")
    target = str(gen.get("_target_", ""))
    if target and not target.endswith("hifigan_modules.Generator"):
        raise CheckpointError(f"{where}: generator is {target}, expected NeMo's HiFi-GAN "
                              "nemo.collections.tts.modules.hifigan_modules.Generator")
    config = {"upsample_rates": config_field(gen, "upsample_rates", where, "ints"),
              "upsample_kernel_sizes": config_field(gen, "upsample_kernel_sizes", where, "ints"),
              "upsample_initial_channel": config_field(gen, "upsample_initial_channel", where, "int"),
              "resblock_kernel_sizes": config_field(gen, "resblock_kernel_sizes", where, "ints"),
              "resblock_dilation_sizes": config_field(gen, "resblock_dilation_sizes", where, "int_lists")}
    config["resblock"] = block_type(sd, where)
    pre = conv_weight(sd, "conv_pre")
    config["num_mels"] = int(pre.shape[1]) if pre is not None and pre.dim() == 3 else \
        int(gen.get("initial_input_size") or 80)
    sr = cfg.get("sample_rate") or (cfg.get("preprocessor") or {}).get("sample_rate")
    if isinstance(sr, (int, float)):
        config["sampling_rate"] = int(sr)
    return config


def _guard_value(value):
    """NeMo's log_zero_guard_value: a number, or "tiny"/"eps" of the features' dtype (float32 in NeMo)."""
    if value == "tiny":
        return float(torch.finfo(torch.float32).tiny)
    if value == "eps":
        return float(torch.finfo(torch.float32).eps)
    return float(value)


def _features(cfg, weights):
    """FilterbankFeatures settings -> vocoder_ext.features' schema; absent ones take NeMo 8cfedd7's defaults."""
    pre = cfg.get("preprocessor") if isinstance(cfg.get("preprocessor"), dict) else {}
    missing, defaults, notes, unsupported = [], [], [], []

    def get(key, ours, default):
        if key not in pre:
            defaults.append(ours)
            return default
        return pre[key]

    sr = pre.get("sample_rate", cfg.get("sample_rate"))
    sr = int(sr) if isinstance(sr, (int, float)) and float(sr).is_integer() else sr
    if sr is None:
        missing.append("sample_rate")
    if "window_size" in pre and "n_window_size" not in pre:  # AudioToMelSpectrogramPreprocessor: seconds
        win = int(pre["window_size"] * sr) if sr else None
        hop = int(get("window_stride", "hop_length", 0.01) * sr) if sr else None
        n_mels = get("features", "n_mels", 64)
    else:
        win, hop = get("n_window_size", "win_length", 320), get("n_window_stride", "hop_length", 160)
        n_mels = get("nfilt", "n_mels", 64)
    n_fft = pre.get("n_fft") or (2 ** math.ceil(math.log2(win)) if win else None)
    exact_pad = bool(get("exact_pad", "framing", False))
    fmax = get("highfreq", "fmax", None) or (sr / 2 if sr else None)  # NeMo: highfreq or sample_rate / 2
    log = bool(get("log", "log", True))
    guard = get("log_zero_guard_type", "log_guard", "add")
    normalize = get("normalize", "normalization", "per_feature")
    window = get("window", "window", "hann")
    pad_to = get("pad_to", "pad_to", 16)
    use_grads = bool(pre.get("use_grads", False))
    if normalize not in (None, "per_feature", "all_features"):
        unsupported.append(f"normalize = {normalize!r} (fixed_mean/fixed_std)")
    if pre.get("frame_splicing", 1) not in (None, 1):
        unsupported.append(f"frame_splicing = {pre['frame_splicing']} (stacked frames)")
    if pad_to == "max":
        unsupported.append("pad_to = 'max' (padding to max_duration)")
    if pre.get("stft_conv"):
        unsupported.append("stft_conv = true (torch_stft's conv STFT, removed from NeMo)")
    if window not in ("hann", "hamming", "blackman", "bartlett"):
        unsupported.append(f"window = {window!r}")
    notes.append("NeMo before #13827 (2025-07) is described: reflect padding, every frame valid. A model trained "
                 "with a later NeMo needs pad_mode 'constant' and masked_tail True (its last frame is pad_value)")
    fb = weights.get("audio_to_melspec_precessor.fb")
    stored_window = weights.get("audio_to_melspec_precessor.window")
    return describe(
        toolkit="nemo", source=f"{CONFIG_MEMBER}: preprocessor ({pre.get('_target_', 'no _target_')})",
        sample_rate=sr, n_fft=n_fft, win_length=win, hop_length=hop, n_mels=n_mels,
        preemphasis=get("preemph", "preemphasis", 0.97), preemphasis_after_pad=exact_pad,
        dither=get("dither", "dither", 1e-5),
        framing="padded" if exact_pad else "centered",
        pad=((n_fft - hop) // 2 if exact_pad else n_fft // 2) if n_fft and hop else None, pad_mode="reflect",
        window=window, window_periodic=False,
        window_weights=stored_window if isinstance(stored_window, torch.Tensor) else None,
        magnitude_guard_type="add" if use_grads else None, magnitude_guard=1e-5 if use_grads else 0.0,
        magnitude_power=float(get("mag_power", "magnitude_power", 2.0)),
        fmin=float(get("lowfreq", "fmin", 0) or 0), fmax=float(fmax) if fmax is not None else None,
        mel_scale="slaney", mel_norm=get("mel_norm", "mel_norm", "slaney"),
        filterbank=(fb.reshape(fb.shape[-2], fb.shape[-1]) if fb.dim() == 3 else fb)
        if isinstance(fb, torch.Tensor) else None, filterbank_dtype="float32",
        log="ln" if log else None, log_guard=guard if log else None,
        log_floor=_guard_value(get("log_zero_guard_value", "log_floor", 2 ** -24)) if log else None,
        normalization={"type": normalize} if normalize in ("per_feature", "all_features") else None,
        pad_value=float(get("pad_value", "pad_value", 0.0)), pad_to=pad_to if isinstance(pad_to, int) else 0,
        unsupported=unsupported, missing=missing, defaults=defaults, notes=notes)


def read(path, map_location="cpu"):
    """-> (state_dict in our jik876 keys, config for HiFiGAN(config), features metadata). See the module doc."""
    path = str(path)
    cfg, weights = _load_archive(path, map_location)
    gen = cfg.get("generator")
    if not isinstance(gen, dict):
        raise CheckpointError(f"{path}: {CONFIG_MEMBER} has no 'generator' section (found {sorted(cfg)})")
    sd = _generator_state_dict(weights, len(config_field(gen, "resblock_kernel_sizes", path, "ints")), path)
    config = _config(cfg, sd, path)
    check_generator_keys(sd, config, path)
    return sd, config, _features(cfg, weights)

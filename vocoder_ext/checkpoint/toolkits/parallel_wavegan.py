"""ParallelWaveGAN (kan-bayashi) `checkpoint-*steps.pkl` and ESPnet joint text2wav `*.pth` HiFi-GAN generators ->
our generator's state dict, config and features. ESPnet's `HiFiGANGenerator` is a copy of PWG's, so one key map.

Detection (`detect(path)`), by structure and cheaply: first the config beside the file (PWG `config.yml`, ESPnet
`config.yaml`), then only the key names in the torch file's pickle, read as bytes (the zip's data.pkl, or the
head of a legacy file), never unpickled: PWG needs `input_conv.`, ESPnet `tts.generator.` (or `svs.generator.`).
A folder counts as PWG when it holds `checkpoint-{N}steps.pkl` (the highest N is read) and config.yml.

`read(path, map_location="cpu") -> (state_dict, config, features)`:
- PWG: `ckpt["model"]["generator"]` (optimizer, scheduler, discriminator ignored); `config.yml`'s
  `generator_type` must be HiFiGANGenerator and `generator_params` give the architecture (PWG's constructor
  defaults fill what is absent; the old typo `upsample_kernal_sizes` is accepted). ESPnet: the flat state
  dict's `tts.generator.vocoder.` sub-tree (`svs.generator.vocoder.` for GAN-SVS), `config.yaml`'s
  `tts_conf.vocoder_type` hifigan_generator and `tts_conf.vocoder_params`.
- Keys -> jik876: input_conv -> conv_pre, upsamples.{i}.1 -> ups.{i}, blocks.{n}.convs{1,2}.{m}.1 ->
  resblocks.{n}.convs{1,2}.{m} (convs1 alone -> ResBlock2 `convs`), output_conv.1 -> conv_post; weight norm
  as stored (weight_g/weight_v, torch>=2.1 parametrizations renamed, or plain weight). Strict: one
  CheckpointError lists missing, unexpected and mis-shaped keys, spelled as the file spells them.
- config: for `HiFiGAN(config)`, with `upsample_paddings` / `upsample_output_paddings`, PWG's transposed-conv
  padding u//2 + u%2 and output_padding u%2 (for even scales with kernel 2u that is jik876's (k-u)//2 and 0;
  for odd scales, the 24 kHz [5,5,4,3] models, jik876's formula would add a shifted sample per layer),
  `conv_pre_kernel_size` / `conv_post_kernel_size` from `kernel_size`, and `bias: false` as bias-free convs
  (PWG: every conv; ESPnet: the residual blocks' only, its other convs always have one).
- features: vocoder_ext.features' schema (the table is in that module's docstring; `features.mel_spectrogram`
  computes them), plus PWG's `global_gain_scale` and `format`. PWG: preprocess.py's logmelfilterbank from
  config.yml (its defaults for absent fields, listed in `defaults`): librosa STFT, "centered" framing (reflect),
  periodic `window`, |X|, librosa Slaney filterbank (float32; fmin null -> 0, fmax null -> sr / 2),
  log10(max(x, 1e-10)), wav_gain = global_gain_scale (when > 0); normalization "mean_scale" from stats.npy
  (read), stats.h5 (read only if h5py imports, else its mean/scale are None: computing says so) or the
  `mean`/`scale` buffers; none of these -> normalization None and listed in `missing`. ESPnet: LogMelFbank
  from config.yaml's feats_extract_conf (its defaults: fs 16000, n_fft 1024, hop 256, fmin 80, fmax 7600,
  center true, ...): torch.stft, sqrt(max(|X|^2, 1e-10)), the stored `feats_extract.logmel.melmat` as
  `filterbank` ([n_mels, n_freq], transposed from ESPnet's [n_freq, n_mels]), log10(max(x, 1e-10)),
  GlobalMVN `normalize.mean`/`normalize.std` as a "mean_scale" normalization.

Refused (CheckpointError naming the file and the variant): other generator types, causal PWG (`.conv`/`.deconv`
keys or use_causal_conv), non-LeakyReLU activations or a slope other than 0.1, ESPnet
global_conv / global_channels (speaker conditioning), multi-band (out_channels > 1, PQMF), an even
kernel_size, ResBlock2-style blocks without exactly two dilations, and ESPnet VITS
(`tts.generator.decoder.`) and JETS (`tts.generator.generator.`): they decode latents, not mels.

The module is over 400 lines because ParallelWaveGAN and ESPnet share one key map, config check and
feature description: two files would repeat them.
"""
import os
import re
import zipfile

import numpy as np
import torch
import yaml

from ...features import describe
from ..files import CheckpointError, safe_load
from .layout import (block_type, check_generator_keys, config_field, config_mismatch, infer_architecture,
                     rename_weight_norm)

__all__ = ["detect", "read"]

PWG_CONFIG, ESPNET_CONFIG = "config.yml", "config.yaml"
_PWG_CKPT = re.compile(r"checkpoint-(\d+)steps\.pkl")
_ESPNET_PREFIXES = {"tts.generator.vocoder.": "tts_conf", "svs.generator.vocoder.": "svs_conf"}
_NOT_MEL = {"tts.generator.decoder.": "VITS", "tts.generator.generator.": "JETS"}
_HEAD_BYTES = 4 << 20
OUR_SLOPE = 0.1  # vocoder_ext.models.hifigan: LRELU_SLOPE
DEFAULTS = {"in_channels": 80, "out_channels": 1, "channels": 512, "global_channels": -1, "kernel_size": 7,
            "upsample_scales": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
            "resblock_kernel_sizes": [3, 7, 11], "resblock_dilations": [[1, 3, 5]] * 3,
            "use_additional_convs": True, "bias": True, "nonlinear_activation": "LeakyReLU",
            "nonlinear_activation_params": {"negative_slope": 0.1}, "use_causal_conv": False,
            "use_weight_norm": True}


# ---- detection ---------------------------------------------------------------------------------------
def _pickle_head(path):
    """The pickled part of a torch file as bytes (the zip's data.pkl, or a legacy file's head), not unpickled."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
                if len(names) != 1 or z.getinfo(names[0]).file_size > (64 << 20):
                    return b""
                return z.read(names[0])
        with open(path, "rb") as f:
            return f.read(_HEAD_BYTES)
    except (OSError, zipfile.BadZipFile):
        return b""


def _pwg_files(path):
    """(checkpoint, config.yml path) for a PWG file or folder; checkpoint None when a folder has none."""
    path = os.fspath(path)
    if os.path.isdir(path):
        found = [(int(m.group(1)), n) for n in os.listdir(path) for m in [_PWG_CKPT.fullmatch(n)] if m]
        return (os.path.join(path, max(found)[1]) if found else None), os.path.join(path, PWG_CONFIG)
    return path, os.path.join(os.path.dirname(os.path.abspath(path)), PWG_CONFIG)


def _kind(path, need_config=True):
    """"pwg", "espnet" or None, from the config beside the file (checked first, unless need_config is false)
    and the pickled key names."""
    ckpt, pwg_cfg = _pwg_files(path)
    if ckpt is None or not os.path.isfile(ckpt):
        return None
    esp_cfg = os.path.join(os.path.dirname(pwg_cfg), ESPNET_CONFIG)
    if need_config and not (os.path.isfile(pwg_cfg) or os.path.isfile(esp_cfg)):
        return None
    head = _pickle_head(ckpt)
    if b"tts.generator." in head or b"svs.generator." in head:
        return "espnet" if os.path.isfile(esp_cfg) or not need_config else None
    if b"input_conv." in head:
        return "pwg" if os.path.isfile(pwg_cfg) or not need_config else None
    return None


def detect(path, need_config=True):
    """True for a PWG checkpoint-*steps.pkl (or its folder) with config.yml, or an ESPnet GAN-TTS .pth with
    config.yaml; with need_config=False, also when that config is missing (so `read` can say which it wanted)."""
    return _kind(path, need_config) is not None


# ---- key map -----------------------------------------------------------------------------------------
_TO_OURS = ((re.compile(r"input_conv\.(\w+)"), "conv_pre.{0}"),
            (re.compile(r"upsamples\.(\d+)\.1\.(\w+)"), "ups.{0}.{1}"),
            (re.compile(r"blocks\.(\d+)\.(convs[12])\.(\d+)\.1\.(\w+)"), "resblocks.{0}.{1}.{2}.{3}"),
            (re.compile(r"output_conv\.1\.(\w+)"), "conv_post.{0}"))
_TO_FILE = ((re.compile(r"conv_pre(\..*)?"), "input_conv{0}"),
            (re.compile(r"ups\.(\d+)(\..*)?"), "upsamples.{0}.1{1}"),
            (re.compile(r"resblocks\.(N|\d+)\.convs\.(\d+)(\..*)?"), "blocks.{0}.convs1.{1}.1{2}"),
            (re.compile(r"resblocks\.(N|\d+)\.(convs[12])\.(\d+)(\..*)?"), "blocks.{0}.{1}.{2}.1{3}"),
            (re.compile(r"resblocks(\..*)?"), "blocks{0}"),
            (re.compile(r"conv_post(\..*)?"), "output_conv.1{0}"))


def _namer(prefix):
    """Our key -> the file's spelling, for error messages."""
    def name(key):
        for pattern, spelling in _TO_FILE:
            m = pattern.fullmatch(key)
            if m:
                return prefix + spelling.format(*(g or "" for g in m.groups()))
        return prefix + key
    return name


def _generator_state_dict(raw, prefix, where):
    """The generator's tensors in our keys, and the `mean`/`scale` buffers (PWG register_stats) if present."""
    sd, stats, causal = {}, {}, []
    for key, value in raw.items():
        key = rename_weight_norm(key)
        if key in ("mean", "scale"):
            stats[key] = value
            continue
        if re.search(r"\.(conv|deconv)\.(weight\w*|bias)$", key):
            causal.append(prefix + key)
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{where}: {prefix}{key} is a {type(value).__name__}, expected a tensor")
        for pattern, ours in _TO_OURS:
            m = pattern.fullmatch(key)
            if m:
                key = ours.format(*m.groups())
                break
        sd[key] = value
    if causal:
        raise CheckpointError(f"{where}: causal ParallelWaveGAN HiFi-GAN (CausalConv1d/CausalConvTranspose1d keys "
                              f"{causal[:3]}): left-padded and cropped convs, a different computation: not supported")
    if not sd:
        raise CheckpointError(f"{where}: no generator weights under {prefix or 'the top level'!r}")
    if not any(".convs2." in k for k in sd):  # use_additional_convs=False: jik876's ResBlock2
        sd = {re.sub(r"^(resblocks\.\d+)\.convs1\.", r"\1.convs.", k): v for k, v in sd.items()}
    return sd, stats


# ---- config ------------------------------------------------------------------------------------------
def _refuse_variants(params, sd, where, esp):
    def refuse(what):
        raise CheckpointError(f"{where}: {what}; our generator cannot reproduce it exactly")
    if params.get("use_causal_conv"):
        refuse("use_causal_conv: true (causal ParallelWaveGAN HiFi-GAN, left-padded and cropped convs)")
    if params["nonlinear_activation"] != "LeakyReLU":
        refuse(f"nonlinear_activation {params['nonlinear_activation']!r} (ours is LeakyReLU)")
    slope = (params.get("nonlinear_activation_params") or {}).get("negative_slope", 0.01)
    if slope != OUR_SLOPE:
        refuse(f"LeakyReLU negative_slope {slope} (ours is fixed at {OUR_SLOPE})")
    if (esp and params.get("global_channels", -1) > 0) or any(k.startswith("global_conv.") for k in sd):
        refuse(f"global_conv (global_channels {params.get('global_channels')}): speaker/global conditioning")
    if params["out_channels"] != 1:
        refuse(f"out_channels {params['out_channels']}: a multi-band (PQMF) generator")
    if not isinstance(params["kernel_size"], int) or params["kernel_size"] % 2 != 1:
        refuse(f"kernel_size {params['kernel_size']!r} of input_conv/output_conv (PWG asserts an odd one)")


def _config(params, sd, where, file_name, esp, name):
    """HiFiGAN(config) dict from the toolkit's generator params, checked against the weights' shapes."""
    params = {**DEFAULTS, **params}
    if "upsample_kernal_sizes" in params:  # PWG #295: the old configs' typo
        params["upsample_kernel_sizes"] = params.pop("upsample_kernal_sizes")
    _refuse_variants(params, sd, where, esp)
    rates = config_field(params, "upsample_scales", where, "ints")
    kernels = config_field(params, "upsample_kernel_sizes", where, "ints")
    dils = config_field(params, "resblock_dilations", where, "int_lists")
    arch = infer_architecture(sd, file_name, name)
    for field, found in (("in_channels", arch["num_mels"]), ("channels", arch["upsample_initial_channel"]),
                         ("kernel_size", arch["conv_pre_kernel"]),
                         ("upsample_kernel_sizes", arch["upsample_kernel_sizes"]),
                         ("resblock_kernel_sizes", arch["resblock_kernel_sizes"]),
                         ("use_additional_convs", arch["resblock"] == "1")):
        claimed = params[field]
        if (list(claimed) if isinstance(found, list) else claimed) != found:
            raise config_mismatch(where, field, claimed, found)
    if len(rates) != len(kernels):
        raise config_mismatch(where, "upsample_scales", rates, f"{len(kernels)} upsampling layers")
    if [len(d) for d in dils] != arch["convs_per_block"]:
        raise config_mismatch(where, "resblock_dilations", dils, f"{arch['convs_per_block']} convs per block")
    if arch["resblock"] == "2" and any(len(d) != 2 for d in dils):
        raise CheckpointError(f"{where}: use_additional_convs false with dilations {dils}: our ResBlock2 takes "
                              "exactly two dilations per kernel")
    return {"resblock": block_type(sd, file_name), "upsample_rates": rates, "upsample_kernel_sizes": kernels,
            "upsample_initial_channel": arch["upsample_initial_channel"],
            "resblock_kernel_sizes": arch["resblock_kernel_sizes"], "resblock_dilation_sizes": dils,
            "num_mels": arch["num_mels"],
            "upsample_paddings": [u // 2 + u % 2 for u in rates], "upsample_output_paddings": [u % 2 for u in rates],
            "conv_pre_kernel_size": params["kernel_size"], "conv_post_kernel_size": params["kernel_size"],
            # ESPnet's `bias` reaches the residual blocks only; PWG's every conv
            "resblock_bias": bool(params["bias"]),
            **({} if esp else {key: bool(params["bias"]) for key in ("conv_pre_bias", "upsample_bias", "conv_post_bias")})}


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader that also reads `!!python/tuple` (PWG dumps its config with yaml.Dumper) as a list."""


_Loader.add_constructor("tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node))


def _load_yaml(path, ckpt):
    if not os.path.isfile(path):
        raise CheckpointError(f"{ckpt}: no {os.path.basename(path)} beside the checkpoint (looked for {path})")
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.load(f, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
        if not isinstance(doc, dict):
            raise yaml.YAMLError(f"expected a mapping at the top, got {type(doc).__name__}")
    except yaml.YAMLError as e:
        raise CheckpointError(f"{path}: not a YAML mapping: {e}") from e
    return doc


# ---- features ----------------------------------------------------------------------------------------
def _stats(folder, fmt, buffers):
    """PWG normalisation: stats.npy / stats.h5 beside the checkpoint (the config's format first), else buffers."""
    names = ["stats.h5", "stats.npy"] if fmt == "hdf5" else ["stats.npy", "stats.h5"]
    base = {"type": "mean_scale", "formula": "(x - mean) / scale"}
    for name in names:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        if name == "stats.npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise CheckpointError(f"{path}: not a readable .npy array: {e}") from e
            if arr.ndim != 2 or arr.shape[0] != 2:
                raise CheckpointError(f"{path}: expected [2, n_mels] (mean, scale), got shape {arr.shape}")
            return {**base, "mean": torch.from_numpy(arr[0].copy()), "scale": torch.from_numpy(arr[1].copy()),
                    "source": path, "read": True}
        try:
            import h5py
        except ImportError:
            return {**base, "mean": None, "scale": None, "source": path, "read": False,
                    "note": "stats.h5 not read: h5py is not installed (its datasets 'mean' and 'scale')"}
        with h5py.File(path, "r") as f:
            if "mean" not in f or "scale" not in f:
                return {**base, "mean": None, "scale": None, "source": path, "read": False,
                        "note": f"stats.h5 has no top-level mean/scale (per-speaker groups?): {sorted(f)[:5]}"}
            return {**base, "mean": torch.from_numpy(f["mean"][()]), "scale": torch.from_numpy(f["scale"][()]),
                    "source": path, "read": True}
    if {"mean", "scale"} <= set(buffers):
        return {**base, "mean": buffers["mean"], "scale": buffers["scale"], "source": "checkpoint buffers",
                "read": True}
    return None


# The front ends' own defaults for fields a config leaves out: schema key -> (config field, default).
# PWG: preprocess.py's logmelfilterbank arguments; ESPnet: LogMelFbank's (espnet2/tts/feats_extract).
_PWG_FIELDS = {"sample_rate": ("sampling_rate", None), "n_fft": ("fft_size", 1024), "hop_length": ("hop_size", 256),
               "win_length": ("win_length", None), "window": ("window", "hann"), "fmin": ("fmin", None),
               "fmax": ("fmax", None), "wav_gain": ("global_gain_scale", 0.0)}
_ESPNET_FIELDS = {"sample_rate": ("fs", 16000), "n_fft": ("n_fft", 1024), "hop_length": ("hop_length", 256),
                  "win_length": ("win_length", None), "window": ("window", "hann"), "fmin": ("fmin", 80),
                  "fmax": ("fmax", 7600), "framing": ("center", True), "pad_mode": ("pad_mode", "reflect"),
                  "stft_normalized": ("normalized", False), "mel_scale": ("htk", False), "log": ("log_base", 10.0)}
_WINDOW_NAMES = {"hann": "hann", "hamming": "hamming", "blackman": "blackman", "bartlett": "bartlett",
                 "boxcar": "ones", "rect": "ones", "ones": "ones"}


def _features(toolkit, source, cfg, n_mels, normalization, notes, filterbank=None):
    """The whole config (PWG config.yml, ESPnet config.yaml) -> vocoder_ext.features' schema."""
    esp = toolkit == "espnet"
    settings = (cfg.get("feats_extract_conf") or {}) if esp else cfg
    fields = _ESPNET_FIELDS if esp else _PWG_FIELDS
    get = {ours: settings.get(field, default) for ours, (field, default) in fields.items()}
    absent = [ours for ours, (field, _) in fields.items() if field not in settings]
    missing = [k for k in absent if get[k] is None and k in ("sample_rate", "n_fft", "hop_length")]
    defaults = [k for k in absent if k not in missing]
    unsupported = []
    sr, n_fft = get["sample_rate"], get["n_fft"]
    window = _WINDOW_NAMES.get(get["window"] or "hann")
    if window is None:
        unsupported.append(f"window = {get['window']!r}")
    if esp:
        if cfg.get("feats_extract", "fbank") != "fbank":
            unsupported.append(f"feats_extract = {cfg['feats_extract']!r} (only LogMelFbank, 'fbank', is described)")
        log = {10: "log10", 2: "log2", None: "ln"}.get(get["log"])
        if log is None:
            unsupported.append(f"log_base = {get['log']!r}")
        if normalization is not None:  # ESPnet's GlobalMVN: (x - mean) / std
            normalization = {**normalization, "type": "mean_scale"}
        elif cfg.get("normalize"):
            missing.append("normalization")
        center = bool(get["framing"])
    else:
        log, center = "log10", True
        if normalization is None:
            missing.append("normalization")
    gain = get.get("wav_gain") or 0.0
    return describe(
        toolkit=toolkit, source=source, sample_rate=sr, n_fft=n_fft, win_length=get["win_length"] or n_fft,
        hop_length=get["hop_length"], n_mels=n_mels, wav_gain=float(gain) if gain > 0 else 1.0,
        framing="centered" if center else "padded",
        pad=(n_fft // 2 if center else 0) if isinstance(n_fft, int) else None,
        pad_mode=get.get("pad_mode", "reflect"), window=window, window_periodic=True,
        stft_normalized="frame_length" if get.get("stft_normalized") else None,
        magnitude_guard_type="clamp" if esp else None, magnitude_guard=1e-10 if esp else 0.0,
        fmin=float(get["fmin"] or 0.0),
        fmax=float(get["fmax"]) if get["fmax"] is not None else (sr / 2 if sr else None),
        mel_scale="htk" if get.get("mel_scale") else "slaney", mel_norm="slaney",
        filterbank=filterbank.t() if esp and isinstance(filterbank, torch.Tensor) else None,
        filterbank_dtype="float32", log=log, log_guard="clamp", log_floor=1e-10, normalization=normalization,
        unsupported=unsupported, missing=missing, defaults=defaults, notes=notes)


# ---- readers -----------------------------------------------------------------------------------------
def _read_pwg(path, map_location):
    ckpt_path, cfg_path = _pwg_files(path)
    if ckpt_path is None:
        raise CheckpointError(f"{path}: no checkpoint-<N>steps.pkl in this folder")
    cfg = _load_yaml(cfg_path, ckpt_path)
    gen_type = cfg.get("generator_type", "ParallelWaveGANGenerator")
    if gen_type != "HiFiGANGenerator":
        raise CheckpointError(f"{cfg_path}: generator_type {gen_type!r}, expected HiFiGANGenerator (only PWG's "
                              "mel HiFi-GAN is read)")
    ckpt = safe_load(ckpt_path, map_location)
    raw = ckpt.get("model", {}).get("generator") if isinstance(ckpt.get("model"), dict) else None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{ckpt_path}: expected a ParallelWaveGAN checkpoint with ckpt['model']['generator'] "
                              f"(found keys {sorted(ckpt)[:10]})")
    sd, buffers = _generator_state_dict(raw, "", ckpt_path)
    config = _config(cfg.get("generator_params") or {}, sd, cfg_path, ckpt_path, False, _namer(""))
    if isinstance(cfg.get("sampling_rate"), int):
        config["sampling_rate"] = cfg["sampling_rate"]
    check_generator_keys(sd, config, ckpt_path, _namer(""))
    folder = os.path.dirname(os.path.abspath(ckpt_path))
    normalization = _stats(folder, cfg.get("format"), buffers)
    notes = ["features are PWG-convention log10 mels (80-7600 Hz typical, centred frames), not jik876's ln mels; "
             "a jik876 mel converts only approximately"]
    if normalization is None:
        notes.append("no stats.npy/stats.h5 beside the checkpoint: the normalisation is unknown")
    feats = _features("parallel_wavegan", cfg_path, cfg, config["num_mels"], normalization, notes)
    feats.update(global_gain_scale=cfg.get("global_gain_scale"), format=cfg.get("format"), filterbank=None)
    return sd, config, feats


def _read_espnet(path, map_location):
    path = os.fspath(path)
    cfg_path = os.path.join(os.path.dirname(os.path.abspath(path)), ESPNET_CONFIG)
    cfg = _load_yaml(cfg_path, path)
    raw = safe_load(path, map_location)
    prefix = next((p for p in _ESPNET_PREFIXES if any(k.startswith(p) for k in raw)), None)
    if prefix is None:
        for p, model in _NOT_MEL.items():
            if any(k.startswith(p) for k in raw):
                raise CheckpointError(f"{path}: an ESPnet {model} model ({p}* keys): its HiFi-GAN decodes latent "
                                      "features, not a mel spectrogram, so it is not a mel vocoder: not supported")
        raise CheckpointError(f"{path}: no {' or '.join(_ESPNET_PREFIXES)}* keys: not an ESPnet joint text2wav model")
    section = cfg.get(_ESPNET_PREFIXES[prefix]) or {}
    vtype = section.get("vocoder_type", "hifigan_generator")
    if vtype != "hifigan_generator":
        raise CheckpointError(f"{cfg_path}: vocoder_type {vtype!r}, expected hifigan_generator")
    sd, _ = _generator_state_dict({k[len(prefix):]: v for k, v in raw.items() if k.startswith(prefix)}, prefix, path)
    config = _config(section.get("vocoder_params") or {}, sd, cfg_path, path, True, _namer(prefix))
    fe = cfg.get("feats_extract_conf") or {}
    if isinstance(fe.get("fs"), int):
        config["sampling_rate"] = fe["fs"]
    check_generator_keys(sd, config, path, _namer(prefix))
    mean, std = raw.get("normalize.mean"), raw.get("normalize.std")
    normalization = None
    if isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor):
        normalization = {"type": "global_mvn", "formula": "(x - mean) / std", "mean": mean, "scale": std,
                         "source": f"{path}: normalize.mean/std", "read": True}
    notes = ["ESPnet LogMelFbank defaults fill absent fields: n_fft 1024, hop 256, fmin 80, fmax 7600, log10 "
             "floor 1e-10 (espnet2/layers/log_mel.py)"]
    feats = _features("espnet", cfg_path, cfg, config["num_mels"], normalization, notes,
                      raw.get("feats_extract.logmel.melmat"))
    feats.update(global_gain_scale=None, format=None)
    return sd, config, feats


def read(path, map_location="cpu"):
    """-> (state_dict in our jik876 keys, config with PWG's upsample paddings, features). See the module doc."""
    path = os.fspath(path)
    ckpt, cfg_path = _pwg_files(path)
    if ckpt is not None and not os.path.exists(ckpt):
        raise FileNotFoundError(f"checkpoint not found: {ckpt}")
    if _kind(path, need_config=False) == "espnet":
        return _read_espnet(path, map_location)  # says which config.yaml it looked for when there is none
    return _read_pwg(path, map_location)

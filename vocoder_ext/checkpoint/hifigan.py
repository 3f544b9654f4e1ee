"""Reading and writing generator checkpoints of every supported format, safely.

Formats read: the original HiFi-GAN `g_XXXXXXXX` = {"generator": sd} (+ config.json beside it),
NVIDIA DLE `hifigan_gen_checkpoint_*.pt` = {"generator", "config", ...}, ours = {"format":
"vocoder_ext.hifigan", "config", "generator"}, and a bare state dict (config given). Loading never
runs pickled code: torch.load(weights_only=True) refuses anything but tensors and plain containers.
"""
import os
import re

import torch

from .files import CheckpointError, atomic_save, safe_load

FORMAT = "vocoder_ext.hifigan"
FORMAT_VERSION = 1


def save_generator(path, state_dict, config):
    atomic_save({"format": FORMAT, "format_version": FORMAT_VERSION, "config": config,
                 "generator": {k: v.detach().cpu() for k, v in state_dict.items()}}, path)


_GENERATOR_PATTERNS = (r"g_(\d+)", r"hifigan_gen_checkpoint_(\d+)(?:_ft)?\.pt", r"generator(?:_(\d+))?\.pt")


def latest_generator_file(folder):
    """The newest generator file in a folder: highest step/epoch number, then newest mtime."""
    found = []
    for name in os.listdir(folder):
        for pattern in _GENERATOR_PATTERNS:
            m = re.fullmatch(pattern, name)
            if m:
                path = os.path.join(folder, name)
                found.append((int(m.group(1) or -1), os.path.getmtime(path), path))
    if not found:
        raise FileNotFoundError(f"no generator checkpoint in folder {folder} (looked for g_XXXXXXXX, "
                                f"hifigan_gen_checkpoint_*.pt, generator*.pt)")
    return max(found)[2]


def read_generator_checkpoint(path, config=None, map_location="cpu"):
    """-> (state_dict, config, format name); see read_generator."""
    return read_generator(path, config, map_location)[:3]


def read_generator(path, config=None, map_location="cpu"):
    """-> (state_dict, config, format name, features). Other toolkits' files and folders (Hugging Face,
    SpeechBrain, NeMo, ParallelWaveGAN/ESPnet, Coqui: checkpoint/toolkits) are recognised by their structure and read with their
    own config, and `features` describes the input features they expect (None for the original's,
    NVIDIA's and ours). Otherwise a folder resolves to its latest generator file, and the config is as
    found (a dict, or the path of the config.json beside the file) or as given: HiFiGAN(config) resolves it."""
    toolkit = _toolkit_reading(path, map_location)
    if toolkit is not None:
        fmt, (sd, h, features) = toolkit
        return sd, config if config is not None else h, fmt, features
    if os.path.isdir(path):
        path = latest_generator_file(path)
    ckpt = safe_load(path, map_location)
    if ckpt.get("format") == FORMAT:
        fmt, sd, h = "vocoder_ext", ckpt.get("generator"), ckpt.get("config")
    elif "generator" in ckpt and "config" in ckpt:
        fmt, sd, h = "nvidia", ckpt["generator"], ckpt["config"]
    elif "generator" in ckpt:
        fmt, sd, h = "hifigan", ckpt["generator"], None
    elif ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()) and any("conv_pre" in k for k in ckpt):
        fmt, sd, h = "state_dict", ckpt, None
    else:
        from .toolkits import coqui, parallel_wavegan  # known by contents: {"model": {"model_g.…": …}, "config": …}
        if coqui.detect(path):
            sd, h, features = coqui.read(path, map_location)
            return sd, config if config is not None else h, "coqui", features
        if parallel_wavegan.detect(path, need_config=False):
            parallel_wavegan.read(path, map_location)  # its config.yml/config.yaml is missing: says which path
        raise CheckpointError(f"{path}: not a HiFi-GAN generator checkpoint (expected a 'generator' entry or a "
                              f"state dict; found keys {sorted(ckpt)[:10]})")
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: 'generator' entry is a {type(sd).__name__}, expected a state dict")
    if config is not None:
        h = config
    elif h is None:
        json_path = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
        if not os.path.exists(json_path):
            raise CheckpointError(f"{path} holds no config and there is no config.json beside it "
                                  f"({json_path}); pass config=... (or --config)")
        h = json_path
    return sd, h, fmt, None


def _toolkit_reading(path, map_location):
    """(format name, reader's result) where `path` has a folder/archive toolkit's structure, else None."""
    from .toolkits import huggingface, nemo, parallel_wavegan, speechbrain  # imported on use: YAML, safetensors
    for name, reader in (("huggingface", huggingface), ("speechbrain", speechbrain), ("nemo", nemo),
                         ("parallel_wavegan", parallel_wavegan)):
        if reader.detect(path):  # parallel_wavegan: config.yml/config.yaml beside it first, then key names
            return name, reader.read(path, map_location)
    return None


# ---- state dict conversion ------------------------------------------------------------------
_PARAMETRIZATION = {".parametrizations.weight.original0": ".weight_g",
                    ".parametrizations.weight.original1": ".weight_v"}


def _strip_and_rename(state_dict):
    out = {}
    for key, value in state_dict.items():
        while key.startswith("module."):
            key = key[len("module."):]
        for old, new in _PARAMETRIZATION.items():
            if key.endswith(old):
                key = key[: -len(old)] + new
        out[key] = value
    return out


def _flatten_resblocks(sd, model):
    """Map nested `resblocks.S.K.*` and flat `resblocks.N.*` keys onto the model's flat layout,
    matching each block to the model's kernel order by its kernel size (NVIDIA stores [11,7,3])."""
    nk = model.num_kernels
    sizes = list(model.config["resblock_kernel_sizes"])
    blocks = {}  # (stage, kernel index in the checkpoint) -> {rest of key: tensor}
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "resblocks" and len(parts) >= 5 and parts[1].isdigit() and parts[2].isdigit():
            blocks.setdefault((int(parts[1]), int(parts[2])), {})[".".join(parts[3:])] = value
        elif parts[0] == "resblocks" and len(parts) >= 4 and parts[1].isdigit():
            n = int(parts[1])
            blocks.setdefault((n // nk, n % nk), {})[".".join(parts[2:])] = value
        else:
            out[key] = value
    by_stage = {}
    for (stage, k), entries in blocks.items():
        by_stage.setdefault(stage, {})[k] = entries
    for stage, kernels in by_stage.items():
        order = {k: k for k in kernels}
        ksizes = {k: _kernel_size(entries) for k, entries in kernels.items()}
        if len(set(sizes)) == len(sizes) and all(ksizes[k] in sizes for k in kernels) \
                and len(set(ksizes.values())) == len(kernels):
            order = {k: sizes.index(ksizes[k]) for k in kernels}
        for k, entries in kernels.items():
            for rest, value in entries.items():
                out[f"resblocks.{stage * nk + order[k]}.{rest}"] = value
    return out


def _kernel_size(entries):
    for name in ("convs1.0.weight_v", "convs1.0.weight", "convs.0.weight_v", "convs.0.weight"):
        if name in entries and entries[name].dim() >= 3:
            return entries[name].shape[2]
    return None


def _match_weight_norm(sd, model_keys):
    """Fold g/v into a plain weight, or split a plain weight into g = ||w||, v = w, as the model needs."""
    out = dict(sd)
    for key in list(sd):
        if key.endswith(".weight_g"):
            base = key[: -len(".weight_g")]
            if base + ".weight" in model_keys and base + ".weight_g" not in model_keys and base + ".weight_v" in sd:
                out[base + ".weight"] = torch._weight_norm(sd[base + ".weight_v"], sd[key], 0)
                del out[key], out[base + ".weight_v"]
        elif key.endswith(".weight"):
            base = key[: -len(".weight")]
            if base + ".weight_g" in model_keys and base + ".weight" not in model_keys:
                w = sd[key]
                out[base + ".weight_v"] = w
                out[base + ".weight_g"] = torch.linalg.vector_norm(w.float(), dim=tuple(range(1, w.dim())),
                                                                   keepdim=True).to(w.dtype)
                del out[key]
    return out


def convert_generator_state_dict(state_dict, model, strict=True):
    """Any supported generator layout -> the model's own keys. Raises CheckpointError listing every
    missing key (when strict), unexpected key (when strict) and shape mismatch."""
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"expected a state dict, got {type(state_dict).__name__}")
    own = model.state_dict()
    sd = _strip_and_rename(state_dict)
    sd = _flatten_resblocks(sd, model)
    sd = _match_weight_norm(sd, set(own))
    for key, value in list(sd.items()):  # NVIDIA's Conv1d<->Conv2d trailing-dim difference
        if key in own and value.dim() == own[key].dim() + 1 and value.shape[-1] == 1:
            sd[key] = value.squeeze(-1)
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(sd) & set(own)) if sd[k].shape != own[k].shape]
    problems = []
    if strict and missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes)}")
    if problems:
        raise CheckpointError("generator state dict does not match the model config "
                              f"{_describe(model.config)}:\n  " + "\n  ".join(problems))
    if not strict:
        sd = {k: v for k, v in sd.items() if k in own}
    return sd


def _describe(h):
    return (f"(resblock {h['resblock']}, upsample_initial_channel {h['upsample_initial_channel']}, "
            f"upsample_rates {h['upsample_rates']}, resblock_kernel_sizes {h['resblock_kernel_sizes']})")

"""Reading and writing WaveGlow checkpoints of every supported format, safely.

All of them come back as a state dict in NVIDIA DeepLearningExamples' (DLE) key layout, the one
vocoder_ext.WaveGlow uses:
    upsample.{weight,bias}                                  ConvTranspose1d(n_mel, n_mel, 1024, stride 256)
    WN.{k}.start.{weight_g,weight_v | weight, bias}         Conv1d(n_half_k, C, 1), weight norm
    WN.{k}.in_layers.{i}.*                                  Conv1d(C, 2C, kernel_size, dilation 2^i)
    WN.{k}.cond_layers.{i}.*                                Conv1d(n_mel * n_group, 2C, 1)
    WN.{k}.res_skip_layers.{i}.*                            Conv1d(C, 2C (C for the last layer), 1)
    WN.{k}.end.{weight,bias}                                Conv1d(C, 2 n_half_k, 1), no weight norm
    convinv.{k}.conv.weight                                 [c_k, c_k, 1], no bias
with weight-normed layers passed through as found (weight_g [out,1,1] + weight_v, or a plain weight).

Formats read (`read_waveglow_checkpoint`):
- "nvidia": DLE `checkpoint_WaveGlow_<epoch>.pt` / NGC `nvidia_waveglow*` = {"state_dict", "config"?, ...}
- "vocoder_ext": ours, written by `save_waveglow` = {"format": FORMAT, "format_version", "config", "state_dict"}
- "waveglow": NVIDIA/waveglow's train.py files {"model": <pickled glow.WaveGlow>, "iteration", ...},
  read through the restricted unpickler (unpickler.py): no glow module is needed and no pickled code runs
- "state_dict": a bare state dict
and, inside any of them, NVIDIA/waveglow's layouts: one fused `WN.{k}.cond_layer` (rows [2C i, 2C (i+1))
are layer i) and the oldest `res_layers.{i}` + `skip_layers.{i}` (res_skip = rows [res; skip]), the
`module.` prefix of DataParallel, and torch's `parametrizations.weight.original0/1` weight norm.
Everything but the pickled WaveGlow objects is read with torch.load(weights_only=True).

The config (NVIDIA's constructor kwargs, `DEFAULT_CONFIG`'s form) is inferred from the tensor shapes
and checked against the file's own config or the one given: a contradiction is an error.
"""
import os
import pickle
import re

import torch

from .files import CheckpointError, atomic_save, safe_load
from .unpickler import PickledObject, restricted_torch_load
from .waveglow_config import config_from_shapes

FORMAT = "vocoder_ext.waveglow"
FORMAT_VERSION = 1



# ---- writing ---------------------------------------------------------------------------------
def save_waveglow(path, state_dict, config=None):
    """Write our format atomically. The state dict may be in any supported layout; it is stored in DLE's,
    with the config checked against its shapes (CheckpointError on a contradiction)."""
    sd = convert_waveglow_state_dict(state_dict)
    config = config_from_shapes(sd, config)
    atomic_save({"format": FORMAT, "format_version": FORMAT_VERSION, "config": config,
                 "state_dict": {k: v.detach().cpu() for k, v in sd.items()}}, path)


# ---- finding and reading files ------------------------------------------------------------------
_WAVEGLOW_PATTERNS = (r"checkpoint_WaveGlow_(\d+)\.pt", r"checkpoint_WaveGlow_last\.pt", r"waveglow_(\d+)",
                      r"nvidia_waveglow[\w.-]*", r"waveglow[\w.-]*\.pt")


def latest_waveglow_file(folder):
    """The newest WaveGlow file in a folder: highest epoch/iteration number, then newest mtime."""
    found = []
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        for pattern in _WAVEGLOW_PATTERNS:
            m = re.fullmatch(pattern, name)
            if m:
                number = int(m.group(1)) if m.groups() and m.group(1) else -1
                found.append((number, os.path.getmtime(path), path))
                break
    if not found:
        raise FileNotFoundError(f"no WaveGlow checkpoint in folder {folder} (looked for checkpoint_WaveGlow_*.pt, "
                                f"waveglow_<iteration>, nvidia_waveglow*, waveglow*.pt)")
    return max(found)[2]


def _load_any(path, map_location):
    """safe_load; a pickle that needs more than tensors and containers (NVIDIA/waveglow's pickled model)
    goes through the restricted unpickler instead, which still refuses everything else."""
    try:
        return safe_load(path, map_location)
    except CheckpointError as e:
        if not isinstance(e.__cause__, pickle.UnpicklingError):
            raise
    ckpt = restricted_torch_load(path, map_location)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    return ckpt


def _is_state_dict(obj):
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def read_waveglow_checkpoint(path, config=None, map_location="cpu"):
    """-> (state_dict in DLE's layout, full config dict, format name). A folder resolves to its latest
    WaveGlow file. `config` (a dict, possibly partial, or a JSON file such as NVIDIA/waveglow's config.json)
    replaces the file's own; either is checked against the tensor shapes."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = latest_waveglow_file(path)
    ckpt = _load_any(path, map_location)
    if ckpt.get("format") == FORMAT:
        fmt, sd, file_config = "vocoder_ext", ckpt.get("state_dict"), ckpt.get("config")
    elif isinstance(ckpt.get("model"), PickledObject):
        fmt = "waveglow"
        sd, file_config = _pickled_model_state(ckpt["model"], path)
    elif "state_dict" in ckpt:
        fmt, sd, file_config = "nvidia", ckpt["state_dict"], ckpt.get("config")
    elif _is_state_dict(ckpt.get("model")):
        fmt, sd, file_config = "state_dict", ckpt["model"], ckpt.get("config")
    elif _is_state_dict(ckpt):
        fmt, sd, file_config = "state_dict", ckpt, None
    else:
        raise CheckpointError(f"{path}: not a WaveGlow checkpoint (expected a 'state_dict' entry, a pickled "
                              f"'model', or a state dict; found keys {sorted(map(str, ckpt))[:10]})")
    if not _is_state_dict(sd):
        raise CheckpointError(f"{path}: the {fmt} checkpoint's state dict is a {type(sd).__name__}"
                              f"{' holding non-tensors' if isinstance(sd, dict) else ''}, expected tensors")
    try:
        sd = convert_waveglow_state_dict(sd)
        config = config_from_shapes(sd, config if config is not None else file_config)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from e
    return sd, config, fmt


# ---- NVIDIA/waveglow's pickled model objects ---------------------------------------------------
def _pickled_model_state(model, path):
    """Walk a pickled module tree (_parameters, _buffers, _modules) -> (state dict, config from attributes)."""
    if not model.pickled_class.endswith(".WaveGlow"):
        raise CheckpointError(f"{path}: 'model' is a pickled {model.pickled_class}, expected a WaveGlow")
    sd = {}
    seen = set()

    def walk(obj, prefix, depth):
        if not isinstance(obj, PickledObject) or id(obj) in seen or depth > 16:
            raise CheckpointError(f"{path}: pickled model has a malformed module tree at '{prefix or 'model'}'")
        seen.add(id(obj))
        for attr in ("_parameters", "_buffers"):
            entries = obj.__dict__.get(attr) or {}
            if not isinstance(entries, dict):
                raise CheckpointError(f"{path}: pickled model's {prefix}{attr} is not a dict")
            for name, value in entries.items():
                if value is None:
                    continue
                if not isinstance(value, torch.Tensor):
                    raise CheckpointError(f"{path}: pickled model's {prefix}{name} is a {type(value).__name__}")
                sd[f"{prefix}{name}"] = value.detach()
        modules = obj.__dict__.get("_modules") or {}
        if not isinstance(modules, dict):
            raise CheckpointError(f"{path}: pickled model's {prefix}_modules is not a dict")
        for name, child in modules.items():
            if child is not None:
                walk(child, f"{prefix}{name}.", depth + 1)

    walk(model, "", 0)
    return sd, _pickled_model_config(model)


def _int_attr(obj, name):
    value = obj.__dict__.get(name) if isinstance(obj, PickledObject) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _child(obj, *names):
    for name in names:
        modules = obj.__dict__.get("_modules") if isinstance(obj, PickledObject) else None
        obj = modules.get(name) if isinstance(modules, dict) else None
    return obj


def _pickled_model_config(model):
    """The constructor arguments a pickled glow.WaveGlow remembers (whatever of them it holds)."""
    config = {f: _int_attr(model, f) for f in ("n_flows", "n_group", "n_early_every", "n_early_size")}
    upsample = _child(model, "upsample")
    in_channels = upsample.__dict__.get("in_channels") if isinstance(upsample, PickledObject) else None
    config["n_mel_channels"] = in_channels if isinstance(in_channels, int) else None
    wn0 = _child(model, "WN", "0")
    wn = {"n_layers": _int_attr(wn0, "n_layers"), "n_channels": _int_attr(wn0, "n_channels")}
    in0 = _child(wn0, "in_layers", "0")
    kernel = in0.__dict__.get("kernel_size") if isinstance(in0, PickledObject) else None
    wn["kernel_size"] = kernel[0] if isinstance(kernel, tuple) and kernel and isinstance(kernel[0], int) else None
    config = {k: v for k, v in config.items() if v is not None}
    config["WN_config"] = {k: v for k, v in wn.items() if v is not None}
    return config


# ---- layout conversion -----------------------------------------------------------------------
_PARAMETRIZATION = {".parametrizations.weight.original0": ".weight_g",
                    ".parametrizations.weight.original1": ".weight_v"}
_DUPLICATE_PREFIXES = ("WN_rev.", "convinv_rev.")  # DLE's make_ts_scriptable(): reversed views of WN/convinv
_WN_KEY = re.compile(r"WN\.(\d+)\.(cond_layer|res_layers|skip_layers|in_layers)\.(?:(\d+)\.)?(\w+)")


def convert_waveglow_state_dict(state_dict):
    """Any supported WaveGlow layout -> DLE's keys (see the module doc). Tensors are passed through; the
    fused cond layer and the res/skip pairs become exact row slices / concatenations of theirs."""
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"expected a state dict, got {type(state_dict).__name__}")
    sd = {}
    for key, value in state_dict.items():
        key = str(key)
        while key.startswith("module."):
            key = key[len("module."):]
        if key.startswith(_DUPLICATE_PREFIXES):
            continue
        for old, new in _PARAMETRIZATION.items():
            if key.endswith(old):
                key = key[: -len(old)] + new
        sd[key] = value
    _split_fused_cond(sd)
    _merge_res_skip(sd)
    return sd


def _n_layers(sd, k):
    return len({int(m.group(3)) for key in sd if (m := _WN_KEY.fullmatch(key)) and m.group(1) == str(k)
                and m.group(2) == "in_layers"})


def _split_fused_cond(sd):
    fused = {}
    for key in list(sd):
        m = _WN_KEY.fullmatch(key)
        if m and m.group(2) == "cond_layer" and m.group(3) is None:
            fused.setdefault(m.group(1), {})[m.group(4)] = sd.pop(key)
    for k, params in fused.items():
        n_layers = _n_layers(sd, k)
        rows = next(iter(params.values())).shape[0]
        if n_layers == 0 or any(v.dim() == 0 or v.shape[0] != rows for v in params.values()) or rows % n_layers:
            raise CheckpointError(f"WN.{k}.cond_layer ({', '.join(f'{p} {tuple(v.shape)}' for p, v in params.items())})"
                                  f" does not split into {n_layers} layers (its in_layers count) of equal rows")
        if any(key.startswith(f"WN.{k}.cond_layers.") for key in sd):
            raise CheckpointError(f"WN.{k} has both a fused cond_layer and cond_layers.*: which one is meant?")
        step = rows // n_layers
        for i in range(n_layers):
            for param, value in params.items():
                sd[f"WN.{k}.cond_layers.{i}.{param}"] = value[i * step:(i + 1) * step].clone()


def _merge_res_skip(sd):
    old = {}
    for key in list(sd):
        m = _WN_KEY.fullmatch(key)
        if m and m.group(2) in ("res_layers", "skip_layers") and m.group(3) is not None:
            old.setdefault(m.group(1), {}).setdefault(m.group(2), {}).setdefault(int(m.group(3)), {})[m.group(4)] = \
                sd.pop(key)
    for k, parts in old.items():
        res, skip = parts.get("res_layers", {}), parts.get("skip_layers", {})
        n_layers = len(skip)
        if sorted(skip) != list(range(n_layers)) or sorted(res) != list(range(n_layers - 1)):
            raise CheckpointError(f"WN.{k}: old res/skip layout needs skip_layers.0..L-1 and res_layers.0..L-2, "
                                  f"found skip_layers {sorted(skip)}, res_layers {sorted(res)}")
        if any(key.startswith(f"WN.{k}.res_skip_layers.") for key in sd):
            raise CheckpointError(f"WN.{k} has both res_layers/skip_layers and res_skip_layers: which one is meant?")
        for i in range(n_layers):
            pieces = [res[i], skip[i]] if i < n_layers - 1 else [skip[i]]
            if not all(set(p) == set(pieces[0]) for p in pieces):  # one weight-normed, one not: fold both
                pieces = [_plain(p) for p in pieces]
            if not all(set(p) == set(pieces[0]) for p in pieces):
                raise CheckpointError(f"WN.{k}.res_layers.{i} ({sorted(pieces[0])}) and skip_layers.{i} "
                                      f"({sorted(pieces[1])}) hold different parameters")
            for param in pieces[0]:
                sd[f"WN.{k}.res_skip_layers.{i}.{param}"] = torch.cat([p[param] for p in pieces])


def _plain(params):
    if "weight_g" in params and "weight_v" in params:
        params = dict(params)
        params["weight"] = torch._weight_norm(params.pop("weight_v"), params.pop("weight_g"), 0)
    return params


def infer_waveglow_config(state_dict, config=None):
    """The full WaveGlow config from the tensor shapes of a state dict in any supported layout, checked
    against `config` (full or partial) when given; see waveglow_config.config_from_shapes."""
    return config_from_shapes(convert_waveglow_state_dict(state_dict), config)

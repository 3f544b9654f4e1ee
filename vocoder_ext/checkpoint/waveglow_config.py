"""WaveGlow configs: inferred from a state dict's tensor shapes, and checked against a given config
(every contradiction listed). Used by waveglow.py's reader and writer."""
import json
import os
import re

from .files import CheckpointError

DEFAULT_CONFIG = {"n_mel_channels": 80, "n_flows": 12, "n_group": 8, "n_early_every": 4, "n_early_size": 2,
                  "WN_config": {"n_layers": 8, "n_channels": 256, "kernel_size": 3}}
TOP_FIELDS = ("n_mel_channels", "n_flows", "n_group", "n_early_every", "n_early_size")
WN_FIELDS = ("n_layers", "n_channels", "kernel_size")
UPSAMPLE_KERNEL = 1024  # NVIDIA's WaveGlow hard-codes ConvTranspose1d(n_mel, n_mel, 1024, stride=256)


def _normalize_config(config):
    """A config as given (full or partial dict, flat or nested WN_config, NVIDIA/waveglow's config.json with
    its "waveglow_config" entry, or the path of such a JSON) -> {field: value} with WN fields nested."""
    if config is None:
        return None
    if isinstance(config, (str, os.PathLike)):
        try:
            with open(config) as f:
                config = json.load(f)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot read WaveGlow config {os.fspath(config)}: {e}") from e
    if not isinstance(config, dict):
        raise CheckpointError(f"WaveGlow config must be a dict, got {type(config).__name__}")
    if isinstance(config.get("waveglow_config"), dict):
        config = config["waveglow_config"]
    out = {f: config[f] for f in TOP_FIELDS if f in config}
    wn = config.get("WN_config") if isinstance(config.get("WN_config"), dict) else {}
    out["WN_config"] = {f: wn.get(f, config.get(f)) for f in WN_FIELDS if f in wn or f in config}
    bad = [f"{f}={v!r}" for f, v in list(out.items()) + list(out["WN_config"].items())
           if f != "WN_config" and (not isinstance(v, int) or isinstance(v, bool) or v < 0)]
    if bad:
        raise CheckpointError(f"WaveGlow config has non-integer or negative values: {', '.join(bad)}")
    return out


def _flow_sizes(n_flows, n_group, n_early_every, n_early_size):
    """(convinv channels, WN input channels n_half) per flow, as NVIDIA's WaveGlow constructor computes them."""
    sizes, halves = [], []
    remaining, n_half = n_group, n_group // 2
    for k in range(n_flows):
        if n_early_every > 0 and k % n_early_every == 0 and k > 0:
            n_half -= n_early_size // 2
            remaining -= n_early_size
        sizes.append(remaining)
        halves.append(n_half)
    return sizes, halves


def _expected(config):
    """{module path: (weight shape, has bias, weight-normed)} of a WaveGlow with this config."""
    n_mel, n_group = config["n_mel_channels"], config["n_group"]
    wn = config["WN_config"]
    L, C, K = wn["n_layers"], wn["n_channels"], wn["kernel_size"]
    sizes, halves = _flow_sizes(config["n_flows"], n_group, config["n_early_every"], config["n_early_size"])
    out = {"upsample": ((n_mel, n_mel, UPSAMPLE_KERNEL), True, False)}
    for k, (c, h) in enumerate(zip(sizes, halves)):
        out[f"convinv.{k}.conv"] = ((c, c, 1), False, False)
        out[f"WN.{k}.start"] = ((C, h, 1), True, True)
        out[f"WN.{k}.end"] = ((2 * h, C, 1), True, False)
        for i in range(L):
            out[f"WN.{k}.in_layers.{i}"] = ((2 * C, C, K), True, True)
            out[f"WN.{k}.cond_layers.{i}"] = ((2 * C, n_mel * n_group, 1), True, True)
            out[f"WN.{k}.res_skip_layers.{i}"] = ((2 * C if i < L - 1 else C, C, 1), True, True)
    return out


def _structure_problems(sd, config):
    """Every missing key, unexpected key and wrong shape of sd against a WaveGlow with this config."""
    problems, used = [], set()

    def shape(key):
        return tuple(sd[key].shape)

    for stem, (w_shape, has_bias, normed) in _expected(config).items():
        g, v, w, b = stem + ".weight_g", stem + ".weight_v", stem + ".weight", stem + ".bias"
        if normed and (g in sd or v in sd):
            for key, want in ((g, (w_shape[0], 1, 1)), (v, w_shape)):
                if key not in sd:
                    problems.append(f"missing {key}")
                elif shape(key) != want:
                    problems.append(f"{key}: shape {shape(key)}, expected {want}")
            used.update({g, v})
        elif w in sd:
            if shape(w) != w_shape:
                problems.append(f"{w}: shape {shape(w)}, expected {w_shape}")
            used.add(w)
        else:
            problems.append(f"missing {stem}.weight_g/.weight_v or .weight" if normed else f"missing {w}")
        if has_bias:
            if b not in sd:
                problems.append(f"missing {b}")
            elif shape(b) != (w_shape[0],):
                problems.append(f"{b}: shape {shape(b)}, expected {(w_shape[0],)}")
            used.add(b)
    problems += [f"unexpected key {key} {shape(key)}" for key in sd if key not in used]
    return problems


def _raise_unfit(problems, config=None):
    shown = problems[:25] + ([f"... and {len(problems) - 25} more"] if len(problems) > 25 else [])
    which = f" (its shapes point to {_describe(config)})" if config else ""
    raise CheckpointError(f"state dict fits no WaveGlow{which}:\n  " + "\n  ".join(shown))


def _describe(c):
    wn = c["WN_config"]
    return (f"n_mel_channels {c['n_mel_channels']}, n_flows {c['n_flows']}, n_group {c['n_group']}, "
            f"n_early_every {c['n_early_every']}, n_early_size {c['n_early_size']}, n_layers {wn['n_layers']}, "
            f"n_channels {wn['n_channels']}, kernel_size {wn['kernel_size']}")


def _weight(sd, stem):
    return sd.get(stem + ".weight_v", sd.get(stem + ".weight"))


def _indices(sd, pattern):
    return sorted({int(m.group(1)) for key in sd if (m := re.match(pattern, key))})


def _shape_fields(sd):
    """The config fields the shapes fix: -> (fields, drops) where drops lists (flow, channels dropped)."""
    problems = []
    up = sd.get("upsample.weight")
    if up is None or up.dim() != 3 or up.shape[0] != up.shape[1]:
        problems.append("missing upsample.weight" if up is None else
                        f"upsample.weight: shape {tuple(up.shape)}, expected (n_mel, n_mel, {UPSAMPLE_KERNEL})")
    wn_flows, inv_flows = _indices(sd, r"WN\.(\d+)\."), _indices(sd, r"convinv\.(\d+)\.")
    if not wn_flows:
        problems.append("no WN.{k}.* flows")
    elif wn_flows != list(range(len(wn_flows))) or inv_flows != wn_flows:
        problems.append(f"flows must be numbered 0..n-1 in both WN and convinv: WN {wn_flows}, convinv {inv_flows}")
    start, in0 = _weight(sd, "WN.0.start"), _weight(sd, "WN.0.in_layers.0")
    if start is None or start.dim() != 3:
        problems.append("missing WN.0.start.weight_v / .weight (or not 3-D)")
    if in0 is None or in0.dim() != 3:
        problems.append("missing WN.0.in_layers.0.weight_v / .weight (or not 3-D)")
    sizes = []
    for k in wn_flows:
        w = sd.get(f"convinv.{k}.conv.weight")
        if w is None or w.dim() != 3 or w.shape[0] != w.shape[1] or w.shape[2] != 1:
            problems.append(f"missing convinv.{k}.conv.weight" if w is None
                            else f"convinv.{k}.conv.weight: shape {tuple(w.shape)}, expected (c, c, 1)")
        else:
            sizes.append(w.shape[0])
    if problems:
        keys = sorted(sd)
        more = f" ... ({len(keys)} in all)" if len(keys) > 8 else ""
        _raise_unfit(problems + [f"its keys: {', '.join(keys[:8])}{more}"])
    fields = {"n_mel_channels": up.shape[0], "n_flows": len(wn_flows), "n_group": sizes[0],
              "WN_config": {"n_layers": len(_indices(sd, r"WN\.0\.in_layers\.(\d+)\.")),
                            "n_channels": start.shape[0], "kernel_size": in0.shape[2]}}
    drops = [(k, sizes[k - 1] - sizes[k]) for k in range(1, len(sizes)) if sizes[k] != sizes[k - 1]]
    return fields, drops, sizes


def config_from_shapes(sd, config=None):
    """The full WaveGlow config (DEFAULT_CONFIG's form) from the shapes of `sd` (already in DLE's key
    layout) alone, checked against
    `config` (full or partial; see _normalize_config) when given. n_early_every / n_early_size show only
    where the convinv sizes drop; without a drop they come from `config`, else the defaults 4 / 2 (or size 0
    when n_flows > 4). Raises CheckpointError when the shapes fit no WaveGlow, or listing each field where
    `config` contradicts them."""
    given = _normalize_config(config)
    fields, drops, sizes = _shape_fields(sd)
    n_flows, n_group = fields["n_flows"], fields["n_group"]
    problems = []
    if n_group % 2:
        problems.append(f"convinv.0 is {n_group} x {n_group}: n_group must be even")
    if fields["WN_config"]["kernel_size"] % 2 == 0:
        problems.append(f"WN.0.in_layers.0 has kernel size {fields['WN_config']['kernel_size']}: it must be odd")
    if fields["WN_config"]["n_channels"] % 2:
        problems.append(f"WN.0.start has {fields['WN_config']['n_channels']} output channels: n_channels must be even")
    if drops:
        every, size = drops[0]
        if size <= 0 or size % 2:
            problems.append(f"convinv sizes {sizes}: channels must drop by a positive even number")
        fields.update(n_early_every=every, n_early_size=size)
    else:  # the shapes cannot tell: the config's values (else the defaults) where they keep every channel
        every, size = _early_fields(given)
        if not _keeps_all(n_flows, every, size):
            every, size = DEFAULT_CONFIG["n_early_every"], 0 if n_flows > DEFAULT_CONFIG["n_early_every"] else \
                DEFAULT_CONFIG["n_early_size"]
        fields.update(n_early_every=every, n_early_size=size)
    if not problems and _flow_sizes(n_flows, n_group, fields["n_early_every"], fields["n_early_size"])[0] != sizes:
        problems.append(f"convinv sizes {sizes} fit no n_early_every / n_early_size (channels must drop by the "
                        f"same even number every n_early_every flows)")
    if problems:
        _raise_unfit(problems)
    problems = _structure_problems(sd, fields)
    if problems:
        _raise_unfit(problems, fields)
    if given is not None:
        _check_contradictions(given, fields, drops, sizes)
    return fields


def _early_fields(given):
    """(n_early_every, n_early_size) of a config, NVIDIA's defaults where it has none."""
    given = given or {}
    return tuple(given.get(f, DEFAULT_CONFIG[f]) for f in ("n_early_every", "n_early_size"))


def _keeps_all(n_flows, every, size):
    return every > 0 and (size == 0 or every >= n_flows)


def _check_contradictions(given, fields, drops, sizes):
    wrong = []
    for f in TOP_FIELDS:
        if f not in given or given[f] == fields[f]:
            continue
        if f in ("n_early_every", "n_early_size") and not drops:
            if _keeps_all(fields["n_flows"], *_early_fields(given)):
                continue  # the shapes cannot tell; the config's values fit them
            wrong.append(f"{f}: config {given[f]} vs shapes {fields[f]} (no convinv size drop in "
                         f"{fields['n_flows']} flows: sizes {sizes})")
            continue
        wrong.append(f"{f}: config {given[f]} vs shapes {fields[f]}")
    for f in WN_FIELDS:
        if f in given["WN_config"] and given["WN_config"][f] != fields["WN_config"][f]:
            wrong.append(f"WN_config.{f}: config {given['WN_config'][f]} vs shapes {fields['WN_config'][f]}")
    if wrong:
        raise CheckpointError("WaveGlow config contradicts the checkpoint's tensor shapes:\n  " + "\n  ".join(wrong))

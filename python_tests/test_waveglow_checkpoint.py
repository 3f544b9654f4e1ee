"""WaveGlow checkpoints: every format and layout reads back to exactly the same DLE-layout tensors, the
config is inferred from shapes and checked, pickled NVIDIA/waveglow models load without their code, and
malicious or broken files are refused with errors that name the file."""
import builtins
import collections
import io
import json
import os
import pickle
import sys
import types
import warnings
import zipfile

import pytest
import torch
import torch.nn as nn

from vocoder_ext.checkpoint import (WAVEGLOW_FORMAT, CheckpointError, infer_waveglow_config,
                                    read_waveglow_checkpoint, save_waveglow)
from vocoder_ext.checkpoint import unpickler, waveglow as wg_module

SMALL = {"n_mel_channels": 6, "n_flows": 6, "n_group": 8, "n_early_every": 4, "n_early_size": 2,
         "WN_config": {"n_layers": 3, "n_channels": 16, "kernel_size": 3}}
OTHER = {"n_mel_channels": 5, "n_flows": 6, "n_group": 12, "n_early_every": 2, "n_early_size": 4,
         "WN_config": {"n_layers": 2, "n_channels": 10, "kernel_size": 5}}
FULL = {"n_mel_channels": 80, "n_flows": 12, "n_group": 8, "n_early_every": 4, "n_early_size": 2,
        "WN_config": {"n_layers": 8, "n_channels": 256, "kernel_size": 3}}
NORMED = ("start", "in_layers", "cond_layers", "res_skip_layers")


# ---- building state dicts, written here from NVIDIA's constructor arithmetic --------------------
def flow_channels(cfg):
    out, remaining, half = [], cfg["n_group"], cfg["n_group"] // 2
    for k in range(cfg["n_flows"]):
        if k % cfg["n_early_every"] == 0 and k > 0:
            half -= cfg["n_early_size"] // 2
            remaining -= cfg["n_early_size"]
        out.append((remaining, half))
    return out


def conv_shapes(cfg):
    """{module: (weight shape, bias?, weight-normed?)} of a DLE WaveGlow."""
    m, wn = cfg["n_mel_channels"], cfg["WN_config"]
    L, C, K = wn["n_layers"], wn["n_channels"], wn["kernel_size"]
    shapes = {"upsample": ((m, m, 1024), True, False)}
    for k, (c, h) in enumerate(flow_channels(cfg)):
        shapes[f"convinv.{k}.conv"] = ((c, c, 1), False, False)
        shapes[f"WN.{k}.start"] = ((C, h, 1), True, True)
        shapes[f"WN.{k}.end"] = ((2 * h, C, 1), True, False)
        for i in range(L):
            shapes[f"WN.{k}.in_layers.{i}"] = ((2 * C, C, K), True, True)
            shapes[f"WN.{k}.cond_layers.{i}"] = ((2 * C, m * cfg["n_group"], 1), True, True)
            shapes[f"WN.{k}.res_skip_layers.{i}"] = ((2 * C if i < L - 1 else C, C, 1), True, True)
    return shapes


def dle_state_dict(cfg, weight_norm=True, device="cpu", dtype=torch.float32):
    sd = {}
    for stem, (shape, bias, normed) in conv_shapes(cfg).items():
        if normed and weight_norm:
            sd[stem + ".weight_g"] = torch.rand(shape[0], 1, 1, device=device, dtype=dtype) + 0.5
            sd[stem + ".weight_v"] = torch.randn(shape, device=device, dtype=dtype)
        else:
            sd[stem + ".weight"] = torch.randn(shape, device=device, dtype=dtype)
        if bias:
            sd[stem + ".bias"] = torch.randn(shape[0], device=device, dtype=dtype)
    return sd


def params_of(sd, stem):
    return {k[len(stem) + 1:]: v for k, v in sd.items() if k.startswith(stem + ".") and "." not in k[len(stem) + 1:]}


def to_fused_cond(sd, cfg):
    """NVIDIA/waveglow's current layout: one cond_layer per WN, layer i's rows stacked in order."""
    out = {k: v for k, v in sd.items() if ".cond_layers." not in k}
    L = cfg["WN_config"]["n_layers"]
    for k in range(cfg["n_flows"]):
        layers = [params_of(sd, f"WN.{k}.cond_layers.{i}") for i in range(L)]
        for param in layers[0]:
            out[f"WN.{k}.cond_layer.{param}"] = torch.cat([layer[param] for layer in layers])
    return out


def to_res_skip(sd, cfg):
    """NVIDIA/waveglow's oldest layout: res_layers.i (C->C, all but the last) and skip_layers.i (C->C)."""
    out = {k: v for k, v in sd.items() if ".res_skip_layers." not in k}
    L, C = cfg["WN_config"]["n_layers"], cfg["WN_config"]["n_channels"]
    for k in range(cfg["n_flows"]):
        for i in range(L):
            for param, value in params_of(sd, f"WN.{k}.res_skip_layers.{i}").items():
                if i < L - 1:
                    out[f"WN.{k}.res_layers.{i}.{param}"] = value[:C].clone()
                    out[f"WN.{k}.skip_layers.{i}.{param}"] = value[C:].clone()
                else:
                    out[f"WN.{k}.skip_layers.{i}.{param}"] = value.clone()
    return out


def assert_same(got, want):
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        assert torch.equal(got[key], value), key


# ---- state-dict formats --------------------------------------------------------------------------
@pytest.mark.parametrize("weight_norm", [True, False])
def test_nvidia_dle_file_with_module_prefix(tmp_path, weight_norm, monkeypatch):
    sd = dle_state_dict(SMALL, weight_norm)
    path = tmp_path / "checkpoint_WaveGlow_30.pt"
    torch.save({"epoch": 30, "config": SMALL, "state_dict": {"module." + k: v for k, v in sd.items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]}, "scaler": {"scale": 512.0},
                "random_rng_states_all": torch.zeros(1, 5000, dtype=torch.uint8)}, path)
    monkeypatch.setattr(wg_module, "restricted_torch_load", lambda *a: pytest.fail("needs no unpickler"))
    got, config, fmt = read_waveglow_checkpoint(str(path))
    assert fmt == "nvidia" and config == SMALL
    assert_same(got, sd)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])  # NGC's 2019 files predate zip
def test_nvidia_fp16_file_without_config(tmp_path, legacy, monkeypatch):
    sd = dle_state_dict(SMALL, dtype=torch.float16)
    torch.save({"state_dict": sd}, tmp_path / "nvidia_waveglow256pyt_fp16.pt",
               _use_new_zipfile_serialization=not legacy)
    monkeypatch.setattr(wg_module, "restricted_torch_load", lambda *a: pytest.fail("needs no unpickler"))
    got, config, fmt = read_waveglow_checkpoint(tmp_path / "nvidia_waveglow256pyt_fp16.pt")
    assert fmt == "nvidia" and config == SMALL
    assert_same(got, sd)


@pytest.mark.parametrize("weight_norm", [True, False])
def test_own_format_round_trip(tmp_path, weight_norm):
    sd = dle_state_dict(OTHER, weight_norm)
    path = tmp_path / "waveglow.pt"
    save_waveglow(str(path), sd, OTHER)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == WAVEGLOW_FORMAT and raw["format_version"] == 1 and raw["config"] == OTHER
    got, config, fmt = read_waveglow_checkpoint(str(path))
    assert fmt == "vocoder_ext" and config == OTHER
    assert_same(got, sd)


def test_save_refuses_contradicting_config(tmp_path):
    with pytest.raises(CheckpointError, match=r"n_flows: config 7 vs shapes 6"):
        save_waveglow(str(tmp_path / "w.pt"), dle_state_dict(SMALL), {**SMALL, "n_flows": 7})
    assert not (tmp_path / "w.pt").exists()


def test_bare_state_dict_and_parametrizations(tmp_path):
    sd = dle_state_dict(SMALL)
    renamed = {}
    for k, v in sd.items():
        k = k.replace(".weight_g", ".parametrizations.weight.original0")
        renamed[k.replace(".weight_v", ".parametrizations.weight.original1")] = v
    torch.save(renamed, tmp_path / "bare.pt")
    got, config, fmt = read_waveglow_checkpoint(str(tmp_path / "bare.pt"))
    assert fmt == "state_dict" and config == SMALL
    assert_same(got, sd)


@pytest.mark.parametrize("weight_norm", [True, False])
@pytest.mark.parametrize("layout", ["fused_cond", "res_skip", "both"])
def test_waveglow_repo_layouts_in_state_dicts(tmp_path, layout, weight_norm):
    sd = dle_state_dict(SMALL, weight_norm)
    old = sd
    if layout in ("res_skip", "both"):
        old = to_res_skip(old, SMALL)
    if layout in ("fused_cond", "both"):
        old = to_fused_cond(old, SMALL)
    assert not any(".cond_layers." in k for k in old) or layout == "res_skip"
    torch.save({"state_dict": old}, tmp_path / "c.pt")
    got, config, _ = read_waveglow_checkpoint(str(tmp_path / "c.pt"))
    assert config == SMALL
    assert_same(got, sd)


def test_res_skip_with_mixed_weight_norm_is_folded(tmp_path):
    sd = dle_state_dict(SMALL)
    old = to_res_skip(sd, SMALL)
    g, v = old.pop("WN.3.skip_layers.0.weight_g"), old.pop("WN.3.skip_layers.0.weight_v")
    old["WN.3.skip_layers.0.weight"] = g * v / v.norm(dim=(1, 2), keepdim=True)  # this one had its norm removed
    torch.save({"state_dict": old}, tmp_path / "c.pt")
    got = read_waveglow_checkpoint(str(tmp_path / "c.pt"))[0]
    want = dict(sd)
    g, v = want.pop("WN.3.res_skip_layers.0.weight_g"), want.pop("WN.3.res_skip_layers.0.weight_v")
    want["WN.3.res_skip_layers.0.weight"] = g * v / v.norm(dim=(1, 2), keepdim=True)
    assert sorted(got) == sorted(want)
    torch.testing.assert_close(got["WN.3.res_skip_layers.0.weight"], want["WN.3.res_skip_layers.0.weight"])
    assert_same({k: v for k, v in got.items() if "WN.3.res_skip_layers.0.weight" not in k},
                {k: v for k, v in want.items() if "WN.3.res_skip_layers.0.weight" not in k})


def test_dle_ts_scriptable_duplicates_are_dropped(tmp_path):
    sd = dle_state_dict(SMALL)
    dup = dict(sd)
    dup.update({k.replace("WN.", "WN_rev.", 1): v for k, v in sd.items() if k.startswith("WN.")})
    dup.update({k.replace("convinv.", "convinv_rev.", 1): v for k, v in sd.items() if k.startswith("convinv.")})
    torch.save({"state_dict": dup}, tmp_path / "c.pt")
    assert_same(read_waveglow_checkpoint(str(tmp_path / "c.pt"))[0], sd)


# ---- pickled NVIDIA/waveglow models --------------------------------------------------------------
def _wn(conv):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nn.utils.weight_norm(conv)


def fake_glow_module(name, layout):
    """Classes named and shaped like NVIDIA/waveglow's glow.py ("fused": one cond_layer per WN) or its
    2018 glow.py ("old": cond_layers + res_layers/skip_layers), for pickling only."""
    mod = types.ModuleType(name)

    class Invertible1x1Conv(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = nn.Conv1d(c, c, kernel_size=1, bias=False)

    class WN(nn.Module):
        def __init__(self, n_in_channels, n_mel_channels, n_layers, n_channels, kernel_size):
            super().__init__()
            self.n_layers, self.n_channels = n_layers, n_channels
            self.in_layers = nn.ModuleList()
            self.start = _wn(nn.Conv1d(n_in_channels, n_channels, 1))
            self.end = nn.Conv1d(n_channels, 2 * n_in_channels, 1)
            if layout == "fused":
                self.cond_layer = _wn(nn.Conv1d(n_mel_channels, 2 * n_channels * n_layers, 1))
                self.res_skip_layers = nn.ModuleList()
            else:
                self.cond_layers, self.res_layers, self.skip_layers = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
            for i in range(n_layers):
                d = 2 ** i
                self.in_layers.append(_wn(nn.Conv1d(n_channels, 2 * n_channels, kernel_size, dilation=d,
                                                    padding=(kernel_size * d - d) // 2)))
                if layout == "fused":
                    out = 2 * n_channels if i < n_layers - 1 else n_channels
                    self.res_skip_layers.append(_wn(nn.Conv1d(n_channels, out, 1)))
                else:
                    self.cond_layers.append(_wn(nn.Conv1d(n_mel_channels, 2 * n_channels, 1)))
                    if i < n_layers - 1:
                        self.res_layers.append(_wn(nn.Conv1d(n_channels, n_channels, 1)))
                    self.skip_layers.append(_wn(nn.Conv1d(n_channels, n_channels, 1)))

    class WaveGlow(nn.Module):
        def __init__(self, n_mel_channels, n_flows, n_group, n_early_every, n_early_size, WN_config):
            super().__init__()
            self.upsample = nn.ConvTranspose1d(n_mel_channels, n_mel_channels, 1024, stride=256)
            self.n_flows, self.n_group = n_flows, n_group
            self.n_early_every, self.n_early_size = n_early_every, n_early_size
            self.WN, self.convinv = nn.ModuleList(), nn.ModuleList()
            n_half, remaining = n_group // 2, n_group
            for k in range(n_flows):
                if k % n_early_every == 0 and k > 0:
                    n_half -= n_early_size // 2
                    remaining -= n_early_size
                self.convinv.append(Invertible1x1Conv(remaining))
                self.WN.append(WN(n_half, n_mel_channels * n_group, **WN_config))
            self.n_remaining_channels = remaining

    class Backdoor:  # a class of the glow module that is not a WaveGlow part
        pass

    for cls in (Invertible1x1Conv, WN, WaveGlow, Backdoor):
        cls.__module__, cls.__qualname__ = name, cls.__name__
        setattr(mod, cls.__name__, cls)
    return mod


def _remove_all_weight_norm(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in model.modules():
            if hasattr(m, "weight_g"):
                nn.utils.remove_weight_norm(m)


def save_pickled(path, name, layout, sd, cfg, weight_norm=True, legacy=False, extra=None):
    mod = fake_glow_module(name, layout)
    sys.modules[name] = mod
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # weight norm of tiny convs is ~1000x slower multithreaded here
    try:
        model = mod.WaveGlow(**cfg)
        if not weight_norm:
            _remove_all_weight_norm(model)
        wg = to_fused_cond(sd, cfg) if layout == "fused" else to_res_skip(sd, cfg)
        model.load_state_dict(wg)  # strict: the test's layouts are exactly the pickled modules' keys
        model.convinv[0].W_inverse = torch.randn(8, 8, 1)  # WG caches this plain attribute on first inference
        if legacy:  # torch <= 1.3 pickled each module's _backend as a call of this (long gone) function
            thnn = types.ModuleType("torch.nn.backends.thnn")

            def _get_thnn_function_backend():
                pytest.fail("must not be called")
            _get_thnn_function_backend.__module__ = thnn.__name__
            _get_thnn_function_backend.__qualname__ = "_get_thnn_function_backend"
            thnn._get_thnn_function_backend = _get_thnn_function_backend
            sys.modules[thnn.__name__] = thnn
            model._backend = _Call(_get_thnn_function_backend)
            model.WN[0]._backend = _Call(_get_thnn_function_backend)
        ckpt = {"model": model, "iteration": 1, "optimizer": None, "learning_rate": 1e-4}
        if extra is not None:
            ckpt["extra"] = extra(mod)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    finally:
        torch.set_num_threads(threads)
        del sys.modules[name]
        sys.modules.pop("torch.nn.backends.thnn", None)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("name,layout", [("glow", "fused"), ("glow_old", "old")])
@pytest.mark.parametrize("weight_norm", [True, False])
def test_pickled_waveglow_model(tmp_path, name, layout, legacy, weight_norm):
    sd = dle_state_dict(SMALL, weight_norm)
    path = tmp_path / "waveglow_1000"
    save_pickled(path, name, layout, sd, SMALL, weight_norm, legacy)
    if legacy:
        assert not zipfile.is_zipfile(path)
    got, config, fmt = read_waveglow_checkpoint(str(path))
    assert fmt == "waveglow" and config == SMALL
    assert_same(got, sd)
    assert "glow" not in sys.modules and "glow_old" not in sys.modules
    raw = unpickler.restricted_torch_load(str(path))
    assert type(raw["model"]).pickled_class == f"{name}.WaveGlow" and raw["iteration"] == 1
    assert ("_backend" in vars(raw["model"])) == legacy and vars(raw["model"]).get("_backend") is None


def test_pickled_model_config_attributes_are_checked(tmp_path):
    sd = dle_state_dict(SMALL)
    path = tmp_path / "waveglow_5"
    save_pickled(path, "glow", "fused", sd, SMALL)
    raw = unpickler.restricted_torch_load(str(path))
    raw["model"].__dict__["n_group"] = 4  # a pickled attribute that contradicts the shapes
    cfg = wg_module._pickled_model_config(raw["model"])
    assert cfg == {**SMALL, "n_group": 4}
    with pytest.raises(CheckpointError, match=r"n_group: config 4 vs shapes 8"):
        infer_waveglow_config(sd, cfg)


class _Call:
    """Pickles as a call of `fn(*args)`, the way a malicious checkpoint runs code."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("attack", ["system", "open", "eval", "glow_class"])
def test_malicious_pickle_is_refused_before_running(tmp_path, legacy, attack):
    target = tmp_path / "pwned"
    payload = {"system": lambda mod: _Call(os.system, f"touch {target}"),
               "open": lambda mod: _Call(builtins.open, str(target), "w"),
               "eval": lambda mod: _Call(builtins.eval, f"open({str(target)!r}, 'w')"),
               "glow_class": lambda mod: mod.Backdoor()}[attack]
    fn = {"system": os.system, "open": builtins.open, "eval": builtins.eval}.get(attack)
    expected = f"{fn.__module__}.{fn.__name__}" if fn else "glow.Backdoor"
    path = tmp_path / "waveglow_666"
    save_pickled(path, "glow", "fused", dle_state_dict(SMALL), SMALL, legacy=legacy, extra=payload)
    with pytest.raises(CheckpointError) as e:
        read_waveglow_checkpoint(str(path))
    assert expected in str(e.value) and str(path) in str(e.value) and "refusing" in str(e.value)
    assert isinstance(e.value.__cause__, unpickler.ForbiddenGlobal)  # refused by our unpickler, not torch's
    assert not target.exists()


def test_unpickler_allows_only_the_list(tmp_path):
    with pytest.raises(unpickler.ForbiddenGlobal, match=r"subprocess\.Popen"):
        unpickler.Unpickler(io.BytesIO(b"")).find_class("subprocess", "Popen")
    for name in ("builtins.getattr", "builtins.eval", "torch.load", "torch.nn.modules.module.Module", "glow.Evil",
                 "os.system", "posix.system", "copyreg.__newobj__"):
        assert name not in unpickler.ALLOWED
    assert issubclass(unpickler.ALLOWED["glow.WaveGlow"], unpickler.PickledObject)
    assert issubclass(unpickler.ALLOWED["torch.nn.modules.conv.Conv1d"], unpickler.PickledObject)
    target = tmp_path / "pwned"
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(unpickler.ForbiddenGlobal, match=r"posix\.system|nt\.system"):
            unpickler.loads(pickle.dumps({"a": [_Call(os.system, f"touch {target}")]}, protocol=protocol))
        plain = collections.OrderedDict(a={1, 2}, b=b"\x00\xff", c=torch.Size([3]))
        assert unpickler.loads(pickle.dumps(plain, protocol=protocol)) == plain
    assert not target.exists()


@pytest.mark.parametrize("protocol", [0, 1, 2, 4])
def test_unpickler_rebuilds_glow_objects_as_inert_stand_ins(protocol):
    mod = types.ModuleType("glow")

    class WN:  # a plain object: protocols 0/1 rebuild it with copyreg._reconstructor
        def __init__(self):
            self.n_layers, self.n_channels = 3, 16

        def __setstate__(self, state):
            pytest.fail("the real class must not be used")
    WN.__module__, WN.__qualname__ = "glow", "WN"
    mod.WN = WN
    sys.modules["glow"] = mod
    try:
        data = pickle.dumps({"x": WN()}, protocol=protocol)
    finally:
        del sys.modules["glow"]
    got = unpickler.loads(data)["x"]
    assert isinstance(got, unpickler.PickledObject) and got.pickled_class == "glow.WN"
    assert (got.n_layers, got.n_channels) == (3, 16)


# ---- config inference and checks -----------------------------------------------------------------
@pytest.mark.parametrize("channels", [256, 512])
def test_infer_full_size_configs(channels):
    cfg = {**FULL, "WN_config": {**FULL["WN_config"], "n_channels": channels}}
    sd = dle_state_dict(cfg, device="meta")
    assert infer_waveglow_config(sd) == cfg
    assert infer_waveglow_config(to_fused_cond(sd, cfg)) == cfg


def test_infer_other_small_config():
    assert [c for c, _ in flow_channels(OTHER)] == [12, 12, 8, 8, 4, 4]  # drops 4 channels every 2 flows
    assert infer_waveglow_config(dle_state_dict(OTHER)) == OTHER


def test_infer_without_drops_uses_defaults_or_the_config():
    cfg = {**SMALL, "n_flows": 4}  # no flow reaches n_early_every: the early fields do not show
    sd = dle_state_dict(cfg, device="meta")
    assert infer_waveglow_config(sd) == cfg
    assert infer_waveglow_config(sd, {"n_early_every": 8, "n_early_size": 6}) == {**cfg, "n_early_every": 8,
                                                                                  "n_early_size": 6}
    with pytest.raises(CheckpointError, match=r"n_early_every: config 2 vs shapes"):
        infer_waveglow_config(sd, {"n_early_every": 2})


def test_contradicting_config_lists_every_field(tmp_path):
    sd = dle_state_dict(SMALL)
    bad = {**SMALL, "n_group": 4, "n_early_every": 2, "WN_config": {**SMALL["WN_config"], "n_channels": 32}}
    torch.save({"state_dict": sd, "config": bad}, tmp_path / "checkpoint_WaveGlow_1.pt")
    with pytest.raises(CheckpointError) as e:
        read_waveglow_checkpoint(str(tmp_path / "checkpoint_WaveGlow_1.pt"))
    msg = str(e.value)
    assert str(tmp_path / "checkpoint_WaveGlow_1.pt") in msg
    for line in ("n_group: config 4 vs shapes 8", "n_early_every: config 2 vs shapes 4",
                 "WN_config.n_channels: config 32 vs shapes 16"):
        assert line in msg
    assert "n_flows" not in msg and "n_layers" not in msg
    # config= replaces the file's own config, and is checked too
    got, config, _ = read_waveglow_checkpoint(str(tmp_path / "checkpoint_WaveGlow_1.pt"), config=SMALL)
    assert config == SMALL
    assert_same(got, sd)
    with pytest.raises(CheckpointError, match=r"WN_config.n_layers: config 4 vs shapes 3"):
        read_waveglow_checkpoint(str(tmp_path / "checkpoint_WaveGlow_1.pt"),
                                 config={"WN_config": {"n_layers": 4}})


def test_partial_and_json_configs(tmp_path):
    sd = dle_state_dict(SMALL)
    torch.save(sd, tmp_path / "bare.pt")
    (tmp_path / "config.json").write_text(json.dumps({"train_config": {}, "waveglow_config": SMALL}))
    assert read_waveglow_checkpoint(str(tmp_path / "bare.pt"), config=str(tmp_path / "config.json"))[1] == SMALL
    assert read_waveglow_checkpoint(str(tmp_path / "bare.pt"), config={"n_layers": 3})[1] == SMALL


# ---- files that fit no WaveGlow, broken files, folders ----------------------------------------------
def test_hifigan_generator_fits_no_waveglow(tmp_path):
    sd = {"conv_pre.weight_g": torch.rand(32, 1, 1), "conv_pre.weight_v": torch.randn(32, 80, 7),
          "conv_pre.bias": torch.randn(32), "ups.0.weight_v": torch.randn(32, 16, 16)}
    torch.save({"state_dict": sd}, tmp_path / "g.pt")
    with pytest.raises(CheckpointError) as e:
        read_waveglow_checkpoint(str(tmp_path / "g.pt"))
    msg = str(e.value)
    assert str(tmp_path / "g.pt") in msg and "fits no WaveGlow" in msg and "missing upsample.weight" in msg


def test_wrong_missing_and_unexpected_tensors_are_named(tmp_path):
    sd = dle_state_dict(SMALL)
    sd["WN.2.in_layers.1.weight_v"] = torch.randn(32, 16, 5)
    del sd["WN.4.cond_layers.2.bias"]
    sd["WN.1.extra.weight"] = torch.randn(3)
    torch.save({"state_dict": sd}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError) as e:
        read_waveglow_checkpoint(str(tmp_path / "c.pt"))
    msg = str(e.value)
    assert "fits no WaveGlow" in msg and str(tmp_path / "c.pt") in msg
    assert "WN.2.in_layers.1.weight_v: shape (32, 16, 5), expected (32, 16, 3)" in msg
    assert "missing WN.4.cond_layers.2.bias" in msg and "unexpected key WN.1.extra.weight" in msg


def test_inconsistent_flow_sizes(tmp_path):
    sd = dle_state_dict(SMALL)
    sd["convinv.5.conv.weight"] = torch.randn(4, 4, 1)  # sizes 8,8,8,8,6,4: no fixed early size
    with pytest.raises(CheckpointError, match=r"(?s)fits no WaveGlow.*convinv sizes \[8, 8, 8, 8, 6, 4\]"):
        infer_waveglow_config(sd)


@pytest.mark.parametrize("kind", ["nvidia_zip", "pickled_legacy", "pickled_zip", "garbage"])
def test_truncated_or_garbage_file(tmp_path, kind):
    path = tmp_path / "waveglow_10"
    if kind == "nvidia_zip":
        torch.save({"state_dict": dle_state_dict(SMALL)}, path)
    elif kind == "garbage":
        path.write_bytes(b"not a checkpoint" + os.urandom(3000))
    else:
        save_pickled(path, "glow", "fused", dle_state_dict(SMALL), SMALL, legacy=kind == "pickled_legacy")
    if kind != "garbage":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=str(path)):
        read_waveglow_checkpoint(str(path))


def test_folder_picks_latest(tmp_path):
    sds = {}
    for name in ("checkpoint_WaveGlow_100.pt", "checkpoint_WaveGlow_2000.pt", "checkpoint_WaveGlow_300.pt"):
        sds[name] = dle_state_dict(SMALL, weight_norm=False)
        torch.save({"state_dict": sds[name], "config": SMALL}, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert_same(read_waveglow_checkpoint(str(tmp_path))[0], sds["checkpoint_WaveGlow_2000.pt"])

    other = tmp_path / "unnumbered"
    other.mkdir()
    for i, name in enumerate(("nvidia_waveglow256pyt_fp16.pt", "waveglow.pt")):
        sds[name] = dle_state_dict(SMALL, weight_norm=False)
        torch.save({"state_dict": sds[name]}, other / name)
        os.utime(other / name, (1000 + i, 1000 + i))
    assert_same(read_waveglow_checkpoint(str(other))[0], sds["waveglow.pt"])
    os.utime(other / "nvidia_waveglow256pyt_fp16.pt", (5000, 5000))
    assert_same(read_waveglow_checkpoint(str(other))[0], sds["nvidia_waveglow256pyt_fp16.pt"])

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no WaveGlow checkpoint"):
        read_waveglow_checkpoint(str(empty))

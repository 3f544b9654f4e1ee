"""Hugging Face (SpeechT5HifiGan) and Coqui TTS HiFi-GAN files: detected by structure, read into our HiFiGAN with
the toolkit's own audio, bad files refused clearly. The toolkit generators below are small independent copies of
the toolkits' forward passes (transformers' modeling_speecht5.py, Coqui's hifigan_generator.py), not our module;
their state dicts give the exact on-disk key names."""
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

from vocoder_ext import CheckpointError, HiFiGAN
from vocoder_ext.checkpoint.toolkits import coqui, huggingface

TINY = dict(upsample_rates=[4, 2], upsample_kernel_sizes=[8, 4], upsample_initial_channel=16,
            resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 3, 5], [1, 2, 3]])
N_MELS = 12


def pad(k, d=1):
    return (k * d - d) // 2


def randomize(module):
    """Non-trivial weights, gains and biases so g/v or key mix-ups show."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("original0"):
                p.copy_(torch.rand_like(p) + 0.6)
            elif name.endswith("bias"):
                p.normal_(0, 0.05)
            else:  # a unit-norm direction per output row times a gain, like a weight-normed layer
                p.normal_(0, 1)
                if p.dim() == 3 and not name.endswith("original1"):
                    p *= (torch.rand(p.shape[0], 1, 1) + 0.6) / torch.linalg.vector_norm(p, dim=(1, 2), keepdim=True)
    return module


# ---- transformers' SpeechT5HifiGan, re-written --------------------------------------------------------
class HFResBlock(nn.Module):
    def __init__(self, ch, k, dils, slope):
        super().__init__()
        self.slope = slope
        self.convs1 = nn.ModuleList(nn.Conv1d(ch, ch, k, dilation=d, padding=pad(k, d)) for d in dils)
        self.convs2 = nn.ModuleList(nn.Conv1d(ch, ch, k, padding=pad(k)) for _ in dils)

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2):
            x = c2(F.leaky_relu(c1(F.leaky_relu(x, self.slope)), self.slope)) + x
        return x


class HFHifiGan(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg, uic = cfg, cfg["upsample_initial_channel"]
        self.conv_pre = nn.Conv1d(cfg["model_in_dim"], uic, 7, padding=3)
        self.upsampler = nn.ModuleList(nn.ConvTranspose1d(uic // 2 ** i, uic // 2 ** (i + 1), k, u, padding=(k - u) // 2)
                                       for i, (u, k) in enumerate(zip(cfg["upsample_rates"], cfg["upsample_kernel_sizes"])))
        self.resblocks = nn.ModuleList(HFResBlock(uic // 2 ** (i + 1), k, d, cfg["leaky_relu_slope"])
                                       for i in range(len(self.upsampler))
                                       for k, d in zip(cfg["resblock_kernel_sizes"], cfg["resblock_dilation_sizes"]))
        self.conv_post = nn.Conv1d(uic // 2 ** len(self.upsampler), 1, 7, padding=3)
        self.register_buffer("mean", torch.randn(cfg["model_in_dim"]))
        self.register_buffer("scale", torch.rand(cfg["model_in_dim"]) + 0.5)
        randomize(self)

    def forward(self, spectrogram):  # [B, T, n_mels] -> [B, samples]
        if self.cfg["normalize_before"]:
            spectrogram = (spectrogram - self.mean) / self.scale
        x = self.conv_pre(spectrogram.transpose(2, 1))
        nk = len(self.cfg["resblock_kernel_sizes"])
        for i, up in enumerate(self.upsampler):
            x = up(F.leaky_relu(x, self.cfg["leaky_relu_slope"]))
            x = sum(self.resblocks[i * nk + j](x) for j in range(nk)) / nk
        return torch.tanh(self.conv_post(F.leaky_relu(x))).squeeze(1)


def hf_config(**over):
    cfg = {"architectures": ["SpeechT5HifiGan"], "model_type": "hifigan", "model_in_dim": N_MELS,
           "sampling_rate": 16000, "leaky_relu_slope": 0.1, "normalize_before": True, "initializer_range": 0.01,
           "torch_dtype": "float32", "transformers_version": "4.46.0",
           **{k: v for k, v in TINY.items() if k != "resblock"}}
    cfg.update(over)
    return cfg


def write_hf(folder, model, cfg, fmt="safetensors", transform=lambda sd: sd):
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    sd = transform({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()})
    if fmt == "safetensors":
        from safetensors.torch import save_file
        save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    else:
        torch.save(sd, folder / "pytorch_model.bin")
    return folder


def load_ours(reader, path, fused=True):
    """HiFiGAN.from_pretrained(path) (which must recognise the toolkit), and the reader's own output."""
    sd, h, features = reader.read(path)
    model = HiFiGAN.from_pretrained(path, fused=fused)
    assert model.features is not None and model.features["toolkit"] == features["toolkit"]
    assert set(model.state_dict()) >= {"conv_pre.bias", "conv_post.bias"}
    return model.eval(), sd, h, features


def as_parametrized(sd):
    out = {}
    for k, v in sd.items():
        if k.endswith(".weight") and k not in ("mean", "scale"):
            base = k[:-len(".weight")]
            out[base + ".parametrizations.weight.original0"] = torch.linalg.vector_norm(v, dim=(1, 2), keepdim=True)
            out[base + ".parametrizations.weight.original1"] = v
        else:
            out[k] = v
    return out


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
@pytest.mark.parametrize("normalize", [True, False])
def test_hf_folder_gives_transformers_audio(tmp_path, fmt, normalize):
    ref = HFHifiGan(hf_config(normalize_before=normalize)).eval()
    folder = write_hf(tmp_path / "speecht5_hifigan", ref, hf_config(normalize_before=normalize), fmt)
    assert huggingface.detect(folder) and huggingface.detect(folder / "config.json")
    assert not coqui.detect(folder)
    model, sd, h, feats = load_ours(huggingface, folder)
    assert "ups.0.weight" in sd and not any(k.startswith("upsampler") for k in sd)
    assert h["resblock"] == "1" and h["upsample_rates"] == TINY["upsample_rates"] and h["sampling_rate"] == 16000
    mel = torch.randn(2, 9, N_MELS)
    with torch.no_grad():
        want = ref(mel)
        x = mel.transpose(1, 2)
        if normalize:
            norm = feats["normalization"]
            assert norm["type"] == "mean_scale"
            x = (x - norm["mean"][:, None]) / norm["scale"][:, None]
        else:
            assert feats["normalization"] is None
        got = model(x).squeeze(1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert feats["n_mels"] == N_MELS and feats["sample_rate"] == 16000 and feats["inference_padding"] == 0
    assert feats["log"] is None and "log" in feats["missing"]  # not in the vocoder folder: not guessed


@pytest.mark.parametrize("variant", ["weight_g", "parametrizations"])
def test_hf_weight_norm_variants(tmp_path, variant):
    ref = HFHifiGan(hf_config()).eval()

    def transform(sd):
        sd = as_parametrized(sd)
        if variant == "weight_g":
            sd = {k.replace("parametrizations.weight.original0", "weight_g")
                  .replace("parametrizations.weight.original1", "weight_v"): v for k, v in sd.items()}
        return sd

    folder = write_hf(tmp_path / "m", ref, hf_config(), transform=transform)
    with torch.no_grad():  # the reference runs the weights the file now holds: g * v / ||v||
        for k, v in as_parametrized(ref.state_dict()).items():
            if k.endswith("original1"):
                g = as_parametrized(ref.state_dict())[k.replace("original1", "original0")]
                ref.get_submodule(k[:-len(".parametrizations.weight.original1")]).weight.copy_(
                    torch._weight_norm(v, g, 0))
    model, sd, _, feats = load_ours(huggingface, folder)
    assert "conv_pre.weight_g" in sd and model.weight_normed
    mel = torch.randn(1, 7, N_MELS)
    n = feats["normalization"]
    with torch.no_grad():
        torch.testing.assert_close(model((mel.transpose(1, 2) - n["mean"][:, None]) / n["scale"][:, None]).squeeze(1),
                                   ref(mel), rtol=1e-5, atol=1e-5)


def test_hf_preprocessor_config_gives_features(tmp_path):
    folder = write_hf(tmp_path / "m", HFHifiGan(hf_config()), hf_config())
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"feature_extractor_type": "SpeechT5FeatureExtractor", "sampling_rate": 16000, "num_mel_bins": N_MELS,
         "hop_length": 16, "win_length": 64, "win_function": "hann_window", "fmin": 80, "fmax": 7600,
         "mel_floor": 1e-10}))
    feats = huggingface.read(folder)[2]
    assert (feats["hop_length"], feats["win_length"], feats["n_fft"]) == (256, 1024, 1024)
    assert (feats["fmin"], feats["fmax"], feats["log"], feats["log_floor"]) == (80, 7600, "log10", 1e-10)


def test_hf_detect_rejects_other_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "hidden_size": 8}))
    torch.save({}, tmp_path / "a" / "pytorch_model.bin")
    assert not huggingface.detect(tmp_path / "a")
    write_hf(tmp_path / "b", HFHifiGan(hf_config()), hf_config())
    (tmp_path / "b" / "model.safetensors").unlink()
    assert not huggingface.detect(tmp_path / "b")  # no weights
    assert not huggingface.detect(tmp_path / "nothing")


def _hf_bad(tmp_path, cfg_over=None, transform=lambda sd: sd, drop_config=False):
    folder = write_hf(tmp_path / "bad", HFHifiGan(hf_config()), hf_config(**(cfg_over or {})), transform=transform)
    if drop_config:
        (folder / "config.json").unlink()
    return folder


def refusals(cases):
    """Parametrize a bad-input test as (case, kw, match) over {case: (keyword arguments for the test's bad-file
    writer, regex the CheckpointError must match)}: one table, each input beside the message it must give."""
    return pytest.mark.parametrize("case,kw,match", [(c, kw, m) for c, (kw, m) in cases.items()], ids=list(cases))


@refusals({
    "missing_config": (dict(drop_config=True), r"no config\.json"),
    "unexpected_key": (dict(transform=lambda sd: {**sd, "extra.weight": torch.zeros(1)}),
                       r"unexpected keys \(1\): extra\.weight"),
    "missing_key": (dict(transform=lambda sd: {k: v for k, v in sd.items() if k != "upsampler.1.bias"}),
                    r"missing keys \(1\): upsampler\.1\.bias"),
    "slope": (dict(cfg_over={"leaky_relu_slope": 0.2}), r"leaky_relu_slope = 0\.2"),
    "resblock2_keys": (dict(transform=lambda sd: {k.replace("convs1", "convs"): v for k, v in sd.items()
                                                  if "convs2" not in k}),
                       r"unexpected keys .*resblocks\.0\.convs\.0.*only ResBlock1"),
    "wrong_rates": (dict(cfg_over={"upsample_rates": [4]}), r"upsample_rates = \[4\] contradicts"),
    "wrong_in_dim": (dict(cfg_over={"model_in_dim": 80}), r"model_in_dim = 80 contradicts the weights, which say 12"),
    "no_stats": (dict(transform=lambda sd: {k: v for k, v in sd.items() if k not in ("mean", "scale")}),
                 r"normalize_before true but the weights lack mean and scale"),
    "missing_dilations": (dict(cfg_over={"resblock_dilation_sizes": None}), r"missing field resblock_dilation_sizes"),
})
def test_hf_bad_inputs(tmp_path, case, kw, match):
    folder = _hf_bad(tmp_path, **kw)
    if case == "missing_dilations":
        cfg = hf_config()
        del cfg["resblock_dilation_sizes"]
        (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=match) as e:
        huggingface.read(folder)
    assert "bad" in str(e.value)  # names the file or folder


# ---- Coqui TTS HifiganGenerator, re-written ------------------------------------------------------------
def wn(conv, on=True):
    return weight_norm(conv) if on else conv


class CoquiResBlock1(nn.Module):
    def __init__(self, ch, k, d):
        super().__init__()
        self.convs1 = nn.ModuleList(wn(nn.Conv1d(ch, ch, k, 1, dilation=d[i], padding=pad(k, d[i]))) for i in range(3))
        self.convs2 = nn.ModuleList(wn(nn.Conv1d(ch, ch, k, 1, dilation=1, padding=pad(k))) for _ in range(3))

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2):
            x = c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1)) + x
        return x


class CoquiResBlock2(nn.Module):
    def __init__(self, ch, k, d):
        super().__init__()
        self.convs = nn.ModuleList(wn(nn.Conv1d(ch, ch, k, 1, dilation=d[i], padding=pad(k, d[i]))) for i in range(2))

    def forward(self, x):
        for c in self.convs:
            x = c(F.leaky_relu(x, 0.1)) + x
        return x


class CoquiGenerator(nn.Module):
    def __init__(self, in_channels, p):
        super().__init__()
        uic, self.nk, self.pad = p["upsample_initial_channel"], len(p["resblock_kernel_sizes"]), p["inference_padding"]
        self.conv_pre = wn(nn.Conv1d(in_channels, uic, 7, 1, padding=3))
        block = CoquiResBlock1 if p["resblock_type"] == "1" else CoquiResBlock2  # Coqui's own test (#1068)
        self.ups = nn.ModuleList(wn(nn.ConvTranspose1d(uic // 2 ** i, uic // 2 ** (i + 1), k, u, padding=(k - u) // 2))
                                 for i, (u, k) in enumerate(zip(p["upsample_factors"], p["upsample_kernel_sizes"])))
        self.resblocks = nn.ModuleList(block(uic // 2 ** (i + 1), k, d) for i in range(len(self.ups))
                                       for k, d in zip(p["resblock_kernel_sizes"], p["resblock_dilation_sizes"]))
        self.conv_post = wn(nn.Conv1d(uic // 2 ** len(self.ups), 1, 7, 1, padding=3, bias=p.get("conv_post_bias", True)))
        if p.get("cond_channels", 0) > 0:
            self.cond_layer = nn.Conv1d(p["cond_channels"], uic, 1)
        randomize(self)

    def forward(self, x):
        o = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            o = up(F.leaky_relu(o, 0.1))
            o = sum(self.resblocks[i * self.nk + j](o) for j in range(self.nk)) / self.nk
        return torch.tanh(self.conv_post(F.leaky_relu(o)))

    def inference(self, c):
        return self.forward(F.pad(c, (self.pad, self.pad), "replicate"))


def coqui_params(**over):
    p = {"upsample_factors": TINY["upsample_rates"], "upsample_kernel_sizes": TINY["upsample_kernel_sizes"],
         "upsample_initial_channel": TINY["upsample_initial_channel"],
         "resblock_kernel_sizes": TINY["resblock_kernel_sizes"], "resblock_dilation_sizes": TINY["resblock_dilation_sizes"],
         "resblock_type": "1", "inference_padding": 5}
    p.update(over)
    return p


def coqui_config(params):
    return {"model": "hifigan", "generator_model": "hifigan_generator", "generator_model_params": params,
            "audio": {"sample_rate": 22050, "fft_size": 1024, "win_length": 1024, "hop_length": 256,
                      "num_mels": N_MELS, "mel_fmin": 0.0, "mel_fmax": None, "log_func": "np.log10", "spec_gain": 20,
                      "signal_norm": True, "symmetric_norm": True, "max_norm": 4.0, "clip_norm": True,
                      "ref_level_db": 20, "min_level_db": -100, "stats_path": None, "preemphasis": 0.0}}


def coqui_state(gen, weight_norm_keys="parametrizations", legacy=False):
    sd = {k: v.detach().clone() for k, v in gen.state_dict().items()}
    if weight_norm_keys == "weight_g":
        sd = {k.replace("parametrizations.weight.original0", "weight_g")
              .replace("parametrizations.weight.original1", "weight_v"): v for k, v in sd.items()}
    elif weight_norm_keys == "plain":
        sd = {}
        for name, m in gen.named_modules():
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                sd[f"{name}.weight"] = m.weight.detach().clone()
                if m.bias is not None:
                    sd[f"{name}.bias"] = m.bias.detach().clone()
    if legacy:
        return {"model": sd, "model_disc": {"layers.0.weight": torch.zeros(2)}, "step": 10, "epoch": 1}
    model = {f"model_g.{k}": v for k, v in sd.items()}
    model["model_d.disc.0.weight"] = torch.randn(3)  # the discriminator, dropped
    return {"model": model, "optimizer": [{"state": {}, "param_groups": [{"lr": 2e-4, "params": [0, 1]}]}],
            "scaler": None, "step": 1000, "epoch": 3, "date": "January 01, 2024", "model_loss": 1.25}


def assert_coqui_audio(model, gen, pad_frames=5):
    mel = torch.randn(2, N_MELS, 8)
    with torch.no_grad():
        want = gen.inference(mel)
        torch.testing.assert_close(model(F.pad(mel, (pad_frames, pad_frames), "replicate")), want,
                                   rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model(mel, inference_padding=True), want, rtol=1e-5, atol=1e-5)
        assert model(mel).shape[-1] == want.shape[-1] - 2 * pad_frames * model.hop_length  # off by default


@pytest.mark.parametrize("wn_keys", ["parametrizations", "weight_g", "plain"])
def test_coqui_checkpoint_gives_coqui_audio(tmp_path, wn_keys):
    params = coqui_params()
    gen = CoquiGenerator(N_MELS, params).eval()
    path = tmp_path / "best_model.pth"
    torch.save({**coqui_state(gen, wn_keys), "config": coqui_config(params)}, path)
    assert coqui.detect(path) and not huggingface.detect(path)
    model, sd, h, feats = load_ours(coqui, path)
    assert not any(k.startswith(("model_g.", "model_d.")) for k in sd)
    assert h["resblock"] == "1" and h["resblock_dilation_sizes"] == [[1, 3, 5], [1, 2, 3]]
    assert feats["inference_padding"] == 5 and feats["log"] == "log10" and feats["normalization"]["type"] == "range"
    assert feats["framing"] == "centered" and feats["hop_length"] == 256 and feats["fmax"] == 11025.0
    assert_coqui_audio(model, gen, feats["inference_padding"])


@pytest.mark.parametrize("fused", [True, False])
def test_coqui_conv_post_without_bias(tmp_path, fused):
    params = coqui_params(conv_post_bias=False)
    gen = CoquiGenerator(N_MELS, params).eval()
    assert gen.conv_post.bias is None
    path = tmp_path / "model_file.pth"
    torch.save({**coqui_state(gen, "weight_g"), "config": coqui_config(params)}, path)
    model = HiFiGAN.from_pretrained(path, fused=fused).eval()
    assert model.config["conv_post_bias"] is False and "conv_post.bias" not in model.state_dict()
    assert_coqui_audio(model, gen)


def test_coqui_config_json_with_comments_and_int_resblock_type(tmp_path):
    """Legacy unprefixed layout, config.json with // comments (a URL in a string survives), and the integer
    resblock_type 1 that makes Coqui build ResBlock2 (Coqui #1068): its first two dilations are used."""
    params = coqui_params(resblock_type=1, inference_padding=3)
    gen = CoquiGenerator(N_MELS, params).eval()
    assert isinstance(gen.resblocks[0], CoquiResBlock2)
    path = tmp_path / "model_file.pth.tar"
    torch.save(coqui_state(gen, "weight_g", legacy=True), path)
    text = json.dumps(coqui_config(params), indent=2).replace(
        '"model": "hifigan",', '"model": "hifigan", // the vocoder\n  "github": "https://example.org/x", /* block */')
    (tmp_path / "config.json").write_text("// Coqui config\n" + text)
    assert coqui.detect(path)
    model, _, h, feats = load_ours(coqui, path, fused=False)
    assert h["resblock"] == "2" and h["resblock_dilation_sizes"] == [[1, 3], [1, 2]]
    assert feats["source"] == str(tmp_path / "config.json")
    assert_coqui_audio(model, gen, 3)


def test_coqui_detect_rejects_other_files(tmp_path):
    torch.save({"generator": {"conv_pre.weight": torch.zeros(1)}}, tmp_path / "g_00000001")
    torch.save({"model": {"waveform_decoder.conv_pre.weight": torch.zeros(1)}}, tmp_path / "vits.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    for name in ("g_00000001", "vits.pth", "junk.pth", "absent.pth"):
        assert not coqui.detect(tmp_path / name), name
    assert not coqui.detect(tmp_path)


def _coqui_file(tmp_path, params=None, state=None, config=True, gen_params=None):
    params = params or coqui_params()
    gen = CoquiGenerator(N_MELS, gen_params or params)
    ckpt = state(coqui_state(gen)) if state else coqui_state(gen)
    if config:
        ckpt["config"] = coqui_config(params)
    path = tmp_path / "bad_model.pth"
    torch.save(ckpt, path)
    return path


def _edit_model(fn):
    def state(ckpt):
        ckpt["model"] = fn(ckpt["model"])
        return ckpt
    return state


@refusals({
    "missing_config": (dict(config=False), r"holds no config .* no config\.json beside it"),
    "unexpected_key": (dict(state=_edit_model(lambda m: {**m, "model_g.extra.weight": torch.zeros(1)})),
                       r"unexpected keys \(1\): model_g\.extra\.weight"),
    "missing_key": (dict(state=_edit_model(lambda m: {k: v for k, v in m.items() if k != "model_g.ups.1.bias"})),
                    r"missing keys \(1\): model_g\.ups\.1\.bias"),
    "stray_prefix": (dict(state=_edit_model(lambda m: {**m, "other.weight": torch.zeros(1)})),
                     r"unexpected keys in ckpt\['model'\].*other\.weight"),
    "wrong_block_claim": (dict(params=coqui_params(resblock_type="2"), gen_params=coqui_params()),
                          r"resblock_type = '2' contradicts the weights, which say 'ResBlock1 keys"),
    "cond_layer": (dict(params=coqui_params(), gen_params=coqui_params(cond_channels=4)),
                   r"conditioning layers \(model_g\.cond_layer\.bias, model_g\.cond_layer\.weight\)"),
    "post_bias_contradicted": (dict(params=coqui_params(conv_post_bias=False), gen_params=coqui_params()),
                               r"unexpected keys \(1\): model_g\.conv_post\.bias"),
    "other_generator": (dict(), r"generator_model = 'melgan_generator'"),
    "too_few_dilations": (dict(params=coqui_params(resblock_dilation_sizes=[[1, 3], [1, 2]]),
                               gen_params=coqui_params()),
                          r"resblock_dilation_sizes = \[\[1, 3\], \[1, 2\]\] contradicts"),
})
def test_coqui_bad_inputs(tmp_path, case, kw, match):
    path = _coqui_file(tmp_path, **kw)
    if case == "other_generator":
        ckpt = torch.load(path, weights_only=True)
        ckpt["config"]["generator_model"] = "melgan_generator"
        torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=match) as e:
        coqui.read(path)
    assert "bad_model.pth" in str(e.value)


class NotAllowed:  # stands in for an old pickled config object (e.g. TTS.utils.io.AttrDict)
    pass


def test_coqui_pickled_objects_are_refused_not_run(tmp_path):
    gen = CoquiGenerator(N_MELS, coqui_params())
    path = tmp_path / "old.pth"
    torch.save({**coqui_state(gen), "config": NotAllowed()}, path)
    assert not coqui.detect(path)
    with pytest.raises(CheckpointError, match=r"refusing to load .*old\.pth[\s\S]*pickles Python objects .*NotAllowed"):
        coqui.read(path)

"""ParallelWaveGAN `checkpoint-*steps.pkl` and ESPnet joint text2wav `.pth` HiFi-GAN files: written in each toolkit's
on-disk layout from a small independent copy of PWG's generator (parallel_wavegan/models/hifigan.py: its module
names, its transposed-conv padding u//2 + u%2 with output_padding u%2, weight norm on every conv), read through
HiFiGAN.from_pretrained with the toolkit's own audio, odd scales and bias-free convs included; latent-input
ESPnet models, causal and other variants and bad files refused clearly."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import yaml
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from vocoder_ext import CheckpointError, HiFiGAN
from vocoder_ext.checkpoint.toolkits import parallel_wavegan as pwg

N_MELS = 20
EVEN = dict(in_channels=N_MELS, out_channels=1, channels=32, kernel_size=7, upsample_scales=[4, 4, 2, 2],
            upsample_kernel_sizes=[8, 8, 4, 4], resblock_kernel_sizes=[3, 5], resblock_dilations=[[1, 3], [1, 2]],
            use_additional_convs=True, bias=True, nonlinear_activation="LeakyReLU",
            nonlinear_activation_params={"negative_slope": 0.1}, use_weight_norm=True)
ODD = dict(EVEN, channels=24, upsample_scales=[5, 4, 3], upsample_kernel_sizes=[10, 8, 6])  # 24 kHz's [5,5,4,3]
SCALES_8522 = dict(EVEN, upsample_scales=[8, 5, 2, 2], upsample_kernel_sizes=[16, 10, 4, 4])  # 16 kHz, hop 160
BLOCK2 = dict(EVEN, use_additional_convs=False, resblock_dilations=[[1, 3], [2, 3]])
NO_BIAS_K5 = dict(ODD, bias=False, kernel_size=5)


# ---- PWG's HiFiGANGenerator, re-written from its source -----------------------------------------------
class PWGResidualBlock(nn.Module):
    def __init__(self, k, ch, dilations, additional, bias):
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Sequential(nn.LeakyReLU(0.1), nn.Conv1d(ch, ch, k, 1, dilation=d, bias=bias,
                                                                               padding=(k - 1) // 2 * d))
                                    for d in dilations)
        self.convs2 = nn.ModuleList(nn.Sequential(nn.LeakyReLU(0.1), nn.Conv1d(ch, ch, k, 1, bias=bias,
                                                                               padding=(k - 1) // 2))
                                    for _ in dilations) if additional else None

    def forward(self, x):
        for idx in range(len(self.convs1)):
            xt = self.convs1[idx](x)
            if self.convs2 is not None:
                xt = self.convs2[idx](xt)
            x = xt + x
        return x


class PWGHiFiGAN(nn.Module):
    """espnet=True: ESPnet's copy, whose `bias` reaches the residual blocks only."""

    def __init__(self, p, espnet=False):
        super().__init__()
        ch, ks, bias = p["channels"], p["kernel_size"], p["bias"]
        outer_bias = True if espnet else bias
        self.num_blocks = len(p["resblock_kernel_sizes"])
        self.input_conv = nn.Conv1d(p["in_channels"], ch, ks, 1, padding=(ks - 1) // 2, bias=outer_bias)
        self.upsamples, self.blocks = nn.ModuleList(), nn.ModuleList()
        for i, (u, k) in enumerate(zip(p["upsample_scales"], p["upsample_kernel_sizes"])):
            assert k == 2 * u
            self.upsamples.append(nn.Sequential(nn.LeakyReLU(0.1), nn.ConvTranspose1d(
                ch // 2 ** i, ch // 2 ** (i + 1), k, u, padding=u // 2 + u % 2, output_padding=u % 2,
                bias=outer_bias)))
            for rk, dil in zip(p["resblock_kernel_sizes"], p["resblock_dilations"]):
                self.blocks.append(PWGResidualBlock(rk, ch // 2 ** (i + 1), dil, p["use_additional_convs"], bias))
        last = ch // 2 ** len(p["upsample_scales"])
        self.output_conv = nn.Sequential(nn.LeakyReLU(), nn.Conv1d(last, 1, ks, 1, padding=(ks - 1) // 2,
                                                                   bias=outer_bias), nn.Tanh())
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                weight_norm(m)
        gen = torch.Generator().manual_seed(len(p["upsample_scales"]) * 7 + ch)
        with torch.no_grad():  # gains far from 1 and a random direction, so a g/v or transpose mix-up shows
            for name, t in self.named_parameters():
                scale = 0.05 if name.endswith("bias") else 1.0
                t.copy_(0.5 + torch.rand(t.shape, generator=gen) if name.endswith("original0")
                        else scale * torch.randn(t.shape, generator=gen))

    def forward(self, c):
        c = self.input_conv(c)
        for i, up in enumerate(self.upsamples):
            c = up(c)
            cs = sum(self.blocks[i * self.num_blocks + j](c) for j in range(self.num_blocks))
            c = cs / self.num_blocks
        return self.output_conv(c)

    def saved_state_dict(self, variant="weight_g"):
        """What PWG saves: torch.nn.utils.weight_norm's weight_g/weight_v, or the given other variant."""
        sd = dict(self.state_dict())
        if variant == "plain":  # weight norm folded (use_weight_norm: false, or remove_weight_norm)
            for name, m in self.named_modules():
                if parametrize.is_parametrized(m, "weight"):
                    del sd[f"{name}.parametrizations.weight.original0"], sd[f"{name}.parametrizations.weight.original1"]
                    sd[f"{name}.weight"] = m.weight.detach().clone()
            return sd
        if variant == "parametrizations":
            return sd
        return {k.replace("parametrizations.weight.original0", "weight_g")
                 .replace("parametrizations.weight.original1", "weight_v"): v for k, v in sd.items()}


# ---- the files --------------------------------------------------------------------------------------
def pwg_config(params):
    return {"sampling_rate": 24000, "fft_size": 2048, "hop_size": 300, "win_length": 1200, "window": "hann",
            "num_mels": N_MELS, "fmin": 80, "fmax": 7600, "global_gain_scale": 1.0, "format": "npy",
            "generator_type": "HiFiGANGenerator", "generator_params": params,
            "discriminator_type": "HiFiGANMultiScaleMultiPeriodDiscriminator",
            "generator_optimizer_params": {"betas": (0.5, 0.9), "lr": 2e-4},  # dumped as !!python/tuple
            "version": "0.5.5"}


def write_pwg(folder, gen, params=None, cfg=None, sd=None, steps=400000, stats=True, variant="weight_g"):
    folder.mkdir(parents=True, exist_ok=True)
    disc = nn.Conv1d(1, 4, 3)
    opt = torch.optim.Adam(gen.parameters(), 2e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [200000, 400000], 0.5)
    ckpt = {"model": {"generator": sd if sd is not None else gen.saved_state_dict(variant),
                      "discriminator": disc.state_dict()},
            "optimizer": {"generator": opt.state_dict()}, "scheduler": {"generator": sched.state_dict()},
            "steps": steps, "epochs": 12}
    path = folder / f"checkpoint-{steps}steps.pkl"
    torch.save(ckpt, path)
    with open(folder / "config.yml", "w") as f:
        yaml.dump(cfg if cfg is not None else pwg_config(params or EVEN), f, Dumper=yaml.Dumper)
    if stats:
        np.save(folder / "stats.npy", np.stack([np.linspace(-5, -1, N_MELS), np.linspace(0.5, 2, N_MELS)])
                .astype(np.float32))
    return path


def write_espnet(folder, gen, params=None, prefix="tts.generator.vocoder.", sd=None, tts_conf=None):
    folder.mkdir(parents=True, exist_ok=True)
    flat = {"tts.generator.text2mel.encoder.embed.0.weight": torch.randn(11, 8),
            "tts.discriminator.msd.discriminators.0.layers.0.0.weight": torch.randn(4, 1, 15),
            "feats_extract.logmel.melmat": torch.rand(513, N_MELS),
            "normalize.mean": torch.randn(N_MELS), "normalize.std": torch.rand(N_MELS) + 0.5}
    flat.update({prefix + k: v for k, v in (sd if sd is not None else gen.saved_state_dict()).items()})
    path = folder / "train.total_count.ave_10best.pth"
    torch.save(flat, path)
    conf = tts_conf or {"text2mel_type": "fastspeech2", "vocoder_type": "hifigan_generator",
                        "vocoder_params": dict(params or EVEN, global_channels=-1)}
    cfg = {"tts": "joint_text2wav", "tts_conf": conf, "feats_extract": "fbank",
           "feats_extract_conf": {"n_fft": 1024, "hop_length": 256, "win_length": None, "fs": 22050, "fmin": 80,
                                  "fmax": 7600, "n_mels": N_MELS}, "normalize": "global_mvn"}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def mel():
    return torch.randn(2, N_MELS, 7)


def assert_same_audio(path, gen, mel):
    with torch.no_grad():
        want = gen(mel)
        hop = int(np.prod([up[1].stride[0] for up in gen.upsamples]))
        assert want.shape[-1] == mel.shape[-1] * hop  # PWG's paddings: T * prod(scales), odd scales too
        for fused in (True, False):
            model = HiFiGAN.from_pretrained(path, fused=fused).eval()
            torch.testing.assert_close(model(mel), want, rtol=1e-5, atol=1e-5)
    return model


# ---- what is read -----------------------------------------------------------------------------------
@pytest.mark.parametrize("params,variant", [
    (EVEN, "weight_g"), (BLOCK2, "weight_g"), (EVEN, "parametrizations"), (EVEN, "plain"), (ODD, "weight_g"),
    (SCALES_8522, "weight_g"), (NO_BIAS_K5, "weight_g")],
    ids=["resblock1", "resblock2", "parametrizations", "plain", "odd_5_4_3", "scales_8_5_2_2", "no_bias_kernel5"])
def test_pwg_checkpoint_gives_the_same_audio(tmp_path, mel, params, variant):
    gen = PWGHiFiGAN(params).eval()
    path = write_pwg(tmp_path / "ljspeech_hifigan.v1", gen, params, variant=variant)
    assert pwg.detect(path) and pwg.detect(path.parent)
    sd, config, features = pwg.read(path)
    assert config["resblock"] == ("2" if params is BLOCK2 else "1") and config["num_mels"] == N_MELS
    scales = params["upsample_scales"]
    assert config["upsample_paddings"] == [u // 2 + u % 2 for u in scales]
    assert config["upsample_output_paddings"] == [u % 2 for u in scales]
    assert config["sampling_rate"] == 24000
    assert config["conv_pre_kernel_size"] == config["conv_post_kernel_size"] == params["kernel_size"]
    assert all(config[f"{layer}_bias"] == params["bias"] for layer in ("conv_pre", "upsample", "resblock", "conv_post"))
    model = assert_same_audio(path, gen, mel)
    assert model.weight_normed == (variant != "plain")
    assert features["toolkit"] == "parallel_wavegan"
    assert (features["sample_rate"], features["n_fft"], features["hop_length"], features["win_length"]) == \
        (24000, 2048, 300, 1200)
    assert (features["fmin"], features["fmax"], features["log"], features["log_floor"]) == (80.0, 7600.0, "log10", 1e-10)
    assert features["framing"] == "centered" and features["window"] == "hann" and features["n_mels"] == N_MELS
    norm = features["normalization"]
    assert norm["read"] and norm["formula"] == "(x - mean) / scale" and norm["source"].endswith("stats.npy")
    torch.testing.assert_close(norm["mean"], torch.linspace(-5, -1, N_MELS))
    torch.testing.assert_close(norm["scale"], torch.linspace(0.5, 2, N_MELS))


def test_pwg_folder_picks_the_latest_checkpoint_and_h5_stats_are_only_named(tmp_path, mel):
    old, gen = PWGHiFiGAN(EVEN), PWGHiFiGAN(EVEN).eval()
    with torch.no_grad():
        gen.input_conv.bias.add_(0.3)
    write_pwg(tmp_path, old, steps=100000)
    write_pwg(tmp_path, gen, steps=2500000, stats=False)
    (tmp_path / "stats.npy").unlink()
    (tmp_path / "stats.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    model = assert_same_audio(tmp_path, gen, mel)
    norm = model.features["normalization"]
    assert norm["read"] is False and norm["source"] == str(tmp_path / "stats.h5") and norm["mean"] is None
    assert "h5py" in norm["note"]


def test_espnet_joint_text2wav_gives_the_same_audio(tmp_path, mel):
    gen = PWGHiFiGAN(EVEN).eval()
    path = write_espnet(tmp_path / "exp" / "tts_train_joint", gen)
    assert pwg.detect(path)
    sd, config, features = pwg.read(path)
    assert all(k.startswith(("conv_pre.", "ups.", "resblocks.", "conv_post.")) for k in sd)
    assert config["sampling_rate"] == 22050 and config["upsample_output_paddings"] == [0, 0, 0, 0]
    model = assert_same_audio(path, gen, mel)
    f = model.features
    assert f["toolkit"] == "espnet" and (f["n_fft"], f["hop_length"], f["win_length"]) == (1024, 256, 1024)
    assert (f["fmin"], f["fmax"], f["log"]) == (80.0, 7600.0, "log10") and f["filterbank"].shape == (N_MELS, 513)
    assert f["normalization"]["type"] == "mean_scale" and f["normalization"]["scale"].shape == (N_MELS,)


def test_espnet_bias_false_drops_only_the_residual_blocks_biases(tmp_path, mel):
    gen = PWGHiFiGAN(NO_BIAS_K5, espnet=True).eval()
    path = write_espnet(tmp_path, gen, NO_BIAS_K5)
    _, config, _ = pwg.read(path)
    assert config["resblock_bias"] is False and "conv_post_bias" not in config
    model = assert_same_audio(path, gen, mel)
    assert model.conv_pre.bias is not None and model.resblocks[0].convs1[0].bias is None


def test_other_formats_are_not_detected(tmp_path):
    sd = HiFiGAN(dict(resblock="1", upsample_rates=[2], upsample_kernel_sizes=[4], upsample_initial_channel=8,
                      resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1]])).state_dict()
    torch.save({"generator": sd}, tmp_path / "g_00000001")
    (tmp_path / "config.yml").write_text("sampling_rate: 22050\n")  # even with a config.yml beside it
    assert not pwg.detect(tmp_path / "g_00000001") and not pwg.detect(tmp_path)
    assert not pwg.detect(tmp_path / "nothing.pkl")


# ---- what is refused --------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix,model", [("tts.generator.decoder.", "VITS"), ("tts.generator.generator.", "JETS")])
def test_espnet_vits_and_jets_are_refused(tmp_path, prefix, model):
    path = write_espnet(tmp_path, PWGHiFiGAN(EVEN), prefix=prefix, tts_conf={"generator_params": {}})
    with pytest.raises(CheckpointError, match=f"ESPnet {model} model.*not a mel vocoder"):
        HiFiGAN.from_pretrained(path)


def causal_keys(sd):
    out = {}
    for k, v in sd.items():
        base, _, param = k.rpartition(".")
        out[f"{base}.{'deconv' if k.startswith('upsamples.') else 'conv'}.{param}"] = v
    return out


@pytest.mark.parametrize("change,message", [
    (dict(use_causal_conv=True), "use_causal_conv"),
    (dict(nonlinear_activation="ReLU", nonlinear_activation_params={}), "nonlinear_activation 'ReLU'"),
    (dict(nonlinear_activation_params={"negative_slope": 0.2}), "negative_slope 0.2"),
    (dict(out_channels=4), "multi-band"),
    (dict(kernel_size=6), "kernel_size 6"),
    (dict(generator_type="MelGANGenerator"), "generator_type 'MelGANGenerator'"),
    ("causal keys", "causal ParallelWaveGAN"),
], ids=["causal_config", "relu", "slope", "multiband", "even_kernel", "melgan", "causal_keys"])
def test_pwg_variants_are_refused_by_name(tmp_path, change, message):
    gen = PWGHiFiGAN(EVEN)
    cfg, sd = pwg_config(dict(EVEN)), None
    if change == "causal keys":
        sd = causal_keys(gen.saved_state_dict())
    elif "generator_type" in change:
        cfg.update(change)
    else:
        cfg["generator_params"].update(change)
    with pytest.raises(CheckpointError, match=message):
        HiFiGAN.from_pretrained(write_pwg(tmp_path, gen, cfg=cfg, sd=sd))


def test_espnet_speaker_conditioning_is_refused(tmp_path):
    gen = PWGHiFiGAN(EVEN)
    sd = dict(gen.saved_state_dict(), **{"global_conv.weight_g": torch.rand(32, 1, 1),
                                          "global_conv.weight_v": torch.randn(32, 16, 1),
                                          "global_conv.bias": torch.randn(32)})
    conf = {"vocoder_type": "hifigan_generator", "vocoder_params": dict(EVEN, global_channels=16)}
    with pytest.raises(CheckpointError, match="global_conv"):
        HiFiGAN.from_pretrained(write_espnet(tmp_path, gen, sd=sd, tts_conf=conf))


def test_bad_files_are_refused_clearly(tmp_path):
    gen = PWGHiFiGAN(EVEN)
    path = write_pwg(tmp_path / "a", gen)
    (tmp_path / "a" / "config.yml").unlink()
    with pytest.raises(CheckpointError, match=f"no config.yml beside the checkpoint \\(looked for "
                                              f"{tmp_path / 'a' / 'config.yml'}\\)"):
        HiFiGAN.from_pretrained(path)
    esp = write_espnet(tmp_path / "e", gen)
    (tmp_path / "e" / "config.yaml").unlink()
    with pytest.raises(CheckpointError, match="no config.yaml beside the checkpoint"):
        HiFiGAN.from_pretrained(esp)

    sd = dict(gen.saved_state_dict(), **{"blocks.0.convs1.0.1.extra": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): blocks\.0\.convs1\.0\.1\.extra"):
        HiFiGAN.from_pretrained(write_pwg(tmp_path / "b", gen, sd=sd))
    sd = gen.saved_state_dict()
    del sd["blocks.2.convs2.1.1.weight_g"]
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): blocks\.2\.convs2\.1\.1\.weight_g"):
        HiFiGAN.from_pretrained(write_pwg(tmp_path / "c", gen, sd=sd))
    sd = gen.saved_state_dict()
    del sd["blocks.2.convs2.1.1.weight_g"]
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): tts\.generator\.vocoder\.blocks\.2\.convs2"):
        HiFiGAN.from_pretrained(write_espnet(tmp_path / "d", gen, sd=sd))
    cfg = pwg_config(dict(EVEN, channels=64))
    with pytest.raises(CheckpointError, match="channels = 64 contradicts the weights, which say 32"):
        HiFiGAN.from_pretrained(write_pwg(tmp_path / "f", gen, cfg=cfg))

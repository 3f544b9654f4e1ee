"""NeMo `.nemo` archives and SpeechBrain generator folders, written in each toolkit's on-disk layout from a
random-weight jik876-layout model (reflect-padded like SpeechBrain's for its files): detection, the same audio
through our HiFiGAN, bad files refused."""
import io
import tarfile

import pytest
import torch
import yaml

from original_hifigan import TINY, OrigGenerator
from vocoder_ext import CheckpointError, HiFiGAN
from vocoder_ext.checkpoint.toolkits import layout, nemo, speechbrain

TINY2 = dict(resblock="2", upsample_rates=[4, 2], upsample_kernel_sizes=[8, 4], upsample_initial_channel=16,
             resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 2], [2, 3]])


@pytest.fixture
def mel():
    return torch.randn(2, 80, 9)


def load_ours(sd, config, fused=True):
    """What HiFiGAN.from_pretrained does with a reader's output."""
    model = HiFiGAN(config, fused=fused)
    if "conv_pre.weight" in sd:
        model.remove_weight_norm()
    model.load_state_dict(sd)
    return model.eval()


def assert_same_audio(model, orig, mel):
    with torch.no_grad():
        torch.testing.assert_close(model(mel), orig(mel), rtol=1e-5, atol=1e-5)


def weight_norm_variant(orig, variant):
    if variant == "weight_g":
        return orig.legacy_state_dict()
    if variant == "parametrizations":
        return dict(orig.state_dict())
    return orig.plain_state_dict()


# ---- NeMo ------------------------------------------------------------------------------------------
def nemo_config(h, resblock_int=None):
    gen = {"_target_": "nemo.collections.tts.modules.hifigan_modules.Generator",
           "resblock": resblock_int or int(h["resblock"]), "upsample_rates": h["upsample_rates"],
           "upsample_kernel_sizes": h["upsample_kernel_sizes"],
           "upsample_initial_channel": h["upsample_initial_channel"],
           "resblock_kernel_sizes": h["resblock_kernel_sizes"],
           "resblock_dilation_sizes": h["resblock_dilation_sizes"]}
    pre = {"_target_": "nemo.collections.asr.parts.preprocessing.features.FilterbankFeatures",
           "nfilt": "${n_mel_channels}", "lowfreq": 0, "highfreq": 8000, "n_fft": 1024, "n_window_size": 1024,
           "n_window_stride": 256, "pad_to": 0, "pad_value": -11.52, "sample_rate": "${sample_rate}",
           "window": "hann", "normalize": None, "preemph": None, "dither": 0.0, "frame_splicing": 1,
           "log": True, "log_zero_guard_type": "clamp", "log_zero_guard_value": 1e-05, "mag_power": 1.0,
           "use_grads": False, "exact_pad": True}
    return {"sample_rate": 22050, "n_mel_channels": 80, "generator": gen, "preprocessor": pre,
            "optim": {"_target_": "torch.optim.AdamW", "lr": 0.0002}}


def nemo_weights(orig, nested=True, variant="weight_g"):
    """model.state_dict() of a NeMo HifiGanModel: generator.*, discriminators, preprocessor buffers."""
    nk = len(orig.h["resblock_kernel_sizes"])
    out = {}
    for key, value in weight_norm_variant(orig, variant).items():
        parts = key.split(".")
        if nested and parts[0] == "resblocks":
            i, j = divmod(int(parts[1]), nk)
            key = ".".join(["resblocks", str(i), str(j)] + parts[2:])
        out["generator." + key] = value
    out["mpd.discriminators.0.convs.0.weight_g"] = torch.randn(32, 1, 1, 1)
    out["msd.discriminators.0.conv_post.bias"] = torch.randn(1)
    out["audio_to_melspec_precessor.fb"] = torch.rand(1, 80, 513)
    out["audio_to_melspec_precessor.window"] = torch.hann_window(1024, periodic=False)
    out["trg_melspec_fn.fb"] = torch.rand(1, 80, 513)
    return out


def write_tar(path, members, gzip=False, prefix="./"):
    """members: {name: bytes}, written like NeMo's save_to (arcname "." -> "./name")."""
    with tarfile.open(path, "w:gz" if gzip else "w:") as tar:
        root = tarfile.TarInfo(".")
        root.type = tarfile.DIRTYPE
        tar.addfile(root)
        for name, data in members.items():
            info = tarfile.TarInfo(prefix + name if not name.startswith(("/", "..")) else name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def torch_bytes(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def write_nemo(path, orig, cfg=None, weights=None, gzip=False, **kw):
    cfg = cfg if cfg is not None else nemo_config(orig.h)
    weights = weights if weights is not None else nemo_weights(orig, **kw)
    return write_tar(path, {"model_config.yaml": yaml.safe_dump(cfg).encode(),
                            "model_weights.ckpt": torch_bytes(weights)}, gzip=gzip)


@pytest.mark.parametrize("h", [TINY, TINY2], ids=["resblock1", "resblock2"])
@pytest.mark.parametrize("gzip", [False, True], ids=["tar", "tar.gz"])
@pytest.mark.parametrize("nested", [True, False], ids=["nested", "legacy_flat"])
def test_nemo_archive_gives_the_same_audio(tmp_path, mel, h, gzip, nested):
    orig = OrigGenerator(h).eval()
    path = write_nemo(tmp_path / "HifiGan.nemo", orig, gzip=gzip, nested=nested)
    assert nemo.detect(path) and not speechbrain.detect(path)
    sd, config, features = nemo.read(path)
    assert config["resblock"] == h["resblock"] and config["num_mels"] == 80 and config["sampling_rate"] == 22050
    assert all(k.startswith(("conv_pre.", "ups.", "resblocks.", "conv_post.")) for k in sd)
    assert_same_audio(load_ours(sd, config), orig, mel)
    loaded = HiFiGAN.from_pretrained(path, fused=not (nested and not gzip))  # recognised by its structure
    assert loaded.features["toolkit"] == "nemo"
    assert_same_audio(loaded.eval(), orig, mel)
    assert features["toolkit"] == "nemo" and features["sample_rate"] == 22050 and features["n_mels"] == 80
    assert (features["n_fft"], features["win_length"], features["hop_length"]) == (1024, 1024, 256)
    assert (features["fmin"], features["fmax"], features["mel_norm"]) == (0.0, 8000.0, "slaney")
    assert (features["log"], features["log_guard"], features["log_floor"]) == ("ln", "clamp", 1e-5)
    assert features["window_periodic"] is False and features["framing"] == "padded" and features["pad"] == 384
    assert features["normalization"] is None and features["magnitude_power"] == 1.0
    assert features["filterbank"].shape == (80, 513) and features["window_weights"].shape == (1024,)


@pytest.mark.parametrize("variant", ["parametrizations", "plain"])
def test_nemo_weight_norm_variants(tmp_path, mel, variant):
    orig = OrigGenerator(TINY).eval()
    sd, config, _ = nemo.read(write_nemo(tmp_path / "m.nemo", orig, variant=variant))
    assert ("conv_pre.weight" in sd) == (variant == "plain")
    assert ("conv_pre.weight_g" in sd) == (variant != "plain")
    model = load_ours(sd, config)
    assert model.weight_normed == (variant != "plain")
    assert_same_audio(model, orig, mel)


def test_nemo_block_type_from_keys_not_the_config_integer(tmp_path, mel):
    orig = OrigGenerator(TINY2).eval()  # ResBlock2 weights, config claiming resblock 1
    sd, config, _ = nemo.read(write_nemo(tmp_path / "m.nemo", orig, cfg=nemo_config(TINY2, resblock_int=1)))
    assert config["resblock"] == "2"
    assert_same_audio(load_ours(sd, config), orig, mel)


def test_nemo_newer_recipe_features_and_defaults(tmp_path):
    orig = OrigGenerator(TINY)
    cfg = nemo_config(TINY)
    cfg["preprocessor"].update(highfreq=None, mel_norm=None, log_zero_guard_type="add", log_zero_guard_value=1.0)
    del cfg["preprocessor"]["preemph"]
    _, _, features = nemo.read(write_nemo(tmp_path / "m.nemo", orig, cfg=cfg))
    assert features["fmax"] == 11025.0 and features["mel_norm"] is None
    assert (features["log_guard"], features["log_floor"]) == ("add", 1.0)
    assert features["preemphasis"] == 0.97 and "preemphasis" in features["defaults"]


def test_detect_is_by_structure(tmp_path):
    orig = OrigGenerator(TINY)
    tar = write_nemo(tmp_path / "weights.bin", orig)  # any name
    assert nemo.detect(tar)
    plain = write_tar(tmp_path / "plain.nemo", {"model_config.yaml": b"a: 1\n", "model_weights.ckpt": b"x"},
                      prefix="")
    assert nemo.detect(plain)  # names without "./" too
    (tmp_path / "junk.nemo").write_bytes(b"not a tar at all" * 100)
    assert not nemo.detect(tmp_path / "junk.nemo")
    assert not nemo.detect(write_tar(tmp_path / "other.nemo", {"model_config.yaml": b"a: 1\n"}))
    assert not nemo.detect(tmp_path)


def test_nemo_bad_archives(tmp_path):
    orig = OrigGenerator(TINY)
    (tmp_path / "junk.nemo").write_bytes(b"\x00garbage" * 200)
    with pytest.raises(CheckpointError, match=r"junk.nemo: not a .nemo archive \(expected a tar archive"):
        nemo.read(tmp_path / "junk.nemo")
    only_config = write_tar(tmp_path / "c.nemo", {"model_config.yaml": yaml.safe_dump(nemo_config(TINY)).encode()})
    with pytest.raises(CheckpointError, match=r"c.nemo: not a NeMo model archive: the tar has no model_weights.ckpt"):
        nemo.read(only_config)
    empty = write_tar(tmp_path / "e.nemo", {"README": b"hi"})
    with pytest.raises(CheckpointError, match=r"no model_config.yaml or model_weights.ckpt member"):
        nemo.read(empty)
    members = {"model_config.yaml": yaml.safe_dump(nemo_config(TINY)).encode(),
               "model_weights.ckpt": torch_bytes(nemo_weights(orig)), "../../evil.sh": b"echo pwned"}
    evil = write_tar(tmp_path / "evil.nemo", members)
    with pytest.raises(CheckpointError, match=r"unsafe member name '../../evil.sh'"):
        nemo.read(evil)
    assert not (tmp_path.parent / "evil.sh").exists()


def test_nemo_symlinked_member_refused(tmp_path):
    path = tmp_path / "link.nemo"
    with tarfile.open(path, "w:") as tar:
        data = yaml.safe_dump(nemo_config(TINY)).encode()
        info = tarfile.TarInfo("./model_config.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("./model_weights.ckpt")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(CheckpointError, match=r"'./model_weights.ckpt' is a link or special file"):
        nemo.read(path)


def test_nemo_unexpected_and_missing_keys(tmp_path):
    orig = OrigGenerator(TINY)
    weights = nemo_weights(orig)
    weights["generator.cond_layer.weight"] = torch.randn(16, 4, 1)
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): cond_layer.weight"):
        nemo.read(write_nemo(tmp_path / "u.nemo", orig, weights=weights))
    weights = nemo_weights(orig)
    del weights["generator.resblocks.1.0.convs2.1.bias"], weights["generator.conv_post.weight_v"]
    with pytest.raises(CheckpointError, match=r"missing keys \(2\): resblocks.2.convs2.1.bias, conv_post.weight_v"):
        nemo.read(write_nemo(tmp_path / "m.nemo", orig, weights=weights))
    cfg = nemo_config(TINY)
    cfg["generator"]["upsample_kernel_sizes"] = [8, 6]
    with pytest.raises(CheckpointError, match=r"shape mismatches \(1\): ups.1.weight_v: file \(8, 4, 4\) vs config "
                                              r"\(8, 4, 6\)"):
        nemo.read(write_nemo(tmp_path / "s.nemo", orig, cfg=cfg))
    with pytest.raises(CheckpointError, match=r"no 'generator.\*' weights in model_weights.ckpt"):
        nemo.read(write_nemo(tmp_path / "g.nemo", orig, weights={"encoder.w": torch.zeros(1)}))
    cfg = nemo_config(TINY)
    cfg["generator"]["_target_"] = "nemo.collections.tts.modules.univnet_modules.Generator"
    with pytest.raises(CheckpointError, match=r"expected NeMo's HiFi-GAN"):
        nemo.read(write_nemo(tmp_path / "t.nemo", orig, cfg=cfg))


def test_nemo_weights_needing_code_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    orig = OrigGenerator(TINY)
    weights = {**nemo_weights(orig), "evil": Evil()}
    with pytest.raises(CheckpointError, match=r"refusing to load .*m.nemo:model_weights.ckpt: it needs arbitrary code"):
        nemo.read(write_nemo(tmp_path / "m.nemo", orig, weights=weights))


# ---- SpeechBrain -----------------------------------------------------------------------------------
SB_YAML = """\
# Generator parameters
in_channels: 80
out_channels: 1
resblock_type: "{resblock}"
resblock_dilation_sizes: {dilations}
resblock_kernel_sizes: {kernels}
upsample_kernel_sizes: {up_kernels}
upsample_initial_channel: {uic}
upsample_factors: {rates}
inference_padding: 5
cond_channels: 0
conv_post_bias: {post_bias}
{extra}
generator: !new:speechbrain.lobes.models.HifiGAN.HifiganGenerator
    in_channels: !ref <in_channels>
    out_channels: !ref <out_channels>
    resblock_type: !ref <resblock_type>
    resblock_dilation_sizes: !ref <resblock_dilation_sizes>
    resblock_kernel_sizes: !ref <resblock_kernel_sizes>
    upsample_kernel_sizes: !ref <upsample_kernel_sizes>
    upsample_initial_channel: !ref <upsample_initial_channel>
    upsample_factors: !ref <upsample_factors>
    inference_padding: !ref <inference_padding>
    cond_channels: !ref <cond_channels>
    conv_post_bias: !ref <conv_post_bias>

modules:
    generator: !ref <generator>

decode: !name:speechbrain.inference.vocoders.HIFIGAN.decode_batch
scaled: !apply:math.sqrt [4]
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        generator: !ref <generator>
"""
SB_MEL = """\
sample_rate: 22050
hop_length: 256
win_length: 1024
n_fft: 1024
n_mel_channels: 80
mel_fmin: 0.0
mel_fmax: 8000.0
mel_normalized: False
power: 1
norm: "slaney"
mel_scale: "slaney"
dynamic_range_compression: True
"""


def speechbrain_generator(h, conv_post_bias=True):
    """SpeechBrain's HifiganGenerator: jik876's math, but every stride-1 conv (conv_pre, the resblocks',
    conv_post) goes through its CNN wrapper's `_manage_padding`: F.pad(x, [p, p], mode="reflect") with
    p = dilation * (k - 1) // 2, then the conv with padding 0."""
    gen = OrigGenerator(h)
    for m in gen.modules():
        if isinstance(m, torch.nn.Conv1d) and m.stride == (1,):  # weight norm subclasses it
            p = m.dilation[0] * (m.kernel_size[0] - 1) // 2
            m.padding = (0,)
            m.register_forward_pre_hook(lambda _, args, p=p: (torch.nn.functional.pad(args[0], [p, p], mode="reflect"),))
    if not conv_post_bias:
        gen.conv_post.register_parameter("bias", None)
    return gen.eval()


def sb_state_dict(orig, variant="weight_g"):
    """SpeechBrain's wrappers hold each torch conv as `.conv`: X.weight_g -> X.conv.weight_g."""
    out = {}
    for key, value in weight_norm_variant(orig, variant).items():
        i = min(key.find(tail) for tail in (".parametrizations", ".weight", ".bias") if tail in key)
        out[key[:i] + ".conv" + key[i:]] = value
    return out


def write_sb(folder, orig, h, variant="weight_g", mel=True, state_dict=None, raw_yaml=None, post_bias=True):
    folder.mkdir(exist_ok=True)
    torch.save(state_dict if state_dict is not None else sb_state_dict(orig, variant), folder / "generator.ckpt")
    text = raw_yaml or SB_YAML.format(resblock=h["resblock"], dilations=h["resblock_dilation_sizes"],
                                      kernels=h["resblock_kernel_sizes"], up_kernels=h["upsample_kernel_sizes"],
                                      uic=h["upsample_initial_channel"], rates=h["upsample_rates"],
                                      extra=SB_MEL if mel else "", post_bias=post_bias)
    (folder / "hyperparams.yaml").write_text(text)
    return folder


@pytest.mark.parametrize("h", [TINY, TINY2], ids=["resblock1", "resblock2"])
@pytest.mark.parametrize("variant", ["weight_g", "parametrizations", "plain"])
def test_speechbrain_folder_gives_the_same_audio(tmp_path, mel, h, variant):
    orig = speechbrain_generator(h)
    folder = write_sb(tmp_path / "tts-hifigan-ljspeech", orig, h, variant)
    for p in (folder, folder / "generator.ckpt", folder / "hyperparams.yaml"):
        assert speechbrain.detect(p) and not nemo.detect(p)
    sd, config, features = speechbrain.read(folder)
    want = orig.plain_state_dict() if variant == "plain" else orig.legacy_state_dict()
    assert sd.keys() == want.keys() and all(torch.equal(sd[k], want[k]) for k in want)
    assert config["resblock"] == h["resblock"] and config["padding_mode"] == "reflect"
    assert config["upsample_rates"] == h["upsample_rates"] and config["sampling_rate"] == 22050
    for fused in (True, False):
        model = HiFiGAN.from_pretrained(folder, fused=fused).eval()
        assert_same_audio(model, orig, mel)
        with torch.no_grad():  # SpeechBrain's inference(c, padding=True): 5 frames replicated each side, untrimmed
            torch.testing.assert_close(model(mel, inference_padding=True),
                                       orig(torch.nn.functional.pad(mel, (5, 5), mode="replicate")),
                                       rtol=1e-5, atol=1e-5)
    zero_padded = load_ours(sd, {k: v for k, v in config.items() if k != "padding_mode"})
    with torch.no_grad():  # the edges differ with zero padding: what a loader ignoring the mode would give
        assert not torch.allclose(zero_padded(mel), orig(mel), rtol=1e-3, atol=1e-3)
    assert (features["sample_rate"], features["n_fft"], features["hop_length"], features["n_mels"]) == (22050, 1024,
                                                                                                         256, 80)
    assert (features["log"], features["log_floor"], features["framing"], features["window_periodic"]) == (
        "ln", 1e-5, "centered", True)
    assert features["missing"] == [] and features["inference_padding"] == 5


def test_speechbrain_released_yaml_without_mel_settings(tmp_path):
    orig = OrigGenerator(TINY)
    _, config, features = speechbrain.read(write_sb(tmp_path / "sb", orig, TINY, mel=False) / "generator.ckpt")
    assert "sampling_rate" not in config and features["sample_rate"] is None and features["n_mels"] == 80
    assert {"sample_rate", "n_fft", "hop_length", "fmax", "log"} <= set(features["missing"])
    assert features["recipe_defaults"]["sample_rate"] == 22050


def test_speechbrain_resblock_type_from_keys(tmp_path, mel):
    orig = speechbrain_generator(TINY2)  # ResBlock2 weights; the yaml says "1"
    folder = write_sb(tmp_path / "sb", orig, {**TINY2, "resblock": "1"})
    sd, config, _ = speechbrain.read(folder)
    assert config["resblock"] == "2"
    assert_same_audio(load_ours(sd, config), orig, mel)


def test_speechbrain_without_conv_post_bias_and_a_too_short_mel(tmp_path, mel):
    orig = speechbrain_generator(TINY, conv_post_bias=False)
    folder = write_sb(tmp_path / "sb", orig, TINY, post_bias=False)
    for fused in (True, False):
        model = HiFiGAN.from_pretrained(folder, fused=fused).eval()
        assert model.conv_post.bias is None
        assert_same_audio(model, orig, mel)
        # conv_pre (k 7) reflect-pads 3 frames, which needs 4 or more
        with pytest.raises(ValueError, match=r"reflect padding of 3 steps needs an input longer than 3 steps, got 3"):
            model(torch.randn(1, 80, 3))


def test_speechbrain_detect_is_by_structure(tmp_path):
    orig = OrigGenerator(TINY)
    folder = write_sb(tmp_path / "sb", orig, TINY)
    (folder / "hyperparams.yaml").unlink()
    assert not speechbrain.detect(folder)
    plain = write_sb(tmp_path / "plain", orig, TINY, state_dict=orig.legacy_state_dict())  # no .conv wrappers
    assert not speechbrain.detect(plain)
    with pytest.raises(CheckpointError, match=r"no keys with SpeechBrain's '.conv.' wrapper"):
        speechbrain.read(plain)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "generator.ckpt").write_bytes(b"junk")
    (tmp_path / "junk" / "hyperparams.yaml").write_text("a: 1\n")
    assert not speechbrain.detect(tmp_path / "junk")
    with pytest.raises(CheckpointError, match=r"hyperparams.yaml is missing"):
        speechbrain.read(folder)


def test_speechbrain_unexpected_and_missing_keys(tmp_path):
    orig = OrigGenerator(TINY)
    sd = {**sb_state_dict(orig), "cond_layer.conv.weight": torch.randn(16, 4, 1), "cond_layer.conv.bias":
          torch.randn(16)}
    with pytest.raises(CheckpointError, match=r"unexpected keys \(2\): cond_layer.bias, cond_layer.weight"):
        speechbrain.read(write_sb(tmp_path / "u", orig, TINY, state_dict=sd))
    sd = sb_state_dict(orig)
    del sd["conv_post.conv.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): conv_post.bias"):
        speechbrain.read(write_sb(tmp_path / "m", orig, TINY, state_dict=sd))
    sd = {**sb_state_dict(orig), "extra.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"unexpected keys without the '.conv.' wrapper \(1\): extra.weight"):
        speechbrain.read(write_sb(tmp_path / "w", orig, TINY, state_dict=sd))


def test_speechbrain_bad_yaml(tmp_path):
    orig = OrigGenerator(TINY)
    unit = SB_YAML.replace("HifiGAN.HifiganGenerator", "HifiGAN.UnitHifiganGenerator")
    with pytest.raises(CheckpointError, match=r"UnitHifiganGenerator is SpeechBrain's discrete-unit HiFi-GAN"):
        speechbrain.read(write_sb(tmp_path / "unit", orig, TINY, raw_yaml=unit.format(
            resblock="1", dilations=TINY["resblock_dilation_sizes"], kernels=TINY["resblock_kernel_sizes"],
            up_kernels=TINY["upsample_kernel_sizes"], uic=16, rates=TINY["upsample_rates"], extra="", post_bias=True)))
    with pytest.raises(CheckpointError, match=r"no '!new:speechbrain.lobes.models.HifiGAN.HifiganGenerator' entry"):
        speechbrain.read(write_sb(tmp_path / "none", orig, TINY, raw_yaml="model: !new:torch.nn.Linear\n"))
    evil = "x: !!python/object/apply:os.system ['echo pwned']\n"
    with pytest.raises(CheckpointError, match=r"not readable as \(Hyper\)YAML"):
        speechbrain.read(write_sb(tmp_path / "evil", orig, TINY, raw_yaml=evil))


# ---- layout.py: the checks every toolkit reader shares ---------------------------------------------------
def test_layout_architecture_and_strict_check_on_the_original_generator():
    sd = {layout.rename_weight_norm(k): v for k, v in OrigGenerator(TINY).state_dict().items()}
    assert "conv_pre.weight_g" in sd and not any("parametrizations" in k for k in sd)
    arch = layout.infer_architecture(sd, "orig")
    assert (arch["resblock"], arch["upsample_kernel_sizes"], arch["resblock_kernel_sizes"], arch["convs_per_block"]) \
        == ("1", TINY["upsample_kernel_sizes"], TINY["resblock_kernel_sizes"], [2, 2])
    config = {**TINY, "num_mels": arch["num_mels"]}
    assert set(layout.expected_layers(config)) == {k.rpartition(".")[0] for k in sd}
    layout.check_generator_keys(sd, config, "orig")  # passes
    bad = {**sd, "conv_pre.weight": sd["conv_pre.weight_v"], "ups.1.weight_v": torch.zeros(8, 4, 3)}
    del bad["conv_post.bias"]
    with pytest.raises(CheckpointError, match=r"orig: .*\n  missing keys \(1\): G\.conv_post\.bias\n  unexpected keys "
                                              r"\(1\): G\.conv_pre\.weight \(alongside weight_g/weight_v\)\n  shape "
                                              r"mismatches \(1\): G\.ups\.1\.weight_v: file \(8, 4, 3\) vs config"):
        layout.check_generator_keys(bad, config, "orig", name=lambda k: "G." + k)
    mixed = {**sd, "resblocks.3.convs.0.weight": torch.zeros(4, 4, 5)}
    with pytest.raises(CheckpointError, match=r"orig: resblock keys mix ResBlock1 .* and ResBlock2"):
        layout.infer_architecture(mixed, "orig")

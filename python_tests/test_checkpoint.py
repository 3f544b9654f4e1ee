"""Every supported checkpoint format loads and gives the original's audio; bad files fail clearly."""
import json
import os

import pytest
import torch

from original_hifigan import PRESETS, TINY, OrigGenerator
from vocoder_ext import CheckpointError, HiFiGAN



@pytest.fixture
def orig():
    return OrigGenerator(TINY).eval()


@pytest.fixture
def mel():
    return torch.randn(2, 80, 6)


def assert_same_audio(model, orig, mel):
    with torch.no_grad():
        want = orig(mel)
        got = model.eval()(mel)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_original_g_file_with_config_json(tmp_path, orig, mel):
    torch.save({"generator": orig.legacy_state_dict()}, tmp_path / "g_00000100")
    (tmp_path / "config.json").write_text(json.dumps({**TINY, "num_mels": 80, "batch_size": 16}))
    model = HiFiGAN.from_pretrained(str(tmp_path / "g_00000100"))
    assert model.fused and model.weight_normed
    assert_same_audio(model, orig, mel)


def test_folder_picks_latest_generator(tmp_path, orig, mel):
    older = OrigGenerator(TINY)
    torch.save({"generator": older.legacy_state_dict()}, tmp_path / "g_00000100")
    torch.save({"generator": orig.legacy_state_dict()}, tmp_path / "g_00002000")
    torch.save({"mpd": {}, "msd": {}}, tmp_path / "do_00002000")
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    assert_same_audio(HiFiGAN.from_pretrained(str(tmp_path), fused=False), orig, mel)


def test_g_file_without_config_needs_one(tmp_path, orig, mel):
    torch.save({"generator": orig.legacy_state_dict()}, tmp_path / "g_00000001")
    with pytest.raises(CheckpointError, match=r"holds no config and there is no config.json beside it"):
        HiFiGAN.from_pretrained(str(tmp_path / "g_00000001"))
    assert_same_audio(HiFiGAN.from_pretrained(str(tmp_path / "g_00000001"), config=TINY), orig, mel)


@pytest.mark.parametrize("order", [[3, 5], [5, 3]])
def test_nvidia_checkpoint_nested_keys_any_kernel_order(tmp_path, orig, mel, order):
    ckpt_config = {**TINY, "resblock_kernel_sizes": order,
                   "resblock_dilation_sizes": [TINY["resblock_dilation_sizes"][TINY["resblock_kernel_sizes"].index(k)]
                                               for k in order]}
    path = tmp_path / "hifigan_gen_checkpoint_6500.pt"
    torch.save({"generator": orig.nvidia_state_dict(order), "gen_ema": None, "config": ckpt_config,
                "train_setup": {"sampling_rate": 22050}, "train_state": {"epoch": 6500}}, path)
    model = HiFiGAN.from_pretrained(str(path))
    assert model.config["resblock_kernel_sizes"] == order
    assert_same_audio(model, orig, mel)
    # The same nested state dict into a model whose config lists the kernels the other way round.
    other = HiFiGAN(TINY)
    other.load_state_dict({"module." + k: v for k, v in orig.nvidia_state_dict(order).items()})
    assert_same_audio(other, orig, mel)


def test_plain_weights_after_weight_norm_removal(tmp_path, orig, mel):
    sd = orig.plain_state_dict()
    torch.save({"generator": sd}, tmp_path / "g_00000005")
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    model = HiFiGAN.from_pretrained(str(tmp_path / "g_00000005"))
    assert not model.weight_normed
    assert_same_audio(model, orig, mel)
    # into a weight-normed model: g = ||w||, v = w
    wn = HiFiGAN(TINY)
    wn.load_state_dict(sd)
    assert wn.weight_normed
    assert_same_audio(wn, orig, mel)
    # and weight-normed keys into a model whose weight norm is removed
    removed = HiFiGAN(TINY).remove_weight_norm()
    removed.load_state_dict(orig.legacy_state_dict())
    assert_same_audio(removed, orig, mel)


@pytest.mark.parametrize("remove", [False, True])
def test_save_pretrained_round_trip(tmp_path, orig, mel, remove):
    model = HiFiGAN(TINY)
    model.load_state_dict(orig.state_dict())
    if remove:
        model.remove_weight_norm()
    path = model.save_pretrained(str(tmp_path))
    assert path == str(tmp_path / "generator.pt") and not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    loaded = HiFiGAN.from_pretrained(path, fused=False)
    assert loaded.config["upsample_rates"] == TINY["upsample_rates"] and loaded.weight_normed != remove
    assert_same_audio(loaded, orig, mel)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_strict_mismatch_lists_everything(orig):
    sd = orig.legacy_state_dict()
    del sd["conv_post.bias"]
    sd["extra.weight"] = torch.zeros(1)
    model = HiFiGAN(TINY)
    with pytest.raises(CheckpointError) as e:
        model.load_state_dict(sd)
    text = str(e.value)
    assert "missing keys (1): conv_post.bias" in text and "unexpected keys (1): extra.weight" in text
    result = model.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["conv_post.bias"]


def test_config_that_does_not_fit_the_weights(tmp_path):
    v2 = OrigGenerator(PRESETS["v2"])
    torch.save({"generator": v2.legacy_state_dict(), "config": PRESETS["v3"]}, tmp_path / "hifigan_gen_checkpoint_1.pt")
    with pytest.raises(CheckpointError, match=r"does not match the model config .*resblock 2") as e:
        HiFiGAN.from_pretrained(str(tmp_path / "hifigan_gen_checkpoint_1.pt"))
    assert "shape mismatches" in str(e.value) and "conv_pre.weight_v: checkpoint (128, 80, 7) vs model (256, 80, 7)" in str(e.value)


def test_missing_truncated_and_foreign_files(tmp_path, orig):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        HiFiGAN.from_pretrained(str(tmp_path / "nope.pt"), config=TINY)
    good = tmp_path / "g_00000001"
    torch.save({"generator": orig.legacy_state_dict()}, good)
    data = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut.pt is not a readable PyTorch checkpoint"):
        HiFiGAN.from_pretrained(str(tmp_path / "cut.pt"), config=TINY)
    (tmp_path / "text.pt").write_text("hello, not a checkpoint\n")
    with pytest.raises(CheckpointError, match=r"text.pt is not a readable PyTorch checkpoint"):
        HiFiGAN.from_pretrained(str(tmp_path / "text.pt"), config=TINY)
    torch.save({"optimizer": {"lr": 1.0}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"other.pt: not a HiFi-GAN generator checkpoint"):
        HiFiGAN.from_pretrained(str(tmp_path / "other.pt"), config=TINY)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no generator checkpoint in folder"):
        HiFiGAN.from_pretrained(str(empty), config=TINY)


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_checkpoint_needing_arbitrary_code_is_refused(tmp_path, orig):
    path = tmp_path / "evil.pt"
    torch.save({"generator": orig.legacy_state_dict(), "hook": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"refusing to load .*evil.pt: it needs arbitrary code"):
        HiFiGAN.from_pretrained(str(path), config=TINY)

"""`python -m vocoder_ext export`: a generator as an AOTInductor package that loads back and gives the model's
audio, with its serving metadata; bad requests refused. (The C++ program that runs such a package is checked by
`make cmake-check`: examples/vocode/check.py.)"""
import json

import pytest
import torch

from vocoder_ext import PRESETS, HiFiGAN, WaveGlow
from vocoder_ext.cli import main


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_export_writes_a_package_equal_to_the_model(capsys, tmp_path):
    torch.manual_seed(0)
    checkpoint = HiFiGAN("v2").save_pretrained(str(tmp_path / "v2.pt"))
    package = tmp_path / "v2.pt2"
    code, err = cli(capsys, "export", "--checkpoint", checkpoint, "--out", package, "--frames", 12)
    assert code == 0, err
    loaded = torch._inductor.aoti_load_package(str(package))
    model = HiFiGAN.from_pretrained(checkpoint).remove_weight_norm().eval()
    mel = torch.randn(1, 80, 12)
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), model(mel), rtol=0, atol=1e-5)
    metadata = loaded.loader.get_metadata()
    assert (metadata["sampling_rate"], metadata["hop_length"], metadata["num_mels"]) == ("22050", "256", "80")
    assert (metadata["min_frames"], metadata["max_frames"]) == ("12", "12")  # static: what C++ callers check
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".export-")] == []  # no staging left


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (export --device cuda)")
def test_cuda_export_writes_a_package_equal_to_the_model(capsys, tmp_path):
    torch.manual_seed(0)
    checkpoint = HiFiGAN("v2").save_pretrained(str(tmp_path / "v2.pt"))
    package = tmp_path / "v2_cuda.pt2"
    code, err = cli(capsys, "export", "--checkpoint", checkpoint, "--out", package, "--frames", 12,
                    "--device", "cuda")
    assert code == 0, err
    loaded = torch._inductor.aoti_load_package(str(package))
    model = HiFiGAN.from_pretrained(checkpoint).remove_weight_norm().eval().cuda()
    mel = torch.randn(1, 80, 12, device="cuda")
    with torch.no_grad():
        got, want = loaded(mel), model(mel)
    assert got.device.type == "cuda"
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("argv, message", [
    (["--config", "v2", "--out", "model.onnx"], "an AOTInductor package is a .pt2 file"),
    (["--out", "m.pt2"], "give --checkpoint PATH"),
    (["--config", "v2", "--out", "m.pt2", "--frames", 0], "--frames must be >= 1"),
    (["--config", "v2", "--out", "m.pt2", "--device", "cuda"], "CUDA is not available here"),
    (["--checkpoint", "missing.pt", "--out", "m.pt2"], "--checkpoint missing.pt"),
    (["--config", "reflect.json", "--out", "m.pt2", "--dynamic-frames", "--max-frames", 64],
     "cannot be exported for mels of 1..64 frames"),
    (["--checkpoint", "waveglow.pt", "--out", "m.pt2"], "not a HiFi-GAN generator checkpoint"),
])
def test_bad_requests_are_refused(capsys, tmp_path, argv, message):
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (tmp_path / "reflect.json").write_text(json.dumps({**PRESETS["v3"], "padding_mode": "reflect"}))
    tiny = WaveGlow(n_flows=2, n_early_every=2, WN_config={"n_layers": 2, "n_channels": 8, "kernel_size": 3})
    torch.save({"model": tiny.state_dict()}, tmp_path / "waveglow.pt")
    in_tmp = (".pt2", ".onnx", "reflect.json", "waveglow.pt")
    code, err = cli(capsys, "export", *[tmp_path / a if str(a).endswith(in_tmp) else a for a in argv])
    assert code == 2 and message in err, err

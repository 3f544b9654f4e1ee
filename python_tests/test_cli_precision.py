"""--precision fp32|bf16 of `synth` and `demo`: bf16 audio close to (not equal to) fp32 where the CPU computes
in bf16, what demo.json records, and the values and combinations that are refused."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vocoder_ext import HiFiGAN
from vocoder_ext.cli import main
from vocoder_ext.cli.precision import bf16_kernels, snr_db

DATA = Path(__file__).resolve().parents[1] / "data"
BF16_SNR = (30.0, 70.0)  # see test_bench_bf16.py


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_wav(path):
    return torch.from_numpy(sf.read(path, dtype="float32")[0])


@pytest.fixture
def v2_checkpoint(tmp_path):
    torch.manual_seed(0)  # a fixed model: both runs of synth load the same weights
    return HiFiGAN("v2").save_pretrained(str(tmp_path / "v2.pt"))


def test_synth_bf16_is_close_to_fp32(capsys, tmp_path, v2_checkpoint):
    mel_file = tmp_path / "m.npy"
    np.save(mel_file, (torch.randn(80, 40) - 5).numpy())
    wavs = {}
    for precision in ("fp32", "bf16"):
        code, _, err = cli(capsys, "synth", mel_file, "-o", tmp_path / precision, "--checkpoint", v2_checkpoint,
                           "--precision", precision)
        assert code == 0, err
        wavs[precision] = read_wav(tmp_path / precision / "m.wav")
    fp32, bf16 = wavs["fp32"], wavs["bf16"]
    assert fp32.numel() == bf16.numel() == 40 * 256 and fp32.abs().max() > 0.01
    if bf16_kernels():
        assert not torch.equal(fp32, bf16)
        assert BF16_SNR[0] < snr_db(bf16, fp32) < BF16_SNR[1]
    else:  # the kernels fall back to fp32
        assert torch.equal(fp32, bf16)


@pytest.mark.parametrize("command", [["synth", "x.npy", "-o", "out"], ["demo"], ["bench"]])
def test_unknown_precision_is_refused_by_argparse(capsys, command):
    code, _, err = cli(capsys, *command, "--precision", "fp16")
    assert code == 2 and "--precision: invalid choice: 'fp16'" in err


def test_synth_bf16_is_refused_off_the_cpu(capsys, tmp_path):
    mel_file = tmp_path / "m.npy"
    np.save(mel_file, np.zeros((80, 4), np.float32))
    code, _, err = cli(capsys, "synth", mel_file, "-o", tmp_path / "out", "--config", "v2", "--precision", "bf16",
                       "--device", "cuda")
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: --precision bf16")
    assert "CPU only" in err and not (tmp_path / "out").exists()


def test_demo_bf16_runs_the_fused_path_in_bf16_against_fp32_eager(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an untrained v2: no checkpoints/demo/ here
    out = tmp_path / "demo"
    code, stdout, err = cli(capsys, "demo", "--data", DATA, "--filelist", DATA / "filelists" / "validation.txt",
                            "--out", out, "--limit", 1, "--repeats", 1, "--waveglow-channels", 0, "--threads", 1,
                            "--config", "v2", "--precision", "bf16")
    assert code == 0, err
    report = json.loads((out / "demo.json").read_text())
    fused_precision = "bf16" if bf16_kernels() else report["precision"]["fused"]
    assert report["precision"] == {"requested": "bf16", "fused": fused_precision, "eager": "fp32", "waveglow": "fp32"}
    assert f"precision: fused path {fused_precision}, eager path fp32" in stdout
    row = report["utterances"][0]
    fused = read_wav(out / f"{row['utterance']}_fused.wav")
    eager = read_wav(out / f"{row['utterance']}_eager.wav")
    assert report["total"]["snr_db"] == row["snr_db"]  # one utterance: the worst is it
    if bf16_kernels():
        assert BF16_SNR[0] < row["snr_db"] < BF16_SNR[1] and not torch.equal(fused, eager)
        assert snr_db(fused, eager) == pytest.approx(row["snr_db"], abs=1.0)  # after the wavs' 16-bit rounding
        assert f"{row['snr_db']:.1f}" in stdout
    else:
        assert row["snr_db"] > 100 and fused_precision.startswith("fp32")

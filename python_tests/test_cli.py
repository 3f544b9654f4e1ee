"""python -m vocoder_ext {info, mel, synth, demo}: run in-process through cli.main(argv), plus one
subprocess run to prove the module entry point works."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vocoder_ext import HiFiGAN, audio
from vocoder_ext.cli import main

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
WAVS = sorted((DATA / "wavs").glob("*.wav"))
TINY = {"resblock": "1", "upsample_rates": [4, 2], "upsample_kernel_sizes": [8, 4],
        "upsample_initial_channel": 16, "resblock_kernel_sizes": [3, 5],
        "resblock_dilation_sizes": [[1, 3], [1, 2]]}
TINY_HOP = 8
INT16_STEP = 1 / 32768  # one quantisation step of the PCM_16 wavs synth writes


def cli(capsys, *argv):
    """-> (exit code, stdout, stderr) of main(argv)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error(code, err, *fragments):
    """Exit status 2 and one `error: ...` line, last on stderr (after any warning), no traceback."""
    assert code == 2
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for fragment in fragments:
        assert fragment in last


def read_wav(path):
    data, sr = sf.read(path, dtype="float32")
    return torch.from_numpy(data), sr


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return path


@pytest.fixture
def tiny_checkpoint(tmp_path):
    model = HiFiGAN(TINY)
    return Path(model.save_pretrained(str(tmp_path / "tiny.pt"))), model


def random_mel(frames):
    return torch.randn(80, frames) - 5.0  # roughly the range of real log-mels


# ---- info -----------------------------------------------------------------------------------
INFO_KEYS = {"vocoder_ext", "python", "torch", "numpy", "triton", "vocoders", "extension", "VOCODER_EXT_BACKEND",
             "backends", "cpu", "cuda", "triton_status"}


def test_info_text(capsys):
    code, out, _ = cli(capsys, "info")
    assert code == 0
    for key in INFO_KEYS | {"avx512f", "torch_capability", "torch_threads", "lrelu_conv1d"}:
        assert f"{key}:" in out


def test_info_json(capsys):
    code, out, _ = cli(capsys, "info", "--json")
    assert code == 0
    info = json.loads(out)
    assert INFO_KEYS <= set(info)
    assert info["torch"] == torch.__version__
    for op in ("lrelu_conv1d", "lrelu_conv_transpose1d"):
        assert set(info["backends"][op]) == {"cpu", "cuda"}
    assert {"processor", "cores", "torch_capability", "features", "torch_threads"} <= set(info["cpu"])
    assert {"available", "torch_cuda", "devices"} <= set(info["cuda"])
    if isinstance(info["cpu"]["features"], dict):  # Linux: read from /proc/cpuinfo
        assert set(info["cpu"]["features"]) == {"avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx"}


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "vocoder_ext", "info"], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "vocoder_ext: " in result.stdout and "backends:" in result.stdout


def test_no_command_is_a_usage_error(capsys):
    code, _, err = cli(capsys)
    assert code == 2 and "usage:" in err


# ---- mel ------------------------------------------------------------------------------------
def expected_mel(wav):
    y, _ = audio.load_wav(wav)
    return audio.mel_spectrogram(y).numpy(), y.numel()


def test_mel_single_wav(capsys, tmp_path):
    code, _, err = cli(capsys, "mel", WAVS[0], "-o", tmp_path / "mels")
    assert code == 0, err
    got = np.load(tmp_path / "mels" / f"{WAVS[0].stem}.npy")
    want, samples = expected_mel(WAVS[0])
    assert got.dtype == np.float32 and got.shape == (80, samples // 256)
    np.testing.assert_array_equal(got, want)


def test_mel_folder_as_pt(capsys, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for wav in WAVS[:2]:
        shutil.copy(wav, folder)
    (folder / "notes.txt").write_text("not audio")  # only *.wav are taken
    code, _, err = cli(capsys, "mel", folder, "-o", tmp_path / "mels", "--format", "pt")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "mels").iterdir()) == [f"{w.stem}.pt" for w in WAVS[:2]]
    for wav in WAVS[:2]:
        got = torch.load(tmp_path / "mels" / f"{wav.stem}.pt", weights_only=True)
        want, samples = expected_mel(wav)
        assert got.dtype == torch.float32 and got.shape == (80, samples // 256)
        np.testing.assert_array_equal(got.numpy(), want)


def test_mel_wrong_sampling_rate(capsys, tmp_path):
    wav = tmp_path / "slow.wav"
    audio.save_wav(wav, torch.rand(16000) - 0.5, 16000)
    code, _, err = cli(capsys, "mel", wav, "-o", tmp_path / "mels")
    assert_user_error(code, err, "slow.wav", "16000", "22050")


def test_mel_missing_input(capsys, tmp_path):
    code, _, err = cli(capsys, "mel", tmp_path / "nope.wav", "-o", tmp_path / "mels")
    assert_user_error(code, err, "no such file or folder", "nope.wav")


# ---- synth ----------------------------------------------------------------------------------
def expected_audio(model, mel):
    model = model.eval().remove_weight_norm()
    with torch.no_grad():
        return model(mel.unsqueeze(0))[0, 0]


def test_synth_npy_and_pt_from_checkpoint(capsys, tmp_path, tiny_checkpoint):
    checkpoint, model = tiny_checkpoint
    mels = {"a": random_mel(13), "b": random_mel(9)}
    folder = tmp_path / "mels"
    folder.mkdir()
    np.save(folder / "a.npy", mels["a"].numpy())
    torch.save(mels["b"].unsqueeze(0), folder / "b.pt")  # (1, 80, T) is accepted too

    outputs = {}
    for flag in ("--fused", "--no-fused"):
        out_dir = tmp_path / flag.strip("-")
        code, _, err = cli(capsys, "synth", folder, "-o", out_dir, "--checkpoint", checkpoint, flag)
        assert code == 0, err
        assert "UNTRAINED" not in err
        for name, mel in mels.items():
            wav, sr = read_wav(out_dir / f"{name}.wav")
            assert sr == 22050 and wav.numel() == mel.shape[1] * TINY_HOP
            outputs[flag, name] = wav
    for name, mel in mels.items():
        torch.testing.assert_close(outputs["--fused", name], outputs["--no-fused", name], rtol=0, atol=1e-4)
        want = expected_audio(model, mel)
        torch.testing.assert_close(outputs["--fused", name], want, rtol=0, atol=INT16_STEP)


def test_synth_config_only_warns_untrained(capsys, tmp_path, tiny_config):
    mel_file = tmp_path / "m.npy"
    np.save(mel_file, random_mel(7).numpy())
    code, _, err = cli(capsys, "synth", mel_file, "-o", tmp_path / "out", "--config", tiny_config)
    assert code == 0, err
    assert "UNTRAINED" in err and "noise" in err
    wav, _ = read_wav(tmp_path / "out" / "m.wav")
    assert wav.numel() == 7 * TINY_HOP


def test_synth_batches_like_one_at_a_time(capsys, tmp_path, tiny_checkpoint):
    checkpoint, _ = tiny_checkpoint
    folder = tmp_path / "mels"
    folder.mkdir()
    frames = {"long": 64, "short": 40, "mid": 52}
    for name, n in frames.items():
        np.save(folder / f"{name}.npy", random_mel(n).numpy())
    for batch_size in (1, 2):
        code, _, err = cli(capsys, "synth", folder, "-o", tmp_path / f"b{batch_size}", "--checkpoint", checkpoint,
                           "--batch-size", batch_size)
        assert code == 0, err
    # Batches are formed longest first: (long, mid), then (short) alone. The generator is not causal,
    # so the silence padding of a shorter batch item reaches back into the end of its audio by the
    # receptive field (under 10 frames for this config): compare everything before that.
    tail = 12 * TINY_HOP
    for name, n in frames.items():
        one, _ = read_wav(tmp_path / "b1" / f"{name}.wav")
        two, _ = read_wav(tmp_path / "b2" / f"{name}.wav")
        assert one.numel() == two.numel() == n * TINY_HOP
        keep = n * TINY_HOP if name != "mid" else n * TINY_HOP - tail
        torch.testing.assert_close(two[:keep], one[:keep], rtol=0, atol=INT16_STEP)


@pytest.mark.parametrize("content, message", [
    (np.zeros((40, 10), np.float32), "expected shape (80, frames)"),
    (np.zeros((80,), np.float32), "expected shape (80, frames)"),
    (np.zeros((2, 80, 10), np.float32), "expected shape (80, frames)"),
    (np.zeros((80, 10), np.int16), "expected floating-point values"),
    (b"not a numpy file", "cannot read mel file"),
])
def test_synth_bad_mel_file(capsys, tmp_path, tiny_config, content, message):
    mel_file = tmp_path / "bad.npy"
    if isinstance(content, bytes):
        mel_file.write_bytes(content)
    else:
        np.save(mel_file, content)
    code, _, err = cli(capsys, "synth", mel_file, "-o", tmp_path / "out", "--config", tiny_config)
    assert_user_error(code, err, message, "bad.npy")
    assert not (tmp_path / "out" / "bad.wav").exists()


def test_synth_bad_pt_file(capsys, tmp_path, tiny_config):
    mel_file = tmp_path / "bad.pt"
    torch.save({"mel": random_mel(5)}, mel_file)  # a dict, not a tensor
    code, _, err = cli(capsys, "synth", mel_file, "-o", tmp_path / "out", "--config", tiny_config)
    assert_user_error(code, err, "bad.pt", "expected a tensor")


def test_synth_missing_input(capsys, tmp_path, tiny_config):
    code, _, err = cli(capsys, "synth", tmp_path / "nope", "-o", tmp_path / "out", "--config", tiny_config)
    assert_user_error(code, err, "no such file or folder", "nope")


def test_synth_missing_checkpoint(capsys, tmp_path):
    mel_file = tmp_path / "m.npy"
    np.save(mel_file, random_mel(5).numpy())
    code, _, err = cli(capsys, "synth", mel_file, "-o", tmp_path / "out", "--checkpoint", tmp_path / "g_00001000")
    assert_user_error(code, err, "checkpoint not found", "g_00001000")


def test_synth_needs_checkpoint_or_config(capsys, tmp_path):
    mel_file = tmp_path / "m.npy"
    np.save(mel_file, random_mel(5).numpy())
    code, _, err = cli(capsys, "synth", mel_file, "-o", tmp_path / "out")
    assert_user_error(code, err, "--checkpoint", "--config")


# ---- demo -----------------------------------------------------------------------------------
def demo_args(out, limit, waveglow_channels=0):
    return ["demo", "--data", DATA, "--filelist", DATA / "filelists" / "validation.txt", "--out", out,
            "--limit", limit, "--repeats", 1, "--waveglow-channels", waveglow_channels]


def validation_stems(n):
    return [Path(line.strip()).stem for line in (DATA / "filelists" / "validation.txt").read_text().split()][:n]


def test_demo_untrained(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # so a trained checkpoints/demo/ in the repo is not picked up
    out = tmp_path / "demo"
    code, stdout, err = cli(capsys, *demo_args(out, 2, waveglow_channels=16), "--config", "v2")
    assert code == 0, err
    lines = stdout.strip().splitlines()
    assert "UNTRAINED" in lines[0] and "UNTRAINED" in lines[-1]
    assert "lrelu_conv1d served by" in stdout
    for stem in validation_stems(2):
        assert stem in stdout
        fused, sr = read_wav(out / f"{stem}_fused.wav")
        eager, _ = read_wav(out / f"{stem}_eager.wav")
        assert sr == 22050 and fused.numel() == eager.numel() > 0
        torch.testing.assert_close(fused, eager, rtol=0, atol=1e-4)
    report = json.loads((out / "demo.json").read_text())
    assert [row["utterance"] for row in report["utterances"]] == validation_stems(2)
    assert report["model"]["untrained"] is True
    assert report["threads"] == 2 and report["total"]["max_abs_diff"] < 1e-4
    assert {"machine", "torch", "date", "command", "backends"} <= set(report)
    assert report["total"]["x_realtime_fused"] > 0
    # the WaveGlow row: random weights said plainly, both paths written and equal
    assert "WaveGlow 16 ch, UNTRAINED (random weights)" in stdout
    stem = validation_stems(1)[0]
    wg_fused, sr = read_wav(out / f"{stem}_waveglow_fused.wav")
    wg_eager, _ = read_wav(out / f"{stem}_waveglow_eager.wav")
    assert sr == 22050 and wg_fused.numel() == 86 * 256 and wg_fused.abs().max() > 0.5
    torch.testing.assert_close(wg_fused, wg_eager, rtol=0, atol=2 * INT16_STEP)
    assert report["waveglow"]["utterance"] == stem and report["waveglow"]["max_abs_diff"] < 1e-4


def test_demo_with_checkpoint(capsys, tmp_path, tiny_checkpoint):
    checkpoint, _ = tiny_checkpoint
    out = tmp_path / "demo"
    code, stdout, err = cli(capsys, *demo_args(out, 1), "--checkpoint", checkpoint)
    assert code == 0, err
    assert "UNTRAINED" not in stdout and str(checkpoint) in stdout
    stem = validation_stems(1)[0]
    fused, _ = read_wav(out / f"{stem}_fused.wav")
    samples = audio.load_wav(DATA / "wavs" / f"{stem}.wav")[0].numel()
    assert fused.numel() == samples // TINY_HOP * TINY_HOP  # mels use the model's hop


def test_demo_missing_filelist(capsys, tmp_path):
    code, _, err = cli(capsys, "demo", "--filelist", tmp_path / "none.txt", "--out", tmp_path / "demo")
    assert_user_error(code, err, "no such filelist", "none.txt")

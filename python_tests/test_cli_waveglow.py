"""The CLI's WaveGlow paths and the denoiser: synth --vocoder waveglow --sigma --seed --denoise, mel
--frontend tacotron2, and their bad inputs; run in-process through cli.main(argv)."""
import numpy as np
import pytest
import soundfile as sf
import torch

from vocoder_ext import Denoiser, HiFiGAN, WaveGlow, audio
from vocoder_ext.cli import main

TINY_WAVEGLOW = dict(n_mel_channels=80, n_flows=4, n_group=8, n_early_every=2, n_early_size=2,
                     WN_config=dict(n_layers=2, n_channels=8, kernel_size=3))
TINY_HIFIGAN = {"resblock": "2", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
                "upsample_initial_channel": 16, "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 2]]}
INT16_STEP = 1 / 32768


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_wav(path):
    data, sr = sf.read(path, dtype="float32")
    return torch.from_numpy(data), sr


@pytest.fixture
def waveglow_checkpoint(tmp_path):
    model = WaveGlow(**TINY_WAVEGLOW)
    for wn in model.WN:  # not the identity coupling of a fresh model
        torch.nn.init.normal_(wn.end.weight, std=0.1)
    return model.save_pretrained(str(tmp_path / "waveglow.pt")), model


@pytest.fixture
def mel_file(tmp_path):
    path = tmp_path / "mels" / "utt.npy"
    path.parent.mkdir()
    mel = torch.randn(80, 7) - 5.0
    np.save(path, mel.numpy())
    return path, mel


def test_synth_waveglow_with_seed_equals_infer(capsys, tmp_path, waveglow_checkpoint, mel_file):
    checkpoint, model = waveglow_checkpoint
    path, mel = mel_file
    code, _, err = cli(capsys, "synth", path, "-o", tmp_path / "out", "--vocoder", "waveglow", "--checkpoint",
                       checkpoint, "--sigma", 0.6, "--seed", 7)
    assert code == 0, err
    got, sr = read_wav(tmp_path / "out" / "utt.wav")
    torch.manual_seed(7)
    with torch.no_grad():
        want = model.remove_weight_norm().infer(mel[None], sigma=0.6)[0]
    assert sr == 22050 and got.numel() == 7 * 256
    torch.testing.assert_close(got, want.clamp(-1, 1), rtol=0, atol=INT16_STEP)


def test_synth_waveglow_denoised_equals_the_denoiser(capsys, tmp_path, waveglow_checkpoint, mel_file):
    checkpoint, model = waveglow_checkpoint
    path, mel = mel_file
    code, _, err = cli(capsys, "synth", path, "-o", tmp_path / "out", "--vocoder", "waveglow", "--checkpoint",
                       checkpoint, "--sigma", 0, "--denoise", 0.5)
    assert code == 0, err
    got, _ = read_wav(tmp_path / "out" / "utt.wav")
    model.remove_weight_norm().eval()
    with torch.no_grad():
        plain = model.infer(mel[None], sigma=0.0)
        want = Denoiser(model, 0.5)(plain)[0]
    torch.testing.assert_close(got, want.clamp(-1, 1), rtol=0, atol=INT16_STEP)
    assert not torch.allclose(want, plain[0], atol=1e-4)  # the denoiser did something


def test_synth_hifigan_denoise(capsys, tmp_path, mel_file):
    model = HiFiGAN(TINY_HIFIGAN)
    checkpoint = model.save_pretrained(str(tmp_path / "g.pt"))
    path, mel = mel_file
    code, _, err = cli(capsys, "synth", path, "-o", tmp_path / "out", "--checkpoint", checkpoint, "--denoise", 0.1)
    assert code == 0, err
    got, _ = read_wav(tmp_path / "out" / "utt.wav")
    model.remove_weight_norm().eval()
    with torch.no_grad():
        want = Denoiser(model, 0.1)(model(mel[None]))[0, 0]
    torch.testing.assert_close(got, want.clamp(-1, 1), rtol=0, atol=INT16_STEP)


@pytest.mark.parametrize("extra,fragment", [
    (["--sigma", "0.5"], "--sigma 0.5"),  # HiFi-GAN has no sigma
    (["--vocoder", "waveglow", "--config", "256", "--sigma", "-1"], "--sigma -1.0"),
    (["--seed", "3"], "--seed"),
    (["--denoise", "-0.1"], "--denoise must be >= 0"),
    (["--vocoder", "waveglow"], "--config 256|512|file.json"),
    (["--vocoder", "waveglow", "--config", "nope"], "--config nope"),
])
def test_synth_bad_waveglow_arguments(capsys, tmp_path, mel_file, extra, fragment):
    code, _, err = cli(capsys, "synth", mel_file[0], "-o", tmp_path / "out", *extra)
    assert code == 2 and fragment in err.strip().splitlines()[-1], err


def test_mel_tacotron2_frontend(capsys, tmp_path):
    y = torch.rand(1, 5000) * 1.8 - 0.9
    audio.save_wav(tmp_path / "a.wav", y[0], 22050, subtype="FLOAT")
    code, _, err = cli(capsys, "mel", tmp_path / "a.wav", "-o", tmp_path / "m", "--frontend", "tacotron2")
    assert code == 0, err
    mel = np.load(tmp_path / "m" / "a.npy")
    assert mel.shape == (80, 5000 // 256 + 1)  # Tacotron2's centered STFT: one more frame than HiFi-GAN's
    np.testing.assert_allclose(mel, audio.tacotron2_mel_spectrogram(y)[0].numpy(), rtol=1e-5, atol=1e-5)


def test_info_names_both_vocoders(capsys):
    code, out, _ = cli(capsys, "info")
    assert code == 0 and "vocoder_ext.HiFiGAN" in out and "vocoder_ext.WaveGlow" in out

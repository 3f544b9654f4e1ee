"""`mel --checkpoint` and `synth` on wavs: the features a checkpoint's model expects, computed by the CLI;
`synth --inference-padding`. In-process through cli.main(argv), like test_cli.py."""
import numpy as np
import pytest
import torch

from test_cli import TINY_HOP, WAVS, assert_user_error, cli, expected_mel, read_wav, tiny_checkpoint  # noqa: F401
from vocoder_ext import HiFiGAN, audio

INT16_STEP = 1 / 32768


def test_mel_with_the_original_checkpoint_is_hifigans_front_end(capsys, tmp_path, tiny_checkpoint):
    checkpoint, _ = tiny_checkpoint
    code, _, err = cli(capsys, "mel", WAVS[0], "-o", tmp_path / "mels", "--checkpoint", checkpoint)
    assert code == 0, err
    want, _ = expected_mel(WAVS[0])
    np.testing.assert_array_equal(np.load(tmp_path / "mels" / f"{WAVS[0].stem}.npy"), want)


def test_mel_checkpoint_fixes_the_settings(capsys, tmp_path, tiny_checkpoint):
    checkpoint, _ = tiny_checkpoint
    code, _, err = cli(capsys, "mel", WAVS[0], "-o", tmp_path / "m", "--checkpoint", checkpoint, "--n-fft", 2048,
                       "--frontend", "tacotron2")
    assert_user_error(code, err, "--checkpoint fixes the features", "--frontend", "--n-fft")
    code, _, err = cli(capsys, "mel", WAVS[0], "-o", tmp_path / "m", "--checkpoint", tmp_path / "nope.pt")
    assert_user_error(code, err, "nope.pt")


def test_synth_a_wav_is_resynthesised_from_the_models_features(capsys, tmp_path, tiny_checkpoint):
    checkpoint, model = tiny_checkpoint
    code, _, err = cli(capsys, "synth", WAVS[0], "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert code == 0, err
    got, sr = read_wav(tmp_path / "out" / f"{WAVS[0].stem}.wav")
    y, _ = audio.load_wav(WAVS[0])
    model = model.eval().remove_weight_norm()
    with torch.no_grad():
        mel = model.mel_spectrogram(y)
        want = model(mel)[0, 0]
    assert sr == 22050 and got.numel() == mel.shape[-1] * TINY_HOP
    torch.testing.assert_close(got, want, rtol=0, atol=INT16_STEP)


def test_synth_a_wav_at_another_rate_names_both(capsys, tmp_path, tiny_checkpoint):
    checkpoint, _ = tiny_checkpoint
    wav = tmp_path / "in" / "fast.wav"
    wav.parent.mkdir()
    audio.save_wav(wav, torch.rand(4000) - 0.5, 16000)
    code, _, err = cli(capsys, "synth", wav.parent, "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert_user_error(code, err, "fast.wav", "16000", "22050")


def test_synth_inference_padding_needs_a_toolkit_with_one(capsys, tmp_path, tiny_checkpoint):
    checkpoint, _ = tiny_checkpoint
    code, _, err = cli(capsys, "synth", WAVS[0], "-o", tmp_path / "out", "--checkpoint", checkpoint,
                       "--inference-padding")
    assert_user_error(code, err, "--inference-padding", "pads nothing at inference")


def test_model_mel_spectrogram_of_the_original_takes_its_config(tmp_path):
    h = {**HiFiGAN("v1").config, "sampling_rate": 16000, "n_fft": 512, "hop_size": 128, "win_size": 512, "fmax": 7000}
    model = HiFiGAN(h)
    y = torch.rand(2, 3001) - 0.5
    want = audio.mel_spectrogram(y, 512, 80, 16000, 128, 512, 0, 7000)
    torch.testing.assert_close(model.mel_spectrogram(y), want, rtol=0, atol=0)
    assert model.mel_spectrogram(y[0]).shape == (1, 80, want.shape[-1]) and model.sampling_rate == 16000
    with pytest.raises(ValueError, match=r"sample rate 22050 Hz, but this model's features are computed at 16000 Hz"):
        model.mel_spectrogram(y, sample_rate=22050)


def test_mel_and_synth_with_a_parallel_wavegan_checkpoint(capsys, tmp_path):
    """The features written by `mel --checkpoint` are that toolkit's (log10, centred, normalised), and a wav
    is resynthesised through them; a wav at the bundled corpus' 22050 Hz is refused for a 24 kHz model."""
    from test_toolkit_parallel_wavegan import ODD, PWGHiFiGAN, write_pwg
    from vocoder_ext import features
    checkpoint = write_pwg(tmp_path / "pwg", PWGHiFiGAN(ODD).eval(), ODD)
    model = HiFiGAN.from_pretrained(checkpoint).eval()
    wav = tmp_path / "in" / "a.wav"
    wav.parent.mkdir()
    audio.save_wav(wav, 0.5 * torch.sin(torch.arange(4801) * 0.07) * torch.rand(4801), 24000)
    y, _ = audio.load_wav(wav)
    code, _, err = cli(capsys, "mel", wav, "-o", tmp_path / "mels", "--checkpoint", checkpoint)
    assert code == 0, err
    want = features.mel_spectrogram(y, model.features)[0]
    got = np.load(tmp_path / "mels" / "a.npy")
    assert got.shape == (20, 4801 // 300 + 1)  # centred frames at hop 300
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-6)

    code, _, err = cli(capsys, "synth", wav.parent, "-o", tmp_path / "out", "--checkpoint", checkpoint)
    assert code == 0, err
    out, sr = read_wav(tmp_path / "out" / "a.wav")
    with torch.no_grad():
        expected = model.remove_weight_norm()(want[None])[0, 0]
    assert sr == 24000 and out.numel() == want.shape[-1] * 60  # odd scales [5, 4, 3]: T * 60 samples
    torch.testing.assert_close(out, expected, rtol=0, atol=INT16_STEP)

    code, _, err = cli(capsys, "synth", WAVS[0], "-o", tmp_path / "out2", "--checkpoint", checkpoint)
    assert_user_error(code, err, "22050", "24000")


def test_synth_inference_padding_gives_coquis_audio(capsys, tmp_path):
    from test_toolkit_hf_coqui import N_MELS, CoquiGenerator, coqui_config, coqui_params, coqui_state
    params = coqui_params()
    gen = CoquiGenerator(N_MELS, params).eval()
    checkpoint = tmp_path / "model_file.pth"
    torch.save({**coqui_state(gen, "weight_g"), "config": coqui_config(params)}, checkpoint)
    mel = torch.randn(N_MELS, 9)
    np.save(tmp_path / "m.npy", mel.numpy())
    code, _, err = cli(capsys, "synth", tmp_path / "m.npy", "-o", tmp_path / "out", "--checkpoint", checkpoint,
                       "--inference-padding")
    assert code == 0, err
    out, _ = read_wav(tmp_path / "out" / "m.wav")
    with torch.no_grad():
        want = gen.inference(mel[None])[0, 0]
    assert out.numel() == want.numel() == (9 + 10) * TINY_HOP
    torch.testing.assert_close(out, want.clamp(-1, 1), rtol=0, atol=INT16_STEP)

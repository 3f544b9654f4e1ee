"""vocoder_ext.features.convert: where two toolkits' features share the linear mel and differ only by what can be
undone (log base, gain, affine normalisation, a higher floor, a narrower clip), the converted mel equals the
destination's features recomputed from the same audio; everywhere else it refuses, naming each differing field
with both values. Features come from the toolkit readers (files written by the toolkit tests' helpers)."""
import json

import pytest
import torch

from test_features import SPEECHT5, coqui_features, hf_features, nemo_file, np_filterbank, sb_features, wavs
from test_toolkit_parallel_wavegan import EVEN, PWGHiFiGAN, pwg_config, write_espnet, write_pwg
from vocoder_ext import features
from vocoder_ext.checkpoint.toolkits import parallel_wavegan


@pytest.fixture
def wav():
    return torch.from_numpy(wavs(6001, seed=1))


def assert_converts(wav, src, dst, atol=1e-9):
    """convert(src mel) == dst mel from the audio, and the 2-D form gives the same."""
    got = features.convert(features.mel_spectrogram(wav, src), src, dst)
    want = features.mel_spectrogram(wav, dst)
    torch.testing.assert_close(got, want, rtol=atol, atol=atol)
    one = features.convert(features.mel_spectrogram(wav[0], src)[0], src, dst)
    assert one.dim() == 2
    torch.testing.assert_close(one, want[0], rtol=atol, atol=atol)


def assert_refuses(wav, src, dst, *fields):
    with pytest.raises(ValueError, match=r"cannot convert .* exactly: ") as e:
        features.convert(features.mel_spectrogram(wav, src), src, dst)
    for field in fields:
        assert field in str(e.value), (field, str(e.value))
    return str(e.value)


# ---- Coqui and SpeechBrain: one linear mel, different log, floor, clip ---------------------------------
@pytest.fixture
def sb(tmp_path):
    return sb_features(tmp_path / "sb")


def coqui(tmp_path, **audio):  # SpeechBrain's LJSpeech filterbank (0-8000 Hz, 80 bins), Coqui's defaults else
    return coqui_features(tmp_path / f"coqui{len(list(tmp_path.iterdir()))}", num_mels=80, mel_fmax=8000.0,
                          **audio)[0]


def test_speechbrain_to_coqui_and_not_back(tmp_path, wav, sb):
    """Coqui keeps -80..20 dB (1e-4..10): SpeechBrain's ln(max(x, 1e-5)) holds all of it, not the reverse."""
    cq = coqui(tmp_path)
    assert_converts(wav, sb, cq)
    message = assert_refuses(wav, cq, sb, "lowest mel value kept", "highest mel value kept")
    assert "0.0001 vs 1e-05" in message and "10.0 vs inf" in message


def test_coqui_range_normalisations(tmp_path, wav):
    default = coqui(tmp_path)
    assert_converts(wav, default, coqui(tmp_path, symmetric_norm=False, max_norm=1.0))
    assert_converts(wav, coqui(tmp_path, symmetric_norm=False, max_norm=1.0), default)
    narrower = coqui(tmp_path, min_level_db=-80)  # keeps -60..20 dB
    assert_converts(wav, default, narrower)
    assert_refuses(wav, narrower, default, "lowest mel value kept (normalization clip_norm")


def test_coqui_log_base_change(tmp_path, wav):
    """ln with spec_gain 20 keeps ln x in [-4, 1], inside log10's [-9.2, 2.3]: one way only."""
    log10, ln = coqui(tmp_path), coqui(tmp_path, log_func="np.log")
    assert_converts(wav, log10, ln)
    assert_refuses(wav, ln, log10, "lowest mel value kept", "highest mel value kept")


def test_linear_mel_to_log_and_not_back(tmp_path, wav, sb):
    linear = sb_features(tmp_path / "linear", dynamic_range_compression=False)
    assert_converts(wav, linear, sb)
    assert_refuses(wav, sb, linear, "log: 'ln' vs None")


# ---- ParallelWaveGAN, Hugging Face, ESPnet: log10 mels with their own statistics ------------------------
def test_parallel_wavegan_and_speecht5_both_ways(tmp_path, wav):
    """Same SpeechT5-style front end (16 kHz, 1024/256, 80-7600 Hz, log10 floor 1e-10), different mean/scale.
    PWG's librosa filterbank is float32, transformers' float64: equal to float32 precision, so the conversion
    is exact to that precision."""
    cfg = {**pwg_config(EVEN), "sampling_rate": 16000, "fft_size": 1024, "hop_size": 256, "win_length": None}
    pwg = parallel_wavegan.read(write_pwg(tmp_path / "pwg", PWGHiFiGAN(EVEN), cfg=cfg))[2]
    hf, _ = hf_features(tmp_path / "hf", preprocessor={**SPEECHT5, "num_mel_bins": 20}, model_in_dim=20)
    assert not torch.equal(hf["normalization"]["mean"], pwg["normalization"]["mean"])
    assert_converts(wav, pwg, hf, atol=2e-6)
    assert_converts(wav, hf, pwg, atol=2e-6)


def test_espnet_stored_filterbank(tmp_path, wav):
    path = write_espnet(tmp_path / "esp", PWGHiFiGAN(EVEN))
    esp = parallel_wavegan.read(path)[2]  # the helper stores a random melmat
    described = {**esp, "filterbank": None}
    assert_refuses(wav, esp, described, "filterbank: 'stored matrix [20, 513]' vs 'slaney scale, norm slaney, "
                                        "80.0-7600.0 Hz'")
    # the real librosa matrix (float32, as ESPnet stores it) is the described one
    real = torch.from_numpy(np_filterbank(22050, 1024, 20, 80, 7600)).float()
    assert_converts(wav, {**esp, "filterbank": real}, described, atol=2e-6)
    other_stats = {**esp, "normalization": {"type": "mean_scale", "mean": torch.zeros(20), "scale": torch.ones(20)}}
    assert_converts(wav, esp, other_stats)
    assert_converts(wav, other_stats, esp)


def test_front_ends_that_differ_are_named(tmp_path, wav, sb):
    pwg = parallel_wavegan.read(write_pwg(tmp_path / "pwg", PWGHiFiGAN(EVEN)))[2]
    message = assert_refuses(wav[:, :4001], {**sb, "n_mels": 20}, pwg, "sample_rate: 22050 vs 24000",
                             "n_fft: 1024 vs 2048", "fmin: 0.0 vs 80.0", "fmax: 8000.0 vs 7600.0")
    assert "source vs destination" in message


# ---- NeMo: framing, window, guards, per-utterance normalisation, masked tail ---------------------------
def test_nemo_and_speechbrain_frame_differently(tmp_path, wav, sb):
    nm, _, _ = nemo_file(tmp_path)
    assert_refuses(wav, nm, sb, "framing: 'padded' vs 'centered'", "pad: 384 vs 512",
                   "window: 'stored window [1024]' vs 'periodic hann'", "filterbank: 'stored matrix [80, 513]'")


def test_nemo_log_guards(tmp_path, wav):
    clamp, _, _ = nemo_file(tmp_path / "a")
    add, _, _ = nemo_file(tmp_path / "b", log_zero_guard_type="add", log_zero_guard_value=1.0)
    assert_refuses(wav, add, clamp, "log_guard: 'add' vs 'clamp'")
    assert_refuses(wav, {**add, "log_floor": 0.5}, add, "log_floor: 0.5 vs 1.0")
    assert_converts(wav, clamp, {**clamp, "log_floor": 1e-3})  # a higher floor: exact
    assert_refuses(wav, {**clamp, "log_floor": 1e-3}, clamp, "lowest mel value kept (log_floor 0.001 vs log_floor")


def test_nemo_per_utterance_normalisation_applies_but_does_not_undo(tmp_path, wav):
    plain, _, _ = nemo_file(tmp_path)
    per_feature = {**plain, "normalization": {"type": "per_feature"}}
    all_features = {**plain, "normalization": {"type": "all_features"}}
    assert_converts(wav, plain, per_feature)
    assert_converts(wav, plain, all_features)
    assert_refuses(wav, per_feature, plain, "normalization: 'per_feature (per-utterance statistics, not stored)' "
                                            "vs None")


def test_nemo_masked_tail(tmp_path, wav):
    """NeMo >= 2025-07's last frame is pad_value: it can be set, and left out of per_feature statistics, but not
    brought back."""
    plain, _, _ = nemo_file(tmp_path)
    masked = {**plain, "masked_tail": True, "pad_value": -11.52}
    assert_converts(wav, plain, masked)
    assert_converts(wav, plain, {**masked, "normalization": {"type": "per_feature"}})
    assert_converts(wav, masked, {**masked, "pad_value": 0.0})
    assert_refuses(wav, masked, plain, "masked_tail: True vs False")
    assert_refuses(wav, plain, {**plain, "pad_to": 16}, "pad_to: 0 vs 16")


def test_bad_mels_and_features(tmp_path, wav, sb):
    with pytest.raises(ValueError, match=r"the mel has 20 bins \(shape \[2, 20, 9\]\) but speechbrain features have "
                                         r"n_mels 80"):
        features.convert(torch.randn(2, 20, 9), sb, sb)
    with pytest.raises(ValueError, match=r"convert \(destination\): speechbrain features do not say sample_rate"):
        features.convert(torch.randn(2, 80, 9), sb, {**sb, "sample_rate": None, "missing": ["sample_rate"]})
    with pytest.raises(TypeError, match=r"floating-point mel"):
        features.convert(torch.zeros(2, 80, 9, dtype=torch.int32), sb, sb)
    json.dumps({k: v for k, v in sb.items() if not isinstance(v, torch.Tensor)})  # plain values only

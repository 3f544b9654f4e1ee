"""vocoder_ext.features.mel_spectrogram against each toolkit's front end, re-written here in float64 numpy from the
toolkits' sources (PWG preprocess.py logmelfilterbank, ESPnet LogMelFbank, Coqui AudioProcessor.melspectrogram,
SpeechBrain/torchaudio MelSpectrogram, NeMo FilterbankFeatures before and after #13827, transformers'
SpeechT5FeatureExtractor): own STFT framing, windows and mel filterbanks, nothing from vocoder_ext or torch. The
features dicts come from the toolkit readers, reading small files written in each toolkit's layout by the
toolkit tests' helpers. Then every bad input: unknown values, unsupported settings, wrong rate, shape, dtype."""
import json

import numpy as np
import pytest
import torch
import yaml

from original_hifigan import TINY, OrigGenerator
from test_toolkit_hf_coqui import (CoquiGenerator, HFHifiGan, coqui_config, coqui_params, coqui_state, hf_config,
                                   write_hf)
from test_toolkit_nemo_speechbrain import nemo_config, nemo_weights, write_nemo, write_sb
from test_toolkit_parallel_wavegan import EVEN, PWGHiFiGAN, pwg_config, write_espnet, write_pwg
from vocoder_ext import features
from vocoder_ext.checkpoint.toolkits import coqui, huggingface, nemo, parallel_wavegan, speechbrain

RTOL64 = ATOL64 = 1e-9
ATOL32 = 2e-3  # float32 STFT and log of a white-noise mel, in log / normalised units


# ---- numpy building blocks (the toolkits' math, written independently) ------------------------------
def np_window(name, n, periodic):
    k, denom = np.arange(n), (n if periodic else n - 1)
    if name == "hann":
        return 0.5 - 0.5 * np.cos(2 * np.pi * k / denom)
    if name == "hamming":
        return 0.54 - 0.46 * np.cos(2 * np.pi * k / denom)
    raise AssertionError(name)


def np_stft(x, n_fft, hop, window):
    """Un-centred frames of an already padded 1-D signal; the window centred in n_fft (librosa pad_center,
    torch.stft). -> complex [n_fft // 2 + 1, frames]."""
    w = np.zeros(n_fft)
    off = (n_fft - len(window)) // 2
    w[off:off + len(window)] = window
    n = 1 + (len(x) - n_fft) // hop
    frames = np.stack([x[i * hop:i * hop + n_fft] for i in range(n)])
    return np.fft.rfft(frames * w, axis=-1).T


def hz_to_mel(f, htk):
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    return np.where(f < 1000.0, f * 3.0 / 200.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) * 27.0 / np.log(6.4))


def mel_to_hz(m, htk):
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    return np.where(m < 15.0, m * 200.0 / 3.0, 1000.0 * np.exp((m - 15.0) * np.log(6.4) / 27.0))


def np_filterbank(sr, n_fft, n_mels, fmin, fmax, htk=False, norm="slaney", bins_up_to=None):
    """[n_mels, n_fft // 2 + 1] triangles between n_mels + 2 mel-spaced edges. bins_up_to: torchaudio and
    transformers place the FFT bins by linspace(0, sr // 2, n_freq) instead of k * sr / n_fft."""
    n_freq = n_fft // 2 + 1
    fft = np.linspace(0, bins_up_to, n_freq) if bins_up_to is not None else np.arange(n_freq) * sr / n_fft
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    up = (fft[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    down = (edges[2:, None] - fft[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    fb = np.maximum(0.0, np.minimum(up, down))
    if norm == "slaney":
        fb *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return fb


def f32(a):  # the toolkit keeps this constant in float32
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def preemph(x, c):
    return np.concatenate([x[:1], x[1:] - c * x[:-1]])


def wavs(n=4001, seed=0):
    """Noise with a silent stretch longer than a frame, so floors, guards and clips are reached."""
    x = np.random.default_rng(seed).uniform(-0.5, 0.5, size=(2, n))
    x[:, n // 4:n * 7 // 10] = 0.0
    return x


def assert_matches(feats, reference, n=4001):
    """features.mel_spectrogram(float64 wav) == reference per item (tight), float32 within float32 error."""
    wav = wavs(n)
    want = np.stack([reference(w) for w in wav])
    got = features.mel_spectrogram(torch.from_numpy(wav), feats)
    assert got.dtype == torch.float64 and got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got.numpy(), want, rtol=RTOL64, atol=ATOL64)
    wav32 = torch.from_numpy(wav).float()
    want32 = np.stack([reference(w) for w in wav32.double().numpy()])
    got32 = features.mel_spectrogram(wav32, feats)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), want32, rtol=0, atol=ATOL32)
    return got


# ---- ParallelWaveGAN and ESPnet ----------------------------------------------------------------------
def pwg_reference(cfg, mean, scale):
    """PWG preprocess.py: audio *= global_gain_scale; logmelfilterbank (librosa.stft center, reflect; np.abs;
    librosa slaney mel, float32; log10(max(1e-10, .))); normalize.py: (x - mean) / scale."""
    n_fft, hop, win = cfg["fft_size"], cfg["hop_size"], cfg["win_length"] or cfg["fft_size"]
    fb = f32(np_filterbank(cfg["sampling_rate"], n_fft, cfg["num_mels"], cfg["fmin"] or 0,
                           cfg["fmax"] or cfg["sampling_rate"] / 2))

    def run(audio):
        if cfg["global_gain_scale"] > 0:
            audio = audio * cfg["global_gain_scale"]
        spc = np.abs(np_stft(np.pad(audio, n_fft // 2, mode="reflect"), n_fft, hop,
                             np_window(cfg["window"], win, True)))
        mel = np.log10(np.maximum(1e-10, fb @ spc))
        return (mel - mean[:, None]) / scale[:, None]
    return run


@pytest.mark.parametrize("over", [{}, {"global_gain_scale": 0.7, "window": "hamming", "win_length": None,
                                       "fmax": None}], ids=["released", "gain_hamming_fullband"])
def test_parallel_wavegan(tmp_path, over):
    cfg = {**pwg_config(EVEN), **over}
    path = write_pwg(tmp_path / "pwg", PWGHiFiGAN(EVEN), cfg=cfg)
    feats = parallel_wavegan.read(path)[2]
    stats = np.load(tmp_path / "pwg" / "stats.npy").astype(np.float64)
    assert_matches(feats, pwg_reference({**cfg, "num_mels": EVEN["in_channels"]}, stats[0], stats[1]), n=6001)


def test_espnet(tmp_path):
    path = write_espnet(tmp_path / "esp", PWGHiFiGAN(EVEN))
    feats = parallel_wavegan.read(path)[2]
    raw = torch.load(path, weights_only=True)
    melmat, mean, std = (raw[k].double().numpy() for k in ("feats_extract.logmel.melmat", "normalize.mean",
                                                             "normalize.std"))

    def run(audio):  # LogMelFbank: torch.stft center (reflect), sqrt(clamp(power, 1e-10)), melmat, log10
        spec = np_stft(np.pad(audio, 512, mode="reflect"), 1024, 256, np_window("hann", 1024, True))
        amp = np.sqrt(np.maximum(spec.real ** 2 + spec.imag ** 2, 1e-10))
        mel = np.log10(np.maximum(amp.T @ melmat, 1e-10)).T
        return (mel - mean[:, None]) / std[:, None]
    assert_matches(feats, run)


# ---- Coqui --------------------------------------------------------------------------------------------
def coqui_reference(a):
    """AudioProcessor.melspectrogram: preemphasis (lfilter [1, -c]), librosa.stft (center, stft_pad_mode), np.abs,
    librosa mel (float32), spec_gain * log_b(max(1e-8, x)), normalize (range or none)."""
    n_fft, hop, win, sr = a["fft_size"], a["hop_length"], a["win_length"], a["sample_rate"]
    fb = f32(np_filterbank(sr, n_fft, a["num_mels"], a["mel_fmin"], a["mel_fmax"] or sr / 2))
    log = np.log10 if a["log_func"] == "np.log10" else np.log

    def run(y):
        if a["preemphasis"]:
            y = preemph(y, a["preemphasis"])
        spec = np.abs(np_stft(np.pad(y, n_fft // 2, mode=a.get("stft_pad_mode", "reflect")), n_fft, hop,
                              np_window("hann", win, True)))
        s = a["spec_gain"] * log(np.maximum(1e-8, fb @ spec))
        if not a["signal_norm"]:
            return s
        s = s - a["ref_level_db"]
        s = (s - a["min_level_db"]) / (-a["min_level_db"])
        m = a["max_norm"]
        if a["symmetric_norm"]:
            s = 2 * m * s - m
            return np.clip(s, -m, m) if a["clip_norm"] else s
        s = m * s
        return np.clip(s, 0, m) if a["clip_norm"] else s
    return run


def coqui_features(tmp_path, **audio):
    tmp_path.mkdir(parents=True, exist_ok=True)
    params = coqui_params()
    cfg = coqui_config(params)
    cfg["audio"].update(audio)
    path = tmp_path / "best_model.pth"
    torch.save({**coqui_state(CoquiGenerator(cfg["audio"]["num_mels"], params)), "config": cfg}, path)
    return coqui.read(path)[2], cfg["audio"]


@pytest.mark.parametrize("audio", [
    {}, {"preemphasis": 0.97, "log_func": "np.log", "symmetric_norm": False, "max_norm": 1.0, "win_length": 800},
    {"signal_norm": False, "mel_fmax": 8000.0, "stft_pad_mode": "constant"},
    {"clip_norm": False, "ref_level_db": 0, "min_level_db": -120},
], ids=["defaults", "preemph_ln_nonsymmetric", "no_signal_norm", "no_clip"])
def test_coqui(tmp_path, audio):
    feats, cfg = coqui_features(tmp_path, **audio)
    got = assert_matches(feats, coqui_reference(cfg))
    if cfg["signal_norm"] and cfg["clip_norm"]:
        assert got.abs().max() <= cfg["max_norm"]


# ---- SpeechBrain ----------------------------------------------------------------------------------------
SB_SETTINGS = {"sample_rate": 22050, "hop_length": 256, "win_length": 1024, "n_fft": 1024, "n_mel_channels": 80,
               "mel_fmin": 0.0, "mel_fmax": 8000.0, "mel_normalized": False, "power": 1, "norm": "slaney",
               "mel_scale": "slaney", "dynamic_range_compression": True}


def sb_features(tmp_path, **settings):
    tmp_path.mkdir(parents=True, exist_ok=True)
    folder = write_sb(tmp_path / "sb", OrigGenerator(TINY), TINY, mel=False)
    with open(folder / "hyperparams.yaml", "a") as f:
        f.write(yaml.safe_dump({**SB_SETTINGS, **settings}))
    return speechbrain.read(folder)[2]


def sb_reference(s):
    """torchaudio MelSpectrogram (center, reflect, periodic Hann, |X| [/ window norm] ** power, melscale_fbanks
    with linspace(0, sr // 2) bins, float32) then ln(clamp(x, 1e-5))."""
    n_fft, sr = s["n_fft"], s["sample_rate"]
    fb = f32(np_filterbank(sr, n_fft, s["n_mel_channels"], s["mel_fmin"], s["mel_fmax"], htk=s["mel_scale"] == "htk",
                           norm=s["norm"], bins_up_to=sr // 2))
    window = np_window("hann", s["win_length"], True)

    def run(x):
        spec = np_stft(np.pad(x, n_fft // 2, mode="reflect"), n_fft, s["hop_length"], window)
        if s["mel_normalized"]:
            spec = spec / np.sqrt(np.sum(window ** 2))
        mel = fb @ (np.abs(spec) ** s["power"])
        return np.log(np.maximum(mel, 1e-5)) if s["dynamic_range_compression"] else mel
    return run


@pytest.mark.parametrize("settings", [
    {}, {"mel_scale": "htk", "norm": None, "power": 2, "mel_normalized": True, "win_length": 700},
    {"dynamic_range_compression": False, "mel_fmax": None},
], ids=["ljspeech_recipe", "htk_power_normalized", "linear_fullband"])
def test_speechbrain(tmp_path, settings):
    feats = sb_features(tmp_path, **settings)
    s = {**SB_SETTINGS, **settings}
    s["mel_fmax"] = s["mel_fmax"] or s["sample_rate"] / 2
    if s["dynamic_range_compression"]:
        assert_matches(feats, sb_reference(s))
    else:  # a linear mel: compare relatively
        wav = wavs()
        got = features.mel_spectrogram(torch.from_numpy(wav), feats).numpy()
        np.testing.assert_allclose(got, np.stack([sb_reference(s)(w) for w in wav]), rtol=1e-9)


# ---- NeMo -----------------------------------------------------------------------------------------------
def nemo_file(tmp_path, stored=True, **pre):
    """A .nemo archive whose preprocessor has `pre`; the stored fb and window are ours, so known exactly
    (stored=False: none stored, so described by the settings)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    orig = OrigGenerator(TINY)
    cfg = nemo_config(TINY)
    cfg["preprocessor"].update(pre)
    cfg["preprocessor"] = {k: v for k, v in cfg["preprocessor"].items() if v != "<absent>"}
    weights = nemo_weights(orig)
    fb = torch.from_numpy(np_filterbank(22050, 1024, 80, 0, 8000)).float()[None]
    weights["audio_to_melspec_precessor.fb"] = fb * (1 + 0.1 * torch.rand(fb.shape))  # stored: used as is
    weights["audio_to_melspec_precessor.window"] = torch.from_numpy(np_window("hann", 1024, False)).float()
    if not stored:
        del weights["audio_to_melspec_precessor.fb"], weights["audio_to_melspec_precessor.window"]
    path = write_nemo(tmp_path / "m.nemo", orig, cfg=cfg, weights=weights)
    return nemo.read(path)[2], cfg["preprocessor"], weights


def nemo_reference(pre, weights, revision_2025=False):
    """FilterbankFeatures.forward (NeMo before #13827, or after it with revision_2025): exact pad (reflect, or
    zeros after), preemphasis on the padded signal (after: zeroed from the unpadded length on), stft (center:
    torch's reflect, or zeros after), sqrt(re^2 + im^2) ** mag_power, fb @, log guard, normalize_batch over
    seq_len frames, frames past seq_len = pad_value, pad_to."""
    n_fft, hop, exact = pre["n_fft"], pre["n_window_stride"], pre["exact_pad"]
    if "audio_to_melspec_precessor.fb" in weights:
        fb = weights["audio_to_melspec_precessor.fb"][0].double().numpy()
        window = weights["audio_to_melspec_precessor.window"].double().numpy()
    else:  # librosa.filters.mel(norm=mel_norm) in float32; torch.hann_window(periodic=False)
        fb = f32(np_filterbank(22050, n_fft, 80, pre["lowfreq"], pre["highfreq"] or 11025.0,
                               norm=pre.get("mel_norm", "slaney")))
        window = np_window("hann", pre["n_window_size"], False)
    mode = "constant" if revision_2025 else "reflect"

    def run(x):
        length = len(x)
        if exact:
            x = np.pad(x, (n_fft - hop) // 2, mode=mode)
        if pre.get("preemph") is not None:
            x = preemph(x, pre["preemph"])
            if revision_2025:
                x[length:] = 0.0
        if not exact:
            x = np.pad(x, n_fft // 2, mode=mode)
        spec = np_stft(x, n_fft, hop, window)
        mel = fb @ (np.sqrt(spec.real ** 2 + spec.imag ** 2) ** pre["mag_power"])
        a = pre["log_zero_guard_value"]
        mel = np.log(np.maximum(mel, a) if pre["log_zero_guard_type"] == "clamp" else mel + a)
        pad_amount = (n_fft - hop) // 2 * 2 if exact else n_fft // 2 * 2
        seq_len = (length + pad_amount - n_fft) // hop + (0 if revision_2025 else 1)
        if pre["normalize"] == "per_feature":
            valid = mel[:, :seq_len]
            mel = (mel - valid.mean(1, keepdims=True)) / (valid.std(1, ddof=1, keepdims=True) + 1e-5)
        mel[:, seq_len:] = pre["pad_value"]
        if pre["pad_to"] and mel.shape[1] % pre["pad_to"]:
            extra = pre["pad_to"] - mel.shape[1] % pre["pad_to"]
            mel = np.concatenate([mel, np.full((mel.shape[0], extra), pre["pad_value"])], axis=1)
        return mel
    return run


@pytest.mark.parametrize("pre", [
    {},  # examples/tts/conf/hifigan/hifigan.yaml: ln(clamp(x, 1e-5)), exact pad
    {"log_zero_guard_type": "add", "log_zero_guard_value": 1.0, "pad_value": 0.0},  # hifigan_22050.yaml's log
    {"preemph": 0.97, "normalize": "per_feature", "mag_power": 2.0, "pad_to": 16, "exact_pad": False},
    {"preemph": 0.97, "normalize": "per_feature"},
], ids=["legacy_recipe", "add_guard", "asr_style_centered", "preemph_after_exact_pad"])
def test_nemo(tmp_path, pre):
    feats, pre, weights = nemo_file(tmp_path, **pre)
    assert torch.equal(feats["filterbank"], weights["audio_to_melspec_precessor.fb"][0])
    assert_matches(feats, nemo_reference(pre, weights))


def test_nemo_without_stored_buffers(tmp_path):
    """hifigan_22050.yaml's newer recipe (full band, unnormalised triangles, ln(x + 1)), described, not stored."""
    feats, pre, weights = nemo_file(tmp_path, stored=False, highfreq=None, mel_norm=None, log_zero_guard_type="add",
                                    log_zero_guard_value=1.0, pad_value=0.0)
    assert feats["filterbank"] is None and feats["window_weights"] is None and feats["fmax"] == 11025.0
    assert_matches(feats, nemo_reference(pre, weights))


@pytest.mark.parametrize("pre", [{}, {"preemph": 0.97, "normalize": "per_feature"}, {"exact_pad": False}],
                         ids=["legacy_recipe", "preemph_per_feature", "centered"])
def test_nemo_after_2025_07(tmp_path, pre):
    """NeMo #13827: zeros instead of reflect padding, the last frame pad_value: set by hand, as the notes say."""
    feats, pre, weights = nemo_file(tmp_path, **pre)
    assert any("masked_tail True" in n for n in feats["notes"])
    got = assert_matches({**feats, "pad_mode": "constant", "masked_tail": True},
                         nemo_reference(pre, weights, revision_2025=True))
    assert torch.all(got[..., -1] == pre["pad_value"])


def test_nemo_defaults_fill_what_the_file_lacks(tmp_path):
    """FilterbankFeatures' defaults for absent fields: preemph 0.97, per_feature, mag_power 2, add 2**-24,
    pad_to 16, centered framing."""
    absent = {k: "<absent>" for k in ("preemph", "normalize", "mag_power", "log_zero_guard_type",
                                      "log_zero_guard_value", "pad_to", "exact_pad", "pad_value", "dither")}
    feats, pre, weights = nemo_file(tmp_path, **absent)
    assert {"preemphasis", "normalization", "magnitude_power", "log_guard", "pad_to", "framing"} <= \
        set(feats["defaults"])
    assert feats["missing"] == []
    defaults = {**pre, "preemph": 0.97, "normalize": "per_feature", "mag_power": 2.0, "log_zero_guard_type": "add",
                "log_zero_guard_value": 2 ** -24, "pad_to": 16, "exact_pad": False, "pad_value": 0.0}
    assert_matches(feats, nemo_reference(defaults, weights))


# ---- Hugging Face ---------------------------------------------------------------------------------------
SPEECHT5 = {"feature_extractor_type": "SpeechT5FeatureExtractor", "sampling_rate": 16000, "num_mel_bins": 12,
            "hop_length": 16, "win_length": 64, "win_function": "hann_window", "fmin": 80, "fmax": 7600,
            "mel_floor": 1e-10, "do_normalize": False, "frame_signal_scale": 1.0}


def hf_features(tmp_path, preprocessor=SPEECHT5, **cfg_over):
    cfg = hf_config(**cfg_over)
    model = HFHifiGan(cfg)
    tmp_path.mkdir(parents=True, exist_ok=True)
    folder = write_hf(tmp_path / "speecht5_hifigan", model, cfg)
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return huggingface.read(folder)[2], model


def test_huggingface_speecht5(tmp_path):
    feats, model = hf_features(tmp_path)
    mean, scale = model.mean.double().numpy(), model.scale.double().numpy()
    # SpeechT5FeatureExtractor: sample_size = 64 ms, stride 16 ms; reflect pad n_fft // 2; frames * periodic
    # window; |rfft|; mel_filter_bank (slaney, linspace(0, sr // 2) bins, float64); log10(max(mel_floor, .))
    fb = np_filterbank(16000, 1024, 12, 80, 7600, bins_up_to=8000)
    window = np_window("hann", 1024, True)

    def run(x):
        x = np.pad(x, 512, mode="reflect")
        frames = np.stack([x[i:i + 1024] * window for i in range(0, len(x) - 1023, 256)])
        mel = np.log10(np.maximum(1e-10, np.abs(np.fft.rfft(frames, axis=-1)) @ fb.T)).T
        return (mel - mean[:, None]) / scale[:, None]  # SpeechT5HifiGan normalize_before
    assert_matches(feats, run)


# ---- bad inputs ----------------------------------------------------------------------------------------
def jik876_like(**over):
    return features.describe(**{**dict(toolkit="test", sample_rate=22050, n_fft=1024, win_length=1024,
                                       hop_length=256, n_mels=80, framing="padded", fmin=0.0, fmax=8000.0, log="ln",
                                       log_guard="clamp", log_floor=1e-5), **over})


def test_unknown_values_are_named_with_the_toolkit(tmp_path):
    folder = write_sb(tmp_path / "sb", OrigGenerator(TINY), TINY, mel=False)  # the released yaml: no mel settings
    feats = speechbrain.read(folder)[2]
    wav = torch.randn(2, 4001)
    with pytest.raises(ValueError, match=r"speechbrain features do not say sample_rate, n_fft, win_length, "
                                         r"hop_length, .*magnitude_power.*fmin, fmax.*log.*see missing"):
        features.mel_spectrogram(wav, feats)
    recipe = {**feats, **feats["recipe_defaults"], "missing": []}  # what the docstring says to do, knowingly
    assert features.mel_spectrogram(wav, recipe).shape == (2, 80, 16)

    feats, _ = hf_features(tmp_path / "hf", preprocessor=None)
    with pytest.raises(ValueError, match=r"huggingface features do not say n_fft, win_length, hop_length, framing, "
                                         r"pad, window, fmin, fmax, log.*processor"):
        features.mel_spectrogram(wav, feats)


def test_unread_normalisation_stats_are_named(tmp_path):
    gen = PWGHiFiGAN(EVEN)
    write_pwg(tmp_path / "h5", gen, stats=False)
    (tmp_path / "h5" / "stats.h5").write_bytes(b"\x89HDF\r\n\x1a\n")  # h5py is not installed here
    feats = parallel_wavegan.read(tmp_path / "h5")[2]
    with pytest.raises(ValueError, match=r"parallel_wavegan features do not say normalization\['mean'\], "
                                         r"normalization\['scale'\]"):
        features.mel_spectrogram(torch.randn(6001), feats)
    feats = parallel_wavegan.read(write_pwg(tmp_path / "none", gen, stats=False))[2]
    with pytest.raises(ValueError, match=r"parallel_wavegan features do not say normalization \(None"):
        features.mel_spectrogram(torch.randn(6001), feats)
    feats, _ = coqui_features(tmp_path, stats_path="/data/scale_stats.npy")
    assert feats["normalization"]["source"] == "/data/scale_stats.npy"
    with pytest.raises(ValueError, match=r"coqui features do not say normalization\['mean'\].*pickled dict"):
        features.mel_spectrogram(torch.randn(4001), feats)


def test_unsupported_settings_are_named(tmp_path):
    feats, _, _ = nemo_file(tmp_path, frame_splicing=3)
    with pytest.raises(ValueError, match=r"nemo features use settings this module does not reproduce exactly: "
                                         r"frame_splicing = 3"):
        features.mel_spectrogram(torch.randn(4001), feats)
    # 25 ms at 22.05 kHz: 551 samples in n_fft 1024, so SpeechT5's frames are not centred where torch.stft's are
    feats, _ = hf_features(tmp_path / "hf", preprocessor={**SPEECHT5, "sampling_rate": 22050, "win_length": 25})
    assert feats["n_fft"] == 1024 and feats["win_length"] == 551
    with pytest.raises(ValueError, match=r"win_length = 551 samples with n_fft 1024 \(an odd difference\)"):
        features.mel_spectrogram(torch.randn(4001), feats)


def test_sample_rate_is_checked():
    f = jik876_like()
    with pytest.raises(ValueError, match=r"the wav is at 16000 Hz but test features are computed at 22050 Hz"):
        features.mel_spectrogram(torch.randn(4001), f, sample_rate=16000)
    with pytest.raises(ValueError, match=r"16000 Hz.*22050 Hz"):
        features.check_sample_rate(16000, f)
    features.check_sample_rate(22050, f)
    with pytest.raises(ValueError, match=r"do not say their sample rate"):
        features.check_sample_rate(22050, {**f, "sample_rate": None})


@pytest.mark.parametrize("wav,error,match", [
    (torch.randn(1, 2, 4001), ValueError, r"expected a wav of shape \[T\] or \[B, T\], got shape \[1, 2, 4001\]"),
    (torch.zeros(4001, dtype=torch.int16), TypeError, r"floating-point wav .* got dtype torch.int16"),
    ([0.0] * 4001, TypeError, r"expected the wav as a torch.Tensor, got list"),
    (torch.randn(300), ValueError, r"the wav has 300 samples; reflect padding of 384 samples .* needs more than 384"),
], ids=["3d", "int16", "list", "too_short"])
def test_bad_wavs(wav, error, match):
    with pytest.raises(error, match=match):
        features.mel_spectrogram(wav, jik876_like())


def test_bad_feature_values():
    with pytest.raises(ValueError, match=r"pad_mode = 'circular'; expected one of \['reflect', 'constant', "):
        features.mel_spectrogram(torch.randn(4001), jik876_like(pad_mode="circular"))
    with pytest.raises(ValueError, match=r"fmin 0.0, fmax 12000.0; expected 0 <= fmin < fmax <= sample_rate / 2"):
        features.mel_spectrogram(torch.randn(4001), jik876_like(fmax=12000.0))
    with pytest.raises(ValueError, match=r"normalization\['mean'\] of shape \[79\]; expected \[80\]"):
        features.mel_spectrogram(torch.randn(4001), jik876_like(normalization={
            "type": "mean_scale", "mean": torch.zeros(79), "scale": torch.ones(79)}))
    with pytest.raises(TypeError, match=r"features must be a dict"):
        features.mel_spectrogram(torch.randn(4001), None)
    with pytest.raises(ValueError, match=r"\['log_base'\] are not feature keys"):
        features.describe(log_base=10)


def test_check_mel():
    f = jik876_like()
    mel = torch.randn(2, 80, 9)
    assert features.check_mel(mel, f) is mel and features.check_mel(mel[0], f) is not None
    with pytest.raises(ValueError, match=r"the mel has 64 bins \(shape \[2, 64, 9\]\) but test features have "
                                         r"n_mels 80"):
        features.check_mel(torch.randn(2, 64, 9), f)
    with pytest.raises(ValueError, match=r"shape \[B, n_mels, frames\] or \[n_mels, frames\], got shape \[80\]"):
        features.check_mel(torch.randn(80), f)
    with pytest.raises(TypeError, match=r"floating-point mel, got dtype torch.int64"):
        features.check_mel(torch.zeros(2, 80, 9, dtype=torch.long), f)


def test_shapes_and_dtypes():
    f = jik876_like()
    one = features.mel_spectrogram(torch.randn(4001), f)
    assert one.shape == (1, 80, 15) and one.dtype == torch.float32
    assert features.mel_spectrogram(torch.randn(2, 4001, dtype=torch.bfloat16), f).dtype == torch.float32
    x = torch.randn(3, 8001, dtype=torch.float64)[:, ::2]  # non-contiguous
    torch.testing.assert_close(features.mel_spectrogram(x, f), features.mel_spectrogram(x.contiguous(), f))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_features(tmp_path):
    nemo_feats, _, _ = nemo_file(tmp_path / "nemo", normalize="per_feature", preemph=0.97)
    coqui_feats, _ = coqui_features(tmp_path / "coqui", preemphasis=0.97)
    hf_feats, _ = hf_features(tmp_path / "hf")
    for feats in (nemo_feats, coqui_feats, hf_feats):
        for dtype, tol in ((torch.float64, 1e-9), (torch.float32, ATOL32)):
            wav = torch.from_numpy(wavs()).to(dtype)
            got = features.mel_spectrogram(wav.cuda(), feats)
            assert got.is_cuda and got.dtype == dtype
            torch.testing.assert_close(got.cpu(), features.mel_spectrogram(wav, feats), rtol=tol, atol=tol)
    mel = features.mel_spectrogram(torch.from_numpy(wavs()).cuda(), coqui_feats)
    other = {**coqui_feats, "normalization": {**coqui_feats["normalization"], "symmetric": False}}
    torch.testing.assert_close(features.convert(mel, coqui_feats, other).cpu(),
                               features.convert(mel.cpu(), coqui_feats, other), rtol=1e-9, atol=1e-9)

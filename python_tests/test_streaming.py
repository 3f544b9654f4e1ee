"""Streaming (vocoder_ext.streaming): HiFi-GAN's receptive field against a brute-force probe, chunked output equal
to the whole utterance's (HiFi-GAN, and WaveGlow with a given z), a short lookahead's error, and bad input."""
import pathlib

import pytest
import torch

import vocoder_ext
from vocoder_ext.streaming import Stream, receptive_field, stream

DEMO = pathlib.Path(__file__).resolve().parents[1] / "checkpoints" / "demo"  # the newest generator in it

# ParallelWaveGAN's odd upsample scales (u//2 + 1 padding, output_padding 1) and SpeechBrain's reflect padding
PWG = {**vocoder_ext.PRESETS["v2"], "upsample_rates": [5, 5, 3, 3], "upsample_kernel_sizes": [10, 10, 6, 6],
       "upsample_paddings": [3, 3, 2, 2], "upsample_output_paddings": [1, 1, 1, 1]}
REFLECT = {**vocoder_ext.PRESETS["v3"], "padding_mode": "reflect"}


def model(config, fused=True, seed=0):
    torch.manual_seed(seed)
    return vocoder_ext.HiFiGAN(config, fused=fused).remove_weight_norm().eval()


@pytest.mark.parametrize("config", ["v1", "v2", "v3", PWG, REFLECT], ids=["v1", "v2", "v3", "pwg", "reflect"])
def test_receptive_field_matches_a_brute_force_probe(config):
    """Excite one mel frame: the output frames that respond are those whose field holds it. A structural
    probe: positive weights, no biases and an all-zero mel elsewhere, so no contribution, however small at the
    field's edge (products of ~20 layers' edge taps: 1e-15 of the peak in a random model), can cancel or round
    away against the rest of the signal; read before the final tanh, which saturates."""
    m = model(config, fused=False).double()
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(p.abs() if name.endswith("weight") else torch.zeros_like(p))
    pre_tanh = []
    m.conv_post.register_forward_hook(lambda module, args, out: pre_tanh.append(out))
    mel, t = torch.zeros(1, 80, 60, dtype=torch.float64), 30
    mel[:, :, t] = torch.rand(80, dtype=torch.float64) + 0.5
    with torch.no_grad():
        m(mel)
    changed = (pre_tanh[0][0, 0] != 0).nonzero().flatten()
    first, last = changed.min().item() // m.hop_length, changed.max().item() // m.hop_length
    assert receptive_field(m) == (last - t, t - first)


def _streamed(m, mel, pieces, **kw):
    with torch.inference_mode():
        return torch.cat(list(stream(m, pieces, **kw)), 2)


@pytest.mark.parametrize("config,frames", [("v1", 30), ("v2", 61), ("v3", 47)])
@pytest.mark.parametrize("batch", [1, 2])
def test_streaming_equals_the_whole_utterance(config, frames, batch):
    m = model(config)
    mel = torch.randn(batch, 80, frames)
    with torch.inference_mode():
        whole = m(mel)
    gen = torch.Generator().manual_seed(frames + batch)
    cuts = sorted(torch.randperm(frames - 1, generator=gen)[:6].add(1).tolist())
    random_split = [mel[:, :, a:b] for a, b in zip([0] + cuts, cuts + [frames])]
    by_three = list(torch.split(mel, 3, 2))  # pieces shorter than the 11-13 frames of context
    for chunk, splits in ((1, [random_split]), (7, [by_three, random_split + [mel[:, :, :0]]]), (32, [by_three])):
        for pieces in splits:
            out = _streamed(m, mel, pieces, chunk_frames=chunk)
            assert torch.equal(out, whole), f"chunk {chunk}: the fused CPU path must be bit-identical"


def test_a_long_utterance_streams_exactly():
    """Long enough that a length-dependent choice inside a layer (oneDNN's blocking for conv_pre, before it
    moved onto our kernel) would change the rounding of the whole-utterance pass."""
    m = model("v2")
    mel = torch.randn(1, 80, 400)
    with torch.inference_mode():
        whole = m(mel)
    assert torch.equal(_streamed(m, mel, torch.split(mel, 32, 2), chunk_frames=32), whole)


def test_streaming_the_eager_path_and_the_demo_model():
    eager = model("v2", fused=False)
    mel = torch.randn(1, 80, 50)
    with torch.inference_mode():
        whole = eager(mel)
    torch.testing.assert_close(_streamed(eager, mel, torch.split(mel, 4, 2), chunk_frames=7), whole,
                               rtol=0, atol=1e-6)
    demo = vocoder_ext.HiFiGAN.from_pretrained(str(DEMO)).remove_weight_norm().eval()
    with torch.inference_mode():
        whole = demo(mel)
    assert torch.equal(_streamed(demo, mel, torch.split(mel, 5, 2), chunk_frames=16), whole)


def small_waveglow(seed=0):
    torch.manual_seed(seed)
    m = vocoder_ext.WaveGlow(n_flows=4, n_early_every=2, WN_config={"n_layers": 4, "n_channels": 16, "kernel_size": 3})
    with torch.no_grad():
        for wn in m.WN:  # NVIDIA's init zeroes the last conv (each coupling starts as the identity)
            wn.end.weight.normal_(0, 0.1)
            wn.end.bias.normal_(0, 0.1)
    return m.eval()


def test_waveglow_streams_with_a_given_z():
    m = small_waveglow()
    assert receptive_field(vocoder_ext.WaveGlow()) == (99, 96)  # NVIDIA's config: twelve flows of 255 steps
    left, right = receptive_field(m)
    mel = torch.randn(2, 80, 47)
    z = torch.randn(*m.noise_shape(mel))
    steps = 256 // m.n_group
    with torch.inference_mode():
        whole = m.infer(mel, 0.8, z=z)
    cuts = [0, 3, 4, 17, 30, 47]
    pieces = [(mel[:, :, a:b], z[:, :, a * steps:b * steps]) for a, b in zip(cuts, cuts[1:])]
    for chunk in (1, 7, 32):
        with torch.inference_mode():
            out = torch.cat(list(stream(m, pieces, chunk_frames=chunk, sigma=0.8)), -1)
        assert torch.equal(out, whole), f"chunk {chunk}"
    # the field is tight: one frame less of either context changes the audio
    for less_left, lookahead in ((0, right - 1), (1, right)):
        s = Stream(m, chunk_frames=4, lookahead_frames=lookahead, sigma=0.8)
        s.left -= less_left
        with torch.inference_mode():
            out = torch.cat([s.push(*p) for p in pieces] + [s.flush()], -1)
        assert out.shape == whole.shape and not torch.equal(out, whole)
    with pytest.raises(ValueError, match=r"WaveGlow streams with a given z: expected a float tensor \(2, 8, 96\)"):
        Stream(m).push(mel[:, :, :3])
    with pytest.raises(ValueError, match="z is WaveGlow's noise; HiFi-GAN takes the mel alone"):
        Stream(model("v2")).push(torch.randn(1, 80, 3), torch.randn(1, 8, 96))


def test_a_short_lookahead_trades_exactness_for_latency():
    m = model("v2")
    left, right = receptive_field(m)
    mel = torch.randn(1, 80, 64)
    with torch.inference_mode():
        whole = m(mel)
    errors = []
    for lookahead in (0, right // 2, right):
        s = Stream(m, chunk_frames=8, lookahead_frames=lookahead)
        assert s.exact == (lookahead >= right)
        with torch.inference_mode():
            first = s.push(mel[:, :, :8 + lookahead])  # the first chunk is out once its lookahead has arrived
            assert first.shape[2] == 8 * m.hop_length
            out = torch.cat([first, s.push(mel[:, :, 8 + lookahead:]), s.flush()], 2)
        assert out.shape == whole.shape
        errors.append((out - whole).abs().max().item())
    assert errors[0] > errors[1] > 0 and errors[2] == 0


def test_bad_input_is_refused_clearly():
    m = model("v2")
    s = Stream(m, chunk_frames=4)
    with torch.inference_mode():
        s.push(torch.randn(1, 80, 3))
        with pytest.raises(ValueError, match=r"expected shape \[B, 80, n\], got \(1, 79, 2\)"):
            s.push(torch.randn(1, 79, 2))
        with pytest.raises(ValueError, match="dtype torch.float32 .* got batch 1, dtype torch.float64"):
            s.push(torch.randn(1, 80, 2, dtype=torch.float64))
        with pytest.raises(ValueError, match="expected batch 1,.* got batch 2"):
            s.push(torch.randn(2, 80, 2))
        s.flush()
        with pytest.raises(RuntimeError, match="the stream was flushed"):
            s.push(torch.randn(1, 80, 2))
    with pytest.raises(ValueError, match="chunk_frames: expected an int >= 1, got 0"):
        Stream(m, chunk_frames=0)
    with pytest.raises(ValueError, match="lookahead_frames: expected an int >= 0 or None"):
        Stream(m, lookahead_frames=-1)
    with pytest.raises(TypeError, match="expected a vocoder_ext.HiFiGAN or WaveGlow, got Linear"):
        Stream(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match=r"expected a torch.Tensor \[B, 80, n\], got ndarray"):
        Stream(m).push(torch.randn(1, 80, 2).numpy())


def _cli(capsys, *argv):
    from vocoder_ext.cli import main
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err


def test_synth_stream_writes_the_same_wav(capsys, tmp_path):
    import numpy as np
    import soundfile as sf
    torch.manual_seed(0)
    checkpoint = vocoder_ext.HiFiGAN("v2").save_pretrained(str(tmp_path / "v2.pt"))
    np.save(tmp_path / "m.npy", (torch.randn(80, 45) - 5).numpy())
    wavs = {}
    for name, flags in (("whole", []), ("stream", ["--stream", "--chunk-frames", 8])):
        code, err = _cli(capsys, "synth", tmp_path / "m.npy", "-o", tmp_path / name, "--checkpoint", checkpoint, *flags)
        assert code == 0, err
        wavs[name] = sf.read(tmp_path / name / "m.wav", dtype="float32")[0]
    assert wavs["whole"].shape == (45 * 256,) and np.abs(wavs["whole"]).max() > 0.01
    assert np.array_equal(wavs["whole"], wavs["stream"])
    for flags, message in ((["--stream", "--chunk-frames", 0], "--stream: chunk_frames: expected an int >= 1, got 0"),
                           (["--chunk-frames", 8], "--chunk-frames and --lookahead-frames go with --stream"),
                           (["--stream", "--denoise", 0.1], "--stream vocodes HiFi-GAN's plain generator")):
        code, err = _cli(capsys, "synth", tmp_path / "m.npy", "-o", tmp_path / "bad", "--checkpoint", checkpoint,
                         *flags)
        assert code == 2 and message in err, err


def test_bench_stream_table(capsys, tmp_path):
    import json
    code, err = _cli(capsys, "bench", "--stream-only", "--quick", "--out", tmp_path)
    assert code == 0, err
    report = json.loads((tmp_path / "bench.json").read_text())["stream"]
    rows = report["latency"]
    assert [r["chunk_frames"] for r in rows] == ["whole", 8, 16, 32, 64]
    assert all(r["exact"] and 0 < r["first_audio_s"] <= r["total_s"] for r in rows)
    assert all(r["lookahead_frames"] == 13 for r in rows[1:])
    assert "## Streaming: time to first audio" in (tmp_path / "bench.md").read_text()
    looks = report["lookahead"]
    assert [r["lookahead_frames"] for r in looks] == [0, 1, 2, 4, 6, 8, 13]
    assert looks[-1]["exact"] and not looks[0]["exact"] and looks[0]["snr_db"] < looks[-2]["snr_db"]

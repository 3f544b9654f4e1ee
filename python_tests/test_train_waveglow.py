"""python -m train.waveglow: NVIDIA's loss step by step, fused vs eager, accumulation, DDP, kill -9 + resume, bad input.

Runs use a tiny WaveGlow (20 mel bands, 4 flows, 2 WN layers of 8 channels), 1024-sample segments and a
small corpus cut from the bundled one. The reference for the loss and the Adam step is original_waveglow.py,
an independent implementation of NVIDIA's model and WaveGlowLoss written for the tests.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from original_waveglow import WaveGlow as OrigWaveGlow, randomize, waveglow_loss as nvidia_loss
from test_train import _write_filelist
from train import checkpoints
from train.data import AudioMelDataset
from train.distributed import Context
from train.waveglow import (SETTINGS, Trainer, audio_settings, build_parser, main, model_config, resolve_settings,
                            run)
from vocoder_ext import WaveGlow
from vocoder_ext.audio import load_wav, save_wav, tacotron2_mel_spectrogram

REPO = Path(__file__).resolve().parent.parent
SEGMENT = 1024
# 20 mel bands: the mel upsampling (n_mel^2 x 1024 weights, 6.5M at 80 bands) would dominate every step
TINY = ["--n_mel_channels", "20", "--flows", "4", "--groups", "8", "--early_every", "2", "--early_size", "2",
        "--wn_layers", "2", "--wn_channels", "8"]
PAIR = checkpoints.WAVEGLOW


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """6 training and 2 validation clips of real speech (0.05-0.15 s) cut from the bundled corpus."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "wavs").mkdir()
    names = []
    for i, src in enumerate(sorted((REPO / "data" / "wavs").glob("*.wav"))[:8]):
        audio, sr = load_wav(src)
        save_wav(root / "wavs" / f"clip{i}.wav", audio[4000:4000 + 1100 + 300 * i], sr)
        names.append(f"wavs/clip{i}.wav")
    (root / "train.txt").write_text("\n".join(names[:6]) + "\n")
    (root / "val.txt").write_text("\n".join(names[6:]) + "\n")
    return root


def flags(corpus, out, *extra, model=TINY):
    return ["-o", str(out), "-d", str(corpus), "--training_files", str(corpus / "train.txt"),
            "--validation_files", str(corpus / "val.txt"), *model, "-bs", "2", "--segment_length", str(SEGMENT),
            "--num_workers", "0", "--log_interval", "1", "--validation_samples", "1", "--validation_interval", "1000",
            "--epochs_per_checkpoint", "1000", *extra]


def log_events(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def make_trainer(corpus, *extra, state_dict=None):
    args = build_parser().parse_args(flags(corpus, "unused", *extra))
    return Trainer(args, Context("cpu"), resolve_settings(args, None, None), state_dict)


def batches(corpus, sizes, seed=3):
    """Micro-batches [(mel, audio [B, 1, S])] of training segments, as the DataLoader gives them."""
    args = build_parser().parse_args(flags(corpus, "unused"))
    h = audio_settings(resolve_settings(args, None, None))
    data = AudioMelDataset([str(corpus / "wavs" / f"clip{i}.wav") for i in range(6)], h, SEGMENT, seed=seed,
                           front_end="tacotron2")
    items = [data[i][:2] for i in range(sum(sizes))]
    out, start = [], 0
    for n in sizes:
        out.append([torch.stack([it[j] for it in items[start:start + n]]) for j in range(2)])
        start += n
    return out


# ---- data ----------------------------------------------------------------------------------------
def test_segments_carry_tacotron2_mels_of_the_audio_as_stored(corpus, tmp_path):
    h = audio_settings(SETTINGS)
    path = corpus / "wavs" / "clip5.wav"  # 2600 samples: longer than a segment
    raw, _ = load_wav(path)
    mel, audio, name = AudioMelDataset([str(path)], h, SEGMENT, front_end="tacotron2")[0]
    assert name == str(path) and audio.shape == (1, SEGMENT) and mel.shape == (80, SEGMENT // 256 + 1)
    starts = [s for s in range(len(raw) - SEGMENT + 1) if torch.equal(raw[s:s + SEGMENT], audio[0])]
    assert len(starts) == 1  # a slice of the file as stored: no peak normalising, as NVIDIA's loader
    torch.testing.assert_close(mel, tacotron2_mel_spectrogram(audio[0]), rtol=0, atol=0)
    save_wav(tmp_path / "short.wav", raw[:700], 22050)
    mel, audio, _ = AudioMelDataset([str(tmp_path / "short.wav")], h, SEGMENT, front_end="tacotron2")[0]
    assert torch.equal(audio[0, :700], raw[:700]) and not audio[0, 700:].any()  # zero-padded, as NVIDIA's
    torch.testing.assert_close(mel, tacotron2_mel_spectrogram(audio[0]), rtol=0, atol=0)


# ---- the step -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fused", [False, True], ids=["eager", "fused"])
def test_steps_give_nvidia_loss_and_adam_update(corpus, fused):
    """Three steps from random weights (non-zero `end`, non-orthogonal 1x1 convs): each step's loss equals
    NVIDIA's WaveGlowLoss of the reference model on the same batch, and the weights follow its Adam."""
    args = build_parser().parse_args(flags(corpus, "unused"))
    config = model_config(resolve_settings(args, None, None))
    reference = randomize(OrigWaveGlow(**config), seed=int(torch.randint(0, 2 ** 31 - 1, ())))
    trainer = make_trainer(corpus, "-lr", "1e-3", *(["--fused"] if fused else []),
                           state_dict=reference.state_dict())
    adam = torch.optim.Adam(reference.parameters(), lr=1e-3, weight_decay=0.0)
    for step, (mel, audio) in enumerate(batches(corpus, [2, 2, 2])):
        adam.zero_grad()
        want = nvidia_loss(reference((mel, audio[:, 0])), sigma=1.0)
        want.backward()
        adam.step()
        want = want.detach()
        got = trainer.step([(mel, audio)])["loss"]
        assert float(got) == pytest.approx(float(want), rel=1e-4, abs=1e-6), f"step {step + 1}"
    ours = trainer.model.state_dict()
    for name, value in reference.state_dict().items():
        # atol: a tenth of one step (lr): Adam turns a gradient that is all rounding noise into a full step
        torch.testing.assert_close(ours[name], value, rtol=1e-4, atol=1e-4, msg=name)


def test_fused_and_eager_training_give_the_same_losses(corpus):
    losses = {}
    for fused in (True, False):
        trainer = make_trainer(corpus, "-lr", "1e-3", *(["--fused"] if fused else []))
        losses[fused] = [float(trainer.step([b])["loss"]) for b in batches(corpus, [2, 2, 2])]
    assert losses[True] == pytest.approx(losses[False], rel=1e-3)


def test_grad_accumulation_equals_one_larger_batch(corpus):
    """4 segments as 2 micro-batches of 2 give the gradients (so the update) of one batch of 4."""
    one, two = make_trainer(corpus), make_trainer(corpus)  # same seed: same initial weights
    logs_one = one.step(batches(corpus, [4]))
    logs_two = two.step(batches(corpus, [2, 2]))
    assert float(logs_two["loss"]) == pytest.approx(float(logs_one["loss"]), rel=1e-5)
    for (name, p1), p2 in zip(one.model.named_parameters(), two.model.parameters()):
        torch.testing.assert_close(p2.grad, p1.grad, rtol=1e-3, atol=1e-5 * p1.grad.abs().max().item() + 1e-9,
                                   msg=name)
        torch.testing.assert_close(p2, p1, msg=name)


@pytest.mark.parametrize("fused", [False, True], ids=["eager", "fused"])
def test_cpu_amp_trains_in_bf16_with_fp32_log_det(corpus, fused):
    trainer = make_trainer(corpus, "--amp", *(["--fused"] if fused else []))
    assert not trainer.scaler.is_enabled()  # bf16 needs no loss scaling
    mel, audio = batches(corpus, [2])[0]
    with trainer.autocast():
        z, log_s, log_det = trainer.model(mel, audio[:, 0])
    assert log_s[0].dtype == torch.bfloat16  # the WN ran in bf16 ...
    assert all(d.dtype == torch.float32 for d in log_det)  # ... log|det W| in fp32
    assert z.dtype == (torch.float32 if fused else torch.bfloat16)  # fused: the flow's audio too
    logs = trainer.step([(mel, audio)])
    assert all(torch.isfinite(torch.as_tensor(v)) for v in logs.values())


# ---- whole runs ---------------------------------------------------------------------------------
def test_short_run_writes_loadable_checkpoints_logs_and_audio_samples(corpus, tmp_path):
    out = tmp_path / "run"
    assert main(flags(corpus, out, "--fused", "--max_steps", "2")) == 0
    assert checkpoints.steps_on_disk(out, PAIR) == [2]
    model = WaveGlow.from_pretrained(out)  # the model file is the ordinary inference format
    assert model.config["WN_config"]["n_channels"] == 8 and model.n_flows == 4
    state = torch.load(out / checkpoints.STATE.format(2), weights_only=True)
    assert state["steps"] == 2 and state["settings"]["wn_channels"] == 8 and "exp_avg" in str(state["optimizer"])
    events = log_events(out)
    assert [e["step"] for e in events if e["event"] == "train"] == [1, 2]
    val = [e for e in events if e["event"] == "validation"]
    assert [e["step"] for e in val] == [0, 2] and all(torch.isfinite(torch.tensor(e["loss"])) for e in val)
    assert val[1]["samples"] == ["clip6/sigma_0.6", "clip6/sigma_0.9"]
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = ea.EventAccumulator(str(out / "tensorboard"), size_guidance={"audio": 0})
    acc.Reload()
    assert sorted(acc.Tags()["audio"]) == ["generated/clip6/sigma_0.6", "generated/clip6/sigma_0.9"]
    assert {"train/loss", "train/grad_norm", "validation/loss"} <= set(acc.Tags()["scalars"])


def test_fine_tuning_starts_from_checkpoint_path_with_its_config(corpus, tmp_path, capsys):
    other = [*TINY[:-1], "6"]  # 6 WN channels
    pretrained = WaveGlow(**model_config(resolve_settings(build_parser().parse_args(
        flags(corpus, "unused", model=other)), None, None)), fused=False)
    for wn in pretrained.WN:
        torch.nn.init.normal_(wn.end.weight, std=0.1)
    path = pretrained.save_pretrained(str(tmp_path / "pretrained.pt"))
    argv = flags(corpus, tmp_path / "ft", "--max_steps", "1", "--checkpoint_path", path, model=[])
    trainer = run(build_parser().parse_args(argv))  # no model flags: the checkpoint's model
    assert trainer.model.config == pretrained.config
    for (name, ours), theirs in zip(trainer.model.named_parameters(), pretrained.parameters()):
        assert (ours - theirs).abs().max() < 1e-3, name  # one Adam step of lr 1e-4 away
    assert main(flags(corpus, tmp_path / "ft2", "--max_steps", "1", "--checkpoint_path", path)) == 2
    assert "--wn_channels 8 vs 6" in capsys.readouterr().err


def _ddp_worker(rank, port, argv, dump):
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    trainer = run(build_parser().parse_args(argv))
    torch.save(trainer.model.state_dict(), f"{dump}.{rank}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_end_with_identical_parameters(corpus, tmp_path):
    out = tmp_path / "ddp"
    argv = flags(corpus, out, "--fused", "--max_steps", "2", "-bs", "1", "--grad_accumulation", "2")
    mp.start_processes(_ddp_worker, args=(free_port(), argv, str(tmp_path / "params")), nprocs=2,
                       start_method="spawn")
    rank0, rank1 = (torch.load(tmp_path / f"params.{r}", weights_only=True) for r in (0, 1))
    for key, value in rank0.items():
        torch.testing.assert_close(rank1[key], value, rtol=0, atol=0, msg=key)
    torch.manual_seed(1234)  # --seed's default: the weights both ranks started from
    initial = WaveGlow(**model_config(resolve_settings(build_parser().parse_args(argv), None, None))).state_dict()
    assert not all(torch.equal(initial[k], rank0[k]) for k in initial)  # it trained
    assert checkpoints.steps_on_disk(out, PAIR) == [2]  # rank 0 alone writes
    assert [e["step"] for e in log_events(out) if e["event"] == "train"] == [1, 2]


def test_kill_then_resume_continues_from_the_last_checkpoint(corpus, tmp_path):
    out = tmp_path / "killed"
    argv = flags(corpus, out, "--fused", "--max_steps", "12", "--checkpoint_interval", "1", "--keep_last", "2",
                 "--validation_samples", "0")
    cmd = [sys.executable, "-m", "train.waveglow", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / checkpoints.STATE.format(2)).exists():
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)  # most likely in the middle of a step or of writing the next checkpoint
    proc.wait()
    model, state = checkpoints.load_latest(out, pair=PAIR)
    last = state["steps"]
    assert 2 <= last < 12 and model["config"]["n_flows"] == 4

    done = subprocess.run([*cmd, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert checkpoints.steps_on_disk(out, PAIR) == [12, 11]  # --keep_last 2
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]
    WaveGlow.from_pretrained(str(out / PAIR.model_file.format(12)))
    events = log_events(out)
    starts = [i for i, e in enumerate(events) if e["event"] == "start"]
    assert len(starts) == 2 and events[starts[1]]["step"] == last
    assert [e["step"] for e in events[starts[1]:] if e["event"] == "train"] == list(range(last + 1, 13))


# ---- bad input ----------------------------------------------------------------------------------
def test_resume_with_another_config_is_refused(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(flags(corpus, out, "--max_steps", "1")) == 0
    other = flags(corpus, out, "--max_steps", "2", "--resume")
    other[other.index("--wn_channels") + 1] = "16"
    assert main(other) == 2
    err = capsys.readouterr().err
    assert "--wn_channels: 8 in the checkpoint vs 16 now" in err
    assert checkpoints.steps_on_disk(out, PAIR) == [1]


def test_output_folder_is_not_overwritten_without_resume(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(flags(corpus, out, "--max_steps", "1")) == 0
    before = {n: os.path.getmtime(out / n) for n in os.listdir(out)}
    assert main(flags(corpus, out, "--max_steps", "1")) == 2
    assert "--resume" in capsys.readouterr().err
    assert {n: os.path.getmtime(out / n) for n in os.listdir(out)} == before


def test_nvidia_flag_spellings_are_accepted():
    args = build_parser().parse_args(["-o", "x", "--segment-length", "16000", "--wn-channels", "512",
                                      "--epochs-per-checkpoint", "5", "--resume-from-last", "-bs", "10"])
    assert (args.segment_length, args.wn_channels, args.epochs_per_checkpoint, args.resume, args.batch_size) == \
        (16000, 512, 5, True, 10)
    defaults = build_parser().parse_args(["-o", "x"])
    assert (defaults.learning_rate, defaults.sigma, defaults.segment_length, defaults.weight_decay) == \
        (1e-4, 1.0, 8000, 0.0)


@pytest.mark.parametrize("case, message", [
    ("missing dataset", "--dataset_path"),
    ("empty filelist", "empty"),
    ("wrong rate", "16000 Hz"),
    ("grad accumulation 0", "--grad_accumulation must be at least 1, got 0"),
    ("segment not a multiple of n_group", "--segment_length 1020 is not a multiple of --groups 8"),
    ("missing checkpoint_path", "--checkpoint_path"),
    ("batch too large", "--batch_size"),
])
def test_bad_input_is_a_clear_error(corpus, tmp_path, capsys, case, message):
    argv = flags(corpus, tmp_path / "out", "--max_steps", "1")
    if case == "missing dataset":
        argv[argv.index("-d") + 1] = str(tmp_path / "nowhere")
    elif case == "empty filelist":
        argv[argv.index("--training_files") + 1] = str(_write_filelist(tmp_path / "empty.txt", []))
    elif case == "wrong rate":
        (tmp_path / "wavs").mkdir()
        save_wav(tmp_path / "wavs" / "sr16k.wav", torch.rand(4000) - 0.5, 16000)
        argv[argv.index("-d") + 1] = str(tmp_path)
        argv[argv.index("--training_files") + 1] = str(_write_filelist(tmp_path / "l.txt", ["wavs/sr16k.wav"] * 6))
    elif case == "grad accumulation 0":
        argv += ["--grad_accumulation", "0"]
    elif case == "segment not a multiple of n_group":
        argv[argv.index("--segment_length") + 1] = "1020"
    elif case == "missing checkpoint_path":
        argv += ["--checkpoint_path", str(tmp_path / "none.pt")]
    elif case == "batch too large":
        argv += ["-bs", "7"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err and not (tmp_path / "out").exists()  # nothing written

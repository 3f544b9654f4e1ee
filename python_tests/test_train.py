"""python -m train.hifigan: DDP, gradient accumulation, kill -9 + resume, fused vs eager, fine-tuning, bad input.

Runs use a tiny generator, short segments and a small corpus cut from the bundled one. The
discriminators are the recipe's full-size ones, so each training state file is ~850 MB.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from train import checkpoints
from train.data import AudioMelDataset
from train.distributed import Context
from train.hifigan import Trainer, build_parser, main, run
from vocoder_ext import HiFiGAN
from vocoder_ext.audio import load_wav, mel_spectrogram, save_wav

REPO = Path(__file__).resolve().parent.parent
TINY = {"resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
        "upsample_initial_channel": 16, "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 3], [1, 3]]}
SEGMENT = 512


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """6 training and 2 validation clips of real speech (0.1-0.3 s) cut from the bundled corpus."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "wavs").mkdir()
    sources = sorted((REPO / "data" / "wavs").glob("*.wav"))
    names = []
    for i, src in enumerate(sources[:8]):
        audio, sr = load_wav(src)
        clip = audio[4000:4000 + 2300 + 600 * i]
        save_wav(root / "wavs" / f"clip{i}.wav", clip, sr)
        names.append(f"wavs/clip{i}.wav")
    (root / "train.txt").write_text("\n".join(names[:6]) + "\n")
    (root / "val.txt").write_text("\n".join(names[6:]) + "\n")
    (root / "tiny.json").write_text(json.dumps(TINY))
    return root


def flags(corpus, out, *extra):
    return ["-o", str(out), "-d", str(corpus), "--training_files", str(corpus / "train.txt"),
            "--validation_files", str(corpus / "val.txt"), "--config", str(corpus / "tiny.json"),
            "-bs", "2", "--segment_size", str(SEGMENT), "--num_workers", "0", "--log_interval", "1",
            "--validation_interval", "1000", "--checkpoint_interval", "1000", *extra]


def log_events(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_short_run_writes_loadable_checkpoints_and_logs(corpus, tmp_path):
    out = tmp_path / "run"
    assert main(flags(corpus, out, "--fused", "--max_steps", "2", "--validation_interval", "2")) == 0
    assert checkpoints.steps_on_disk(out) == [2]
    model = HiFiGAN.from_pretrained(out)  # the generator file is the ordinary inference format
    assert model.config["upsample_initial_channel"] == 16
    events = log_events(out)
    train = [e for e in events if e["event"] == "train"]
    assert [e["step"] for e in train] == [1, 2]
    for e in train:
        assert np.isfinite([e["loss_gen_all"], e["loss_disc_all"], e["mel_l1"]]).all()
        assert e["audio_samples_per_s"] == pytest.approx(e["segments_per_s"] * SEGMENT)
    val = [e for e in events if e["event"] == "validation"]
    assert [e["step"] for e in val] == [0, 2] and all(e["mel_l1"] > 0 for e in val)  # untrained, then step 2
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(out / "tensorboard"))


def _micro_batches(corpus, sizes, segment=SEGMENT):
    paths = [str(corpus / "wavs" / f"clip{i}.wav") for i in range(4)]
    data = AudioMelDataset(paths, {**TINY, **trainer_config()}, segment, seed=3)
    items = [data[i][:3] for i in range(4)]
    batches, start = [], 0
    for n in sizes:
        batches.append([torch.stack([it[j] for it in items[start:start + n]]) for j in range(3)])
        start += n
    return batches


def trainer_config():
    from vocoder_ext.models.config import AUDIO_DEFAULTS
    return dict(AUDIO_DEFAULTS)


def make_trainer(corpus, *extra):
    args = build_parser().parse_args(flags(corpus, "unused", *extra))
    return Trainer(args, Context("cpu"), {**trainer_config(), **TINY})


def grads(trainer):
    return {f"{name}.{n}": p.grad.clone() for name in ("generator", "mpd", "msd")
            for n, p in getattr(trainer, name).named_parameters()}


def test_grad_accumulation_equals_one_larger_batch(corpus):
    """4 segments as 2 micro-batches of 2 give the gradients (so the update) of one batch of 4."""
    one, two = make_trainer(corpus), make_trainer(corpus)  # same seed: same initial weights
    one.step(_micro_batches(corpus, [4]))
    two.step(_micro_batches(corpus, [2, 2]))
    g1, g2 = grads(one), grads(two)
    for name, g in g1.items():
        torch.testing.assert_close(g2[name], g, rtol=1e-3, atol=1e-5 * g.abs().max().item() + 1e-9, msg=name)
    for p1, p2 in zip(one.msd.buffers(), two.msd.buffers()):  # spectral-norm estimates advanced alike
        torch.testing.assert_close(p2, p1)


@pytest.mark.parametrize("flags", [["--fused"], ["--fused", "--fused_discriminators"],
                                   ["--fused", "--fused_discriminators", "--concat_fwd"]],
                         ids=["fused", "fused_discriminators", "fused_discriminators_concat_fwd"])
def test_fused_and_eager_training_give_the_same_losses(corpus, flags):
    """The fused generator and discriminators give the eager recipe's losses over 3 steps, with and without
    real+generated in one discriminator pass (concat_fwd changes the recipe slightly: one spectral-norm power
    iteration per pass instead of two; test_discriminators_fused.py compares it with separate passes)."""
    losses = {}
    for name, argv in (("fused", flags), ("eager", [f for f in flags if f == "--concat_fwd"])):
        trainer = make_trainer(corpus, *argv)
        assert trainer.mpd.fused == trainer.msd.fused == ("--fused_discriminators" in argv)
        losses[name] = [{k: float(v) for k, v in trainer.step(_micro_batches(corpus, [2])).items()}
                        for _ in range(3)]
    for step_fused, step_eager in zip(losses["fused"], losses["eager"]):
        for name in ("loss_disc_all", "loss_gen_all", "mel_l1", "loss_fm"):
            assert step_fused[name] == pytest.approx(step_eager[name], rel=1e-3), name


def test_cpu_amp_trains_in_bf16(corpus):
    trainer = make_trainer(corpus, "--fused", "--amp")
    logs = trainer.step(_micro_batches(corpus, [2]))
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert not trainer.scaler_g.is_enabled()  # bf16 needs no loss scaling


def test_disc_start_step_trains_the_generator_alone_for_exactly_n_steps(corpus):
    """--disc_start_step 2: steps 1-2 update the generator alone (mel L1 + STFT loss), step 3 is the GAN step."""
    trainer = make_trainer(corpus, "--disc_start_step", "2", "--stft_loss", "--segment_size", "2048")
    d_params = lambda: [p.detach().clone() for p in (*trainer.mpd.parameters(), *trainer.msd.parameters())]
    d_before, g_before = d_params(), [p.detach().clone() for p in trainer.generator.parameters()]
    logs = []
    for _ in range(3):
        logs.append({k: float(v) for k, v in trainer.step(_micro_batches(corpus, [2], 2048)).items()})
        trainer.steps += 1
        if trainer.steps == 2:
            assert all(torch.equal(a, b) for a, b in zip(d_params(), d_before))  # untouched while warming up
            assert not all(torch.equal(a, b) for a, b in zip(trainer.generator.parameters(), g_before))
    assert not any(torch.equal(a, b) for a, b in zip(d_params(), d_before))  # the GAN step trained them
    for warm in logs[:2]:
        assert "loss_disc_all" not in warm and warm["stft_loss"] > 0
        assert warm["loss_gen_all"] == pytest.approx(45 * warm["mel_l1"] + 45 * warm["stft_loss"], rel=1e-5)
    assert {"loss_disc_all", "loss_gen", "loss_fm", "mel_l1", "stft_loss"} <= set(logs[2])


@pytest.mark.parametrize("every", ["epoch", "step"])
def test_lr_decay_every_epoch_or_step(corpus, tmp_path, every):
    """--lr_decay_every epoch (the recipe's: 6 clips at batch 2 is a 3-step epoch) or step; the discriminators'
    rate decays only once they train (GAN steps 3 and 4 here)."""
    out = tmp_path / every
    assert main(flags(corpus, out, "--max_steps", "4", "--lr_decay", "0.5", "--lr_decay_every", every,
                      "--disc_start_step", "2")) == 0
    lrs = [e["lr"] for e in log_events(out) if e["event"] == "train"]
    powers_g, power_d = ([0, 0, 1, 1], 1) if every == "epoch" else ([1, 2, 3, 4], 2)
    assert lrs == pytest.approx([2e-4 * 0.5 ** k for k in powers_g])
    _, state = checkpoints.load_latest(out)
    assert state["optim_d"]["param_groups"][0]["lr"] == pytest.approx(2e-4 * 0.5 ** power_d)


def test_stft_loss_is_zero_for_equal_audio_and_grows_with_the_difference():
    from vocoder_ext.losses import stft_loss
    y = torch.randn(2, 1, 4096)
    assert float(stft_loss(y, y)) == 0.0
    near, far = stft_loss(y + 0.01 * torch.randn_like(y), y), stft_loss(y + 0.5 * torch.randn_like(y), y)
    assert 0 < float(near) < float(far)
    with pytest.raises(ValueError, match="one shape"):
        stft_loss(y, y[..., :100])
    with pytest.raises(ValueError, match="longer than 1024 samples"):
        stft_loss(y[..., :1000], y[..., :1000])


def test_resuming_across_disc_start_step_gives_the_uninterrupted_run(corpus, tmp_path):
    """Warm-up state lives in the step count: stopping inside the warm-up and resuming past it ends where
    an uninterrupted run ends (same data order, same RNG, same weights)."""
    common = ("--disc_start_step", "2", "--stft_loss", "--fused", "--segment_size", "2048")
    assert main(flags(corpus, tmp_path / "whole", *common, "--max_steps", "3")) == 0
    assert main(flags(corpus, tmp_path / "split", *common, "--max_steps", "1")) == 0
    assert main(flags(corpus, tmp_path / "split", *common, "--max_steps", "3", "--resume")) == 0
    (g_whole, s_whole), (g_split, s_split) = (checkpoints.load_latest(tmp_path / n) for n in ("whole", "split"))
    assert s_whole["steps"] == s_split["steps"] == 3
    for name, p in g_whole["generator"].items():
        torch.testing.assert_close(g_split["generator"][name], p, rtol=1e-5, atol=1e-6, msg=name)
    for name, p in s_whole["mpd"].items():
        torch.testing.assert_close(s_split["mpd"][name], p, rtol=1e-5, atol=1e-6, msg=name)
    events = log_events(tmp_path / "split")
    train = {e["step"]: e for e in events if e["event"] == "train"}
    assert sorted(train) == [1, 2, 3] and "loss_disc_all" not in train[2] and "loss_disc_all" in train[3]


def _ddp_worker(rank, port, argv, dump):
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    trainer = run(build_parser().parse_args(argv))
    torch.save({name: getattr(trainer, name).state_dict() for name in ("generator", "mpd", "msd")},
               f"{dump}.{rank}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_end_with_identical_parameters(corpus, tmp_path):
    out = tmp_path / "ddp"
    argv = flags(corpus, out, "--fused", "--max_steps", "2", "-bs", "1")
    mp.start_processes(_ddp_worker, args=(free_port(), argv, str(tmp_path / "params")), nprocs=2,
                       start_method="spawn")
    rank0, rank1 = (torch.load(tmp_path / f"params.{r}", weights_only=True) for r in (0, 1))
    torch.manual_seed(1234)  # --seed's default: the weights both ranks started from
    initial = HiFiGAN({**trainer_config(), **TINY}).state_dict()
    for module in rank0:
        for key, value in rank0[module].items():
            torch.testing.assert_close(rank1[module][key], value, rtol=0, atol=0, msg=f"{module}.{key}")
    assert all(torch.equal(initial[k], rank0["generator"][k]) for k in initial) is False  # it trained
    assert checkpoints.steps_on_disk(out) == [2]  # rank 0 alone writes
    assert [e["step"] for e in log_events(out) if e["event"] == "train"] == [1, 2]


def test_kill_then_resume_continues_from_the_last_checkpoint(corpus, tmp_path):
    out = tmp_path / "killed"
    argv = flags(corpus, out, "--fused", "--max_steps", "5", "--checkpoint_interval", "1", "--keep_last", "2")
    cmd = [sys.executable, "-m", "train.hifigan", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / checkpoints.STATE.format(2)).exists():
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)  # most likely in the middle of writing the next checkpoint
    proc.wait()
    generator, state = checkpoints.load_latest(out)
    last = state["steps"]
    assert last >= 2 and generator["config"]["upsample_initial_channel"] == 16

    done = subprocess.run([*cmd, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert checkpoints.steps_on_disk(out) == [5, 4]  # --keep_last 2
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]
    for step in (4, 5):
        HiFiGAN.from_pretrained(str(out / checkpoints.GENERATOR.format(step)))
    events = log_events(out)
    starts = [i for i, e in enumerate(events) if e["event"] == "start"]
    assert len(starts) == 2 and events[starts[1]]["step"] == last
    resumed_steps = [e["step"] for e in events[starts[1]:] if e["event"] == "train"]
    assert resumed_steps == list(range(last + 1, 6))  # monotone, from the checkpoint on


def test_fine_tuning_reads_npy_mels_and_checks_their_length(corpus, tmp_path):
    mels = tmp_path / "mels"
    mels.mkdir()
    for wav in (corpus / "wavs").glob("*.wav"):
        audio, _ = load_wav(wav)
        mel = mel_spectrogram(audio)  # (80, T // 256): the frames HiFi-GAN's own front end gives
        extra = torch.cat([mel, mel[:, -1:]], dim=1)  # Tacotron2-style: one frame more
        np.save(mels / f"{wav.stem}.npy", extra.numpy())
    out = tmp_path / "ft"
    argv = flags(corpus, out, "--fused", "--max_steps", "1", "--fine_tuning", "--input_mels_dir", str(mels))
    assert main(argv) == 2  # misaligned by a frame: an error, not a silent shift
    assert main([*argv, "--mel_frame_offset", "1"]) == 0
    assert checkpoints.steps_on_disk(out) == [1]


def test_fine_tuning_mismatch_error_names_the_file(corpus, tmp_path, capsys):
    mels = tmp_path / "mels"
    mels.mkdir()
    for wav in (corpus / "wavs").glob("*.wav"):
        np.save(mels / f"{wav.stem}.npy", np.random.randn(80, 3).astype(np.float32))
    assert main(flags(corpus, tmp_path / "ft", "--max_steps", "1", "--fine_tuning", "--input_mels_dir",
                      str(mels))) == 2
    err = capsys.readouterr().err
    assert ".npy" in err and "--mel_frame_offset" in err


def test_resume_with_another_config_is_refused(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(flags(corpus, out, "--max_steps", "1")) == 0
    other = flags(corpus, out, "--max_steps", "2", "--resume")
    other[other.index("--config") + 1] = "v2"
    assert main(other) == 2
    assert "upsample_initial_channel" in capsys.readouterr().err
    assert checkpoints.steps_on_disk(out) == [1]


def test_output_folder_is_not_overwritten_without_resume(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(flags(corpus, out, "--max_steps", "1")) == 0
    before = {n: os.path.getmtime(out / n) for n in os.listdir(out)}
    assert main(flags(corpus, out, "--max_steps", "1")) == 2
    assert "--resume" in capsys.readouterr().err
    assert {n: os.path.getmtime(out / n) for n in os.listdir(out)} == before


def _write_filelist(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize("case, message", [
    (["--disc_start_step", "-1"], "--disc_start_step"), (["--stft_loss_weight", "0"], "--stft_loss_weight"),
    (["--stft_loss"], "--segment_size above 1024"),
    ("missing dataset", "--dataset_path"),
    ("empty filelist", "empty"),
    ("unreadable wav", "broken.wav"),
    ("wrong rate", "16000 Hz"),
    ("grad accumulation 0", "--grad_accumulation"),
    ("batch too large", "--batch_size"),
])
def test_bad_input_is_a_clear_error(corpus, tmp_path, capsys, case, message):
    argv = flags(corpus, tmp_path / "out", "--max_steps", "1")
    if case == "missing dataset":
        argv[argv.index("-d") + 1] = str(tmp_path / "nowhere")
    elif case == "empty filelist":
        argv[argv.index("--training_files") + 1] = str(_write_filelist(tmp_path / "empty.txt", []))
    elif case in ("unreadable wav", "wrong rate"):  # in a corpus of their own, next to copies of good clips
        (tmp_path / "wavs").mkdir()
        for name in ("clip6", "clip7"):
            (tmp_path / "wavs" / f"{name}.wav").write_bytes((corpus / "wavs" / f"{name}.wav").read_bytes())
        if case == "unreadable wav":
            (tmp_path / "wavs" / "broken.wav").write_bytes(b"RIFF not really a wav")
        else:
            save_wav(tmp_path / "wavs" / "sr16k.wav", torch.rand(4000) - 0.5, 16000)
        bad = "wavs/broken.wav" if case == "unreadable wav" else "wavs/sr16k.wav"
        argv[argv.index("-d") + 1] = str(tmp_path)
        argv[argv.index("--training_files") + 1] = str(_write_filelist(tmp_path / "l.txt", [bad] * 6))
    elif case == "grad accumulation 0":
        argv += ["--grad_accumulation", "0"]
    elif case == "batch too large":
        argv += ["-bs", "7"]
    else:  # flags
        argv += case
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not (tmp_path / "out").exists()  # nothing written

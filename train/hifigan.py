"""python -m train.hifigan: train or fine-tune HiFi-GAN with the original recipe, fused kernels optional.

    python -m train.hifigan --fused -o out/run                          # the bundled corpus (data/)
    torchrun --nproc_per_node 2 -m train.hifigan --fused -o out/ddp     # DDP: gloo on CPU, NCCL on GPU
    python -m train.hifigan -o out/ft --fine_tuning --input_mels_dir mels/ --checkpoint_path_gen g.pt

One optimizer step: the discriminators' step on G(x).detach(), then the generator's step (LSGAN + 2 x
feature matching + 45 x mel L1), each over --grad_accumulation micro-batches of --batch_size per rank.
With --disc_start_step N, the first N steps train the generator alone (45 x mel L1, plus the
multi-resolution STFT loss with --stft_loss), as ParallelWaveGAN/ESPnet warm up; the GAN steps follow.
"""
import argparse
import contextlib
import itertools
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from vocoder_ext.audio import mel_spectrogram
from vocoder_ext.checkpoint import CheckpointError, read_generator_checkpoint, safe_load
from vocoder_ext.models.config import AUDIO_DEFAULTS, ConfigError, resolve_config
from vocoder_ext.models.discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
from vocoder_ext.models import HiFiGAN
from vocoder_ext.losses import (MEL_LOSS_WEIGHT, STFT_RESOLUTIONS, discriminator_loss, feature_loss, generator_loss,
                                stft_loss)

from . import checkpoints, cli
from .cli import UsageError
from .data import AudioMelDataset, wav_list
from .distributed import Context
from .loop import Every, run_steps, training_data
from .monitor import Monitor


def build_parser():
    p = argparse.ArgumentParser(prog="python -m train.hifigan", description=__doc__.split("\n\n")[0],
                                formatter_class=cli.HelpFormatter)
    p.add_argument("-o", "--output", required=True, help="folder for checkpoints, logs and TensorBoard")
    p.add_argument("-d", "--dataset_path", default="data", help="root that the filelists' wav paths are relative to")
    p.add_argument("--training_files", nargs="+", default=[os.path.join("data", "filelists", "train.txt")],
                   help="filelists: one wavs/X.wav a line, or the original id|text|text lines")
    p.add_argument("--validation_files", nargs="+", default=[os.path.join("data", "filelists", "validation.txt")])
    p.add_argument("--config", help="v1 | v2 | v3 | config.json (default: v1, or the checkpoint's when resuming)")
    p.add_argument("-bs", "--batch_size", type=int, default=16, help="segments per micro-batch per rank")
    p.add_argument("--grad_accumulation", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--epochs", type=int, default=3100)
    p.add_argument("--max_steps", type=int, help="stop after this many optimizer steps (short runs)")
    p.add_argument("-lr", "--learning_rate", type=float, default=2e-4)
    p.add_argument("--adam_betas", type=float, nargs=2, default=[0.8, 0.99])
    p.add_argument("--lr_decay", type=float, default=0.999,
                   help="ExponentialLR gamma, stepped once per --lr_decay_every")
    p.add_argument("--lr_decay_every", choices=("epoch", "step"), default="epoch",
                   help="epoch (the recipe's) or step: on a small corpus an epoch is a few steps, so the recipe's "
                        "per-epoch decay stalls a run early; per step, 0.999 per ~800-step LJSpeech epoch is "
                        "--lr_decay 0.99999875")
    p.add_argument("--segment_size", type=int, default=8192, help="audio samples per training segment")
    p.add_argument("--amp", action="store_true", help="fp16 autocast + GradScalers on CUDA, bf16 autocast on CPU")
    p.add_argument("--fused", action="store_true", help="the generator runs on vocoder_ext's fused ops")
    p.add_argument("--fused_discriminators", action="store_true",
                   help="the discriminators run on vocoder_ext's conv1d_lrelu op (same results; on a 2-core CPU the "
                        "whole step measured 1.13-1.17x --fused alone, on an H200 GPU 0.5-0.7x, hence not part "
                        "of --fused)")
    p.add_argument("--concat_fwd", action="store_true",
                   help="real and generated audio through each discriminator in one pass (NVIDIA's flag; more memory)")
    p.add_argument("--disc_start_step", type=int, default=0,
                   help="train the generator alone (mel L1, and the STFT loss with --stft_loss) for this many steps, "
                        "then the GAN steps (ParallelWaveGAN/ESPnet's warm-up; 0: the original recipe)")
    p.add_argument("--stft_loss", action="store_true",
                   help="add ParallelWaveGAN's multi-resolution STFT loss (spectral convergence + log magnitude "
                        "L1 at FFT sizes 1024/2048/512) to the generator's loss, in warm-up and GAN steps")
    p.add_argument("--stft_loss_weight", type=float, default=MEL_LOSS_WEIGHT,
                   help="its weight (default: the mel L1's, 45, so the two spectral terms count alike)")
    p.add_argument("--resume", action="store_true", help="continue from the newest valid checkpoint in --output")
    p.add_argument("--fine_tuning", action="store_true", help="input mels from --input_mels_dir; no peak normalising")
    p.add_argument("--input_mels_dir", help="fine-tuning: folder of <wav stem>.npy mels, (80, T) or (1, 80, T)")
    p.add_argument("--mel_frame_offset", type=int, default=0,
                   help="fine-tuning: the .npy mels have this many frames more than len(audio) // hop (1 for "
                        "Tacotron2's centered STFT); they are dropped from the end")
    p.add_argument("--checkpoint_path_gen", help="start from this generator (any format from_pretrained reads)")
    p.add_argument("--checkpoint_path_discrim", help="start from these discriminators ('mpd' and 'msd' entries)")
    p.add_argument("--checkpoint_interval", type=int, default=5000, help="steps between checkpoints")
    p.add_argument("--keep_last", type=int, default=2, help="checkpoints kept in --output")
    p.add_argument("--validation_interval", type=int, default=1000, help="steps between validations")
    p.add_argument("--validation_samples", type=int, default=3, help="utterances logged as audio and mel images")
    p.add_argument("--log_interval", type=int, default=10, help="steps between log lines")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--num_workers", type=int, default=1, help="DataLoader worker processes per rank")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    return p


def check_args(args):
    cli.check_at_least(args, 1, "batch_size", "grad_accumulation", "epochs", "segment_size", "checkpoint_interval",
                       "validation_interval", "keep_last", "log_interval", "max_steps")
    cli.check_at_least(args, 0, "num_workers", "mel_frame_offset", "validation_samples", "disc_start_step")
    longest_fft = max(n_fft for n_fft, _, _ in STFT_RESOLUTIONS)
    if args.stft_loss and args.segment_size <= longest_fft // 2:
        raise UsageError(f"--stft_loss needs --segment_size above {longest_fft // 2} samples (half its largest FFT), "
                         f"got {args.segment_size}")
    if not args.stft_loss_weight > 0:
        raise UsageError(f"--stft_loss_weight: expected a weight > 0, got {args.stft_loss_weight}")
    if args.fine_tuning != (args.input_mels_dir is not None):
        raise UsageError("--fine_tuning and --input_mels_dir go together (fine-tuning reads its input mels "
                         "from that folder)")
    if args.input_mels_dir and not os.path.isdir(args.input_mels_dir):
        raise UsageError(f"--input_mels_dir {args.input_mels_dir} is not a folder")
    if not os.path.isdir(args.dataset_path):
        raise UsageError(f"--dataset_path {args.dataset_path}: no such folder")


def resolve_run_config(args, resumed):
    try:
        h = resolve_config(args.config or (resumed[0]["config"] if resumed else "v1"))
    except ConfigError as e:
        raise UsageError(f"--config: {e}") from e
    h = {**AUDIO_DEFAULTS, **h}  # a config.json may give the generator alone
    if math.prod(h["upsample_rates"]) != h["hop_size"]:
        raise UsageError(f"--config: upsample_rates {h['upsample_rates']} multiply to {math.prod(h['upsample_rates'])}, "
                         f"not the hop size {h['hop_size']}: generated and real segments would differ in length")
    if resumed:
        checkpoints.check_compatible(resumed[0]["config"], h, args.output, checkpoints.hifigan_keys(h))
    return h


class SpectralNormReplay:
    """Each micro-batch starts the MSD's spectral-norm power iteration from the same vectors, so K
    micro-batches leave and use the same estimate as one batch K times larger."""

    def __init__(self, module):
        self.buffers = [b for name, b in module.named_buffers() if name.endswith(("weight_u", "weight_v"))]

    def __enter__(self):
        self.saved = [b.clone() for b in self.buffers]
        return self

    def restore(self):
        with torch.no_grad():
            for b, s in zip(self.buffers, self.saved):
                b.copy_(s)

    def __exit__(self, *exc):
        return False


class Trainer:
    def __init__(self, args, ctx, h):
        self.args, self.ctx, self.h = args, ctx, h
        device = ctx.device
        self.autocast_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        torch.manual_seed(args.seed)
        self.generator = HiFiGAN(h, fused=args.fused).to(device).train()
        self.generator.fp32_output = args.amp  # the audio and its mel loss in fp32 (see HiFiGAN.fp32_output)
        fused_d = args.fused_discriminators
        self.mpd = MultiPeriodDiscriminator(fused=fused_d, concat_fwd=args.concat_fwd).to(device).train()
        self.msd = MultiScaleDiscriminator(fused=fused_d, concat_fwd=args.concat_fwd).to(device).train()
        self.optim_g = torch.optim.AdamW(self.generator.parameters(), args.learning_rate, betas=args.adam_betas)
        self.optim_d = torch.optim.AdamW(itertools.chain(self.msd.parameters(), self.mpd.parameters()),
                                         args.learning_rate, betas=args.adam_betas)
        self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.optim_g, gamma=args.lr_decay)
        self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.optim_d, gamma=args.lr_decay)
        scale = args.amp and device.type == "cuda"  # bf16 needs no loss scaling
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=scale)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=scale)
        self.steps = self.epoch = self.batches_in_epoch = 0
        # DDP wrappers; the G step calls the discriminators unwrapped (their gradients are not wanted there).
        wrap = (lambda m: DistributedDataParallel(m, device_ids=[device] if device.type == "cuda" else None)) \
            if ctx.distributed else (lambda m: m)
        self.G, self.MPD, self.MSD = wrap(self.generator), wrap(self.mpd), wrap(self.msd)

    # ---- state -------------------------------------------------------------------------------
    def load_pretrained(self, gen_path, discrim_path):
        try:
            if gen_path:
                state_dict, _, _ = read_generator_checkpoint(gen_path, config=self.h)
                self.generator.load_state_dict(state_dict)
            if discrim_path:
                ckpt = safe_load(discrim_path, self.ctx.device)
                for key in ("mpd", "msd"):
                    if key not in ckpt:
                        raise CheckpointError(f"{discrim_path} has no '{key}' entry (found {sorted(ckpt)[:8]})")
                self.mpd.load_state_dict(ckpt["mpd"])
                self.msd.load_state_dict(ckpt["msd"])
        except (CheckpointError, RuntimeError, FileNotFoundError) as e:
            raise UsageError(f"--checkpoint_path_gen/--checkpoint_path_discrim: {e}") from e

    def load(self, generator_ckpt, state):
        self.generator.load_state_dict(generator_ckpt["generator"])
        self.mpd.load_state_dict(state["mpd"])
        self.msd.load_state_dict(state["msd"])
        for name in ("optim_g", "optim_d", "sched_g", "sched_d", "scaler_g", "scaler_d"):
            getattr(self, name).load_state_dict(state[name])
        self.steps, self.epoch, self.batches_in_epoch = state["steps"], state["epoch"], state["batches_in_epoch"]
        checkpoints.set_rng_states(state["rng"])

    def save(self):
        state = {"steps": self.steps, "epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch,
                 "mpd": self.mpd.state_dict(), "msd": self.msd.state_dict(), "fused": self.args.fused,
                 "train_setup": {k: v for k, v in vars(self.args).items()}}
        for name in ("optim_g", "optim_d", "sched_g", "sched_d", "scaler_g", "scaler_d"):
            state[name] = getattr(self, name).state_dict()
        checkpoints.save(self.args.output, state, self.generator.state_dict(), self.generator.config,
                         self.args.keep_last)

    def end_epoch(self):
        if self.args.lr_decay_every == "epoch":
            self.decay_learning_rates(self.steps > self.args.disc_start_step)

    def decay_learning_rates(self, discriminators_trained):
        """One ExponentialLR step: the generator's, and the discriminators' once they train."""
        self.sched_g.step()
        if discriminators_trained:
            self.sched_d.step()

    def learning_rate(self):
        return self.optim_g.param_groups[0]["lr"]

    # ---- one optimizer step ------------------------------------------------------------------
    def autocast(self):
        return torch.autocast(self.ctx.device.type, dtype=self.autocast_dtype, enabled=self.args.amp)

    def loss_mel(self, y_hat):
        """The mel of generated audio, in fp32 whatever the autocast (as the recipe does)."""
        h = self.h
        with torch.autocast(self.ctx.device.type, enabled=False):
            return mel_spectrogram(y_hat.float().squeeze(1), h["n_fft"], h["num_mels"], h["sampling_rate"],
                                   h["hop_size"], h["win_size"], h["fmin"], h["fmax_for_loss"])

    def spectral_losses(self, y_hat, y, y_mel):
        """(mel L1, STFT loss or None, their weighted sum): the generator's reconstruction terms."""
        mel_l1 = F.l1_loss(y_mel, self.loss_mel(y_hat))
        if not self.args.stft_loss:
            return mel_l1, None, MEL_LOSS_WEIGHT * mel_l1
        stft = stft_loss(y_hat, y)
        return mel_l1, stft, MEL_LOSS_WEIGHT * mel_l1 + self.args.stft_loss_weight * stft

    def warming_up(self):
        """Whether the next step trains the generator alone (--disc_start_step)."""
        return self.steps < self.args.disc_start_step

    def step(self, micro_batches):
        """One D step then one G step over K micro-batches [(mel, audio, mel_loss)] (the generator's step alone
        while warming up); -> logged scalars."""
        gan = not self.warming_up()
        logs = self.gan_step(micro_batches) if gan else self.generator_step(micro_batches)
        if self.args.lr_decay_every == "step":
            self.decay_learning_rates(gan)
        return logs

    def gan_step(self, micro_batches):
        """The recipe's step: the discriminators', then the generator's; -> logged scalars."""
        k_total = len(micro_batches)
        sync = lambda module, k: (contextlib.nullcontext() if k == k_total - 1 or not self.ctx.distributed
                                  else module.no_sync())
        # Discriminators. Only the first micro-batch's G graph is kept for the G step; the others are
        # regenerated there, so memory does not grow with K.
        y_hats, logs = [], {"loss_disc_all": 0.0}
        self.optim_d.zero_grad(set_to_none=True)
        with SpectralNormReplay(self.msd) as replay:
            for k, (x, y, _) in enumerate(micro_batches):
                with sync(self.G, k) if k == 0 else torch.no_grad(), self.autocast():
                    y_hats.append(self.G(x))
                if k > 0:
                    replay.restore()
                with sync(self.MPD, k), sync(self.MSD, k), self.autocast():
                    y_hat = y_hats[k].detach()
                    loss_f, _, _ = discriminator_loss(*self.MPD(y, y_hat)[:2], sync=False)
                    loss_s, _, _ = discriminator_loss(*self.MSD(y, y_hat)[:2], sync=False)
                    loss_d = (loss_f + loss_s) / k_total
                self.scaler_d.scale(loss_d).backward()
                logs["loss_disc_all"] += loss_d.detach()
        self.scaler_d.unscale_(self.optim_d)
        logs["grad_norm_d"] = grad_norm(self.optim_d)
        self.scaler_d.step(self.optim_d)
        self.scaler_d.update()

        # Generator.
        for name in ("loss_gen_all", "loss_gen", "loss_fm", "mel_l1", *(("stft_loss",) if self.args.stft_loss else ())):
            logs[name] = 0.0
        self.optim_g.zero_grad(set_to_none=True)
        with SpectralNormReplay(self.msd) as replay:
            for k, (x, y, y_mel) in enumerate(micro_batches):
                if k > 0:
                    with sync(self.G, k), self.autocast():
                        y_hats[k] = self.G(x)
                    replay.restore()
                y_hat = y_hats[k]
                with self.autocast():
                    _, f_gs, f_fr, f_fg = self.mpd(y, y_hat)
                    _, s_gs, s_fr, s_fg = self.msd(y, y_hat)
                    loss_gen = generator_loss(f_gs)[0] + generator_loss(s_gs)[0]
                    loss_fm = feature_loss(f_fr, f_fg) + feature_loss(s_fr, s_fg)
                mel_l1, stft, spectral = self.spectral_losses(y_hat, y, y_mel)
                loss_g = (loss_gen.float() + loss_fm.float() + spectral) / k_total
                self.scaler_g.scale(loss_g).backward(inputs=list(self.generator.parameters()))
                for name, value in (("loss_gen_all", loss_g), ("loss_gen", loss_gen), ("loss_fm", loss_fm),
                                    ("mel_l1", mel_l1), ("stft_loss", stft)):
                    if value is not None:
                        logs[name] += value.detach() / (1 if name == "loss_gen_all" else k_total)
                y_hats[k] = None  # free the graph
        self.scaler_g.unscale_(self.optim_g)
        logs["grad_norm_g"] = grad_norm(self.optim_g)
        self.scaler_g.step(self.optim_g)
        self.scaler_g.update()
        return logs

    def generator_step(self, micro_batches):
        """A warm-up step: the generator alone, on its reconstruction terms; the discriminators are untouched."""
        k_total = len(micro_batches)
        logs = dict.fromkeys(("loss_gen_all", "mel_l1", *(("stft_loss",) if self.args.stft_loss else ())), 0.0)
        self.optim_g.zero_grad(set_to_none=True)
        for k, (x, y, y_mel) in enumerate(micro_batches):
            sync = contextlib.nullcontext() if k == k_total - 1 or not self.ctx.distributed else self.G.no_sync()
            with sync:
                with self.autocast():
                    y_hat = self.G(x)
                mel_l1, stft, spectral = self.spectral_losses(y_hat, y, y_mel)
                self.scaler_g.scale(spectral / k_total).backward()
            logs["loss_gen_all"] += spectral.detach() / k_total
            logs["mel_l1"] += mel_l1.detach() / k_total
            if stft is not None:
                logs["stft_loss"] += stft.detach() / k_total
        self.scaler_g.unscale_(self.optim_g)
        logs["grad_norm_g"] = grad_norm(self.optim_g)
        self.scaler_g.step(self.optim_g)
        self.scaler_g.update()
        return logs

    # ---- validation ----------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, dataset, n_samples):
        """-> (mel L1 over the full validation utterances, [(name, audio, mel)] of the first few)."""
        self.generator.eval()
        total, samples = 0.0, []
        try:
            for i in range(len(dataset)):
                mel, _, mel_target, path = dataset[i]
                y_hat = self.generator(mel.unsqueeze(0).to(self.ctx.device))
                mel_hat = self.loss_mel(y_hat)[0]
                total += F.l1_loss(mel_hat, mel_target.to(mel_hat.device)).item()
                if i < n_samples:
                    samples.append((os.path.splitext(os.path.basename(path))[0], y_hat[0, 0], mel_hat))
        finally:
            self.generator.train()
        return total / len(dataset), samples


def grad_norm(optimizer):
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads).detach()


def run(args):
    """Train as the parsed flags say; -> the Trainer (its models and step count) when done."""
    check_args(args)
    with Context(args.device) as ctx:
        return _run(args, ctx)


def _run(args, ctx):
    resumed = checkpoints.open_output(args, ctx)
    h = resolve_run_config(args, resumed)
    train_paths = wav_list(args.training_files, args.dataset_path, h["sampling_rate"], "--training_files")
    val_paths = wav_list(args.validation_files, args.dataset_path, h["sampling_rate"], "--validation_files")
    mels_dir = args.input_mels_dir if args.fine_tuning else None
    try:
        train_set = AudioMelDataset(train_paths, h, args.segment_size, split=True, mels_dir=mels_dir,
                                    mel_frame_offset=args.mel_frame_offset, seed=args.seed)
        val_set = AudioMelDataset(val_paths, h, args.segment_size, split=False, mels_dir=mels_dir,
                                  mel_frame_offset=args.mel_frame_offset, seed=args.seed)
        train_set.check_input_mels()
        val_set.check_input_mels()
    except ValueError as e:
        raise UsageError(str(e)) from e
    data = training_data(train_set, ctx, args)

    trainer = Trainer(args, ctx, h)
    trainer.load_pretrained(args.checkpoint_path_gen, args.checkpoint_path_discrim)
    if resumed:
        trainer.load(*resumed)
    if ctx.main:
        os.makedirs(args.output, exist_ok=True)
    monitor = Monitor(args.output, data.total_steps, trainer.steps, enabled=ctx.main,
                      bar_fields={"g": "loss_gen_all", "d": "loss_disc_all", "mel": "mel_l1"})
    if args.resume:
        monitor.write(f"resuming from step {trainer.steps} (epoch {trainer.epoch})" if resumed
                      else f"--resume: no checkpoint in {args.output} yet, starting from scratch")
    monitor.event("start", step=trainer.steps, world_size=ctx.world_size, device=str(ctx.device),
                  fused=args.fused, amp=args.amp, disc_start_step=args.disc_start_step, stft_loss=args.stft_loss,
                  config=h, steps_per_epoch=data.steps_per_epoch,
                  total_steps=data.total_steps)

    def validate():
        mel_l1, samples = trainer.validate(val_set, args.validation_samples)
        monitor.validation(trainer.steps, trainer.epoch, {"mel_l1": mel_l1}, samples, h["sampling_rate"])

    if ctx.main and trainer.steps == 0:  # the untrained baseline, for the curves and for comparison
        validate()
    run_steps(trainer, data, ctx, monitor, args, args.segment_size,
              validate_when=Every(steps=args.validation_interval), validate=validate,
              save_when=Every(steps=args.checkpoint_interval), save=trainer.save)
    return trainer


def main(argv=None):
    return cli.main("python -m train.hifigan", build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())

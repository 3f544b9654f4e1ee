"""python -m train.waveglow: train or fine-tune WaveGlow with NVIDIA's recipe, fused kernels optional.

    python -m train.waveglow --fused -o out/wg                            # the bundled corpus (data/)
    torchrun --nproc_per_node 2 -m train.waveglow --fused -o out/ddp      # DDP: gloo on CPU, NCCL on GPU
    python -m train.waveglow --fused -o out/ft -d my_voice --training_files my_voice/train.txt \\
        --validation_files my_voice/val.txt --checkpoint_path nvidia_waveglow256pyt_fp16.pt

One optimizer step (NVIDIA DeepLearningExamples Tacotron2/train.py -m WaveGlow): over --grad_accumulation
micro-batches of --batch_size random --segment_length segments per rank, the negative log-likelihood
WaveGlowLoss(z, log_s, log_det_W) at --sigma, backward (scaled by a GradScaler under --amp on CUDA), the
gradient norm clipped to --grad_clip_thresh, then Adam. Mels are Tacotron2's, computed from each segment.
"""
import argparse
import contextlib
import math
import os
import sys

import torch
from torch.nn.parallel import DistributedDataParallel

from vocoder_ext.checkpoint import CheckpointError, read_waveglow_checkpoint
from vocoder_ext.losses import waveglow_loss
from vocoder_ext.models import WaveGlow
from vocoder_ext.models.waveglow import HOP

from . import checkpoints, cli
from .cli import UsageError
from .data import AudioMelDataset, wav_list
from .distributed import Context
from .loop import Every, run_steps, training_data
from .monitor import Monitor

SAMPLE_SIGMAS = (0.6, 0.9)  # the audio samples: NVIDIA's README example and its inference default

# The settings that make a run, by flag (argparse dest) -> NVIDIA's default. None of these flags has an
# argparse default: one left out takes the resumed checkpoint's value, then --checkpoint_path's (the
# model's), then this one, so a resumed or fine-tuned run needs no repeated flags.
MODEL_SETTINGS = {"n_mel_channels": 80, "flows": 12, "groups": 8, "early_every": 4, "early_size": 2,
                  "wn_layers": 8, "wn_channels": 256, "wn_kernel_size": 3}
AUDIO_SETTINGS = {"sampling_rate": 22050, "filter_length": 1024, "win_length": 1024, "mel_fmin": 0.0,
                  "mel_fmax": 8000.0}
SETTINGS = {**MODEL_SETTINGS, **AUDIO_SETTINGS}


def add(group, *names, **kwargs):
    """A flag under our name and NVIDIA's dashed spelling (--segment_length and --segment-length)."""
    dashed = [n.replace("_", "-") for n in names if n.startswith("--") and "_" in n]
    group.add_argument(*names, *dashed, **kwargs)


def build_parser():
    p = argparse.ArgumentParser(prog="python -m train.waveglow", description=__doc__.split("\n\n")[0],
                                formatter_class=cli.HelpFormatter)
    add(p, "-o", "--output", required=True, help="folder for checkpoints, logs and TensorBoard")
    add(p, "-d", "--dataset_path", default="data", help="root that the filelists' wav paths are relative to")
    add(p, "--training_files", nargs="+", default=[os.path.join("data", "filelists", "train.txt")],
        help="filelists: one wavs/X.wav a line (anything after | ignored), or id|text|text lines")
    add(p, "--validation_files", nargs="+", default=[os.path.join("data", "filelists", "validation.txt")])
    add(p, "-bs", "--batch_size", type=int, default=4, help="segments per micro-batch per rank")
    add(p, "--grad_accumulation", type=int, default=1, help="micro-batches per optimizer step")
    add(p, "--epochs", type=int, default=1001)
    add(p, "--max_steps", type=int, help="stop after this many optimizer steps (short runs)")
    add(p, "-lr", "--learning_rate", type=float, default=1e-4)
    add(p, "--weight_decay", type=float, default=0.0, help="Adam's weight decay")
    add(p, "--grad_clip_thresh", type=float, default=math.inf,
        help="clip the gradient norm to this (inf: off; NVIDIA's recipes pass 65504 or 3.4e38, i.e. off too)")
    add(p, "--sigma", type=float, default=1.0, help="the standard deviation of z that the loss assumes")
    add(p, "--segment_length", type=int, default=8000, help="audio samples per training segment")
    add(p, "--amp", action="store_true", help="fp16 autocast + GradScaler on CUDA, bf16 autocast on CPU")
    add(p, "--fused", action="store_true", help="the model runs on vocoder_ext's fused ops")
    add(p, "--resume", "--resume_from_last", action="store_true",
        help="continue from the newest valid checkpoint in --output")
    add(p, "--checkpoint_path", help="start from this WaveGlow (any format WaveGlow.from_pretrained reads; its "
                                     "config is the default of the model flags)")
    add(p, "--epochs_per_checkpoint", type=int, default=50, help="epochs between checkpoints")
    add(p, "--checkpoint_interval", type=int, help="also checkpoint every this many steps")
    add(p, "--keep_last", type=int, default=2, help="checkpoints kept in --output")
    add(p, "--validation_interval", type=int, help="steps between validations (default: every epoch)")
    add(p, "--validation_samples", type=int, default=2,
        help=f"validation utterances synthesised at sigma {' and '.join(map(str, SAMPLE_SIGMAS))} for TensorBoard")
    add(p, "--samples_interval", type=int, default=10, help="epochs between audio samples (and at the end)")
    add(p, "--log_interval", type=int, default=10, help="steps between log lines")
    add(p, "--seed", type=int, default=1234)
    add(p, "--num_workers", type=int, default=1, help="DataLoader worker processes per rank")
    add(p, "--device", default="auto", choices=("auto", "cpu", "cuda"))
    model = p.add_argument_group("model (default: the resumed run's, else --checkpoint_path's, else NVIDIA's "
                                 "with 256 WN channels, the size of NVIDIA's published checkpoint)")
    add(model, "--flows", type=int, help=f"steps of flow ({MODEL_SETTINGS['flows']})")
    add(model, "--groups", type=int, help=f"audio samples per group, n_group ({MODEL_SETTINGS['groups']})")
    add(model, "--early_every", type=int, help=f"flows between early outputs ({MODEL_SETTINGS['early_every']})")
    add(model, "--early_size", type=int, help=f"channels per early output ({MODEL_SETTINGS['early_size']})")
    add(model, "--wn_layers", type=int, help=f"layers per WN ({MODEL_SETTINGS['wn_layers']})")
    add(model, "--wn_channels", type=int, help=f"WN channels ({MODEL_SETTINGS['wn_channels']}: NVIDIA's published "
                                               "checkpoint and NVIDIA/waveglow; DeepLearningExamples trains 512)")
    add(model, "--wn_kernel_size", type=int, help=f"WN dilated-conv kernel ({MODEL_SETTINGS['wn_kernel_size']})")
    add(model, "--n_mel_channels", type=int, help=f"mel bands ({MODEL_SETTINGS['n_mel_channels']})")
    audio = p.add_argument_group(f"Tacotron2 mel front end (hop {HOP}, fixed by the model's upsampling; "
                                 "default: the resumed run's, else NVIDIA's)")
    add(audio, "--sampling_rate", type=int, help=f"Hz; every wav must have it ({AUDIO_SETTINGS['sampling_rate']})")
    add(audio, "--filter_length", type=int, help=f"FFT size ({AUDIO_SETTINGS['filter_length']})")
    add(audio, "--win_length", type=int, help=f"STFT window ({AUDIO_SETTINGS['win_length']})")
    add(audio, "--mel_fmin", type=float, help=f"Hz ({AUDIO_SETTINGS['mel_fmin']})")
    add(audio, "--mel_fmax", type=float, help=f"Hz ({AUDIO_SETTINGS['mel_fmax']})")
    return p


def check_args(args):
    cli.check_at_least(args, 1, "batch_size", "grad_accumulation", "epochs", "segment_length", "epochs_per_checkpoint",
                       "checkpoint_interval", "keep_last", "validation_interval", "samples_interval", "log_interval",
                       "max_steps", *MODEL_SETTINGS, "sampling_rate", "filter_length", "win_length")
    cli.check_at_least(args, 0, "num_workers", "validation_samples", "weight_decay", "mel_fmin")
    for flag in ("sigma", "grad_clip_thresh", "learning_rate"):
        if not getattr(args, flag) > 0:
            raise UsageError(f"--{flag} must be > 0, got {getattr(args, flag)}")
    if not os.path.isdir(args.dataset_path):
        raise UsageError(f"--dataset_path {args.dataset_path}: no such folder")


# ---- the run's settings ---------------------------------------------------------------------------
def model_config(s):
    """Flat settings (by flag) -> WaveGlow's constructor arguments (NVIDIA's names)."""
    return {"n_mel_channels": s["n_mel_channels"], "n_flows": s["flows"], "n_group": s["groups"],
            "n_early_every": s["early_every"], "n_early_size": s["early_size"],
            "WN_config": {"n_layers": s["wn_layers"], "n_channels": s["wn_channels"],
                          "kernel_size": s["wn_kernel_size"]}}


def settings_of_model(config):
    """WaveGlow's constructor arguments -> the flat model settings (by flag)."""
    wn = config["WN_config"]
    return {"n_mel_channels": config["n_mel_channels"], "flows": config["n_flows"], "groups": config["n_group"],
            "early_every": config["n_early_every"], "early_size": config["n_early_size"],
            "wn_layers": wn["n_layers"], "wn_channels": wn["n_channels"], "wn_kernel_size": wn["kernel_size"]}


def audio_settings(s):
    """Flat settings -> the dataset's audio settings (HiFi-GAN config names)."""
    return {"sampling_rate": s["sampling_rate"], "n_fft": s["filter_length"], "num_mels": s["n_mel_channels"],
            "hop_size": HOP, "win_size": s["win_length"], "fmin": s["mel_fmin"], "fmax": s["mel_fmax"]}


def resolve_settings(args, resumed, pretrained_config):
    """The run's settings: the flags given, else the resumed run's, else --checkpoint_path's model, else NVIDIA's.
    A given flag that contradicts the resumed run or the pretrained model is an error naming it."""
    given = {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}
    if pretrained_config is not None:
        pretrained = settings_of_model(pretrained_config)
        differ = [f"--{k} {given[k]} vs {v}" for k, v in pretrained.items() if k in given and given[k] != v]
        if differ:
            raise UsageError(f"--checkpoint_path {args.checkpoint_path} is another model than the flags say ("
                             + "; ".join(differ) + "): leave those flags out to train the checkpoint's model")
    else:
        pretrained = {}
    saved = resumed[1]["settings"] if resumed else {}
    s = {**SETTINGS, **pretrained, **saved, **given}
    if resumed:
        checkpoints.check_compatible({f"--{k}": v for k, v in saved.items()}, {f"--{k}": v for k, v in s.items()},
                                     args.output, [f"--{k}" for k in SETTINGS],
                                     advice="Resume with the same flags (or leave them out: the checkpoint's apply)")
    if not s["mel_fmin"] < s["mel_fmax"] <= s["sampling_rate"] / 2:
        raise UsageError(f"--mel_fmin {s['mel_fmin']} and --mel_fmax {s['mel_fmax']}: expected 0 <= fmin < fmax <= "
                         f"half of --sampling_rate {s['sampling_rate']}")
    if args.segment_length % s["groups"]:
        raise UsageError(f"--segment_length {args.segment_length} is not a multiple of --groups {s['groups']}: the "
                         f"model folds the audio into groups of {s['groups']} samples")
    if args.segment_length < s["filter_length"] // 2 + 1:
        raise UsageError(f"--segment_length {args.segment_length} is shorter than the {s['filter_length'] // 2 + 1} "
                         f"samples one centred STFT frame of --filter_length {s['filter_length']} needs")
    return s


# ---- the trainer ----------------------------------------------------------------------------------
class Trainer:
    """The model, Adam, the GradScaler and the step count. `state_dict`: weights to start from (a plain-weight
    state dict, i.e. weight norm removed, gives a model without weight norm)."""

    def __init__(self, args, ctx, settings, state_dict=None):
        self.args, self.ctx, self.settings = args, ctx, settings
        device = ctx.device
        self.autocast_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        torch.manual_seed(args.seed)
        try:
            self.model = WaveGlow(**model_config(settings), fused=args.fused)
        except ValueError as e:
            raise UsageError(f"--flows/--groups/--early_every/--early_size/--wn_*: {e}") from e
        if state_dict is not None:
            if any(k.endswith("start.weight") for k in state_dict):
                self.model.remove_weight_norm()
            self.model.load_state_dict(state_dict)
        self.model.to(device).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), args.learning_rate, weight_decay=args.weight_decay)
        # bf16 has fp32's range: only fp16 needs loss scaling
        self.scaler = torch.amp.GradScaler("cuda", enabled=args.amp and device.type == "cuda")
        self.steps = self.epoch = self.batches_in_epoch = 0
        self.net = (DistributedDataParallel(self.model, device_ids=[device] if device.type == "cuda" else None)
                    if ctx.distributed else self.model)

    # ---- state -------------------------------------------------------------------------------
    def load(self, state):
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.steps, self.epoch, self.batches_in_epoch = state["steps"], state["epoch"], state["batches_in_epoch"]
        checkpoints.set_rng_states(state["rng"])

    def save(self):
        state = {"steps": self.steps, "epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch,
                 "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                 "settings": self.settings, "fused": self.args.fused, "train_setup": dict(vars(self.args))}
        checkpoints.save(self.args.output, state, self.model.state_dict(), self.model.config, self.args.keep_last,
                         pair=checkpoints.WAVEGLOW)

    def end_epoch(self):
        pass  # NVIDIA's WaveGlow recipe keeps the learning rate constant

    def learning_rate(self):
        return self.optimizer.param_groups[0]["lr"]

    # ---- one optimizer step ------------------------------------------------------------------
    def autocast(self):
        # Under autocast the 1x1 convs' log|det W| and the couplings' exp stay in fp32 (vocoder_ext's ops; fused,
        # the grouped audio too, where NVIDIA's runs the 1x1 convs in fp16); the loss is summed in fp32.
        return torch.autocast(self.ctx.device.type, dtype=self.autocast_dtype, enabled=self.args.amp)

    def loss(self, model, mel, audio):
        """NVIDIA's WaveGlowLoss of one batch: mel [B, n_mel, F], audio [B, 1, S] or [B, S]."""
        with self.autocast():
            outputs = model(mel, audio.reshape(audio.shape[0], -1))
        return waveglow_loss(outputs, self.args.sigma)

    def step(self, micro_batches):
        """One Adam step over K micro-batches [(mel, audio)]; -> logged scalars. Each micro-batch's loss is
        divided by K, so the gradients are those of one batch K times larger."""
        k_total = len(micro_batches)
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for k, (mel, audio) in enumerate(micro_batches):
            last = k == k_total - 1
            with contextlib.nullcontext() if last or not self.ctx.distributed else self.net.no_sync():
                loss = self.loss(self.net, mel, audio) / k_total
            self.scaler.scale(loss).backward()
            total += loss.detach()
        self.scaler.unscale_(self.optimizer)
        params = list(self.model.parameters())
        if math.isfinite(self.args.grad_clip_thresh):
            norm = torch.nn.utils.clip_grad_norm_(params, self.args.grad_clip_thresh)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        self.scaler.step(self.optimizer)  # skipped (and the scale lowered) if fp16 gradients overflowed
        self.scaler.update()
        logs = {"loss": total, "grad_norm": norm.detach()}
        if self.scaler.is_enabled():
            logs["loss_scale"] = self.scaler.get_scale()
        return logs

    # ---- validation ----------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, loader):
        """The loss over the validation segments (the same ones every time), per element as in training."""
        total, items = 0.0, 0
        for mel, audio, _ in loader:
            loss = self.loss(self.model, mel.to(self.ctx.device), audio.to(self.ctx.device))
            total, items = total + loss.item() * mel.shape[0], items + mel.shape[0]
        return total / items

    @torch.no_grad()
    def samples(self, dataset):
        """[(name/sigma_S, audio [T], None)]: each utterance of `dataset` synthesised from its mel at every
        SAMPLE_SIGMAS, from noise drawn from --seed (not the global RNG), so samples compare across steps."""
        out = []
        gen = torch.Generator().manual_seed(self.args.seed)
        for i in range(len(dataset)):
            mel, _, path = dataset[i]
            mel = mel.unsqueeze(0).to(self.ctx.device)
            z = torch.randn(self.model.noise_shape(mel), generator=gen).to(self.ctx.device)
            name = os.path.splitext(os.path.basename(path))[0]
            for sigma in SAMPLE_SIGMAS:
                out.append((f"{name}/sigma_{sigma}", self.model.infer(mel, sigma, z)[0], None))
        return out


def run(args):
    """Train as the parsed flags say; -> the Trainer (its model and step count) when done."""
    check_args(args)
    with Context(args.device) as ctx:
        return _run(args, ctx)


def _run(args, ctx):
    resumed = checkpoints.open_output(args, ctx, pair=checkpoints.WAVEGLOW)
    pretrained = None
    if args.checkpoint_path and not resumed:
        try:
            pretrained = read_waveglow_checkpoint(args.checkpoint_path, map_location="cpu")
        except (CheckpointError, FileNotFoundError) as e:
            raise UsageError(f"--checkpoint_path: {e}") from e
    s = resolve_settings(args, resumed, pretrained[1] if pretrained else None)
    h = audio_settings(s)
    train_paths = wav_list(args.training_files, args.dataset_path, h["sampling_rate"], "--training_files")
    val_paths = wav_list(args.validation_files, args.dataset_path, h["sampling_rate"], "--validation_files")
    dataset = lambda paths, split: AudioMelDataset(paths, h, args.segment_length, split=split, seed=args.seed,
                                                   front_end="tacotron2")
    train_set, val_set = dataset(train_paths, True), dataset(val_paths, True)
    sample_set = dataset(val_paths[:args.validation_samples], False) if args.validation_samples else None
    data = training_data(train_set, ctx, args)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=args.batch_size)

    state_dict = resumed[0]["state_dict"] if resumed else pretrained[0] if pretrained else None
    try:
        trainer = Trainer(args, ctx, s, state_dict)
    except RuntimeError as e:  # load_state_dict: the file's tensors do not fit
        raise UsageError(f"{'--resume' if resumed else '--checkpoint_path'}: {e}") from e
    if resumed:
        trainer.load(resumed[1])
    if ctx.main:
        os.makedirs(args.output, exist_ok=True)
    monitor = Monitor(args.output, data.total_steps, trainer.steps, enabled=ctx.main, bar_fields={"loss": "loss"})
    if args.resume:
        monitor.write(f"resuming from step {trainer.steps} (epoch {trainer.epoch})" if resumed
                      else f"--resume: no checkpoint in {args.output} yet, starting from scratch")
        if resumed and args.checkpoint_path:
            monitor.write(f"--checkpoint_path {args.checkpoint_path} is not read: the resumed run has its own weights")
    monitor.event("start", step=trainer.steps, world_size=ctx.world_size, device=str(ctx.device), fused=args.fused,
                  amp=args.amp, settings=s, steps_per_epoch=data.steps_per_epoch, total_steps=data.total_steps)

    def validate():
        loss = trainer.validate(val_loader)
        epoch_end = trainer.batches_in_epoch == 0 and trainer.epoch % args.samples_interval == 0
        due = trainer.steps > 0 and (epoch_end or trainer.steps == data.total_steps)
        samples = trainer.samples(sample_set) if sample_set is not None and due else ()
        monitor.validation(trainer.steps, trainer.epoch, {"loss": loss}, samples, h["sampling_rate"])

    if ctx.main and trainer.steps == 0:  # the untrained baseline, for the curves and for comparison
        validate()
    run_steps(trainer, data, ctx, monitor, args, args.segment_length,
              validate_when=Every(steps=args.validation_interval) if args.validation_interval else Every(epochs=1),
              validate=validate, save_when=Every(steps=args.checkpoint_interval, epochs=args.epochs_per_checkpoint),
              save=trainer.save)
    return trainer


def main(argv=None):
    return cli.main("python -m train.waveglow", build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())

"""Training checkpoints: a model file that the model's from_pretrained reads, and a training-state file.

    generator_00012000.pt        HiFi-GAN: {"format": "vocoder_ext.hifigan", "config", "generator"}
    waveglow_00012000.pt         WaveGlow: {"format": "vocoder_ext.waveglow", "config", "state_dict"}
    training_state_00012000.pt   {"steps", "epoch", "batches_in_epoch", "config", optimizers, scalers, ...,
                                  "rng"}: HiFi-GAN's adds the discriminators and the schedulers

Both are written atomically (temp file, fsync, rename; the training state last), so a kill at any
moment leaves every earlier pair intact. Resuming takes the newest step whose two files both load;
a damaged or half-written pair is skipped with a warning. Only tensors and plain containers are
stored, so everything loads with torch.load(weights_only=True). What differs between the recipes
(the model file's name, writer and required entries) is a :class:`Pair`.
"""
import os
import random
import re
import warnings
from dataclasses import dataclass
from typing import Callable, Tuple

import numpy as np
import torch

from vocoder_ext.checkpoint import CheckpointError, atomic_save, safe_load, save_generator, save_waveglow
from vocoder_ext.models.config import arch

from .cli import UsageError
from .monitor import LOG_FILE, TENSORBOARD_DIR

STATE = "training_state_{:08d}.pt"
AUDIO_KEYS = ("sampling_rate", "n_fft", "num_mels", "hop_size", "win_size", "fmin", "fmax")


@dataclass(frozen=True)
class Pair:
    """One recipe's checkpoint pair: `model_file` ("<prefix>_{:08d}.pt") written by write_model(path,
    state_dict, config), and the entries each file must hold to be resumed from."""
    model_file: str
    write_model: Callable
    model_keys: Tuple[str, ...]
    state_keys: Tuple[str, ...]

    def step_file(self):
        """The model and training-state file names of any step, the step number as group 1."""
        prefix = self.model_file.split("_{")[0]
        return re.compile(rf"(?:{prefix}|training_state)_(\d{{8}})\.pt")


HIFIGAN = Pair("generator_{:08d}.pt", save_generator, ("generator", "config"),
               ("steps", "epoch", "mpd", "msd", "optim_g", "optim_d"))
WAVEGLOW = Pair("waveglow_{:08d}.pt", save_waveglow, ("state_dict", "config"),
                ("steps", "epoch", "optimizer", "scaler", "settings"))
GENERATOR = HIFIGAN.model_file
STEP_FILE = HIFIGAN.step_file()
ANY_RUN_FILE = re.compile(r"(?:generator|waveglow|training_state)_\d{8}\.pt")


def steps_on_disk(folder, pair=HIFIGAN):
    """Step numbers with a model or training-state file in `folder`, newest first."""
    if not os.path.isdir(folder):
        return []
    pattern = pair.step_file()
    return sorted({int(m.group(1)) for m in map(pattern.fullmatch, os.listdir(folder)) if m}, reverse=True)


def save(folder, state, model_state_dict, config, keep_last, pair=HIFIGAN):
    """Write the pair for state["steps"], then delete all but the newest `keep_last` pairs."""
    step = state["steps"]
    pair.write_model(os.path.join(folder, pair.model_file.format(step)), model_state_dict, config)
    atomic_save({**state, "config": config, "rng": rng_states()}, os.path.join(folder, STATE.format(step)))
    for old in steps_on_disk(folder, pair)[keep_last:]:
        for name in (pair.model_file.format(old), STATE.format(old)):
            path = os.path.join(folder, name)
            if os.path.exists(path):
                os.remove(path)


def remove_partial_writes(folder):
    """Temp files a killed run left behind (vocoder_ext.atomic names them .<target>.<random>.tmp)."""
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith((".generator_", ".waveglow_", ".training_state_")) and name.endswith(".tmp"):
                os.remove(os.path.join(folder, name))


def load_latest(folder, map_location="cpu", pair=HIFIGAN):
    """(model checkpoint dict, training state dict) of the newest complete pair, or None."""
    for step in steps_on_disk(folder, pair):
        paths = [os.path.join(folder, name.format(step)) for name in (pair.model_file, STATE)]
        try:
            missing = [p for p in paths if not os.path.exists(p)]
            if missing:
                raise CheckpointError(f"{missing[0]} is missing")
            model, state = (safe_load(p, map_location) for p in paths)
            for path, ckpt, keys in ((paths[0], model, pair.model_keys), (paths[1], state, pair.state_keys)):
                for key in keys:
                    if key not in ckpt:
                        raise CheckpointError(f"{path} has no '{key}' entry")
            return model, state
        except CheckpointError as e:
            warnings.warn(f"skipping the step-{step} checkpoint: {e}", RuntimeWarning, stacklevel=2)
    return None


def check_output(folder, resume):
    """Refuse to write over an earlier run unless --resume says to continue it."""
    if resume or not os.path.isdir(folder):
        return
    found = [name for name in sorted(os.listdir(folder))
             if name in (LOG_FILE, TENSORBOARD_DIR) or ANY_RUN_FILE.fullmatch(name)]
    if found:
        raise UsageError(f"--output {folder} already holds a training run ({', '.join(found[:4])}); pass --resume "
                         f"to continue it, or choose another folder")


def open_output(args, ctx, pair=HIFIGAN):
    """The output folder, ready on every rank: refused if it holds a run and --resume was not given; with
    --resume, a killed run's partial writes removed and its newest complete pair returned (None if none)."""
    check_output(args.output, args.resume)
    ctx.barrier()  # every rank has looked before rank 0 writes anything
    if not args.resume:
        return None
    if ctx.main:
        remove_partial_writes(args.output)
    return load_latest(args.output, ctx.device, pair=pair)


def hifigan_keys(h):
    """The settings a HiFi-GAN run cannot change when resumed: the generator's architecture and the audio."""
    return (*arch(h), *AUDIO_KEYS)


def check_compatible(saved, current, path, keys, advice="Resume with the same --config"):
    """Resuming with another architecture or audio front end would silently train something else."""
    keys = [k for k in keys if k in saved or k in current]
    differ = [f"{k}: {saved.get(k)!r} in the checkpoint vs {current.get(k)!r} now" for k in keys
              if saved.get(k) != current.get(k)]
    if differ:
        raise CheckpointError(f"cannot resume from {path}: it was trained with another config ("
                              + "; ".join(differ) + f"). {advice}, or start a new -o folder.")


def rng_states():
    np_state = np.random.get_state()
    states = {"torch": torch.get_rng_state(), "python": random.getstate(),
              "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states):
    torch.set_rng_state(states["torch"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])

"""Training checkpoints: a generator file any HiFiGAN.from_pretrained reads, and a training-state file.

    generator_00012000.pt        {"format": "vocoder_ext.hifigan", "config", "generator"}
    training_state_00012000.pt   {"steps", "epoch", "batches_in_epoch", "config", "mpd", "msd",
                                  "optim_g", "optim_d", "sched_g", "sched_d", "scaler_g", "scaler_d", "rng"}

Both are written atomically (temp file, fsync, rename; the training state last), so a kill at any
moment leaves every earlier pair intact. Resuming takes the newest step whose two files both load;
a damaged or half-written pair is skipped with a warning. Only tensors and plain containers are
stored, so everything loads with torch.load(weights_only=True).
"""
import os
import random
import re
import warnings

import numpy as np
import torch

from vocoder_ext.checkpoint import CheckpointError, atomic_save, safe_load, save_generator
from vocoder_ext.models.config import arch

GENERATOR = "generator_{:08d}.pt"
STATE = "training_state_{:08d}.pt"
STEP_FILE = re.compile(r"(?:generator|training_state)_(\d{8})\.pt")
AUDIO_KEYS = ("sampling_rate", "n_fft", "num_mels", "hop_size", "win_size", "fmin", "fmax")


def steps_on_disk(folder):
    """Step numbers with a generator or training-state file in `folder`, newest first."""
    if not os.path.isdir(folder):
        return []
    return sorted({int(m.group(1)) for m in map(STEP_FILE.fullmatch, os.listdir(folder)) if m}, reverse=True)


def save(folder, state, generator_state_dict, config, keep_last):
    """Write the pair for state["steps"], then delete all but the newest `keep_last` pairs."""
    step = state["steps"]
    save_generator(os.path.join(folder, GENERATOR.format(step)), generator_state_dict, config)
    atomic_save({**state, "config": config, "rng": rng_states()}, os.path.join(folder, STATE.format(step)))
    for old in steps_on_disk(folder)[keep_last:]:
        for name in (GENERATOR.format(old), STATE.format(old)):
            path = os.path.join(folder, name)
            if os.path.exists(path):
                os.remove(path)


def remove_partial_writes(folder):
    """Temp files a killed run left behind (vocoder_ext.atomic names them .<target>.<random>.tmp)."""
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith((".generator_", ".training_state_")) and name.endswith(".tmp"):
                os.remove(os.path.join(folder, name))


def load_latest(folder, map_location="cpu"):
    """(generator checkpoint dict, training state dict) of the newest complete pair, or None."""
    for step in steps_on_disk(folder):
        paths = [os.path.join(folder, name.format(step)) for name in (GENERATOR, STATE)]
        try:
            missing = [p for p in paths if not os.path.exists(p)]
            if missing:
                raise CheckpointError(f"{missing[0]} is missing")
            generator, state = (safe_load(p, map_location) for p in paths)
            for key in ("generator", "config"):
                if key not in generator:
                    raise CheckpointError(f"{paths[0]} has no '{key}' entry")
            for key in ("steps", "epoch", "mpd", "msd", "optim_g", "optim_d"):
                if key not in state:
                    raise CheckpointError(f"{paths[1]} has no '{key}' entry")
            return generator, state
        except CheckpointError as e:
            warnings.warn(f"skipping the step-{step} checkpoint: {e}", RuntimeWarning, stacklevel=2)
    return None


def check_compatible(saved, current, path):
    """Resuming with another architecture or audio front end would silently train something else."""
    keys = [k for k in (*arch(current), *AUDIO_KEYS) if k in saved or k in current]
    differ = [f"{k}: {saved.get(k)!r} in the checkpoint vs {current.get(k)!r} now" for k in keys
              if saved.get(k) != current.get(k)]
    if differ:
        raise CheckpointError(f"cannot resume from {path}: it was trained with another config ("
                              + "; ".join(differ) + "). Resume with the same --config, or start a new -o folder.")


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

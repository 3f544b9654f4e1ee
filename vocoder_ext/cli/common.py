"""What the command-line tools share: the user-error type, device choice, input listing, progress bars
and writing a report. Only the CLI imports this module."""
import importlib.metadata
import json
import os
import sys

import torch
from tqdm import tqdm

from ..checkpoint import CheckpointError
from ..models.config import ConfigError

EXIT_USER_ERROR = 2
DEFAULT_SAMPLING_RATE = 22050  # what a checkpoint without audio settings was trained at (HiFi-GAN's LJSpeech)


class UserError(Exception):
    """Something wrong with what the user asked for: reported as `error: ...`, exit status 2."""


# The library's own exceptions that mean "bad input", not "bug": their messages already name the file.
USER_ERRORS = (UserError, FileNotFoundError, CheckpointError, ConfigError)


def list_inputs(path, suffixes, what):
    """`path` itself if it is a file, else the files in folder `path` ending in one of `suffixes`, sorted."""
    if not os.path.exists(path):
        raise UserError(f"no such file or folder: {path}")
    if not os.path.isdir(path):
        return [path]
    files = sorted(os.path.join(path, name) for name in os.listdir(path)
                   if name.lower().endswith(suffixes) and os.path.isfile(os.path.join(path, name)))
    if not files:
        raise UserError(f"no {what} files ({', '.join('*' + s for s in suffixes)}) in folder {path}")
    return files


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def progress(items=None, total=None, desc=None):
    """A tqdm bar on stderr; tqdm hides it when stderr is not a terminal (disable=None)."""
    return tqdm(items, total=total, desc=desc, unit="file", file=sys.stderr, disable=None)


def choose_device(name):
    """torch.device(name), refusing devices this machine does not have (a user error, not a crash later)."""
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise UserError(f"--device {name!r}: not a device name ({e})") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available here (torch.cuda.is_available() is False)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def package_version(name):
    """The installed version of package `name`, or None; from its metadata, so nothing is imported."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def model_sampling_rate(model):
    rate = getattr(model, "sampling_rate", None)  # HiFiGAN's: its toolkit features' rate first
    return int(rate if rate is not None else model.config.get("sampling_rate", DEFAULT_SAMPLING_RATE))


def write_outputs(out, stem, markdown, report):
    """The table on stdout, and OUT/<stem>.md + OUT/<stem>.json."""
    print(markdown)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{stem}.md"), "w") as f:
        f.write(markdown + "\n")
    with open(os.path.join(out, f"{stem}.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"\nwrote {stem}.md and {stem}.json to {out}", file=sys.stderr)

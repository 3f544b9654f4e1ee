"""Command line: `python -m vocoder_ext {info, mel, synth, demo, bench}`.

    info                       versions, extension, which backend serves each op, CPU/CUDA/Triton
    mel INPUT -o OUT_DIR       wav file or folder -> HiFi-GAN log-mel spectrograms (.npy or .pt)
    synth INPUT -o OUT_DIR     mel file or folder -> wav files, with a checkpoint or a config
    demo                       the bundled corpus through the fused and the eager path (vocoder_ext/demo.py)
    bench                      kernel microbenchmarks and end-to-end speed tables (vocoder_ext/bench.py)

User errors (a missing path, an unreadable or wrong-rate file, a bad mel, a bad checkpoint or config)
print one `error: ...` line to stderr and exit with status 2. Anything else is a bug in this package and
keeps its traceback.
"""
import argparse
import importlib.metadata
import json
import math
import os
import platform
import sys

import numpy as np
import torch
from tqdm import tqdm

from . import __version__, _extension, audio
from .backend import OPS, backends
from .checkpoint import CheckpointError
from .config import ConfigError
from .hifigan import HiFiGAN

EXIT_USER_ERROR = 2
DEFAULT_SAMPLING_RATE = 22050  # what a checkpoint without audio settings was trained at (HiFi-GAN's LJSpeech)
# A mel frame of silence after log-compression: the value batched mels are padded with.
MEL_PAD_VALUE = math.log(audio.LOG_CLAMP)


class UserError(Exception):
    """Something wrong with what the user asked for: reported as `error: ...`, exit status 2."""


# The library's own exceptions that mean "bad input", not "bug": their messages already name the file.
USER_ERRORS = (UserError, FileNotFoundError, CheckpointError, ConfigError)


def main(argv=None):
    """Run one command; returns the process exit status (0 ok, 2 user error)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed usage/help; keep main() returning a code
        return e.code if isinstance(e.code, int) else EXIT_USER_ERROR
    args.argv = argv  # the demo records the command it ran
    try:
        args.run(args)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m vocoder_ext",
                                     description="Fast HiFi-GAN: inspect the install, make mels, vocode them.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="versions, extension, backends, CPU/CUDA/Triton status")
    p.add_argument("--json", action="store_true", help="print the same report as JSON")
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("mel", help="wav file or folder -> HiFi-GAN log-mel spectrograms")
    p.add_argument("input", help="a wav file, or a folder (all *.wav in it)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for <stem>.npy / <stem>.pt")
    p.add_argument("--format", choices=("npy", "pt"), default="npy",
                   help="npy: float32 numpy array; pt: a torch tensor (default: npy)")
    p.add_argument("--sampling-rate", type=int, default=22050,
                   help="the rate every file must have; no resampling is done (default: 22050)")
    p.add_argument("--n-fft", type=int, default=1024)
    p.add_argument("--hop-size", type=int, default=256)
    p.add_argument("--win-size", type=int, default=1024)
    p.add_argument("--num-mels", type=int, default=80)
    p.add_argument("--fmin", type=float, default=0.0)
    p.add_argument("--fmax", type=float, default=8000.0)
    p.set_defaults(run=cmd_mel)

    p = sub.add_parser("synth", help="mel file or folder -> wav files")
    p.add_argument("input", help="a mel file (.npy or .pt, shape (num_mels, T) or (1, num_mels, T)) or a folder")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for <stem>.wav")
    p.add_argument("--checkpoint", help="generator checkpoint file or folder (its latest generator)")
    p.add_argument("--config", help="v1 | v2 | v3 | config.json: with --checkpoint, overrides the checkpoint's "
                                    "config; without one, builds an UNTRAINED model (random weights)")
    p.add_argument("--fused", action=argparse.BooleanOptionalAction, default=True,
                   help="run through the fused ops (default) or plain PyTorch layers")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--batch-size", type=int, default=1,
                   help="mels per forward pass (default: 1); shorter ones are padded with silence, which "
                        "can change the last ~receptive field of their audio slightly")
    p.add_argument("--remove-weight-norm", action=argparse.BooleanOptionalAction, default=True,
                   help="fold weight norm into plain weights before inference (default: on)")
    p.set_defaults(run=cmd_synth)

    # Imported here because demo.py builds on this module's helpers (UserError, choose_device).
    from . import demo
    p = sub.add_parser("demo", help="vocode the bundled corpus on the fused and eager paths, with a speed table")
    demo.add_arguments(p)
    p.set_defaults(run=demo.run)

    from . import bench
    p = sub.add_parser("bench", help="kernel microbenchmarks and end-to-end speed tables (Markdown + JSON)")
    bench.add_arguments(p)
    p.set_defaults(run=bench.run)
    return parser


# ---- shared helpers -------------------------------------------------------------------------
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


def model_sampling_rate(model):
    return int(model.config.get("sampling_rate", DEFAULT_SAMPLING_RATE))


# ---- info -----------------------------------------------------------------------------------
def collect_info():
    """Everything `info` reports, as a JSON-ready dict (the text output prints the same dict)."""
    cuda_ok = torch.cuda.is_available()
    triton = _package_version("triton")
    try:
        report = backends()
        served = {op: report[op] for op in OPS}
        tuning = report["autotune"]
    except ValueError as e:  # VOCODER_EXT_BACKEND or VOCODER_EXT_AUTOTUNE holds something unknown
        served = tuning = f"unknown ({e})"
    return {
        "vocoder_ext": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "triton": triton or "not installed",
        "extension": (f"loaded from {_extension.library_path}" if _extension.loaded
                      else f"not loaded ({_extension.load_error})"),
        "VOCODER_EXT_BACKEND": os.environ.get("VOCODER_EXT_BACKEND", "unset (auto)"),
        "backends": served,
        "autotune": tuning,
        "cpu": {
            "processor": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch_capability": torch.backends.cpu.get_cpu_capability(),
            "features": cpu_features(),
            "torch_threads": torch.get_num_threads(),
        },
        "cuda": {
            "available": cuda_ok,
            "torch_cuda": torch.version.cuda,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda_ok else [],
        },
        "triton_status": _triton_status(triton, cuda_ok),
    }


def cpu_features():
    """{feature: bool} for the instruction sets the CPU kernels care about, from /proc/cpuinfo (Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
    except OSError:
        flags = None
    if flags is None:
        return "unknown (no /proc/cpuinfo flags)"
    features = {name: name in flags for name in ("avx2", "avx512f", "avx512_bf16", "avx512_fp16")}
    features["amx"] = any(flag.startswith("amx") for flag in flags)  # amx_tile, amx_bf16, amx_int8, ...
    return features


def _package_version(name):
    # From the package metadata, so `info` does not pay for importing Triton.
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _triton_status(version, cuda_ok):
    if version is None:
        return "not installed: Triton kernels unavailable"
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "TRITON_INTERPRET=1: Triton kernels run in the interpreter (slow; for tests)"
    if cuda_ok:
        return "installed; Triton kernels can run on the CUDA devices"
    return "installed, but no CUDA device: Triton kernels run only with TRITON_INTERPRET=1"


def cmd_info(args):
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_tree(info)


def _print_tree(tree, indent=0):
    for key, value in tree.items():
        if isinstance(value, dict):
            print(f"{' ' * indent}{key}:")
            _print_tree(value, indent + 2)
        else:
            if isinstance(value, list):
                value = ", ".join(map(str, value)) or "none"
            print(f"{' ' * indent}{key}: {value}")


# ---- mel ------------------------------------------------------------------------------------
def cmd_mel(args):
    files = list_inputs(args.input, (".wav",), "wav")
    os.makedirs(args.output, exist_ok=True)
    for path in progress(files, desc="mel"):
        try:
            y, _ = audio.load_wav(path, sampling_rate=args.sampling_rate)
        except ValueError as e:  # undecodable, not mono, or another sampling rate
            raise UserError(str(e).removeprefix("load_wav: ")) from e
        try:
            mel = audio.mel_spectrogram(y, n_fft=args.n_fft, num_mels=args.num_mels,
                                        sampling_rate=args.sampling_rate, hop_size=args.hop_size,
                                        win_size=args.win_size, fmin=args.fmin, fmax=args.fmax)
        except ValueError as e:  # too short for one frame, or inconsistent sizes
            raise UserError(f"cannot compute the mel of {path}: {e}") from e
        out = os.path.join(args.output, f"{stem(path)}.{args.format}")
        if args.format == "npy":
            np.save(out, mel.numpy().astype(np.float32, copy=False))
        else:
            torch.save(mel.contiguous(), out)


# ---- synth ----------------------------------------------------------------------------------
def load_mel(path, num_mels):
    """A mel file -> float32 tensor [num_mels, frames].

    .npy (no pickles) or .pt (torch.load(weights_only=True), a bare tensor), holding
    [num_mels, frames] or [1, num_mels, frames] floating-point values."""
    try:
        if path.lower().endswith(".npy"):
            mel = torch.from_numpy(np.load(path, allow_pickle=False))
        else:
            mel = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # numpy and torch raise many kinds on a corrupt or foreign file
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"cannot read mel file {path}: {reason}") from e
    if not isinstance(mel, torch.Tensor):
        raise UserError(f"mel file {path}: expected a tensor, got a {type(mel).__name__}")
    if mel.dim() == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.dim() != 2 or mel.shape[0] != num_mels or mel.shape[1] == 0:
        raise UserError(f"mel file {path}: expected shape ({num_mels}, frames) or (1, {num_mels}, frames), "
                        f"got {tuple(mel.shape)}")
    if not mel.is_floating_point():
        raise UserError(f"mel file {path}: expected floating-point values, got dtype {mel.dtype}")
    if not bool(torch.isfinite(mel).all()):
        raise UserError(f"mel file {path}: contains NaN or inf values")
    return mel.float()


def load_model(checkpoint, config, fused):
    """From a checkpoint (config overrides its own), else an UNTRAINED model of `config`, with a warning."""
    if checkpoint:
        return HiFiGAN.from_pretrained(checkpoint, fused=fused, config=config)
    if not config:
        raise UserError("give --checkpoint PATH (a trained generator), or --config v1|v2|v3|file.json "
                        "for an untrained model")
    model = HiFiGAN(config, fused=fused)  # first, so a bad config fails before the warning
    print(f"warning: no --checkpoint: the model ({config}) is UNTRAINED (random weights), "
          f"so the audio will be noise", file=sys.stderr)
    return model


def cmd_synth(args):
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    device = choose_device(args.device)
    files = list_inputs(args.input, (".npy", ".pt"), "mel")
    for path in files:
        if not path.lower().endswith((".npy", ".pt")):
            raise UserError(f"mel file {path}: expected a .npy or .pt file")
    stems = [stem(p) for p in files]
    if len(set(stems)) != len(stems):  # a.npy and a.pt would both write a.wav
        clash = sorted({s for s in stems if stems.count(s) > 1})
        raise UserError(f"several mel files share a name, so their wavs would overwrite each other: {clash}")

    model = load_model(args.checkpoint, args.config, args.fused)
    if args.remove_weight_norm:
        model.remove_weight_norm()
    model.eval().to(device)
    # Read every mel first, so a bad file stops the run before any synthesis.
    mels = [load_mel(p, model.config["num_mels"]) for p in files]
    os.makedirs(args.output, exist_ok=True)
    sampling_rate = model_sampling_rate(model)
    with torch.inference_mode(), progress(total=len(files), desc="synth") as bar:
        for batch in length_sorted_batches(mels, args.batch_size):
            for i, wav in zip(batch, vocode([mels[i] for i in batch], model, device)):
                audio.save_wav(os.path.join(args.output, f"{stems[i]}.wav"), wav, sampling_rate)
            bar.update(len(batch))


def length_sorted_batches(mels, batch_size):
    """Index batches, longest mels first: neighbours in length waste the least padding."""
    order = sorted(range(len(mels)), key=lambda i: mels[i].shape[1], reverse=True)
    return [order[k:k + batch_size] for k in range(0, len(order), batch_size)]


def vocode(mels, model, device):
    """[num_mels, frames_i] mels -> float32 CPU audio [frames_i * hop] each, in one forward pass.

    Shorter mels are padded with silence (log of the clamp floor) and their audio cut back to
    frames * hop. The generator is not causal, so the last ~receptive field of a padded item's audio
    differs slightly from running it alone."""
    longest = max(m.shape[1] for m in mels)
    batch = torch.stack([torch.nn.functional.pad(m, (0, longest - m.shape[1]), value=MEL_PAD_VALUE)
                         for m in mels]).to(device)
    out = model(batch)[:, 0].float().cpu()
    return [out[i, :m.shape[1] * model.hop_length] for i, m in enumerate(mels)]

"""`python -m vocoder_ext export --checkpoint F --out model.pt2 [--dynamic-frames]`: a HiFi-GAN generator as an
AOTInductor package, for serving without Python (examples/vocode: libtorch + our op library load and run it).

The fused generator (weight norm removed, eval) is traced with torch.export -- each fused op stays one node,
served at run time by the op library -- and compiled ahead of time by inductor for the device. Static by
default (batch 1, --frames frames); --dynamic-frames takes any number of frames from --min-frames up to
--max-frames. The
package is checked before the command returns: loaded back in this process, on a fresh mel, against the
model run eagerly."""
import os
import sys
import tempfile

import torch

from ..models.hifigan import HiFiGAN
from .common import UserError, choose_device

TOLERANCE = 1e-5  # max abs difference from the model run eagerly, on audio in [-1, 1]


def add_arguments(p):
    p.add_argument("--checkpoint", help="generator checkpoint (any format HiFiGAN.from_pretrained reads)")
    p.add_argument("--config", help="v1 | v2 | v3 | config.json: with no --checkpoint, an UNTRAINED model (tests)")
    p.add_argument("--out", required=True, help="the package to write (.pt2)")
    p.add_argument("--frames", type=int, default=64, help="mel frames per input of a static package (default: 64)")
    p.add_argument("--dynamic-frames", action="store_true",
                   help="accept any number of frames from 1 to --max-frames (one package for every length)")
    p.add_argument("--max-frames", type=int, default=4096, help="--dynamic-frames: the longest input (default: 4096)")
    p.add_argument("--min-frames", type=int, default=1,
                   help="--dynamic-frames: the shortest input (default: 1; a reflect-padded generator needs more)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda: the device the package runs on")


def run(args):
    if not args.out.endswith(".pt2"):
        raise UserError(f"--out {args.out}: an AOTInductor package is a .pt2 file")
    if args.frames < 1 or args.min_frames < 1 or args.max_frames <= args.min_frames:
        raise UserError(f"--frames must be >= 1, and 1 <= --min-frames < --max-frames, got {args.frames}, "
                        f"{args.min_frames} and {args.max_frames}")
    device = choose_device(args.device)
    model = load_generator(args.checkpoint, args.config).remove_weight_norm().eval().to(device)
    num_mels = model.config["num_mels"]
    frames = min(max(args.frames, args.min_frames), args.max_frames) if args.dynamic_frames else args.frames
    example = torch.randn(1, num_mels, frames, device=device)
    span = f"{args.min_frames}..{args.max_frames}" if args.dynamic_frames else str(frames)
    dynamic = ({"mel": {2: torch.export.Dim("frames", min=args.min_frames, max=args.max_frames)}}
               if args.dynamic_frames else None)
    with torch.no_grad():
        try:
            exported = torch.export.export(model, (example,), dynamic_shapes=dynamic)
        except Exception as e:  # torch.export's errors name guards, not what to change
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"this generator cannot be exported for mels of {span} frames ({first}); a "
                            f"reflect-padded one (padding_mode 'reflect') needs inputs longer than its widest "
                            f"padding: raise --min-frames (or --frames for a static package)") from e
        out_dir = os.path.dirname(os.path.abspath(args.out))
        os.makedirs(out_dir, exist_ok=True)
        # written beside the target and renamed over it: a failed compile leaves no half-written package
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
            staged = os.path.join(tmp, os.path.basename(args.out))
            # what a server needs beside the weights, readable from C++ (AOTIModelPackageLoader::get_metadata)
            metadata = {"sampling_rate": str(model.sampling_rate), "hop_length": str(model.hop_length),
                        "num_mels": str(num_mels), "min_frames": str(args.min_frames if args.dynamic_frames else frames),
                        "max_frames": str(args.max_frames if args.dynamic_frames else frames)}
            torch._inductor.aoti_compile_and_package(exported, package_path=staged,
                                                     inductor_configs={"aot_inductor.metadata": metadata})
            check_package(staged, model, num_mels, max(args.min_frames, frames - 3) if args.dynamic_frames else frames,
                          device)
            os.replace(staged, args.out)
    shape = f"[1, {num_mels}, {span}]"
    print(f"wrote {args.out}: mel {shape} -> audio [1, 1, frames * {model.hop_length}] on {device}; "
          f"sampling rate {model.sampling_rate}")


def load_generator(checkpoint, config):
    if checkpoint:
        try:
            return HiFiGAN.from_pretrained(checkpoint, fused=True, config=config)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise UserError(f"--checkpoint {checkpoint}: {e}") from e
    if not config:
        raise UserError("give --checkpoint PATH (a trained generator), or --config v1|v2|v3|file.json")
    model = HiFiGAN(config, fused=True)
    print(f"warning: no --checkpoint: the model ({config}) is UNTRAINED (random weights)", file=sys.stderr)
    return model


def check_package(path, model, num_mels, frames, device):
    """The package, loaded back, on a fresh mel: within TOLERANCE of the model run eagerly, or an error."""
    mel = torch.randn(1, num_mels, frames, device=device)
    package = torch._inductor.aoti_load_package(path)
    with torch.no_grad():
        got, want = package(mel), model(mel)
    diff = (got - want).abs().max().item()
    if got.shape != want.shape or not diff <= TOLERANCE:
        raise RuntimeError(f"export: the compiled package differs from the model: shape {tuple(got.shape)} vs "
                           f"{tuple(want.shape)}, max abs difference {diff:.3g} (tolerance {TOLERANCE})")

"""Command line: `python -m vocoder_ext {info, mel, synth, demo, bench, export}`.

    info                       versions, extension, which backend serves each op, CPU/CUDA/Triton (info.py)
    mel INPUT -o OUT_DIR       wav file or folder -> HiFi-GAN log-mel spectrograms (.npy or .pt) (mel.py)
    synth INPUT -o OUT_DIR     mel file or folder -> wav files, with a checkpoint or a config (synth.py)
    demo                       the bundled corpus through the fused and the eager path (demo.py)
    bench                      kernel microbenchmarks and end-to-end speed tables (bench/)
    export --checkpoint F --out model.pt2   a generator as an AOTInductor package, to serve from C++ (export.py)

Each command is a module with `add_arguments(parser)` and `run(args)`. User errors (a missing path, an
unreadable or wrong-rate file, a bad mel, a bad checkpoint or config) print one `error: ...` line to
stderr and exit with status 2. Anything else is a bug in this package and keeps its traceback.
"""
import argparse
import sys

from . import bench, demo, export, info, mel, synth
from .common import EXIT_USER_ERROR, USER_ERRORS

COMMANDS = {  # name -> (module, help)
    "info": (info, "versions, extension, backends, CPU/CUDA/Triton status"),
    "mel": (mel, "wav file or folder -> HiFi-GAN log-mel spectrograms"),
    "synth": (synth, "mel file or folder -> wav files"),
    "demo": (demo, "vocode the bundled corpus on the fused and eager paths, with a speed table"),
    "bench": (bench, "kernel microbenchmarks and end-to-end speed tables (Markdown + JSON)"),
    "export": (export, "a HiFi-GAN generator -> an AOTInductor package (.pt2) to serve without Python"),
}


def main(argv=None):
    """Run one command; returns the process exit status (0 ok, 2 user error)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed usage/help; keep main() returning a code
        return e.code if isinstance(e.code, int) else EXIT_USER_ERROR
    args.argv = argv  # the demo and the bench record the command they ran
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
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser

"""`python -m vocoder_ext info`: versions, extension, which backend serves each op, CPU/CUDA/Triton."""
import json
import os
import platform

import numpy as np
import torch

from .. import __version__
from ..runtime import backends, extension
from ..runtime.backend import OPS
from .common import package_version


def add_arguments(p):
    p.add_argument("--json", action="store_true", help="print the same report as JSON")


def run(args):
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_tree(info)


def collect_info():
    """Everything `info` reports, as a JSON-ready dict (the text output prints the same dict)."""
    cuda_ok = torch.cuda.is_available()
    triton = package_version("triton")
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
        "vocoders": ["hifigan (vocoder_ext.HiFiGAN)", "waveglow (vocoder_ext.WaveGlow)"],
        "extension": (f"loaded from {extension.library_path}" if extension.loaded
                      else f"not loaded ({extension.load_error})"),
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


def _triton_status(version, cuda_ok):
    if version is None:
        return "not installed: Triton kernels unavailable"
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "TRITON_INTERPRET=1: Triton kernels run in the interpreter (slow; for tests)"
    if cuda_ok:
        return "installed; Triton kernels can run on the CUDA devices"
    return "installed, but no CUDA device: Triton kernels run only with TRITON_INTERPRET=1"


def _print_tree(tree, indent=0):
    for key, value in tree.items():
        if isinstance(value, dict):
            print(f"{' ' * indent}{key}:")
            _print_tree(value, indent + 2)
        else:
            if isinstance(value, list):
                value = ", ".join(map(str, value)) or "none"
            print(f"{' ' * indent}{key}: {value}")

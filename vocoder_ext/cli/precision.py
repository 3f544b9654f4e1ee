"""The command line's side of bf16 compute (vocoder_ext/runtime/precision.py): synth's and demo's
`--precision fp32|bf16`, its device check, whether bf16 really runs here (for what a report records), and
the fidelity measure the demo and the bench print: SNR against the fp32 output."""
import math

import torch

from ..runtime import extension
from ..runtime.precision import PRECISIONS
from .common import UserError


def add_argument(p, what):
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help=f"fp32 (default, exact) or bf16: {what} with torch.backends.mkldnn.conv.fp32_precision = "
                        f"'bf16', so the fused CPU conv kernels multiply in bf16 and add in fp32 (AVX512_BF16; "
                        f"~1.7x faster for V1; 40-60 dB SNR against fp32, see bench --fidelity). CPU only")


def check_device(precision, device_name):
    """UserError for bf16 off the CPU: the bf16 path is the CPU kernels' (CUDA ignores PyTorch's switch)."""
    try:
        device_type = torch.device(device_name).type
    except RuntimeError:
        return  # not a device name: choose_device says so
    if precision != "fp32" and device_type != "cpu":
        raise UserError(f"--precision {precision} is CPU only (the fused CPU conv kernels' AVX512_BF16 path), "
                        f"not --device {device_name}; drop --precision, or run on --device cpu")


def bf16_kernels():
    """Whether the CPU kernels compute in bf16 when asked: the level they run at (the CPU's best, or the one
    VOCODER_EXT_CPU_ISA asks for) is avx512_bf16. Otherwise they warn once and compute in fp32 (without the
    extension, the eager references run PyTorch's own bf16), and a report should say so."""
    return extension.loaded and torch.ops.vocoder_ext.cpu_isa() == "avx512_bf16"


def snr_db(y, ref):
    """10 log10(sum ref^2 / sum (y - ref)^2) in dB, in float64; None where y == ref exactly (no error to
    measure: JSON has no infinity)."""
    y, ref = y.detach().double(), ref.detach().double()
    noise = (y - ref).pow(2).sum().item()
    if noise == 0:
        return None
    return 10 * math.log10(ref.pow(2).sum().item() / noise)

"""bf16 compute on CPU, the way PyTorch spells it.

The C++ conv kernels (lrelu_conv1d, lrelu_conv_transpose1d, resblock) multiply in bf16 and add in fp32
(AVX512_BF16's vdpbf16ps: twice the fp32 FMA rate) when
  - their inputs are bf16 tensors (`model.to(torch.bfloat16)`, bf16 in and out), or
  - their inputs are fp32 while PyTorch's switch for letting fp32 convolutions compute in bf16 is on:
    `torch.backends.mkldnn.conv.fp32_precision = "bf16"`, read at each call (`compute_in_bf16()` below sets
    it for a block, `HiFiGAN(..., compute_dtype=torch.bfloat16)` for its forward).
Inputs and weights are rounded to bf16 (nearest even), sums, bias and epilogues stay fp32. The default is
exact fp32. On a CPU without AVX512_BF16 (or with VOCODER_EXT_CPU_ISA below avx512_bf16) the fp32 kernels
run, and the first such call warns once.
"""
import contextlib

import torch

PRECISIONS = ("fp32", "bf16")


@contextlib.contextmanager
def compute_in_bf16(enabled=True):
    """Within the block, fp32 convolutions may compute in bf16 (PyTorch's switch, process-wide, restored
    after). enabled=False leaves the switch as it is."""
    if not enabled:
        yield
        return
    before = torch.backends.mkldnn.conv.fp32_precision
    torch.backends.mkldnn.conv.fp32_precision = "bf16"
    try:
        yield
    finally:
        torch.backends.mkldnn.conv.fp32_precision = before


def precision_context(precision):
    """The context for a CLI `--precision fp32|bf16`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return compute_in_bf16(precision == "bf16")

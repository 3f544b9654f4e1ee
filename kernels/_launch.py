"""What the Triton launchers share: interpreter vs GPU, autotuning, dtypes of outputs and dot operands.

Triton decides interpreter vs compiler when @triton.jit runs, i.e. when a kernel module is imported;
INTERPRET is read at the same moment (the first import of this package's kernels), so the launchers and
their kernels always agree.
"""
import os

import torch
import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_TL_DTYPE = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}


def tuned(kernel, configs, key):
    """The kernel as the launchers call it: autotuned on a GPU, plain under the interpreter (where
    multi-config autotuning does not work)."""
    return kernel if INTERPRET else triton.autotune(configs=configs, key=key)(kernel)


def meta(interpreter_config):
    """Block sizes the launcher passes: the fixed config under the interpreter; the autotuner's on a GPU."""
    return dict(interpreter_config) if INTERPRET else {}


def empty_out(shape, like):
    """An output buffer for a kernel whose result the caller returns in like.dtype (see finish)."""
    # The interpreter's fp32 -> bf16 cast truncates instead of rounding to nearest even (compiled Triton
    # rounds), costing up to one bf16 ulp. So under the interpreter bf16 results are written in fp32 and
    # rounded by torch; on a GPU the kernel stores bf16 itself.
    dtype = torch.float32 if INTERPRET and like.dtype == torch.bfloat16 else like.dtype
    return torch.empty(shape, dtype=dtype, device=like.device)


def finish(out, dtype):
    return out if out is None or out.dtype == dtype else out.to(dtype)


def dot_dtype(dtype):
    # On a GPU, fp16/bf16 go to the tensor cores as they are (fp32 accumulation). The interpreter has no
    # bf16 matmul, so there every operand is fp32 (which is also at least as accurate).
    return tl.float32 if INTERPRET else _TL_DTYPE[dtype]

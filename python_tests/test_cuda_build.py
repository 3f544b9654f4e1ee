"""The CUDA C++ backend without a GPU: every op has a CUDA kernel in _C, the dispatcher knows it, and the
per-element math is the one header the CPU kernels (tested everywhere else) run.

On a GPU, python_tests/gpu_checks.py runs the kernels themselves against the references.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vocoder_ext
from vocoder_ext.runtime import backend, extension

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = re.findall(r'"(\w+)\(', (ROOT / "csrc" / "schemas.h").read_text())


def _cuda_build_expected():
    """setup.py's rule: CUDA kernels are built where torch has CUDA and nvcc is found (VOCODER_EXT_CUDA forces)."""
    from torch.utils.cpp_extension import CUDA_HOME
    flag = os.environ.get("VOCODER_EXT_CUDA")
    return flag == "1" if flag is not None else torch.backends.cuda.is_built() and CUDA_HOME is not None


needs_cuda_build = pytest.mark.skipif(
    not (extension.loaded and _cuda_build_expected()),
    reason="the extension has CUDA kernels only where torch has CUDA and nvcc is found (VOCODER_EXT_CUDA=0|1 forces)")


def test_schemas_are_found():
    assert len(SCHEMAS) == 13 and "wn_layer_backward" in SCHEMAS and "conv1d_lrelu_backward" in SCHEMAS


@needs_cuda_build
def test_every_op_has_a_cuda_kernel_in_the_library():
    """_C alone (no Python registrations on top): what a libtorch / AOTInductor user loads."""
    code = ("import sys, torch; torch.ops.load_library(sys.argv[1]); "
            "print(' '.join(n for n in sys.argv[2:] "
            "if not torch._C._dispatch_has_kernel_for_dispatch_key('vocoder_ext::' + n, 'CUDA')))")
    so = extension.library_path
    out = subprocess.run([sys.executable, "-c", code, so, *SCHEMAS], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [], f"ops without a CUDA kernel in {so}: {out.stdout}"


@needs_cuda_build
def test_the_chooser_keeps_every_cuda_kernel():
    """vocoder_ext's Python chooser takes the CUDA key; it must hold _C's kernel for every op and backward."""
    assert backend.CPP_CUDA_KERNELS == set(SCHEMAS)
    for name in SCHEMAS:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"vocoder_ext::{name}", "CUDA")


@needs_cuda_build
def test_forced_cuda_backend_resolves_on_cuda_tensors_only(monkeypatch):
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "cuda")
    for op in backend.OPS:
        assert backend.resolve(op, "cuda") == ("cuda", None)
        with pytest.raises(RuntimeError, match="VOCODER_EXT_BACKEND=cuda cannot serve .* on cpu tensors"):
            backend.resolve(op, "cpu")
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "auto")
    report = vocoder_ext.backends()
    for op in backend.OPS:
        assert "cuda" in backend.cuda_candidates(op)
        assert "cuda" in report[op]["cuda"] and "eager" in report[op]["cuda"], report[op]["cuda"]


@needs_cuda_build
def test_forced_cuda_on_cpu_tensors_says_why(monkeypatch):
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "cuda")
    x, w = torch.randn(1, 4, 9), torch.randn(4, 4, 3)
    with pytest.raises(RuntimeError, match="VOCODER_EXT_BACKEND=cuda cannot serve lrelu_conv1d on cpu tensors"):
        vocoder_ext.ops.lrelu_conv1d(x, w, None)


def test_cpu_and_cuda_kernels_share_the_pointwise_math():
    """The formulas live in csrc/pointwise.h; both kernel families call them (no private copies)."""
    header = (ROOT / "csrc" / "pointwise.h").read_text()
    shared = re.findall(r"VX_HD \w+ (\w+)\(", header)
    assert {"leaky_relu", "leaky_relu_grad", "tanh_grad", "gate", "gate_grad", "affine_coupling"} <= set(shared)
    def code(folder, pattern):  # without comments, which may spell the formulas out
        return "".join(re.sub(r"//.*", "", p.read_text()) for p in (ROOT / "csrc" / folder).glob(pattern))

    cpu, cuda = code("cpu", "*.[ch]*"), code("cuda", "*.cu")
    both = ("leaky_relu", "leaky_relu_grad", "gate_grad", "sigmoid", "affine_coupling", "affine_coupling_grad")
    for name in both + ("gate",):  # the CPU's vector tanh/sigmoid feed gate() directly
        assert re.search(rf"\b{name}\(", cpu), f"the CPU kernels do not call {name}"
    for name in both + ("gate_from_preact", "tanh_grad"):
        assert re.search(rf"\b{name}\(", cuda), f"the CUDA kernels do not call {name}"
    for text in (cpu, cuda):  # the gate's derivative is written once
        assert "(1 - s)" not in text and "1 - t * t" not in text


def test_the_chooser_calls_kernel_handles_with_every_argument_kind():
    """The chooser calls _C's CUDA kernels through torch.library.get_kernel handles: checked here with
    the CPU kernels' handles (no GPU), with None, lists, strings and tuple results."""
    keys = torch._C.DispatchKeySet(torch._C.DispatchKey.CPU)
    x, ws, bs = torch.randn(1, 4, 20), [torch.randn(4, 4, 3) for _ in range(2)], [torch.randn(4) for _ in range(2)]
    block = torch.library.get_kernel("vocoder_ext::resblock", "CPU").call_boxed(keys, x, ws, bs, [1, 3], 2, 0.1, None, 1.0)
    torch.testing.assert_close(block, vocoder_ext.ops.resblock.__globals__["resblock_ref"](x, ws, bs, [1, 3], 2))
    w, b = torch.randn(5, 4, 3), torch.randn(5)
    y = torch.library.get_kernel("vocoder_ext::lrelu_conv1d", "CPU").call_boxed(keys, x, w, b, 2, 0.1, None, "tanh")
    torch.testing.assert_close(y, torch.ops.vocoder_ext.lrelu_conv1d(x, w, b, 2, 0.1, None, "tanh"))
    grads = torch.library.get_kernel("vocoder_ext::lrelu_conv1d_backward", "CPU").call_boxed(
        keys, torch.randn_like(y), x, w, b, 2, 0.1, "tanh")
    assert isinstance(grads, tuple) and [g.shape for g in grads] == [x.shape, w.shape, b.shape]


@needs_cuda_build
def test_forced_cuda_chooser_on_cpu_tensors_says_why(monkeypatch):
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "cuda")
    conv_op = vocoder_ext.ops.lrelu_conv1d.__globals__["OP"]  # its chooser, as the CUDA key calls it
    with pytest.raises(RuntimeError, match=re.escape("VOCODER_EXT_BACKEND=cuda cannot serve lrelu_conv1d on cpu "
                                                     "tensors: the CUDA C++ kernels take CUDA tensors, got cpu")):
        conv_op.cuda_forward(torch.randn(1, 4, 9), torch.randn(4, 4, 3), None, 1, 0.1, None, "none")

"""Triton lrelu_conv1d kernels (forward and backward) vs the eager reference, on CPU via TRITON_INTERPRET=1.

conftest.py sets TRITON_INTERPRET=1 before anything imports triton, so the kernel module imports
interpreted.
"""
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from triton_helpers import (
    assert_close_fp32,
    assert_within_twice_eager,
    cdiv,
    count_launches,
    f64,
    random_x,
)
from vocoder_ext.kernels import lrelu_conv1d as K

from vocoder_ext.ops.lrelu_conv1d import lrelu_conv1d_backward_ref, lrelu_conv1d_ref

assert K.INTERPRET, "the kernel module under test must have been imported with TRITON_INTERPRET=1"

SLOPE = 0.1


@pytest.fixture
def launches(monkeypatch):
    return count_launches(monkeypatch, K)


def _inputs(batch, c_in, c_out, t_len, k, dtype=torch.float32, bias=True, residual=False, layout="contiguous"):
    """Fresh random inputs; layout: see triton_helpers.random_x."""
    x = random_x(batch, c_in, t_len, dtype, layout)
    # Scaled like a trained conv so tanh is not saturated everywhere.
    w = (torch.randn(c_out, c_in, k) / (c_in * k) ** 0.5).to(dtype)
    b = torch.randn(c_out, dtype=dtype) if bias else None
    r = torch.randn(batch, c_out, t_len, dtype=dtype) if residual else None
    return x, w, b, r


# (batch, C_in, C_out, T, K, dilation, bias, residual, epilogue, layout)
# The interpreter config has 16-wide channel tiles and 32-wide time tiles: 20/18 channels and T = 33
# run every loop and mask across two blocks; T = 1 and 7 exercise taps that are mostly padding.
CASES = [
    (1, 20, 18, 1, 3, 1, True, False, "none", "contiguous"),
    (3, 20, 18, 7, 7, 3, False, True, "tanh", "contiguous"),
    (1, 20, 18, 33, 11, 5, True, True, "tanh", "contiguous"),
    (3, 20, 18, 33, 3, 5, True, True, "none", "slice"),
    (1, 17, 20, 33, 7, 1, False, False, "none", "contiguous"),
    (3, 18, 20, 7, 11, 3, True, False, "tanh", "contiguous"),
    (3, 20, 18, 33, 3, 1, True, False, "tanh", "transposed"),
]


def _case_id(case):
    batch, c_in, c_out, t_len, k, d, bias, res, ep, layout = case
    return (f"B{batch}-ci{c_in}-co{c_out}-T{t_len}-K{k}-d{d}-{'bias' if bias else 'nobias'}-"
            f"{'res' if res else 'nores'}-{ep}-{layout}")


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_forward_and_backward_fp32_match_reference(case, launches):
    batch, c_in, c_out, t_len, k, d, bias, res, epilogue, layout = case
    x, w, b, r = _inputs(batch, c_in, c_out, t_len, k, bias=bias, residual=res, layout=layout)

    y = K.lrelu_conv1d_triton(x, w, b, d, SLOPE, r, epilogue)
    assert len(launches["conv"].grids) == 1  # y came out of the Triton kernel
    assert launches["conv"].grids[0] == (cdiv(t_len, 32), cdiv(c_out, 16), batch)
    assert_close_fp32(y, lrelu_conv1d_ref(x, w, b, d, SLOPE, r, epilogue))

    g = torch.randn(batch, c_out, t_len)
    if layout != "contiguous":
        g = torch.randn(batch, c_out, 2 * t_len)[:, :, ::2]  # a strided upstream gradient too
    grads = K.lrelu_conv1d_backward_triton(g, x, w, b, d, SLOPE, epilogue)
    expected = lrelu_conv1d_backward_ref(g, x, w, b, d, SLOPE, epilogue)
    # tanh: one conv for the tanh derivative, one for grad_x; then one grad_w (+ grad_b) reduction.
    assert len(launches["conv"].grids) == 1 + (2 if epilogue == "tanh" else 1)
    splits, _ = K.time_splits(cdiv(c_out, 64) * cdiv(c_in, 64) * k, t_len, x.device, 32)
    assert launches["grad_weight"].grids == [(cdiv(c_out, 16), cdiv(c_in, 16), k * splits)]
    assert_close_fp32(grads[0], expected[0])
    assert_close_fp32(grads[1], expected[1])
    if bias:
        assert_close_fp32(grads[2], expected[2])
    else:
        assert grads[2] is None


# (batch, C_in, C_out, T, K, dilation, bias, residual, epilogue)
LOW_PRECISION_CASES = [
    (3, 20, 18, 33, 3, 3, True, True, "none"),
    (1, 18, 20, 33, 7, 5, True, True, "tanh"),
    (3, 20, 18, 7, 11, 1, False, False, "tanh"),
]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", LOW_PRECISION_CASES, ids=lambda c: _case_id(c + ("contiguous",)))
def test_low_precision_error_at_most_twice_eager(case, dtype, launches):
    """Kernel error vs an fp64 reference (on the same rounded inputs) <= 2x eager PyTorch's + 0.1 ulp."""
    batch, c_in, c_out, t_len, k, d, bias, res, epilogue = case
    x, w, b, r = _inputs(batch, c_in, c_out, t_len, k, dtype=dtype, bias=bias, residual=res)
    g = torch.randn(batch, c_out, t_len, dtype=dtype)

    def check(name, out, eager, ref64):
        assert_within_twice_eager(name, out, eager, ref64, dtype)

    y = K.lrelu_conv1d_triton(x, w, b, d, SLOPE, r, epilogue)
    check("y", y, lrelu_conv1d_ref(x, w, b, d, SLOPE, r, epilogue),
          lrelu_conv1d_ref(f64(x), f64(w), f64(b), d, SLOPE, f64(r), epilogue))

    grads = K.lrelu_conv1d_backward_triton(g, x, w, b, d, SLOPE, epilogue)
    eager = lrelu_conv1d_backward_ref(g, x, w, b, d, SLOPE, epilogue)
    ref64 = lrelu_conv1d_backward_ref(f64(g), f64(x), f64(w), f64(b), d, SLOPE, epilogue)
    for name, out, e, r64 in zip(("grad_x", "grad_w", "grad_b"), grads, eager, ref64):
        if name == "grad_b" and not bias:
            assert out is None
            continue
        check(name, out, e, r64)
    assert launches["grad_weight"].grids  # the gradients came from the kernels


def test_grad_weight_of_a_long_input_is_split_over_time(launches):
    # Few channels and taps, many steps (HiFi-GAN's last stage): the reduction runs as 7 chunks of 32
    # steps (interpreter sizes), added up afterwards; the last chunk is partial (200 = 6*32 + 8).
    x, w, b, _ = _inputs(2, 17, 19, 200, 3)
    g = torch.randn(2, 19, 200)
    grads = K.lrelu_conv1d_backward_triton(g, x, w, b, 3, SLOPE, "none")
    assert launches["grad_weight"].grids == [(2, 2, 3 * 7)]
    for got, want in zip(grads, lrelu_conv1d_backward_ref(g, x, w, b, 3, SLOPE, "none")):
        assert_close_fp32(got, want)


def test_packed_weight_is_made_once_and_remade_when_the_weight_changes(launches, monkeypatch):
    x, w, b, r = _inputs(3, 20, 18, 33, 7, residual=True)
    packs = []
    monkeypatch.setattr(K, "pack_weight", lambda weight: packs.append(1) or weight.permute(2, 0, 1).contiguous())
    for _ in range(2):
        y = K.lrelu_conv1d_triton(x, w, b, 3, SLOPE, r, "tanh")
        assert_close_fp32(y, lrelu_conv1d_ref(x, w, b, 3, SLOPE, r, "tanh"))
    assert len(packs) == 1  # the second call reused the packed weight
    with torch.no_grad():
        w.mul_(-0.5)  # an in-place update (as an optimizer step) must not leave a stale packed weight
    y = K.lrelu_conv1d_triton(x, w, b, 3, SLOPE, r, "tanh")
    assert len(packs) == 2
    assert_close_fp32(y, lrelu_conv1d_ref(x, w, b, 3, SLOPE, r, "tanh"))


def test_bad_inputs_raise_clear_errors():
    x, w, b, _ = _inputs(1, 4, 5, 9, 3)
    w_even = torch.randn(5, 4, 16)
    with pytest.raises(ValueError, match="odd kernel size, got K=16"):
        K.lrelu_conv1d_triton(x, w_even)
    with pytest.raises(ValueError, match="odd kernel size, got K=16"):
        K.lrelu_conv1d_backward_triton(torch.randn(1, 5, 9), x, w_even, None, 1, SLOPE, "none")
    with pytest.raises(TypeError, match="supports"):
        K.lrelu_conv1d_triton(x.double(), w.double())
    with pytest.raises(TypeError, match="bias: expected dtype torch.float32"):
        K.lrelu_conv1d_triton(x, w, b.half())
    with pytest.raises(ValueError, match="input channels"):
        K.lrelu_conv1d_triton(x, torch.randn(5, 3, 3))
    with pytest.raises(ValueError, match="epilogue"):
        K.lrelu_conv1d_triton(x, w, epilogue="relu")
    with pytest.raises(ValueError, match="dilation"):
        K.lrelu_conv1d_triton(x, w, dilation=0)
    with pytest.raises(ValueError, match="residual: expected shape"):
        K.lrelu_conv1d_triton(x, w, residual=torch.randn(1, 5, 8))
    with pytest.raises(ValueError, match="grad_out: expected shape"):
        K.lrelu_conv1d_backward_triton(torch.randn(1, 5, 8), x, w, None, 1, SLOPE, "none")


def test_compiles_for_a_gpu_without_one():
    """Without TRITON_INTERPRET the module imports on a GPU-less machine (autotuned kernels), and the
    kernels lower to PTX for sm_90: catches what only the compiler rejects (the interpreter is lenient)."""
    script = textwrap.dedent("""
        import os
        os.environ.pop("TRITON_INTERPRET", None)
        import triton, triton.language as tl
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
        import vocoder_ext.kernels.lrelu_conv1d as L
        assert not L.INTERPRET and isinstance(L.conv_kernel, triton.runtime.Autotuner)
        # A launch tunes over its operand width's own (spill-free) tile set only.
        for kernel, configs in ((L.conv_kernel, L.CONV_CONFIGS), (L.grad_weight_kernel, L.GRAD_WEIGHT_CONFIGS)):
            kernel.nargs = {}  # set by a launch; prune_configs hands it to the pruner
            for dot, name in ((tl.float32, "fp32"), (tl.float16, "fp16"), (tl.bfloat16, "fp16")):
                assert kernel.prune_configs({"DOT_DTYPE": dot}) == configs[name], (dot, name)

        def compile(fn, pointers, constexprs):
            sig = {n: "constexpr" if p.is_constexpr else pointers.get(n, "fp32" if n == "slope" else "i32")
                   for n, p in zip(fn.arg_names, fn.params)}
            src = ASTSource(fn=fn, signature=sig,
                            constexprs={(fn.arg_names.index(n),): v for n, v in constexprs.items()})
            triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, "num_stages": 3})

        blocks = dict(BLOCK_CO=64, BLOCK_CI=32, BLOCK_T=64)
        for epilogue, add_e, dot in [("tanh", True, tl.float32), ("tanh_grad", False, tl.float16),
                                     ("lrelu_grad", False, tl.bfloat16)]:
            compile(L._conv_kernel,
                    dict(x_ptr="*bf16", w_ptr="*bf16", b_ptr="*bf16", e_ptr="*fp16", y_ptr="*fp32"),
                    dict(PROLOGUE_LRELU=epilogue != "lrelu_grad", HAS_BIAS=True, EPILOGUE=epilogue,
                         ADD_E=add_e, DOT_DTYPE=dot, **blocks))
        compile(L._grad_weight_kernel, dict(g_ptr="*fp32", x_ptr="*bf16", gw_ptr="*bf16", gb_ptr="*bf16"),
                dict(HAS_BIAS=True, DOT_DTYPE=tl.bfloat16, **blocks))
        print("compiled")
    """)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0 and "compiled" in done.stdout, done.stderr[-3000:]


def test_every_dot_tile_is_at_least_16_deep():
    """tl.dot's inner size (K) must be >= 16 for Triton 3.6 on a GPU (it refused 8 on an H100), though the
    interpreter and newer Triton accept less: every tile set of a kernel with tl.dot keeps K >= 16."""
    from vocoder_ext.kernels import _tiles as T
    sets = {"CONV_CONFIGS": "BLOCK_CI", "GRAD_WEIGHT_CONFIGS": "BLOCK_T", "WN_CONFIGS": "BLOCK_CI",
            "WN_GATE_CONFIGS": "BLOCK_CI", "WN_BACKWARD_CONFIGS": "BLOCK_CI", "WN_GRAD_AUDIO_CONFIGS": "BLOCK_CI"}
    for name, k in sets.items():
        for width, configs in getattr(T, name).items():
            assert configs and all(c.kwargs[k] >= 16 for c in configs), (name, width)
    for name in ("INTERPRETER_CONV_CONFIG", "INTERPRETER_GRAD_WEIGHT_CONFIG", "INTERPRETER_WN_CONFIG"):
        assert getattr(T, name)["BLOCK_CI"] >= 16 and getattr(T, name)["BLOCK_T"] >= 16, name

"""Triton lrelu_conv_transpose1d kernels (forward and backward) vs the eager reference, on CPU via
TRITON_INTERPRET=1.

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
from vocoder_ext.kernels import lrelu_conv_transpose1d as K

from vocoder_ext.ops.lrelu_conv_transpose1d import (
    lrelu_conv_transpose1d_backward_ref,
    lrelu_conv_transpose1d_ref,
)

assert K.INTERPRET, "the kernel module under test must have been imported with TRITON_INTERPRET=1"

SLOPE = 0.1


@pytest.fixture
def launches(monkeypatch):
    return count_launches(monkeypatch, K)


def _inputs(batch, c_in, c_out, t_len, k, dtype=torch.float32, bias=True, layout="contiguous"):
    """Fresh random inputs; layout: see triton_helpers.random_x."""
    x = random_x(batch, c_in, t_len, dtype, layout)
    w = (torch.randn(c_in, c_out, k) / (c_in * k) ** 0.5).to(dtype)
    b = torch.randn(c_out, dtype=dtype) if bias else None
    return x, w, b


def _t_out(t_in, k, s, p):
    return (t_in - 1) * s - 2 * p + k


# (batch, C_in, C_out, T_in, K, stride, padding, bias, layout)
# HiFi-GAN's (16, 8, 4), (4, 2, 1), (8, 4, 2), plus (3, 1, 1) and (5, 3, 0). The interpreter config has
# 16-wide channel tiles and 32-wide time tiles: 17..20 channels and T_out up to 76 run every loop and
# mask across several blocks; T_in = 1 leaves most taps of most outputs cropped or off the stride grid.
CASES = [
    (1, 20, 18, 1, 16, 8, 4, True, "contiguous"),
    (3, 17, 20, 7, 16, 8, 4, False, "slice"),
    (1, 20, 18, 19, 4, 2, 1, True, "contiguous"),
    (3, 19, 17, 7, 4, 2, 1, True, "transposed"),
    (3, 18, 20, 7, 8, 4, 2, True, "slice"),
    (1, 20, 17, 19, 8, 4, 2, False, "contiguous"),
    (3, 20, 18, 19, 3, 1, 1, True, "slice"),
    (1, 17, 20, 7, 5, 3, 0, True, "contiguous"),
    (3, 20, 18, 1, 5, 3, 0, False, "transposed"),
]


def _case_id(case):
    batch, c_in, c_out, t_len, k, s, p, bias, layout = case
    return f"B{batch}-ci{c_in}-co{c_out}-T{t_len}-K{k}-s{s}-p{p}-{'bias' if bias else 'nobias'}-{layout}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_forward_and_backward_fp32_match_reference(case, launches):
    batch, c_in, c_out, t_len, k, s, p, bias, layout = case
    x, w, b = _inputs(batch, c_in, c_out, t_len, k, bias=bias, layout=layout)
    t_out = _t_out(t_len, k, s, p)

    y = K.lrelu_conv_transpose1d_triton(x, w, b, s, p, SLOPE)
    assert y.shape == (batch, c_out, t_out)
    # y came from Triton, one program per (time block, output phase)
    assert launches["conv"].grids == [(s * cdiv(cdiv(t_out, s), 32), cdiv(c_out, 16), batch)]
    assert_close_fp32(y, lrelu_conv_transpose1d_ref(x, w, b, s, p, SLOPE))

    g = torch.randn(batch, c_out, t_out)
    if layout != "contiguous":
        g = torch.randn(batch, c_out, 2 * t_out)[:, :, ::2]  # a strided upstream gradient too
    grads = K.lrelu_conv_transpose1d_backward_triton(g, x, w, s, p, SLOPE)
    expected = lrelu_conv_transpose1d_backward_ref(g, x, w, s, p, SLOPE)
    # One conv launch for grad_x (over T_in, C_in), then one grad_w + grad_b reduction.
    assert launches["conv"].grids[1:] == [(cdiv(t_len, 32), cdiv(c_in, 16), batch)]
    splits, _ = K.time_splits(cdiv(c_in, 64) * cdiv(c_out, 64) * k, x.shape[2], x.device, 32)
    assert launches["grad_weight"].grids == [(cdiv(c_in, 16), cdiv(c_out, 16), k * splits)]
    for out, ref in zip(grads, expected):
        assert_close_fp32(out, ref)


# (batch, C_in, C_out, T_in, K, stride, padding, bias)
LOW_PRECISION_CASES = [
    (3, 20, 18, 7, 16, 8, 4, True),
    (1, 18, 20, 19, 4, 2, 1, False),
    (3, 20, 17, 7, 8, 4, 2, True),
]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", LOW_PRECISION_CASES, ids=lambda c: _case_id(c + ("contiguous",)))
def test_low_precision_error_at_most_twice_eager(case, dtype, launches):
    """Kernel error vs an fp64 reference (on the same rounded inputs) <= 2x eager PyTorch's + 0.1 ulp."""
    batch, c_in, c_out, t_len, k, s, p, bias = case
    x, w, b = _inputs(batch, c_in, c_out, t_len, k, dtype=dtype, bias=bias)
    g = torch.randn(batch, c_out, _t_out(t_len, k, s, p), dtype=dtype)

    def check(name, out, eager, ref64):
        assert_within_twice_eager(name, out, eager, ref64, dtype)

    y = K.lrelu_conv_transpose1d_triton(x, w, b, s, p, SLOPE)
    check("y", y, lrelu_conv_transpose1d_ref(x, w, b, s, p, SLOPE),
          lrelu_conv_transpose1d_ref(f64(x), f64(w), f64(b), s, p, SLOPE))

    grads = K.lrelu_conv_transpose1d_backward_triton(g, x, w, s, p, SLOPE)
    eager = lrelu_conv_transpose1d_backward_ref(g, x, w, s, p, SLOPE)
    ref64 = lrelu_conv_transpose1d_backward_ref(f64(g), f64(x), f64(w), s, p, SLOPE)
    for name, out, e, r64 in zip(("grad_x", "grad_w", "grad_b"), grads, eager, ref64):
        check(name, out, e, r64)
    assert len(launches["conv"].grids) == 2 and len(launches["grad_weight"].grids) == 1  # from the kernels


# (batch, C_in, C_out, T_in, K, stride, padding, output_padding, layout): ParallelWaveGAN's odd scales
# (K = 2u, padding u//2 + 1, output_padding 1), an output_padding wider than the padding (outputs no tap
# reaches but the bias), and a single input step.
OUTPUT_PADDING_CASES = [
    (2, 17, 20, 7, 10, 5, 3, 1, "slice"),
    (1, 20, 18, 19, 6, 3, 2, 1, "transposed"),
    (3, 18, 17, 5, 5, 3, 0, 2, "contiguous"),
    (1, 19, 17, 1, 10, 5, 3, 1, "contiguous"),
]


@pytest.mark.parametrize("case", OUTPUT_PADDING_CASES, ids=str)
def test_output_padding_forward_and_backward_match_reference(case, launches):
    batch, c_in, c_out, t_len, k, s, p, op, layout = case
    x, w, b = _inputs(batch, c_in, c_out, t_len, k, layout=layout)
    y = K.lrelu_conv_transpose1d_triton(x, w, b, s, p, SLOPE, op)
    assert y.shape == (batch, c_out, _t_out(t_len, k, s, p) + op)
    assert_close_fp32(y, lrelu_conv_transpose1d_ref(x, w, b, s, p, SLOPE, op))
    g = torch.randn(batch, c_out, 2 * y.shape[2])[:, :, ::2]
    grads = K.lrelu_conv_transpose1d_backward_triton(g, x, w, s, p, SLOPE, op)
    for out, ref in zip(grads, lrelu_conv_transpose1d_backward_ref(g, x, w, s, p, SLOPE, op)):
        assert_close_fp32(out, ref)


def test_grad_weight_of_a_long_input_is_split_over_time(launches):
    # Few channels, a long input (late upsampling stages): the reduction over input positions runs as
    # 4 chunks of 32 (interpreter sizes), the last one partial, and grad_b's loop over output positions
    # follows the same chunks (the last one up to T_out, past T_in * stride here: K > stride + 2p).
    x, w, _ = _inputs(2, 17, 19, 101, 9)
    t_out = (101 - 1) * 4 - 2 * 2 + 9
    g = torch.randn(2, 19, t_out)
    grads = K.lrelu_conv_transpose1d_backward_triton(g, x, w, 4, 2, SLOPE)
    assert launches["grad_weight"].grids == [(2, 2, 9 * 4)]
    for got, want in zip(grads, lrelu_conv_transpose1d_backward_ref(g, x, w, 4, 2, SLOPE)):
        assert_close_fp32(got, want)


def test_packed_weight_is_made_once_and_remade_when_the_weight_changes(launches, monkeypatch):
    x, w, b = _inputs(3, 20, 18, 7, 8)
    packs = []
    monkeypatch.setattr(K, "pack_weight", lambda weight: packs.append(1) or weight.permute(2, 1, 0).contiguous())
    for _ in range(2):
        y = K.lrelu_conv_transpose1d_triton(x, w, b, 4, 2, SLOPE)
        assert_close_fp32(y, lrelu_conv_transpose1d_ref(x, w, b, 4, 2, SLOPE))
    assert len(packs) == 1 and len(launches["conv"].grids) == 2
    with torch.no_grad():
        w.mul_(-0.5)  # an in-place update (as an optimizer step) must not leave a stale packed weight
    y = K.lrelu_conv_transpose1d_triton(x, w, b, 4, 2, SLOPE)
    assert len(packs) == 2
    assert_close_fp32(y, lrelu_conv_transpose1d_ref(x, w, b, 4, 2, SLOPE))


def test_bad_inputs_raise_clear_errors():
    x, w, b = _inputs(1, 4, 5, 9, 4)
    g = torch.randn(1, 5, _t_out(9, 4, 2, 1))
    with pytest.raises(TypeError, match="x: expected a torch.Tensor"):
        K.lrelu_conv_transpose1d_triton(x.numpy(), w)
    with pytest.raises(ValueError, match="x: expected a 3-D tensor"):
        K.lrelu_conv_transpose1d_triton(x[0], w)
    with pytest.raises(TypeError, match="supports"):
        K.lrelu_conv_transpose1d_triton(x.double(), w.double())
    with pytest.raises(TypeError, match="weight: expected dtype torch.float32"):
        K.lrelu_conv_transpose1d_triton(x, w.half())
    with pytest.raises(TypeError, match="bias: expected dtype torch.float32"):
        K.lrelu_conv_transpose1d_triton(x, w, b.half())
    with pytest.raises(ValueError, match="bias: expected shape"):
        K.lrelu_conv_transpose1d_triton(x, w, torch.randn(4))
    with pytest.raises(ValueError, match=r"weight: expected shape \(4, C_out, K\)"):
        K.lrelu_conv_transpose1d_triton(x, torch.randn(5, 4, 4))  # a Conv1d-layout weight
    with pytest.raises(ValueError, match="stride: expected an int >= 1"):
        K.lrelu_conv_transpose1d_triton(x, w, stride=0)
    with pytest.raises(ValueError, match="padding: expected an int >= 0"):
        K.lrelu_conv_transpose1d_triton(x, w, padding=-1)
    with pytest.raises(ValueError, match=r"output_padding: expected an int < stride \(2\), got 2"):
        K.lrelu_conv_transpose1d_triton(x, w, stride=2, padding=1, output_padding=2)
    with pytest.raises(ValueError, match="grad_out: expected shape"):  # the output_padding's extra step
        K.lrelu_conv_transpose1d_backward_triton(g, x, w, 2, 1, SLOPE, 1)
    with pytest.raises(ValueError, match="T_out=0 < 1"):
        K.lrelu_conv_transpose1d_triton(x[:, :, :1], torch.randn(4, 5, 2), stride=1, padding=1)
    with pytest.raises(ValueError, match="grad_out: expected shape"):
        K.lrelu_conv_transpose1d_backward_triton(g[:, :, :-1], x, w, 2, 1, SLOPE)
    with pytest.raises(ValueError, match="grad_out: expected shape"):
        K.lrelu_conv_transpose1d_backward_triton(g.half(), x, w, 2, 1, SLOPE)
    with pytest.raises(ValueError, match="stride: expected an int >= 1"):
        K.lrelu_conv_transpose1d_backward_triton(g, x, w, 0, 1, SLOPE)


def test_compiles_for_a_gpu_without_one():
    """Without TRITON_INTERPRET the module imports on a GPU-less machine (autotuned kernels), and the
    kernels lower to PTX for sm_90: catches what only the compiler rejects (the interpreter is lenient)."""
    script = textwrap.dedent("""
        import os
        os.environ.pop("TRITON_INTERPRET", None)
        import triton, triton.language as tl
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
        import vocoder_ext.kernels.lrelu_conv_transpose1d as L
        assert not L.INTERPRET and isinstance(L.conv_kernel, triton.runtime.Autotuner)

        def compile(fn, pointers, constexprs):
            sig = {n: "constexpr" if p.is_constexpr else pointers.get(n, "fp32" if n == "slope" else "i32")
                   for n, p in zip(fn.arg_names, fn.params)}
            src = ASTSource(fn=fn, signature=sig,
                            constexprs={(fn.arg_names.index(n),): v for n, v in constexprs.items()})
            triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, "num_stages": 3})

        blocks = dict(BLOCK_CO=64, BLOCK_CI=32, BLOCK_T=64)
        for transposed, dot in [(True, tl.bfloat16), (False, tl.float16)]:
            compile(L._conv_kernel,
                    dict(x_ptr="*bf16", w_ptr="*bf16", b_ptr="*bf16", e_ptr="*bf16", y_ptr="*bf16"),
                    dict(TRANSPOSED=transposed, PROLOGUE_LRELU=transposed, HAS_BIAS=transposed,
                         LRELU_GRAD=not transposed, DOT_DTYPE=dot, **blocks))
        compile(L._grad_weight_kernel, dict(g_ptr="*fp32", x_ptr="*fp32", gw_ptr="*fp32", gb_ptr="*fp32"),
                dict(DOT_DTYPE=tl.float32, **blocks))
        print("compiled")
    """)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0 and "compiled" in done.stdout, done.stderr[-3000:]

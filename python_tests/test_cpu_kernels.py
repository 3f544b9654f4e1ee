"""The C++ CPU kernels (csrc/cpu) against the eager references, on every instruction-set path."""
import itertools

import pytest
import torch

from vocoder_ext import ops
from vocoder_ext.runtime import backend as backend_mod
from vocoder_ext.runtime import extension

pytestmark = pytest.mark.skipif(not extension.loaded, reason=f"vocoder_ext._C not loaded: {extension.load_error}")


def _supported_isas():
    flags = open("/proc/cpuinfo").read() if __import__("os").path.exists("/proc/cpuinfo") else ""
    isas = ["generic"]
    if " avx2 " in flags and " fma " in flags:
        isas.append("avx2")
    if all(f" {f} " in flags for f in ("avx512f", "avx512dq", "avx512vl")):
        isas.append("avx512")
    return isas


ISAS = _supported_isas()


def assert_close(got, want, what, rtol=1e-5):
    """fp32 kernel vs fp64 reference: max error within rtol of the reference's scale."""
    scale = want.abs().max().item() if want.numel() else 0.0
    err = (got.double() - want).abs().max().item() if want.numel() else 0.0
    assert err <= rtol * max(scale, 1.0), f"{what}: max error {err:.3g} at scale {scale:.3g}"


@pytest.fixture(params=ISAS)
def isa(request, monkeypatch):
    monkeypatch.setenv("VOCODER_EXT_CPU_ISA", request.param)
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "cpp")
    return request.param


def test_cpp_serves_both_ops_on_cpu():
    for op in ("lrelu_conv1d", "lrelu_conv_transpose1d"):
        assert backend_mod.resolve(op, "cpu") == ("cpp", None)


# (K, dilation) over the whole grid; T, batch, bias, residual and epilogue cycle through their values.
GRID = list(itertools.product([3, 5, 7, 11], [1, 2, 3, 5, 6, 12]))
LENGTHS = [1, 7, 129, 1003]


@pytest.mark.parametrize("i", range(len(GRID)))
def test_lrelu_conv1d_matches_reference(i, isa):
    k, d = GRID[i]
    t = LENGTHS[i % 4]
    batch = 1 + 2 * (i % 2)
    has_bias, has_res = i % 3 != 0, i % 2 == 0
    epilogue = "tanh" if i % 5 == 0 else "none"
    c_in, c_out = 3 + i % 5, 1 + (i * 7) % 9  # odd channel counts, partial output blocks
    x = torch.randn(batch, c_in, 2 * t + 1)[:, :, 1::2].requires_grad_()  # non-contiguous
    w = (torch.randn(c_out, c_in, k) / (c_in * k) ** 0.5).requires_grad_()
    b = torch.randn(c_out, requires_grad=True) if has_bias else None
    r = torch.randn(batch, c_out, t, requires_grad=True) if has_res else None
    y = ops.lrelu_conv1d(x, w, b, d, 0.1, r, epilogue)
    inputs = [v for v in (x, w, b, r) if v is not None]
    as64 = [v.detach().double().requires_grad_() for v in inputs]
    it = iter(as64)
    x64, w64 = next(it), next(it)
    b64 = next(it) if has_bias else None
    r64 = next(it) if has_res else None
    ref = ops.lrelu_conv1d_ref(x64, w64, b64, d, 0.1, r64, epilogue)
    assert_close(y, ref, "output")
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, inputs, g)
    want = torch.autograd.grad(ref, as64, g.double())
    for name, a, e in zip(["x", "weight", "bias", "residual"] if has_bias else ["x", "weight", "residual"], got, want):
        assert_close(a, e, f"grad {name}")


# The last column is output_padding: ParallelWaveGAN's odd scales (u=5: K 10, padding 3, output_padding 1;
# u=3: K 6, padding 2, output_padding 1), one wider than the padding, and one on a single input step.
@pytest.mark.parametrize("c_in,c_out,t,k,stride,pad,out_pad", [
    (5, 3, 1, 16, 8, 4, 0), (4, 6, 7, 16, 8, 4, 0), (3, 5, 129, 4, 2, 1, 0), (6, 2, 33, 8, 4, 2, 0),
    (2, 3, 10, 5, 3, 0, 0), (3, 2, 9, 3, 4, 1, 0), (2, 2, 5, 7, 2, 3, 0),
    (5, 3, 11, 10, 5, 3, 1), (3, 4, 37, 6, 3, 2, 1), (2, 3, 10, 5, 3, 0, 2), (4, 3, 1, 10, 5, 3, 1),
])
def test_lrelu_conv_transpose1d_matches_reference(c_in, c_out, t, k, stride, pad, out_pad, isa):
    x = torch.randn(3, c_in, 2 * t)[:, :, ::2].requires_grad_()
    w = torch.randn(c_in, c_out, k, requires_grad=True)
    b = torch.randn(c_out, requires_grad=True)
    y = ops.lrelu_conv_transpose1d(x, w, b, stride, pad, 0.1, out_pad)
    x64, w64, b64 = (v.detach().double().requires_grad_() for v in (x, w, b))
    ref = ops.lrelu_conv_transpose1d_ref(x64, w64, b64, stride, pad, 0.1, out_pad)
    assert y.shape == ref.shape
    assert_close(y, ref, "output")
    g = torch.randn_like(y)
    for name, a, e in zip(["x", "weight", "bias"], torch.autograd.grad(y, (x, w, b), g),
                          torch.autograd.grad(ref, (x64, w64, b64), g.double())):
        assert_close(a, e, f"grad {name}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_within_twice_eager_error(dtype, isa):
    """fp16 is computed in fp32, bf16 with bf16 products and fp32 sums where the ISA has AVX512_BF16
    (test_cpu_bf16.py), else in fp32: error vs an fp64 reference within 2x eager PyTorch's own error at that
    precision (+ atol)."""
    x = torch.randn(2, 16, 301)
    w = torch.randn(16, 16, 7) / 11
    b, r = torch.randn(16), torch.randn(2, 16, 301)
    exact = ops.lrelu_conv1d_ref(x.double(), w.double(), b.double(), 3, 0.1, r.double())
    lo = [v.to(dtype) for v in (x, w, b, r)]
    got = ops.lrelu_conv1d(lo[0], lo[1], lo[2], 3, 0.1, lo[3])
    eager = ops.lrelu_conv1d_ref(*lo[:3], 3, 0.1, lo[3])
    assert got.dtype == dtype
    err, eager_err = (got.double() - exact).abs().max(), (eager.double() - exact).abs().max()
    assert err <= 2 * eager_err + 1e-3, (err, eager_err)


def test_float64_gradcheck_runs_the_kernel(isa):
    x = torch.randn(2, 3, 11, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    r = torch.randn(2, 4, 11, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: torch.ops.vocoder_ext.lrelu_conv1d(*a[:3], 3, 0.2, a[3], "tanh"),
                                    (x, w, b, r))
    wt = torch.randn(3, 2, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: torch.ops.vocoder_ext.lrelu_conv_transpose1d(x, w, None, 4, 2, 0.1),
                                    (x, wt))


@pytest.mark.parametrize("call,msg", [
    (lambda: torch.ops.vocoder_ext.lrelu_conv1d(torch.randn(1, 2, 5), torch.randn(3, 2, 4), None), "odd kernel size"),
    (lambda: torch.ops.vocoder_ext.lrelu_conv1d(torch.randn(1, 2, 5), torch.randn(3, 5, 3), None), r"weight must be \[C_out, 2, K\]"),
    (lambda: torch.ops.vocoder_ext.lrelu_conv1d(torch.randn(1, 2, 5), torch.randn(3, 2, 3), torch.randn(2)), r"bias must be \[3\]"),
    (lambda: torch.ops.vocoder_ext.lrelu_conv1d(torch.randn(1, 2, 5), torch.randn(3, 2, 3).double(), None), "weight dtype"),
    (lambda: torch.ops.vocoder_ext.lrelu_conv1d(torch.randn(1, 2, 5), torch.randn(3, 2, 3), None, 1, 0.1,
                                                torch.randn(1, 3, 4)), r"residual must be \[1, 3, 5\]"),
    (lambda: torch.ops.vocoder_ext.lrelu_conv_transpose1d(torch.randn(1, 2, 5), torch.randn(3, 2, 4), None, 2, 1),
     r"weight must be \[2, C_out, K\]"),
])
def test_kernel_rejects_bad_input_clearly(call, msg):
    with pytest.raises(RuntimeError, match=msg):
        call()


def test_unsupported_isa_request_is_an_error(monkeypatch):
    monkeypatch.setenv("VOCODER_EXT_CPU_ISA", "sse9")
    with pytest.raises(RuntimeError, match="VOCODER_EXT_CPU_ISA must be avx512_bf16, avx512, avx2 or generic; got 'sse9'"):
        torch.ops.vocoder_ext.lrelu_conv1d(torch.randn(1, 2, 5), torch.randn(3, 2, 3), None)


@pytest.mark.parametrize("group,k,dilations", [(2, 11, [1, 1, 3, 1, 5, 1]), (2, 3, [1, 1, 3, 1, 5, 1]),
                                               (1, 3, [1, 2]), (1, 7, [3, 12]), (1, 5, [2, 6])])
@pytest.mark.parametrize("t", LENGTHS + [4099])
def test_resblock_matches_reference(group, k, dilations, t, isa):
    c = 5
    x = torch.randn(2, c, 2 * t)[:, :, ::2]  # non-contiguous
    ws = [torch.randn(c, c, k) / (c * k) ** 0.5 for _ in dilations]
    bs = [torch.randn(c) for _ in dilations]
    accum = torch.randn(2, c, t) if t % 2 else None
    with torch.no_grad():
        y = torch.ops.vocoder_ext.resblock(x, ws, bs, dilations, group, 0.1, accum, 1 / 3)
    ref = ops.resblock_ref(x.double(), [w.double() for w in ws], [b.double() for b in bs], dilations, group, 0.1,
                           None if accum is None else accum.double(), 1 / 3)
    assert_close(y, ref, "output")


def test_resblock_with_gradients_runs_the_conv_chain():
    c, k = 4, 3
    x = torch.randn(1, c, 50, requires_grad=True)
    ws = [torch.randn(c, c, k, requires_grad=True) for _ in range(2)]
    bs = [torch.randn(c, requires_grad=True) for _ in range(2)]
    y = ops.resblock(x, ws, bs, [1, 3], 1, 0.1, None, 0.5)
    ref = ops.resblock_ref(x, ws, bs, [1, 3], 1, 0.1, None, 0.5)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    for a, e in zip(torch.autograd.grad(y, [x, *ws, *bs], g), torch.autograd.grad(ref, [x, *ws, *bs], g)):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-5)
    with pytest.raises(RuntimeError, match="vocoder_ext::resblock has no backward"):
        torch.ops.vocoder_ext.resblock(x, ws, bs, [1, 3], 1, 0.1, None, 0.5).sum().backward()


def test_resblock_opcheck_and_errors():
    from torch.library import opcheck
    x = torch.randn(2, 3, 40)
    ws = [torch.randn(3, 3, 5) for _ in range(2)]
    bs = [torch.randn(3) for _ in range(2)]
    opcheck(torch.ops.vocoder_ext.resblock.default, (x, ws, bs, [1, 2], 2, 0.1, torch.randn(2, 3, 40), 0.25),
            test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))
    with pytest.raises(RuntimeError, match=r"resblock \(CPU kernel\): x must be a float32"):
        torch.ops.vocoder_ext.resblock(x.double(), [w.double() for w in ws], [b.double() for b in bs], [1, 2], 2)
    with pytest.raises(RuntimeError, match="3 convs do not split into groups of 2"):
        torch.ops.vocoder_ext.resblock(x, ws + ws[:1], bs + bs[:1], [1, 2, 3], 2)
    with pytest.raises(ValueError, match=r"weights\[1\]: expected shape \(3, 3, 5\)"):
        ops.resblock(x, [ws[0], torch.randn(3, 3, 3)], bs, [1, 2], 2)

"""The fused-op layer: registered ops vs their eager references, autograd, opcheck, compile, export."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.library import opcheck

import vocoder_ext
from vocoder_ext import ops
from vocoder_ext.runtime import backend as backends
from vocoder_ext.runtime import extension

needs_ext = pytest.mark.skipif(not extension.loaded, reason=f"vocoder_ext._C not loaded: {extension.load_error}")


def independent_lrelu_conv1d(x, w, b, dilation, slope, residual, epilogue):
    """The op's definition written out with a loop over taps, in float64."""
    x, w = x.double(), w.double()
    a = torch.where(x > 0, x, x * slope)
    k = w.shape[2]
    pad = dilation * (k - 1) // 2
    a = F.pad(a, (pad, pad))
    t = x.shape[2]
    y = sum(torch.einsum("oi,bit->bot", w[:, :, j], a[:, :, j * dilation: j * dilation + t]) for j in range(k))
    if b is not None:
        y = y + b.double()[None, :, None]
    if epilogue == "tanh":
        y = torch.tanh(y)
    if residual is not None:
        y = y + residual.double()
    return y


CASES = [  # (B, C_in, C_out, T, K, dilation, bias, residual, epilogue)
    (1, 3, 3, 1, 3, 1, True, True, "none"),
    (3, 5, 4, 7, 5, 2, False, False, "none"),
    (2, 4, 4, 129, 7, 3, True, True, "tanh"),
    (1, 6, 1, 1003, 11, 5, True, False, "tanh"),
    (2, 8, 8, 64, 3, 12, True, True, "none"),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("route", ["op", "eager"])
def test_lrelu_conv1d_forward_backward(case, route, backend):
    backend("auto" if route == "op" else "eager")
    b_, ci, co, t, k, d, has_bias, has_res, epi = case
    x = torch.randn(b_, ci, t * 2)[:, :, ::2].requires_grad_()  # non-contiguous
    w = (torch.randn(co, ci, k) / (ci * k) ** 0.5).requires_grad_()
    bias = torch.randn(co, requires_grad=True) if has_bias else None
    res = torch.randn(b_, co, t, requires_grad=True) if has_res else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = ops.lrelu_conv1d(x, w, bias, d, 0.1, res, epi)
    ref = independent_lrelu_conv1d(x, w, bias, d, 0.1, res, epi)
    torch.testing.assert_close(y.double(), ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    inputs = [t_ for t_ in (x, w, bias, res) if t_ is not None]
    got = torch.autograd.grad(y, inputs, g)
    want = torch.autograd.grad(ref, inputs, g.double())
    for a, e in zip(got, want):
        # fp32 gradients are reductions over B x T (1003 steps here): their rounding error scales with the
        # tensor's magnitude, so an element that cancels to near zero needs an atol relative to that scale
        # (PyTorch's own eager conv once measured 1.1e-5 off on an element of 0.014 in a grad_w whose entries,
        # sums of ~1000 products, reach tens).
        torch.testing.assert_close(a.double(), e.double(), rtol=1e-5, atol=1e-5 * max(1.0, e.abs().max().item()))


@pytest.mark.parametrize("stride,k,pad,out_pad", [(8, 16, 4, 0), (2, 4, 1, 0), (4, 8, 2, 0), (3, 5, 0, 0),
                                                   (5, 10, 3, 1), (3, 6, 2, 1), (3, 5, 0, 2)])
@pytest.mark.parametrize("route", ["op", "eager"])
def test_lrelu_conv_transpose1d_forward_backward(stride, k, pad, out_pad, route, backend):
    backend("auto" if route == "op" else "eager")
    x = torch.randn(2, 6, 26)[:, :, 1::2].requires_grad_()  # 13 steps, non-contiguous
    w = torch.randn(6, 5, k, requires_grad=True)
    bias = torch.randn(5, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = ops.lrelu_conv_transpose1d(x, w, bias, stride, pad, 0.1, out_pad)
    t_out = (13 - 1) * stride - 2 * pad + k + out_pad
    assert y.shape == (2, 5, t_out)
    # Independent definition: scatter each input step's taps into the output; output_padding reaches
    # past the scattered taps (out_pad > pad), where only the bias lands.
    xd, wd = x.double(), w.double()
    a = torch.where(xd > 0, xd, 0.1 * xd)
    full = torch.zeros(2, 5, (13 - 1) * stride + k + out_pad, dtype=torch.float64)
    for s in range(13):
        full[:, :, s * stride: s * stride + k] += torch.einsum("bi,iok->bok", a[:, :, s], wd)
    ref = full[:, :, pad: pad + t_out] + bias.double()[None, :, None]
    torch.testing.assert_close(y.double(), ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, w, bias), g)
    want = torch.autograd.grad(ref, (x, w, bias), g.double())
    for a_, e in zip(got, want):
        torch.testing.assert_close(a_.double(), e.double(), rtol=1e-5, atol=1e-5)


@needs_ext
def test_gradcheck_float64():
    x = torch.randn(2, 3, 9, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    r = torch.randn(2, 4, 9, dtype=torch.float64, requires_grad=True)
    for epi in ("none", "tanh"):
        assert torch.autograd.gradcheck(
            lambda x, w, b, r: torch.ops.vocoder_ext.lrelu_conv1d(x, w, b, 2, 0.1, r, epi), (x, w, b, r))
    wt = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    bt = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: torch.ops.vocoder_ext.lrelu_conv_transpose1d(x, w, b, 2, 1, 0.1), (x, wt, bt))
    assert torch.autograd.gradcheck(
        lambda x, w, b: torch.ops.vocoder_ext.lrelu_conv_transpose1d(x, w, b, 3, 1, 0.1, 2), (x, wt, bt))


@needs_ext
@pytest.mark.parametrize("with_optional", [True, False])
def test_opcheck(with_optional):
    x = torch.randn(2, 3, 11, requires_grad=True)
    w = torch.randn(4, 3, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True) if with_optional else None
    r = torch.randn(2, 4, 11, requires_grad=True) if with_optional else None
    opcheck(torch.ops.vocoder_ext.lrelu_conv1d.default, (x, w, b, 3, 0.2, r, "tanh" if with_optional else "none"))
    wt = torch.randn(3, 5, 16, requires_grad=True)
    bt = torch.randn(5, requires_grad=True) if with_optional else None
    opcheck(torch.ops.vocoder_ext.lrelu_conv_transpose1d.default, (x, wt, bt, 8, 4, 0.1))
    g = torch.randn(2, 4, 11)
    b = b.detach() if b is not None else None
    opcheck(torch.ops.vocoder_ext.lrelu_conv1d_backward.default, (g, x.detach(), w.detach(), b, 1, 0.1, "tanh"))


class TwoOps(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(3, 4, 8) * 0.3)
        self.b = torch.nn.Parameter(torch.randn(4))
        self.w2 = torch.nn.Parameter(torch.randn(4, 4, 3) * 0.3)

    def forward(self, x):
        y = ops.lrelu_conv_transpose1d(x, self.w, self.b, 4, 2, 0.1)
        return ops.lrelu_conv1d(y, self.w2, None, 3, 0.1, residual=y, epilogue="tanh")


@needs_ext
def test_compile_fullgraph_matches_eager():
    m = TwoOps()
    x = torch.randn(2, 3, 17, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = m(x)
        got = torch.compile(m, fullgraph=True)(x)
    torch.testing.assert_close(got, want)
    gw_eager = torch.autograd.grad(want.sum(), m.w)[0]
    gw_comp = torch.autograd.grad(got.sum(), m.w)[0]
    torch.testing.assert_close(gw_comp, gw_eager)


@needs_ext
def test_export_sees_one_node_per_op():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(TwoOps(), (torch.randn(1, 3, 9),))
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    assert targets == ["vocoder_ext.lrelu_conv_transpose1d.default", "vocoder_ext.lrelu_conv1d.default"]
    x = torch.randn(1, 3, 9)
    torch.testing.assert_close(ep.module()(x), ep.module()(x))


def test_fallback_warns_once_and_says_why(backend, monkeypatch):
    backend("auto")
    monkeypatch.setattr(backends, "_warned", set())
    x, w = torch.randn(1, 2, 5), torch.randn(2, 2, 3)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ops.lrelu_conv1d(x, w)
        ops.lrelu_conv1d(x, w)
    msgs = [str(r.message) for r in rec if "vocoder_ext" in str(r.message)]
    if backends.resolve("lrelu_conv1d", "cpu")[0] == "eager":
        assert len(msgs) == 1 and "eager PyTorch reference" in msgs[0] and "lrelu_conv1d" in msgs[0]
    else:
        assert msgs == []


def test_backend_env_is_validated(backend):
    backend("bogus")
    with pytest.raises(ValueError, match="VOCODER_EXT_BACKEND must be one of .*got 'bogus'"):
        ops.lrelu_conv1d(torch.randn(1, 2, 5), torch.randn(2, 2, 3))


def test_forced_backend_that_cannot_serve_raises(backend):
    backend("cuda")
    with pytest.raises(RuntimeError, match="VOCODER_EXT_BACKEND=cuda cannot serve lrelu_conv1d on cpu"):
        ops.lrelu_conv1d(torch.randn(1, 2, 5), torch.randn(2, 2, 3))


def test_backends_report_names_every_op():
    report = vocoder_ext.backends()
    assert set(backends.OPS) <= set(report) and report["requested"] in backends.BACKENDS
    for op in backends.OPS:
        assert set(report[op]) == {"cpu", "cuda"}


@pytest.mark.parametrize("args,kwargs,exc,msg", [
    ((torch.randn(2, 5), torch.randn(3, 2, 3)), {}, ValueError, r"x: expected a 3-D tensor, got shape \(2, 5\)"),
    ((torch.randn(1, 2, 5), torch.randn(3, 2, 4)), {}, ValueError, "odd kernel size, got K=4"),
    ((torch.randn(1, 2, 5), torch.randn(3, 4, 3)), {}, ValueError, "expected 2 input channels"),
    ((torch.randn(1, 2, 5), torch.randn(3, 2, 3, dtype=torch.float64)), {}, TypeError, "expected dtype torch.float32"),
    ((torch.randint(0, 3, (1, 2, 5)), torch.randn(3, 2, 3)), {}, TypeError, "x: expected a floating-point tensor"),
    ((torch.randn(1, 2, 5), torch.randn(3, 2, 3)), {"bias": torch.randn(4)}, ValueError, r"bias: expected shape \(3,\)"),
    ((torch.randn(1, 2, 5), torch.randn(3, 2, 3)), {"residual": torch.randn(1, 3, 6)}, ValueError,
     r"residual: expected shape \(1, 3, 5\)"),
    ((torch.randn(1, 2, 5), torch.randn(3, 2, 3)), {"dilation": 0}, ValueError, "dilation: expected an int >= 1"),
    ((torch.randn(1, 2, 5), torch.randn(3, 2, 3)), {"epilogue": "relu"}, ValueError, "epilogue: expected one of"),
    ((torch.randn(1, 2, 0), torch.randn(3, 2, 3)), {}, ValueError, "at least one time step"),
    ((torch.randn(1, 2, 5), torch.randn(3, 2, 3, device="meta")), {}, ValueError, "expected device cpu"),
])
def test_lrelu_conv1d_bad_input(args, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        ops.lrelu_conv1d(*args, **kwargs)


def test_lrelu_conv_transpose1d_bad_input():
    x = torch.randn(1, 4, 5)
    with pytest.raises(ValueError, match=r"ConvTranspose1d layout \[C_in, C_out, K\]"):
        ops.lrelu_conv_transpose1d(x, torch.randn(2, 4, 16), None, 8, 4)
    with pytest.raises(ValueError, match="stride: expected an int >= 1"):
        ops.lrelu_conv_transpose1d(x, torch.randn(4, 2, 16), None, 0, 4)
    with pytest.raises(ValueError, match=r"bias: expected shape \(2,\)"):
        ops.lrelu_conv_transpose1d(x, torch.randn(4, 2, 16), torch.randn(4), 8, 4)
    with pytest.raises(ValueError, match=r"output_padding: expected 0 <= output_padding < stride \(5\), got 5"):
        ops.lrelu_conv_transpose1d(x, torch.randn(4, 2, 10), None, 5, 3, 0.1, 5)
    with pytest.raises(ValueError, match="output_padding: expected an int >= 0"):
        ops.lrelu_conv_transpose1d(x, torch.randn(4, 2, 10), None, 5, 3, 0.1, -1)

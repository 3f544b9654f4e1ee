"""WaveGlow's C++ CPU kernels (csrc/cpu: wn_layer, affine_coupling, invertible_conv1x1) against their eager
references computed in float64, forward and every gradient, on every instruction-set path."""
import importlib
import itertools

import pytest
import torch

from vocoder_ext import ops
from vocoder_ext.runtime import backend as backend_mod
from vocoder_ext.runtime import extension

from test_cpu_kernels import ISAS, assert_close

pytestmark = pytest.mark.skipif(not extension.loaded, reason=f"vocoder_ext._C not loaded: {extension.load_error}")
wn_ref = importlib.import_module("vocoder_ext.ops.wn_layer")
ac_ref = importlib.import_module("vocoder_ext.ops.affine_coupling")
ic_ref = importlib.import_module("vocoder_ext.ops.invertible_conv1x1")
WAVEGLOW_OPS = ("wn_layer", "affine_coupling", "invertible_conv1x1")


@pytest.fixture(params=ISAS)
def isa(request, monkeypatch):
    monkeypatch.setenv("VOCODER_EXT_CPU_ISA", request.param)
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "cpp")  # raises instead of falling back if the kernel is missing
    return request.param


def test_cpp_serves_the_waveglow_ops_on_cpu():
    for op in WAVEGLOW_OPS:
        assert backend_mod.resolve(op, "cpu") == ("cpp", None)
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"vocoder_ext::{op}_backward", "CPU")


def wn_inputs(b, c, t, k, last, skip, cond_scale=1.0):
    rows = c if last else 2 * c
    return [torch.randn(b, c, t), torch.randn(b, c, t) if skip else None, cond_scale * torch.randn(b, 2 * c, t),
            torch.randn(2 * c, c, k) / (c * k) ** 0.5, torch.randn(2 * c), torch.randn(rows, c, 1) / c ** 0.5,
            torch.randn(rows)]


def check_wn_layer(inputs, dilation, last, rtol=1e-5):
    """Forward and all six gradients of the op vs the reference in float64."""
    leaves = [x.requires_grad_() if x is not None else None for x in inputs]
    got = ops.wn_layer(*leaves, dilation, last)
    exact = [x.detach().double().requires_grad_() if x is not None else None for x in inputs]
    want = wn_ref.wn_layer_ref(*exact, dilation, last)[:2]
    for name, g, w in zip(("audio", "skip"), got, want):
        assert g.dtype == inputs[0].dtype
        assert_close(g, w.detach(), f"{name} out", rtol)
    grads = [torch.randn_like(g) for g in got]
    present = [x for x in leaves if x is not None]
    got_grads = torch.autograd.grad(got, present, grads)
    want_grads = torch.autograd.grad(want, [x for x in exact if x is not None], [g.double() for g in grads])
    for i, (g, w) in enumerate(zip(got_grads, want_grads)):
        assert_close(g, w, f"grad {i}", rtol * 10)


# (C, dilation) pairs; T, batch, last and skip cycle through their values so every one meets several C/d.
WN_GRID = list(itertools.product([8, 24, 64], [1, 2, 16, 128]))
LENGTHS = [1, 7, 129, 1003]


@pytest.mark.parametrize("i", range(len(WN_GRID)))
def test_wn_layer_matches_reference(i, isa):
    c, dilation = WN_GRID[i]
    t, batch = LENGTHS[i % 4], (1, 3)[i % 2]
    last, skip = i % 3 == 0, i % 4 != 1
    check_wn_layer(wn_inputs(batch, c, t, 3, last, skip), dilation, last)


@pytest.mark.parametrize("k", [1, 5])
def test_wn_layer_other_kernel_sizes(k, isa):
    check_wn_layer(wn_inputs(2, 10, 77, k, False, True), 3, False)


def test_wn_layer_non_contiguous_inputs(isa):
    audio, skip, _, in_w, in_b, rs_w, rs_b = wn_inputs(3, 12, 50, 3, False, True)
    audio = torch.randn(3, 12, 100)[:, :, ::2]
    cond = torch.randn(3, 80, 50)[:, 24:48]  # one layer's rows of a batched conditioning: strided over batch
    in_w = torch.randn(3, 12, 24).permute(2, 1, 0) / 6
    assert not (audio.is_contiguous() or cond.is_contiguous() or in_w.is_contiguous())
    check_wn_layer([audio, skip, cond, in_w, in_b, rs_w, rs_b], 4, False)


@pytest.mark.parametrize("scale", [1e-3, 30.0])
def test_wn_layer_gate_math_near_zero_and_saturated(scale, isa):
    """The kernels' own tanh/sigmoid: the Taylor branch near 0 and the clamps far out."""
    check_wn_layer(wn_inputs(1, 16, 300, 3, False, True, cond_scale=scale), 2, False)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_wn_layer_low_precision_within_twice_eager_error(dtype):
    inputs = wn_inputs(2, 24, 129, 3, False, True)
    exact = wn_ref.wn_layer_ref(*[x.double() for x in inputs], 4, False)[:2]
    low = [x.to(dtype) for x in inputs]
    got = ops.wn_layer(*low, 4, False)
    eager = wn_ref.wn_layer_ref(*low, 4, False)[:2]
    for g, e, w in zip(got, eager, exact):
        assert g.dtype == dtype
        err, eager_err = (g.double() - w).abs().max().item(), (e.double() - w).abs().max().item()
        assert err <= 2 * eager_err, f"{dtype}: kernel error {err:.3g} vs eager's {eager_err:.3g}"


def test_wn_layer_gradcheck_fp64():
    inputs = [x.double().requires_grad_() for x in wn_inputs(2, 3, 9, 3, False, True)]
    assert torch.autograd.gradcheck(lambda *a: ops.wn_layer(*a, 2, False), inputs)
    inputs = [x.double().requires_grad_() for x in wn_inputs(1, 3, 6, 3, True, False) if x is not None]
    assert torch.autograd.gradcheck(lambda a, *rest: ops.wn_layer(a, None, *rest, 8, True), inputs)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 4, 1003), (2, 3, 129)])
def test_affine_coupling_matches_reference(shape, reverse, isa):
    b, n, t = shape
    x = torch.randn(b, 2 * n, t)[:, n:]  # the coupled half: a channel slice, non-contiguous over batch
    wn_out = torch.randn(b, 2 * n, t).requires_grad_()
    x.requires_grad_()
    y = ops.affine_coupling(x, wn_out, reverse)
    xd, od = x.detach().double().requires_grad_(), wn_out.detach().double().requires_grad_()
    want = ac_ref.affine_coupling_ref(xd, od, reverse)
    assert_close(y, want.detach(), "y")
    g = torch.randn_like(y)
    for got, exp in zip(torch.autograd.grad(y, (x, wn_out), g), torch.autograd.grad(want, (xd, od), g.double())):
        assert_close(got, exp, "grad")


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("shape", [(1, 2, 1), (3, 8, 1003), (2, 6, 4100)])
def test_invertible_conv1x1_matches_reference(shape, reverse, isa):
    b, c, t = shape
    weight = (torch.linalg.qr(torch.randn(c, c))[0] + 0.1 * torch.randn(c, c)).unsqueeze(-1).requires_grad_()
    x = torch.randn(b, c, 2 * t)[:, :, ::2].requires_grad_()
    y, log_det = ops.invertible_conv1x1(x, weight, reverse)
    xd, wd = x.detach().double().requires_grad_(), weight.detach().double().requires_grad_()
    want_y, want_ld = ic_ref.invertible_conv1x1_ref(xd, wd, reverse)
    assert_close(y, want_y.detach(), "y")
    # log_det = B*T*log|det W| from an fp32 slogdet: its absolute error grows with B*T (eager's alike:
    # up to 1.2e-3 at B*T = 3009 over 300 seeds, the kernel's 1.0e-3)
    assert abs(log_det.item() - want_ld.item()) <= 1e-5 * abs(want_ld.item()) + 1e-6 * b * t
    gy, gl = torch.randn_like(y), torch.randn(())
    got = torch.autograd.grad((y, log_det), (x, weight), (gy, gl))
    want = torch.autograd.grad((want_y, want_ld), (xd, wd), (gy.double(), gl.double()))
    for g, w in zip(got, want):
        assert_close(g, w, "grad", 1e-4)


def test_compile_fullgraph_runs_the_kernels():
    inputs = wn_inputs(1, 8, 33, 3, False, True)
    x, out = torch.randn(1, 4, 33), torch.randn(1, 8, 33)
    w = torch.linalg.qr(torch.randn(4, 4))[0].unsqueeze(-1)

    def step(audio, skip, cond, in_w, in_b, rs_w, rs_b, x, out, w):
        audio, skip = ops.wn_layer(audio, skip, cond, in_w, in_b, rs_w, rs_b, 2, False)
        y = ops.affine_coupling(x, out, True)
        return audio, skip, ops.invertible_conv1x1(y, w, True)[0]

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    for got, want in zip(compiled(*inputs, x, out, w), step(*inputs, x, out, w)):
        torch.testing.assert_close(got, want)


def test_wn_layer_keeps_preact_only_when_a_gradient_is_needed():
    inputs = wn_inputs(1, 6, 20, 3, False, True)
    out = torch.ops.vocoder_ext.wn_layer(*inputs, 2, False, True)
    torch.testing.assert_close(out[2], wn_ref.wn_layer_ref(*inputs, 2, False, True)[2])
    assert torch.ops.vocoder_ext.wn_layer(*inputs, 2, False).__getitem__(2).numel() == 0
    leaf = inputs[0].clone().requires_grad_()
    out = torch.ops.vocoder_ext.wn_layer(leaf, *inputs[1:], 2, False)  # the raw op, without keep_preact
    with pytest.raises(RuntimeError, match="keep_preact=True"):
        out[0].sum().backward()

"""WaveGlow's fused ops (wn_layer, affine_coupling, invertible_conv1x1) against independent implementations
written here, forward and backward, gradcheck in fp64, opcheck, compile, and bad inputs, through whatever
backend serves them (the C++ kernels when the extension is built; test_waveglow_cpu_kernels.py and
test_triton_waveglow.py pin each backend)."""
import pytest
import torch
import torch.nn.functional as F
from torch.library import opcheck

from vocoder_ext import ops
from vocoder_ext.runtime import extension

needs_ext = pytest.mark.skipif(not extension.loaded, reason=f"vocoder_ext._C not loaded: {extension.load_error}")


def independent_wn_layer(audio, skip, cond, in_w, in_b, rs_w, rs_b, dilation, last):
    """One WN layer written out tap by tap, in float64."""
    audio, cond, in_w, in_b, rs_w, rs_b = (t.double() for t in (audio, cond, in_w, in_b, rs_w, rs_b))
    c, k = audio.shape[1], in_w.shape[2]
    pad = dilation * (k - 1) // 2
    padded = F.pad(audio, (pad, pad))
    a = in_b[None, :, None] + cond
    for tap in range(k):
        shifted = padded[:, :, tap * dilation: tap * dilation + audio.shape[2]]
        a = a + torch.einsum("oc,bct->bot", in_w[:, :, tap], shifted)
    acts = torch.tanh(a[:, :c]) * (1 / (1 + torch.exp(-a[:, c:])))
    rs = torch.einsum("oc,bct->bot", rs_w[:, :, 0], acts) + rs_b[None, :, None]
    skip = 0 if skip is None else skip.double()
    if last:
        return audio, skip + rs
    return audio + rs[:, :c], skip + rs[:, c:]


def wn_inputs(b, c, t, k, last, dtype=torch.float32, skip=True):
    rows = c if last else 2 * c
    return (torch.randn(b, c, t, dtype=dtype), torch.randn(b, c, t, dtype=dtype) if skip else None,
            torch.randn(b, 2 * c, t, dtype=dtype), torch.randn(2 * c, c, k, dtype=dtype) / c ** 0.5,
            torch.randn(2 * c, dtype=dtype), torch.randn(rows, c, 1, dtype=dtype) / c ** 0.5,
            torch.randn(rows, dtype=dtype))


@pytest.mark.parametrize("b,c,t,k,dilation", [(1, 4, 1, 3, 1), (2, 6, 7, 3, 4), (3, 10, 129, 5, 2), (1, 8, 1003, 3, 64)])
@pytest.mark.parametrize("last", [False, True])
@pytest.mark.parametrize("skip", [True, False])
def test_wn_layer_matches_independent_forward_and_backward(b, c, t, k, dilation, last, skip):
    inputs = wn_inputs(b, c, t, k, last, skip=skip)
    inputs = tuple(x.requires_grad_() if x is not None else None for x in inputs)
    audio, skip_t, cond, *weights = inputs
    got = ops.wn_layer(audio, skip_t, cond, *weights, dilation, last)
    want = independent_wn_layer(audio, skip_t, cond, *weights, dilation, last)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w, rtol=1e-5, atol=1e-5)
    grads = [torch.randn_like(g) for g in got]
    leaves = [x for x in inputs if x is not None]
    got_grads = torch.autograd.grad(got, leaves, grads)
    want_grads = torch.autograd.grad(want, leaves, [g.double() for g in grads])
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g.double(), w.double(), rtol=1e-4, atol=1e-4)


def test_wn_layer_non_contiguous_inputs():
    audio, skip, cond, *weights = wn_inputs(2, 6, 40, 3, False)
    audio_nc = torch.randn(2, 6, 80)[:, :, ::2]
    cond_nc = torch.randn(2, 30, 40)[:, 5:17]  # a channel slice, as the model's batched conditioning gives
    got = ops.wn_layer(audio_nc, skip, cond_nc, *weights, 2, False)
    want = independent_wn_layer(audio_nc, skip, cond_nc, *weights, 2, False)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
def test_affine_coupling_matches_independent(reverse):
    x, wn_out = torch.randn(2, 3, 37, requires_grad=True), torch.randn(2, 6, 37, requires_grad=True)
    b, log_s = wn_out[:, :3].double(), wn_out[:, 3:].double()
    want = (x.double() - b) / torch.exp(log_s) if reverse else torch.exp(log_s) * x.double() + b
    got = ops.affine_coupling(x, wn_out, reverse)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(got)
    for a, e in zip(torch.autograd.grad(got, (x, wn_out), g), torch.autograd.grad(want, (x, wn_out), g.double())):
        torch.testing.assert_close(a.double(), e.double(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_affine_coupling_low_precision_wn_out_has_no_overflow(dtype):
    """log_s = 12 overflows exp in fp16 (e^12 > 65504); the op computes in fp32 and returns x's dtype."""
    x = torch.randn(1, 2, 9)
    wn_out = torch.cat([torch.randn(1, 2, 9), torch.full((1, 2, 9), 12.0)], 1).to(dtype)
    y = ops.affine_coupling(x, wn_out)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    back = ops.affine_coupling(y, wn_out, True)
    torch.testing.assert_close(back, x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
def test_invertible_conv1x1_matches_independent(reverse):
    c = 6
    w = torch.linalg.qr(torch.randn(c, c))[0] + 0.1 * torch.randn(c, c)
    weight = w.unsqueeze(-1).requires_grad_()
    x = torch.randn(3, c, 41, requires_grad=True)
    y, log_det = ops.invertible_conv1x1(x, weight, reverse)
    wd = weight[:, :, 0].double()
    mat = torch.linalg.inv(wd) if reverse else wd
    want_y = torch.einsum("ij,bjt->bit", mat, x.double())
    want_ld = (-1 if reverse else 1) * 3 * 41 * torch.log(torch.abs(torch.det(wd)))
    torch.testing.assert_close(y.double(), want_y, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(log_det.double(), want_ld, rtol=1e-5, atol=1e-4)
    gy, gl = torch.randn_like(y), torch.randn(())
    got = torch.autograd.grad((y, log_det), (x, weight), (gy, gl))
    want = torch.autograd.grad((want_y, want_ld), (x, weight), (gy.double(), gl.double()))
    for a, e in zip(got, want):
        torch.testing.assert_close(a.double(), e.double(), rtol=1e-4, atol=1e-4)


def test_invertible_conv1x1_inverse_is_fp32_for_half_weights():
    w = torch.linalg.qr(torch.randn(8, 8))[0].unsqueeze(-1)
    x = torch.randn(1, 8, 50)
    y, _ = ops.invertible_conv1x1(x, w)
    back, _ = ops.invertible_conv1x1(y, w.half(), True)
    assert back.dtype == torch.float32
    torch.testing.assert_close(back, x, rtol=0, atol=5e-3)  # only W's fp16 rounding remains


def test_gradcheck_fp64():
    audio, skip, cond, *weights = (t.double().requires_grad_() for t in wn_inputs(2, 4, 11, 3, False))
    assert torch.autograd.gradcheck(lambda *a: ops.wn_layer(*a, 2, False), (audio, skip, cond, *weights))
    x, out = torch.randn(2, 3, 9, dtype=torch.float64, requires_grad=True), torch.randn(2, 6, 9, dtype=torch.float64,
                                                                                       requires_grad=True)
    for reverse in (False, True):
        assert torch.autograd.gradcheck(lambda a, o: ops.affine_coupling(a, o, reverse), (x, out))
    w = (torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))[0]).unsqueeze(-1).requires_grad_()
    x4 = torch.randn(2, 4, 9, dtype=torch.float64, requires_grad=True)
    for reverse in (False, True):
        assert torch.autograd.gradcheck(lambda a, m: ops.invertible_conv1x1(a, m, reverse), (x4, w))


@needs_ext
def test_opcheck():
    for last in (False, True):
        opcheck(torch.ops.vocoder_ext.wn_layer, (*wn_inputs(2, 4, 13, 3, last), 2, last))
    opcheck(torch.ops.vocoder_ext.wn_layer, (*wn_inputs(1, 4, 13, 3, False, skip=False), 1, False))
    for last in (False, True):  # the training form: preact kept, every input needing a gradient
        inputs = [t.requires_grad_() for t in wn_inputs(2, 4, 13, 3, last)]
        opcheck(torch.ops.vocoder_ext.wn_layer, (*inputs, 2, last, True))
    for reverse in (False, True):
        opcheck(torch.ops.vocoder_ext.affine_coupling, (torch.randn(2, 3, 9), torch.randn(2, 6, 9), reverse))
        w = torch.linalg.qr(torch.randn(4, 4))[0].unsqueeze(-1)
        opcheck(torch.ops.vocoder_ext.invertible_conv1x1, (torch.randn(2, 4, 9), w, reverse))


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: ops.wn_layer(torch.randn(1, 4, 5), None, torch.randn(1, 8, 6), torch.randn(8, 4, 3), torch.randn(8),
                          torch.randn(8, 4, 1), torch.randn(8)), ValueError, r"cond: expected shape \(1, 8, 5\)"),
    (lambda: ops.wn_layer(torch.randn(1, 4, 5), None, torch.randn(1, 8, 5), torch.randn(8, 4, 2), torch.randn(8),
                          torch.randn(8, 4, 1), torch.randn(8)), ValueError, "odd kernel size"),
    (lambda: ops.wn_layer(torch.randn(1, 4, 5), None, torch.randn(1, 8, 5), torch.randn(8, 4, 3), torch.randn(8),
                          torch.randn(8, 4, 1), torch.randn(8), 1, True), ValueError, r"rs_weight: expected shape \(4, 4, 1\)"),
    (lambda: ops.affine_coupling(torch.randn(1, 3, 5), torch.randn(1, 5, 5)), ValueError,
     r"wn_out: expected shape \(1, 6, 5\)"),
    (lambda: ops.invertible_conv1x1(torch.randn(1, 4, 5), torch.randn(4, 4)), ValueError, "weight: expected a 3-D"),
    (lambda: ops.invertible_conv1x1(torch.randn(1, 4, 5), torch.randn(3, 3, 1)), ValueError,
     r"weight: expected shape \(4, 4, 1\)"),
])
def test_bad_inputs(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()

"""conv1d_lrelu (the discriminators' strided, grouped convs with a leaky-ReLU epilogue): the C++ CPU kernel
against an independent float64 definition and the eager reference, forward and every gradient; strides 1..4,
groups 1/4/16, K 2..41, odd lengths, non-contiguous inputs, no bias, slope 1 (no activation); gradcheck,
opcheck; bad input."""
import importlib

import pytest
import torch
from torch.library import opcheck

from vocoder_ext import ops
from vocoder_ext.runtime import extension

needs_ext = pytest.mark.skipif(not extension.loaded, reason="vocoder_ext._C not built")


def independent(x, w, b, stride, padding, groups, slope):
    """Each output step as the sum over its window, in float64, from the definition."""
    x, w = x.double(), w.double()
    batch, c_in, t = x.shape
    c_out, cg, k = w.shape
    og = c_out // groups
    xp = torch.nn.functional.pad(x, (padding, padding))
    t_out = (t + 2 * padding - k) // stride + 1
    y = torch.zeros(batch, c_out, t_out, dtype=torch.float64)
    for j in range(t_out):
        window = xp[:, :, j * stride:j * stride + k]  # [B, C_in, K]
        for gi in range(groups):
            y[:, gi * og:(gi + 1) * og, j] = torch.einsum("bck,ock->bo", window[:, gi * cg:(gi + 1) * cg],
                                                          w[gi * og:(gi + 1) * og])
    if b is not None:
        y = y + b.double()[None, :, None]
    return torch.where(y > 0, y, y * slope)


CASES = [  # (C_in, C_out, K, stride, padding, groups, slope, T): the MSD's layers, the MPD's, odd ones
    (1, 16, 15, 1, 7, 1, 0.1, 97), (16, 16, 41, 2, 20, 4, 0.1, 131), (32, 48, 41, 4, 20, 16, 0.1, 203),
    (48, 32, 41, 1, 20, 16, 0.1, 77), (32, 1, 3, 1, 1, 1, 1.0, 50), (1, 8, 5, 3, 2, 1, 0.1, 34),
    (8, 24, 5, 3, 2, 1, 0.1, 12), (6, 9, 2, 3, 0, 3, 0.2, 23), (5, 7, 3, 4, 4, 1, 0.1, 1), (4, 8, 7, 2, 3, 4, 1.0, 29),
    (16, 256, 5, 1, 2, 1, 0.1, 45),  # dense and wide: ATen's forward, our backward
    # grouped with >= 512 output steps: our kernels both ways (shorter grouped ones above run on ATen's)
    (16, 16, 41, 2, 20, 4, 0.1, 1031), (32, 48, 41, 4, 20, 16, 0.1, 2053), (6, 9, 2, 3, 0, 3, 0.2, 1541),
    (48, 32, 41, 1, 20, 16, 0.1, 301),  # 301 steps: our forward, ATen's backward
    # K * C_in * B * L > 2^23: grad_w as one product per tap (the rest above take one product over all taps)
    (128, 128, 41, 2, 20, 16, 0.1, 1301),
]


@needs_ext
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_forward_and_gradients_match(case, bias):
    c_in, c_out, k, stride, padding, groups, slope, t = case
    x = torch.randn(3, c_in, 2 * t + 1)[:, :, 1::2].requires_grad_()  # non-contiguous
    w = (torch.randn(c_out, c_in // groups, k) / (c_in // groups * k) ** 0.5).requires_grad_()
    b = torch.randn(c_out).requires_grad_() if bias else None
    y = ops.conv1d_lrelu(x, w, b, stride, padding, groups, slope)
    want = independent(x, w, b, stride, padding, groups, slope)
    assert y.shape == want.shape
    torch.testing.assert_close(y.double(), want, rtol=1e-5, atol=1e-5)
    inputs = [v for v in (x, w, b) if v is not None]
    g = torch.randn(y.shape[0], y.shape[1], 2 * y.shape[2])[:, :, ::2]
    got = torch.autograd.grad(y, inputs, g)
    x64, w64 = (v.detach().double().requires_grad_() for v in (x, w))
    b64 = b.detach().double().requires_grad_() if bias else None
    ref = ops.conv1d_lrelu_ref(x64, w64, b64, stride, padding, groups, slope)
    want_grads = torch.autograd.grad(ref, [v for v in (x64, w64, b64) if v is not None], g.double())
    for name, a, e in zip(("x", "weight", "bias"), got, want_grads):
        torch.testing.assert_close(a.double(), e, rtol=1e-5, atol=1e-5 * max(1.0, e.abs().max().item()), msg=name)
        # a weight gradient with its taps C_out * C_in apart cost the cast and weight norm after it ~30 ms a layer
        assert name == "x" or a.is_contiguous(), f"grad of {name}: strides {a.stride()}"


@needs_ext
def test_gradcheck_and_opcheck():
    x = torch.randn(2, 8, 19, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 2, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(8, dtype=torch.float64, requires_grad=True)
    for stride, slope in ((3, 0.1), (1, 1.0)):
        assert torch.autograd.gradcheck(
            lambda x, w, b: torch.ops.vocoder_ext.conv1d_lrelu(x, w, b, stride, 2, 4, slope), (x, w, b))
    opcheck(torch.ops.vocoder_ext.conv1d_lrelu.default, (x.detach().float(), w.detach().float(), b.detach().float(),
                                                         2, 2, 4, 0.1))


@pytest.mark.parametrize("args,exc,msg", [
    ((torch.randn(1, 8, 20), torch.randn(6, 3, 5)), ValueError, r"expected shape \(C_out, 2, K\) with C_out a multiple "
                                                                 r"of groups=4"),
    ((torch.randn(1, 8, 20), torch.randn(6, 8, 5), None, 0), ValueError, "stride: expected an int >= 1, got 0"),
    ((torch.randn(1, 8, 3), torch.randn(6, 8, 9), None, 1, 2, 1), ValueError, r"length 3 with padding 2 is shorter "
                                                                                r"than the kernel \(K=9\)"),
    ((torch.randn(1, 8, 20), torch.randn(6, 8, 5), None, 1, 2, 1, -0.1), ValueError, "slope > 0"),
    ((torch.randn(1, 8, 20), torch.randn(6, 8, 5, dtype=torch.float64)), TypeError, "expected dtype torch.float32"),
])
def test_bad_input(args, exc, msg):
    if len(args) == 2:
        args = args + (None, 1, 2, 4 if args[1].shape[1] == 3 else 1)
    with pytest.raises(exc, match=msg):
        ops.conv1d_lrelu(*args)


@needs_ext
@pytest.mark.parametrize("c_in,c_out,k,stride,padding,slope,t,cols", [
    (1, 8, 5, 3, 2, 0.1, 40, 3), (8, 16, 5, 3, 2, 0.1, 14, 11), (16, 12, 5, 1, 2, 0.1, 5, 7), (12, 1, 3, 1, 1, 1.0, 9, 2),
    (6, 6, 5, 3, 2, 0.1, 1, 5), (8, 256, 5, 3, 2, 0.1, 101, 3)])
def test_columns_are_the_mpds_conv2d(c_in, c_out, k, stride, padding, slope, t, cols):
    """x [B, C, T, W]: each column convolved along T, as the MPD's (K, 1) conv2d; forward and every gradient."""
    x = torch.randn(2, c_in, t, 2 * cols)[..., ::2].requires_grad_()  # non-contiguous columns
    w = (torch.randn(c_out, c_in, k) / (c_in * k) ** 0.5).requires_grad_()
    b = torch.randn(c_out).requires_grad_()
    y = ops.conv1d_lrelu(x, w, b, stride, padding, 1, slope)
    want = torch.stack([independent(x[..., c], w, b, stride, padding, 1, slope) for c in range(cols)], 3)
    assert y.shape == want.shape
    torch.testing.assert_close(y.double(), want, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    x64, w64, b64 = (v.detach().double().requires_grad_() for v in (x, w, b))
    ref = ops.conv1d_lrelu_ref(x64, w64, b64, stride, padding, 1, slope)
    for name, a, e in zip(("x", "weight", "bias"), torch.autograd.grad(y, (x, w, b), g),
                          torch.autograd.grad(ref, (x64, w64, b64), g.double())):
        torch.testing.assert_close(a.double(), e, rtol=1e-5, atol=1e-5 * max(1.0, e.abs().max().item()), msg=name)
    # gradcheck's finite differences (steps of 1e-6) must not cross leaky-ReLU's kink: with 17k outputs (the
    # 256-channel case) ~1.4% of draws had a pre-activation that close to 0, so redraw the bias until none is
    xs, b_check = x64[:1, :, :, :2].detach(), b64.detach()
    while ops.conv1d_lrelu_ref(xs, w64.detach(), b_check, stride, padding, 1, 1.0).abs().min() < 1e-5:
        b_check = torch.randn_like(b_check)
    assert torch.autograd.gradcheck(
        lambda x, w, b: torch.ops.vocoder_ext.conv1d_lrelu(x, w, b, stride, padding, 1, slope),
        (xs.requires_grad_(), w64, b_check.requires_grad_()))


@needs_ext
@pytest.mark.parametrize("groups,t", [(1, 40), (4, 1100)])  # ATen's backward; our own (grouped, long)
def test_backward_computes_only_the_gradients_autograd_uses(monkeypatch, groups, t):
    module = importlib.import_module("vocoder_ext.ops.conv1d_lrelu")  # the package exports the function too
    masks, real = [], module.OP.backward

    def spy(ctx, kernel, grad):
        def recording(*args):
            masks.append(list(args[-1]))
            return kernel(*args)
        return real(ctx, recording, grad)
    monkeypatch.setattr(module.OP, "backward", spy)
    producer = torch.nn.Conv1d(1, 8, 3, padding=1)  # the generator, in the recipe's generator step
    w = (torch.randn(16, 8 // groups, 5) / 5).requires_grad_()
    b = torch.randn(16, requires_grad=True)
    audio = producer(torch.randn(2, 1, t))
    y = ops.conv1d_lrelu(audio, w, b, 2, 2, groups, 0.1)
    y.square().sum().backward(inputs=list(producer.parameters()), retain_graph=True)
    assert masks[-1] == [True, False, True] and w.grad is None  # the weight's gradient is not computed
    want = torch.autograd.grad(ops.conv1d_lrelu_ref(audio, w, b, 2, 2, groups, 0.1).square().sum(),
                               list(producer.parameters()))
    for got, expected in zip((p.grad for p in producer.parameters()), want):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    ops.conv1d_lrelu(audio.detach(), w, None, 2, 2, groups, 0.1).sum().backward()  # the discriminator step
    assert masks[-1] == [False, True, False] and w.grad is not None

    g = torch.randn_like(y)
    full = torch.ops.vocoder_ext.conv1d_lrelu_backward(g, y.detach(), audio.detach(), w.detach(), 2, 2, groups, 0.1)
    only_w = torch.ops.vocoder_ext.conv1d_lrelu_backward(g, y.detach(), audio.detach(), w.detach(), 2, 2, groups,
                                                         0.1, [False, True, False])
    assert only_w[0].numel() == 0 and only_w[2].numel() == 0
    torch.testing.assert_close(only_w[1], full[1], rtol=0, atol=0)

"""lrelu_conv1d: leaky-ReLU prologue + dilated 'same' conv1d + bias [+ tanh] [+ residual].

Shapes (channels first): x [B, C_in, T], weight [C_out, C_in, K] (K odd), bias [C_out] or None,
residual [B, C_out, T] or None -> y [B, C_out, T].
"""

import torch
import torch.nn.functional as F

from ._checks import autocast_inputs, check_positive_int, check_shape, check_tensor
from .registry import FusedOp

EPILOGUES = ("none", "tanh")


def lrelu_conv1d_ref(x, weight, bias=None, dilation=1, slope=0.1, residual=None, epilogue="none"):
    """The ground truth, in plain PyTorch, computed in the input dtype."""
    k = weight.shape[-1]
    y = F.conv1d(F.leaky_relu(x, slope), weight, bias, padding=dilation * (k - 1) // 2, dilation=dilation)
    if epilogue == "tanh":
        y = torch.tanh(y)
    if residual is not None:
        y = y + residual
    return y


def lrelu_conv1d_backward_ref(grad_out, x, weight, bias, dilation, slope, epilogue):
    """Gradients (x, weight, bias) of lrelu_conv1d; leaky-ReLU (and tanh) recomputed, not stored."""
    k = weight.shape[-1]
    act = F.leaky_relu(x, slope)
    if epilogue == "tanh":
        t = torch.tanh(F.conv1d(act, weight, bias, padding=dilation * (k - 1) // 2, dilation=dilation))
        grad_out = grad_out * (1 - t * t)
    grad_act, grad_w, grad_b = torch.ops.aten.convolution_backward(
        grad_out, act, weight, [weight.shape[0]], [1], [dilation * (k - 1) // 2], [dilation],
        False, [0], 1, [True, True, True])
    grad_x = torch.where(x > 0, grad_act, grad_act * slope)
    return grad_x, grad_w, grad_b


def _check(x, weight, bias, dilation, slope, residual, epilogue):
    check_tensor("x", x, 3)
    check_tensor("weight", weight, 3, x.dtype, x.device)
    c_out, c_in, k = weight.shape
    if c_in != x.shape[1]:
        raise ValueError(f"weight: expected {x.shape[1]} input channels (x is {tuple(x.shape)}), "
                         f"got weight of shape {tuple(weight.shape)}")
    if k % 2 != 1:
        raise ValueError(f"weight: 'same' padding needs an odd kernel size, got K={k}")
    if x.shape[2] < 1:
        raise ValueError(f"x: expected at least one time step, got shape {tuple(x.shape)}")
    if bias is not None:
        check_tensor("bias", bias, 1, x.dtype, x.device)
        check_shape("bias", bias, (c_out,))
    if residual is not None:
        check_tensor("residual", residual, 3, x.dtype, x.device)
        check_shape("residual", residual, (x.shape[0], c_out, x.shape[2]))
    check_positive_int("dilation", dilation)
    if epilogue not in EPILOGUES:
        raise ValueError(f"epilogue: expected one of {EPILOGUES}, got {epilogue!r}")


def lrelu_conv1d(x, weight, bias=None, dilation=1, slope=0.1, residual=None, epilogue="none"):
    """y = conv1d(leaky_relu(x, slope), weight, bias, padding=dilation*(K-1)//2, dilation),
    then tanh(y) if epilogue == "tanh", then y + residual if given. Differentiable."""
    x, weight, bias, residual = autocast_inputs(x, weight, bias, residual)
    _check(x, weight, bias, dilation, slope, residual, epilogue)
    return OP(x, weight, bias, dilation, float(slope), residual, epilogue)


def _fake(x, weight, bias, dilation=1, slope=0.1, residual=None, epilogue="none"):
    return x.new_empty((x.shape[0], weight.shape[0], x.shape[2]))


def _fake_backward(grad_out, x, weight, bias, dilation, slope, epilogue):
    return torch.empty_like(x), torch.empty_like(weight), weight.new_empty((weight.shape[0],))


def _setup_context(ctx, inputs, output):
    x, weight, bias, dilation, slope, residual, epilogue = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.args = (dilation, slope, epilogue)
    ctx.has_bias, ctx.has_residual = bias is not None, residual is not None


def _backward(ctx, backward_kernel, grad):
    x, weight, bias = ctx.saved_tensors
    grad_x, grad_w, grad_b = backward_kernel(grad, x, weight, bias, *ctx.args)
    return (grad_x, grad_w, grad_b if ctx.has_bias else None, None, None,
            grad if ctx.has_residual else None, None)


def _triton_forward(x, weight, bias, dilation=1, slope=0.1, residual=None, epilogue="none"):
    from ..kernels.lrelu_conv1d import lrelu_conv1d_triton
    return lrelu_conv1d_triton(x, weight, bias, dilation, slope, residual, epilogue)


def _triton_backward(grad_out, x, weight, bias, dilation, slope, epilogue):
    """The schema's three gradients (a zero grad_b without a bias)."""
    from ..kernels.lrelu_conv1d import lrelu_conv1d_backward_triton
    grad_x, grad_w, grad_b = lrelu_conv1d_backward_triton(grad_out.contiguous(), x, weight, bias, dilation,
                                                          slope, epilogue)
    return grad_x, grad_w, grad_b if grad_b is not None else grad_out.new_zeros(weight.shape[0])


OP = FusedOp("lrelu_conv1d", reference=lrelu_conv1d_ref, fake=_fake, setup_context=_setup_context,
             backward=_backward, backward_reference=lrelu_conv1d_backward_ref, backward_fake=_fake_backward,
             triton_forward=_triton_forward, triton_backward=_triton_backward)

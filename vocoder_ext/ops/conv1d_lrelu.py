"""conv1d_lrelu: strided, grouped conv1d with a leaky-ReLU epilogue (the HiFi-GAN discriminators' layers).

Shapes: x [B, C_in, T], weight [C_out, C_in / groups, K], bias [C_out] or None
-> y [B, C_out, (T + 2 * padding - K) // stride + 1] = leaky_relu(conv1d(x, ...), slope); slope 1 is no
activation (conv_post). x may also be [B, C_in, T, W]: W columns, each convolved along T (y [B, C_out, T', W]),
which is the MPD's (K, 1) conv2d over its folded [B, C, T/p, p] audio.

The backward takes the forward's output instead of its pre-activation: with slope > 0, leaky-ReLU keeps
the sign, so leaky' is read from the output (nothing else is stored).
"""
import torch
import torch.nn.functional as F

from ._checks import autocast_inputs, check_positive_int, check_shape, check_tensor
from .registry import FusedOp


def conv1d_lrelu_ref(x, weight, bias, stride, padding, groups, slope):
    """The ground truth, in plain PyTorch, computed in the input dtype."""
    if x.dim() == 4:
        y = F.conv2d(x, weight.unsqueeze(3), bias, (stride, 1), (padding, 0), 1, groups)
    else:
        y = F.conv1d(x, weight, bias, stride, padding, 1, groups)
    return y if slope == 1.0 else F.leaky_relu(y, slope)


def conv1d_lrelu_backward_ref(grad_out, out, x, weight, stride, padding, groups, slope):
    """Gradients (x, weight, bias) of conv1d_lrelu, leaky' read from the output's sign."""
    g = grad_out if slope == 1.0 else torch.where(out > 0, grad_out, grad_out * slope)
    if x.dim() == 4:
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            g, x, weight.unsqueeze(3), [weight.shape[0]], [stride, 1], [padding, 0], [1, 1], False, [0, 0], groups,
            [True, True, True])
        return grad_x, grad_w.squeeze(3), grad_b
    return torch.ops.aten.convolution_backward(g, x, weight, [weight.shape[0]], [stride], [padding], [1], False, [0],
                                               groups, [True, True, True])


def _out_len(t, k, stride, padding):
    return (t + 2 * padding - k) // stride + 1


def _check(x, weight, bias, stride, padding, groups, slope):
    check_tensor("x", x, 4 if isinstance(x, torch.Tensor) and x.dim() == 4 else 3)
    check_tensor("weight", weight, 3, x.dtype, x.device)
    for name, v, minimum in (("stride", stride, 1), ("padding", padding, 0), ("groups", groups, 1)):
        check_positive_int(name, v, minimum)
    c_out, cg, k = weight.shape
    if x.shape[1] % groups or c_out % groups or cg * groups != x.shape[1]:
        raise ValueError(f"weight: expected shape (C_out, {x.shape[1] // groups if x.shape[1] % groups == 0 else '?'}, K) "
                         f"with C_out a multiple of groups={groups}, for x of shape {tuple(x.shape)}, got "
                         f"{tuple(weight.shape)}")
    if bias is not None:
        check_tensor("bias", bias, 1, x.dtype, x.device)
        check_shape("bias", bias, (c_out,))
    if not slope > 0:
        raise ValueError(f"slope: expected a leaky-ReLU slope > 0 (1 for none), got {slope!r}")
    if x.shape[2] + 2 * padding < k:
        raise ValueError(f"x: length {x.shape[2]} with padding {padding} is shorter than the kernel (K={k})")


def conv1d_lrelu(x, weight, bias=None, stride=1, padding=0, groups=1, slope=0.1):
    """y = leaky_relu(conv1d(x, weight, bias, stride, padding, groups=groups), slope). Differentiable."""
    x, weight, bias = autocast_inputs(x, weight, bias)
    _check(x, weight, bias, stride, padding, groups, slope)
    return OP(x, weight, bias, stride, padding, groups, float(slope))


def _fake(x, weight, bias, stride, padding, groups, slope):
    t_out = _out_len(x.shape[2], weight.shape[2], stride, padding)
    return x.new_empty((x.shape[0], weight.shape[0], t_out, *x.shape[3:]))


def _fake_backward(grad_out, out, x, weight, stride, padding, groups, slope):
    return torch.empty_like(x), torch.empty_like(weight), weight.new_empty((weight.shape[0],))


def _setup_context(ctx, inputs, output):
    x, weight, bias, stride, padding, groups, slope = inputs
    ctx.save_for_backward(output, x, weight)
    ctx.args = (stride, padding, groups, slope)
    ctx.has_bias = bias is not None


def _backward(ctx, backward_kernel, grad):
    out, x, weight = ctx.saved_tensors
    grad_x, grad_w, grad_b = backward_kernel(grad, out, x, weight, *ctx.args)
    return grad_x, grad_w, grad_b if ctx.has_bias else None, None, None, None, None


def _triton_forward(x, weight, bias, stride, padding, groups, slope):
    from ..kernels import _launch, conv1d_lrelu as kernels
    args = (x, weight, bias, stride, padding, groups, slope)
    if x.dtype == torch.float64:  # the kernels take fp32/fp16/bf16: fp64 runs the reference
        return _launch.fp64_reference("conv1d_lrelu", conv1d_lrelu_ref, *args)
    return kernels.conv1d_lrelu_triton(*args)


def _triton_backward(grad_out, out, x, weight, stride, padding, groups, slope):
    """The schema's three gradients (grad_b always: the backward does not know whether there is a bias)."""
    from ..kernels import _launch, conv1d_lrelu as kernels
    args = (grad_out, out, x, weight, stride, padding, groups, slope)
    if x.dtype == torch.float64:
        return _launch.fp64_reference("conv1d_lrelu", conv1d_lrelu_backward_ref, *args)
    return kernels.conv1d_lrelu_backward_triton(*args)


OP = FusedOp("conv1d_lrelu", reference=conv1d_lrelu_ref, fake=_fake, setup_context=_setup_context,
             backward=_backward, backward_reference=conv1d_lrelu_backward_ref, backward_fake=_fake_backward,
             triton_forward=_triton_forward, triton_backward=_triton_backward)

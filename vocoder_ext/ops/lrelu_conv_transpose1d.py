"""lrelu_conv_transpose1d: leaky-ReLU prologue + transposed conv1d (HiFi-GAN's upsampling layers).

Shapes: x [B, C_in, T], weight [C_in, C_out, K], bias [C_out] or None
-> y [B, C_out, (T-1)*stride - 2*padding + K + output_padding].

output_padding (0 <= output_padding < stride) adds outputs at the end, as in ConvTranspose1d: what
ParallelWaveGAN/ESPnet's odd upsample scales use (padding u//2 + u%2, output_padding u%2).
"""

import torch
import torch.nn.functional as F

from ._checks import autocast_inputs, check_positive_int, check_shape, check_tensor
from .registry import FusedOp


def lrelu_conv_transpose1d_ref(x, weight, bias, stride, padding, slope=0.1, output_padding=0):
    """The ground truth, in plain PyTorch, computed in the input dtype."""
    return F.conv_transpose1d(F.leaky_relu(x, slope), weight, bias, stride=stride, padding=padding,
                              output_padding=output_padding)


def lrelu_conv_transpose1d_backward_ref(grad_out, x, weight, stride, padding, slope, output_padding=0):
    """Gradients (x, weight, bias) of lrelu_conv_transpose1d; leaky-ReLU recomputed, not stored."""
    act = F.leaky_relu(x, slope)
    grad_act, grad_w, grad_b = torch.ops.aten.convolution_backward(
        grad_out, act, weight, [weight.shape[1]], [stride], [padding], [1], True, [output_padding], 1,
        [True, True, True])
    return torch.where(x > 0, grad_act, grad_act * slope), grad_w, grad_b


def _out_len(t, k, stride, padding, output_padding=0):
    return (t - 1) * stride - 2 * padding + k + output_padding


def _check(x, weight, bias, stride, padding, output_padding):
    check_tensor("x", x, 3)
    check_tensor("weight", weight, 3, x.dtype, x.device)
    c_in, c_out, k = weight.shape
    if c_in != x.shape[1]:
        raise ValueError(f"weight: expected shape ({x.shape[1]}, C_out, K) for x of shape {tuple(x.shape)} "
                         f"(ConvTranspose1d layout [C_in, C_out, K]), got {tuple(weight.shape)}")
    if bias is not None:
        check_tensor("bias", bias, 1, x.dtype, x.device)
        check_shape("bias", bias, (c_out,))
    check_positive_int("stride", stride)
    check_positive_int("padding", padding, minimum=0)
    check_positive_int("output_padding", output_padding, minimum=0)
    if output_padding >= stride:
        raise ValueError(f"output_padding: expected 0 <= output_padding < stride ({stride}), got {output_padding}")
    if x.shape[2] < 1 or _out_len(x.shape[2], k, stride, padding, output_padding) < 1:
        raise ValueError(f"x: length {x.shape[2]} gives no output for K={k}, stride={stride}, padding={padding}")


def lrelu_conv_transpose1d(x, weight, bias=None, stride=1, padding=0, slope=0.1, output_padding=0):
    """y = conv_transpose1d(leaky_relu(x, slope), weight, bias, stride, padding, output_padding).
    Differentiable."""
    x, weight, bias = autocast_inputs(x, weight, bias)
    _check(x, weight, bias, stride, padding, output_padding)
    return OP(x, weight, bias, stride, padding, float(slope), output_padding)


def _fake(x, weight, bias, stride, padding, slope=0.1, output_padding=0):
    return x.new_empty((x.shape[0], weight.shape[1],
                        _out_len(x.shape[2], weight.shape[2], stride, padding, output_padding)))


def _fake_backward(grad_out, x, weight, stride, padding, slope, output_padding=0):
    return torch.empty_like(x), torch.empty_like(weight), weight.new_empty((weight.shape[1],))


def _setup_context(ctx, inputs, output):
    x, weight, bias, stride, padding, slope, output_padding = inputs
    ctx.save_for_backward(x, weight)
    ctx.args = (stride, padding, slope, output_padding)
    ctx.has_bias = bias is not None


def _backward(ctx, backward_kernel, grad):
    x, weight = ctx.saved_tensors
    grad_x, grad_w, grad_b = backward_kernel(grad, x, weight, *ctx.args)
    return grad_x, grad_w, grad_b if ctx.has_bias else None, None, None, None, None


def _triton_forward(x, weight, bias, stride, padding, slope=0.1, output_padding=0):
    from ..kernels.lrelu_conv_transpose1d import lrelu_conv_transpose1d_triton
    return lrelu_conv_transpose1d_triton(x, weight, bias, stride, padding, slope, output_padding)


def _triton_backward(grad_out, x, weight, stride, padding, slope, output_padding=0):
    from ..kernels.lrelu_conv_transpose1d import lrelu_conv_transpose1d_backward_triton
    return lrelu_conv_transpose1d_backward_triton(grad_out, x, weight, stride, padding, slope, output_padding)


OP = FusedOp("lrelu_conv_transpose1d", reference=lrelu_conv_transpose1d_ref, fake=_fake,
             setup_context=_setup_context, backward=_backward,
             backward_reference=lrelu_conv_transpose1d_backward_ref, backward_fake=_fake_backward,
             triton_forward=_triton_forward, triton_backward=_triton_backward)

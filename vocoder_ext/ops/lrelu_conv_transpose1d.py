"""lrelu_conv_transpose1d: leaky-ReLU prologue + transposed conv1d (HiFi-GAN's upsampling layers).

Shapes: x [B, C_in, T], weight [C_in, C_out, K], bias [C_out] or None
-> y [B, C_out, (T-1)*stride - 2*padding + K].
"""

import torch
import torch.nn.functional as F

from .. import _extension, autotune, backend
from ._checks import autocast_inputs, check_positive_int, check_shape, check_tensor


def lrelu_conv_transpose1d_ref(x, weight, bias, stride, padding, slope=0.1):
    """The ground truth, in plain PyTorch, computed in the input dtype."""
    return F.conv_transpose1d(F.leaky_relu(x, slope), weight, bias, stride=stride, padding=padding)


def lrelu_conv_transpose1d_backward_ref(grad_out, x, weight, stride, padding, slope):
    """Gradients (x, weight, bias) of lrelu_conv_transpose1d; leaky-ReLU recomputed, not stored."""
    act = F.leaky_relu(x, slope)
    grad_act, grad_w, grad_b = torch.ops.aten.convolution_backward(
        grad_out, act, weight, [weight.shape[1]], [stride], [padding], [1], True, [0], 1, [True, True, True])
    return torch.where(x > 0, grad_act, grad_act * slope), grad_w, grad_b


def _out_len(t, k, stride, padding):
    return (t - 1) * stride - 2 * padding + k


def _check(x, weight, bias, stride, padding):
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
    if x.shape[2] < 1 or _out_len(x.shape[2], k, stride, padding) < 1:
        raise ValueError(f"x: length {x.shape[2]} gives no output for K={k}, stride={stride}, padding={padding}")


def lrelu_conv_transpose1d(x, weight, bias=None, stride=1, padding=0, slope=0.1):
    """y = conv_transpose1d(leaky_relu(x, slope), weight, bias, stride, padding). Differentiable."""
    x, weight, bias = autocast_inputs(x, weight, bias)
    _check(x, weight, bias, stride, padding)
    slope = float(slope)
    if x.device.type == "cpu" and backend.requested() == "triton":
        backend.resolve("lrelu_conv_transpose1d", "cpu")  # raises unless TRITON_INTERPRET=1 and triton is installed
        return _InterpretedTriton.apply(x, weight, bias, stride, padding, slope)
    if backend.use_registered_op("lrelu_conv_transpose1d", x.device.type):
        return torch.ops.vocoder_ext.lrelu_conv_transpose1d(x, weight, bias, stride, padding, slope)
    return lrelu_conv_transpose1d_ref(x, weight, bias, stride, padding, slope)


class _InterpretedTriton(torch.autograd.Function):
    """The Triton kernels on CPU tensors through the Triton interpreter (VOCODER_EXT_BACKEND=triton with
    TRITON_INTERPRET=1); see ops/lrelu_conv1d.py. On CUDA the kernels are the registered op's CUDA kernel."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, slope):
        from ..kernels.lrelu_conv_transpose1d import lrelu_conv_transpose1d_triton
        ctx.save_for_backward(x, weight)
        ctx.args = (stride, padding, slope)
        ctx.has_bias = bias is not None
        return lrelu_conv_transpose1d_triton(x, weight, bias, stride, padding, slope)

    @staticmethod
    def backward(ctx, grad):
        from ..kernels.lrelu_conv_transpose1d import lrelu_conv_transpose1d_backward_triton
        x, weight = ctx.saved_tensors
        grad_x, grad_w, grad_b = lrelu_conv_transpose1d_backward_triton(grad, x, weight, *ctx.args)
        return grad_x, grad_w, grad_b if ctx.has_bias else None, None, None, None


def _shape_key(x, weight, bias, stride, padding):
    return (f"x {x.shape[0]}x{x.shape[1]}x~{autotune.bucket(x.shape[2])} w {tuple(weight.shape)} {x.dtype} "
            f"stride {stride} padding {padding} bias {bias is not None}")


def _cuda_forward(x, weight, bias, stride, padding, slope=0.1):
    """The CUDA kernel: Triton, or cuDNN + eager where autotune measured that faster for this shape."""
    from ..kernels.lrelu_conv_transpose1d import lrelu_conv_transpose1d_triton
    candidates = {"triton": lambda: lrelu_conv_transpose1d_triton(x, weight, bias, stride, padding, slope),
                  "eager": lambda: lrelu_conv_transpose1d_ref(x, weight, bias, stride, padding, slope)}
    key = _shape_key(x, weight, bias, stride, padding)
    return candidates[autotune.choose("lrelu_conv_transpose1d", key, candidates, x.device)]()


def _cuda_backward(grad_out, x, weight, stride, padding, slope):
    from ..kernels.lrelu_conv_transpose1d import lrelu_conv_transpose1d_backward_triton
    candidates = {
        "triton": lambda: lrelu_conv_transpose1d_backward_triton(grad_out, x, weight, stride, padding, slope),
        "eager": lambda: lrelu_conv_transpose1d_backward_ref(grad_out, x, weight, stride, padding, slope)}
    key = _shape_key(x, weight, None, stride, padding)
    return candidates[autotune.choose("lrelu_conv_transpose1d_backward", key, candidates, x.device)]()


def _register():
    lib = "vocoder_ext::lrelu_conv_transpose1d"
    torch.library.impl(lib, "CompositeExplicitAutograd")(lrelu_conv_transpose1d_ref)
    torch.library.impl(lib + "_backward", "CompositeExplicitAutograd")(lrelu_conv_transpose1d_backward_ref)

    @torch.library.register_fake(lib)
    def _(x, weight, bias, stride, padding, slope=0.1):
        return x.new_empty((x.shape[0], weight.shape[1], _out_len(x.shape[2], weight.shape[2], stride, padding)))

    @torch.library.register_fake(lib + "_backward")
    def _(grad_out, x, weight, stride, padding, slope):
        return torch.empty_like(x), torch.empty_like(weight), weight.new_empty((weight.shape[1],))

    def setup_context(ctx, inputs, output):
        x, weight, bias, stride, padding, slope = inputs
        ctx.save_for_backward(x, weight)
        ctx.args = (stride, padding, slope)
        ctx.has_bias = bias is not None

    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x, grad_w, grad_b = torch.ops.vocoder_ext.lrelu_conv_transpose1d_backward(grad, x, weight, *ctx.args)
        return grad_x, grad_w, grad_b if ctx.has_bias else None, None, None, None

    torch.library.register_autograd(lib, backward, setup_context=setup_context)

    # CUDA tensors run the Triton kernels (imported on first call) when triton is installed.
    if backend.triton_installed():
        torch.library.impl(lib, "CUDA")(_cuda_forward)
        torch.library.impl(lib + "_backward", "CUDA")(_cuda_backward)
        backend.PYTHON_CUDA_KERNELS.update({"lrelu_conv_transpose1d", "lrelu_conv_transpose1d_backward"})


if _extension.loaded:
    _register()

"""lrelu_conv1d: leaky-ReLU prologue + dilated 'same' conv1d + bias [+ tanh] [+ residual].

Shapes (channels first): x [B, C_in, T], weight [C_out, C_in, K] (K odd), bias [C_out] or None,
residual [B, C_out, T] or None -> y [B, C_out, T].
"""

import torch
import torch.nn.functional as F

from .. import _extension, autotune, backend
from ._checks import autocast_inputs, check_positive_int, check_shape, check_tensor

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
    slope = float(slope)
    if x.device.type == "cpu" and backend.requested() == "triton":
        backend.resolve("lrelu_conv1d", "cpu")  # raises unless TRITON_INTERPRET=1 and triton is installed
        return _InterpretedTriton.apply(x, weight, bias, dilation, slope, residual, epilogue)
    if backend.use_registered_op("lrelu_conv1d", x.device.type):
        return torch.ops.vocoder_ext.lrelu_conv1d(x, weight, bias, dilation, slope, residual, epilogue)
    return lrelu_conv1d_ref(x, weight, bias, dilation, slope, residual, epilogue)


class _InterpretedTriton(torch.autograd.Function):
    """The Triton kernels on CPU tensors, through the Triton interpreter (VOCODER_EXT_BACKEND=triton with
    TRITON_INTERPRET=1: how the tests run the GPU code without a GPU). The registered op's CPU key belongs
    to the C++ kernel, so this path has its own autograd; on CUDA the kernels are the op's CUDA kernel."""

    @staticmethod
    def forward(ctx, x, weight, bias, dilation, slope, residual, epilogue):
        from ..kernels.lrelu_conv1d import lrelu_conv1d_triton
        ctx.save_for_backward(x, weight, bias)
        ctx.args = (dilation, slope, epilogue)
        ctx.has_residual = residual is not None
        return lrelu_conv1d_triton(x, weight, bias, dilation, slope, residual, epilogue)

    @staticmethod
    def backward(ctx, grad):
        from ..kernels.lrelu_conv1d import lrelu_conv1d_backward_triton
        x, weight, bias = ctx.saved_tensors
        grad_x, grad_w, grad_b = lrelu_conv1d_backward_triton(grad, x, weight, bias, *ctx.args)
        return grad_x, grad_w, grad_b, None, None, grad if ctx.has_residual else None, None


def _shape_key(x, weight, bias, dilation, epilogue, residual=None):
    return (f"x {x.shape[0]}x{x.shape[1]}x~{autotune.bucket(x.shape[2])} w {tuple(weight.shape)} {x.dtype} "
            f"dilation {dilation} bias {bias is not None} residual {residual is not None} {epilogue}")


def _cuda_forward(x, weight, bias, dilation=1, slope=0.1, residual=None, epilogue="none"):
    """The CUDA kernel: Triton, or cuDNN + eager where autotune measured that faster for this shape."""
    from ..kernels.lrelu_conv1d import lrelu_conv1d_triton
    candidates = {"triton": lambda: lrelu_conv1d_triton(x, weight, bias, dilation, slope, residual, epilogue),
                  "eager": lambda: lrelu_conv1d_ref(x, weight, bias, dilation, slope, residual, epilogue)}
    key = _shape_key(x, weight, bias, dilation, epilogue, residual)
    return candidates[autotune.choose("lrelu_conv1d", key, candidates, x.device)]()


def _cuda_backward(grad_out, x, weight, bias, dilation, slope, epilogue):
    from ..kernels.lrelu_conv1d import lrelu_conv1d_backward_triton

    def triton():
        grad_x, grad_w, grad_b = lrelu_conv1d_backward_triton(grad_out.contiguous(), x, weight, bias, dilation,
                                                              slope, epilogue)
        return grad_x, grad_w, grad_b if grad_b is not None else grad_out.new_zeros(weight.shape[0])

    candidates = {"triton": triton,
                  "eager": lambda: lrelu_conv1d_backward_ref(grad_out, x, weight, bias, dilation, slope, epilogue)}
    key = _shape_key(x, weight, bias, dilation, epilogue)
    return candidates[autotune.choose("lrelu_conv1d_backward", key, candidates, x.device)]()


def _register():
    lib = "vocoder_ext::lrelu_conv1d"
    # Default kernel for every device; compiled CPU/CUDA kernels override it per dispatch key.
    torch.library.impl(lib, "CompositeExplicitAutograd")(lrelu_conv1d_ref)
    torch.library.impl(lib + "_backward", "CompositeExplicitAutograd")(lrelu_conv1d_backward_ref)

    @torch.library.register_fake(lib)
    def _(x, weight, bias, dilation=1, slope=0.1, residual=None, epilogue="none"):
        return x.new_empty((x.shape[0], weight.shape[0], x.shape[2]))

    @torch.library.register_fake(lib + "_backward")
    def _(grad_out, x, weight, bias, dilation, slope, epilogue):
        return torch.empty_like(x), torch.empty_like(weight), weight.new_empty((weight.shape[0],))

    def setup_context(ctx, inputs, output):
        x, weight, bias, dilation, slope, residual, epilogue = inputs
        ctx.save_for_backward(x, weight, bias)
        ctx.args = (dilation, slope, epilogue)
        ctx.has_bias, ctx.has_residual = bias is not None, residual is not None

    def backward(ctx, grad):
        x, weight, bias = ctx.saved_tensors
        grad_x, grad_w, grad_b = torch.ops.vocoder_ext.lrelu_conv1d_backward(grad, x, weight, bias, *ctx.args)
        return (grad_x, grad_w, grad_b if ctx.has_bias else None, None, None,
                grad if ctx.has_residual else None, None)

    torch.library.register_autograd(lib, backward, setup_context=setup_context)

    # CUDA tensors run the Triton kernels (imported on first call) when triton is installed.
    if backend.triton_installed():
        torch.library.impl(lib, "CUDA")(_cuda_forward)
        torch.library.impl(lib + "_backward", "CUDA")(_cuda_backward)
        backend.PYTHON_CUDA_KERNELS.update({"lrelu_conv1d", "lrelu_conv1d_backward"})


if _extension.loaded:
    _register()

"""invertible_conv1x1: WaveGlow's invertible 1x1 convolution over the grouped audio channels.

x [B, c, T]; weight [c, c, 1] (Conv1d layout, no bias).
Forward (training): (W x, B*T*log|det W|); reverse (inference): (W^-1 x, -B*T*log|det W|).
The log-determinant is fp32 (fp64 for fp64 weights), and so are W^-1 and the reverse product (returned in x's dtype): an fp16
inverse of a near-orthogonal matrix loses the audio. W^-1 is computed from W on every call -- a c x c
matrix, c <= 8 in WaveGlow -- so no cached inverse can go stale after .half(), .to() or a weight update.
The forward product runs in x's dtype, as NVIDIA's does.
"""
import torch
import torch.nn.functional as F

from ._checks import check_shape, check_tensor, compute_dtype
from .registry import FusedOp


def invertible_conv1x1_ref(x, weight, reverse=False):
    """The ground truth, in plain PyTorch."""
    w = weight[:, :, 0].to(compute_dtype(x, weight))
    log_det = x.shape[0] * x.shape[2] * torch.linalg.slogdet(w)[1]
    if reverse:
        w_inv = torch.linalg.inv_ex(w)[0]  # _ex: no host sync for an error check
        return F.conv1d(x.to(w.dtype), w_inv.unsqueeze(-1)).to(x.dtype), -log_det
    return F.conv1d(x, weight.to(x.dtype)), log_det


def invertible_conv1x1_backward_ref(grad_out, grad_log_det, x, weight, reverse):
    """Gradients (x, weight), computed in fp32 (fp64 for fp64 inputs)."""
    w = weight[:, :, 0].to(compute_dtype(x, weight))
    g, xf, grad_log_det = grad_out.to(w.dtype), x.to(w.dtype), grad_log_det.to(w.dtype)
    n = x.shape[0] * x.shape[2]
    w_inv = torch.linalg.inv_ex(w)[0]
    if reverse:  # y = V x with V = W^-1: dV = g x^T, dW = -V^T dV V^T; log_det = -n log|det W|
        grad_x = torch.einsum("ij,bit->bjt", w_inv, g)
        grad_v = torch.einsum("bit,bjt->ij", g, xf)
        grad_w = -w_inv.t() @ grad_v @ w_inv.t() - grad_log_det * n * w_inv.t()
    else:  # y = W x; d log|det W| / dW = W^-T
        grad_x = torch.einsum("ij,bit->bjt", w, g)
        grad_w = torch.einsum("bit,bjt->ij", g, xf) + grad_log_det * n * w_inv.t()
    return grad_x.to(x.dtype), grad_w.unsqueeze(-1).to(weight.dtype)


def _check(x, weight, reverse):
    check_tensor("x", x, 3)
    check_tensor("weight", weight, 3, device=x.device)
    c = x.shape[1]
    check_shape("weight", weight, (c, c, 1))
    if not isinstance(reverse, bool):
        raise TypeError(f"reverse: expected a bool, got {type(reverse).__name__}")


def invertible_conv1x1(x, weight, reverse=False):
    """(W x, B*T*log|det W|), or (W^-1 x, -B*T*log|det W|) with reverse=True. Differentiable."""
    _check(x, weight, reverse)
    return OP(x, weight, reverse)


def _fake(x, weight, reverse=False):
    return torch.empty_like(x), x.new_empty((), dtype=compute_dtype(x, weight))


def _fake_backward(grad_out, grad_log_det, x, weight, reverse):
    return torch.empty_like(x), torch.empty_like(weight)


def _setup_context(ctx, inputs, output):
    x, weight, reverse = inputs
    ctx.save_for_backward(x, weight)
    ctx.reverse = reverse


def _backward(ctx, backward_kernel, grad_out, grad_log_det):
    return (*backward_kernel(grad_out, grad_log_det, *ctx.saved_tensors, ctx.reverse), None)


def _triton_forward(x, weight, reverse=False):
    from ..kernels import _launch, invertible_conv1x1 as kernels
    if compute_dtype(x, weight) == torch.float64:  # the kernels compute in fp32: fp64 runs the reference
        return _launch.fp64_reference("invertible_conv1x1", invertible_conv1x1_ref, x, weight, reverse)
    return kernels.invertible_conv1x1_triton(x, weight, reverse)


def _triton_backward(grad_out, grad_log_det, x, weight, reverse):
    from ..kernels import _launch, invertible_conv1x1 as kernels
    if compute_dtype(grad_out, x, weight) == torch.float64:
        return _launch.fp64_reference("invertible_conv1x1", invertible_conv1x1_backward_ref, grad_out,
                                      grad_log_det, x, weight, reverse)
    return kernels.invertible_conv1x1_backward_triton(grad_out, grad_log_det, x, weight, reverse)


OP = FusedOp("invertible_conv1x1", reference=invertible_conv1x1_ref, fake=_fake, setup_context=_setup_context,
             backward=_backward, backward_reference=invertible_conv1x1_backward_ref, backward_fake=_fake_backward,
             triton_forward=_triton_forward, triton_backward=_triton_backward)

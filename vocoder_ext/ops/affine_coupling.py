"""affine_coupling: WaveGlow's affine coupling transform of the second half of the audio channels.

x [B, n_half, T]; wn_out [B, 2*n_half, T] = the WN's output, [b; log_s] (NVIDIA's order: b first).
Forward (training): exp(log_s) * x + b; reverse (inference): (x - b) * exp(-log_s). Computed in fp32 (an
fp16 exp overflows past log_s = 11), returned in x's dtype; x and wn_out may differ in dtype (the model
keeps the few audio channels in fp32 while its WN runs in fp16/bf16). log_s for the loss is the view
wn_out[:, n_half:], so no op is needed for it.
"""
import torch

from ._checks import check_shape, compute_dtype, check_tensor
from .registry import FusedOp


def affine_coupling_ref(x, wn_out, reverse=False):
    """The ground truth, in plain PyTorch, in fp32 (fp64 for fp64 inputs)."""
    n = x.shape[1]
    dtype = compute_dtype(x, wn_out)
    xf, wn_out = x.to(dtype), wn_out.to(dtype)
    b, log_s = wn_out[:, :n], wn_out[:, n:]
    y = (xf - b) * torch.exp(-log_s) if reverse else torch.exp(log_s) * xf + b
    return y.to(x.dtype)


def affine_coupling_backward_ref(grad_out, x, wn_out, reverse):
    """Gradients (x, wn_out)."""
    n = x.shape[1]
    dtype = compute_dtype(x, wn_out)
    g, xf, out = grad_out.to(dtype), x.to(dtype), wn_out.to(dtype)
    b, log_s = out[:, :n], out[:, n:]
    if reverse:
        grad_x = g * torch.exp(-log_s)
        grad_b, grad_log_s = -grad_x, -grad_x * (xf - b)
    else:
        scale = torch.exp(log_s)
        grad_x, grad_b, grad_log_s = g * scale, g, g * scale * xf
    return grad_x.to(x.dtype), torch.cat([grad_b, grad_log_s], 1).to(wn_out.dtype)


def _check(x, wn_out, reverse):
    check_tensor("x", x, 3)
    check_tensor("wn_out", wn_out, 3, device=x.device)
    b, n, t = x.shape
    check_shape("wn_out", wn_out, (b, 2 * n, t))
    if not isinstance(reverse, bool):
        raise TypeError(f"reverse: expected a bool, got {type(reverse).__name__}")


def affine_coupling(x, wn_out, reverse=False):
    """exp(log_s) * x + b, or (x - b) * exp(-log_s) with reverse=True; [b; log_s] = wn_out. Differentiable."""
    _check(x, wn_out, reverse)
    return OP(x, wn_out, reverse)


def _fake(x, wn_out, reverse=False):
    return torch.empty_like(x)


def _fake_backward(grad_out, x, wn_out, reverse):
    return torch.empty_like(x), torch.empty_like(wn_out)


def _setup_context(ctx, inputs, output):
    x, wn_out, reverse = inputs
    ctx.save_for_backward(x, wn_out)
    ctx.reverse = reverse


def _backward(ctx, backward_kernel, grad):
    return (*backward_kernel(grad, *ctx.saved_tensors, ctx.reverse), None)


def _triton_forward(x, wn_out, reverse=False):
    from ..kernels import _launch, affine_coupling as kernels
    if compute_dtype(x, wn_out) == torch.float64:  # the kernels compute in fp32: fp64 runs the reference
        return _launch.fp64_reference("affine_coupling", affine_coupling_ref, x, wn_out, reverse)
    return kernels.affine_coupling_triton(x, wn_out, reverse)


def _triton_backward(grad_out, x, wn_out, reverse):
    from ..kernels import _launch, affine_coupling as kernels
    if compute_dtype(grad_out, x, wn_out) == torch.float64:
        return _launch.fp64_reference("affine_coupling", affine_coupling_backward_ref, grad_out, x, wn_out, reverse)
    return kernels.affine_coupling_backward_triton(grad_out, x, wn_out, reverse)


OP = FusedOp("affine_coupling", reference=affine_coupling_ref, fake=_fake, setup_context=_setup_context,
             backward=_backward, backward_reference=affine_coupling_backward_ref, backward_fake=_fake_backward,
             triton_forward=_triton_forward, triton_backward=_triton_backward)

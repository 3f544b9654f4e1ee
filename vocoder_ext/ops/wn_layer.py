"""wn_layer: one layer of WaveGlow's WN (the WaveNet-like stack inside each affine coupling).

Shapes ([B, C, T], T = the grouped audio rate): audio [B, C, T]; skip [B, C, T] or None (a zero skip sum:
the first layer); cond [B, 2C, T], this layer's conditioning (precomputed from the mel for all layers);
in_weight [2C, C, K] (K odd), in_bias [2C]; rs_weight [2C, C, 1], or [C, C, 1] on the last layer, rs_bias.

    a = conv1d(audio, in_weight, in_bias, dilation, "same") + cond
    acts = tanh(a[:, :C]) * sigmoid(a[:, C:])
    rs = conv1d(acts, rs_weight, rs_bias)
    -> (audio + rs[:, :C], skip + rs[:, C:])        or, last=True: (audio, skip + rs)
"""
import torch
import torch.nn.functional as F

from ._checks import autocast_inputs, check_positive_int, check_shape, check_tensor
from .registry import FusedOp


def wn_layer_ref(audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias, dilation, last):
    """The ground truth, in plain PyTorch, computed in the input dtype."""
    c = audio.shape[1]
    a = _in_conv(audio, in_weight, in_bias, dilation) + cond
    acts = torch.tanh(a[:, :c]) * torch.sigmoid(a[:, c:])
    rs = F.conv1d(acts, rs_weight, rs_bias)
    if last:
        return audio.clone(), rs if skip is None else skip + rs
    return audio + rs[:, :c], rs[:, c:].clone() if skip is None else skip + rs[:, c:]  # a fresh tensor, not a view


def wn_layer_backward_ref(grad_audio, grad_skip, audio, cond, in_weight, in_bias, rs_weight, rs_bias, dilation,
                          last):
    """Gradients (audio, cond, in_weight, in_bias, rs_weight, rs_bias); the gate is recomputed, not stored."""
    c = audio.shape[1]
    a = _in_conv(audio, in_weight, in_bias, dilation) + cond
    t, s = torch.tanh(a[:, :c]), torch.sigmoid(a[:, c:])
    acts = t * s
    grad_rs = grad_skip if last else torch.cat([grad_audio, grad_skip], 1)
    grad_acts, grad_rs_w, grad_rs_b = torch.ops.aten.convolution_backward(
        grad_rs, acts, rs_weight, [rs_weight.shape[0]], [1], [0], [1], False, [0], 1, [True, True, True])
    grad_a = torch.cat([grad_acts * s * (1 - t * t), grad_acts * t * s * (1 - s)], 1)
    k = in_weight.shape[-1]
    grad_in, grad_in_w, grad_in_b = torch.ops.aten.convolution_backward(
        grad_a, audio, in_weight, [in_weight.shape[0]], [1], [dilation * (k - 1) // 2], [dilation], False, [0], 1,
        [True, True, True])
    return grad_audio + grad_in, grad_a, grad_in_w, grad_in_b, grad_rs_w, grad_rs_b


def _in_conv(audio, weight, bias, dilation):
    return F.conv1d(audio, weight, bias, padding=dilation * (weight.shape[-1] - 1) // 2, dilation=dilation)


def _check(audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias, dilation, last):
    check_tensor("audio", audio, 3)
    b, c, t = audio.shape
    if t < 1:
        raise ValueError(f"audio: expected at least one time step, got shape {tuple(audio.shape)}")
    check_tensor("in_weight", in_weight, 3, audio.dtype, audio.device)
    check_shape("in_weight", in_weight, (2 * c, c, in_weight.shape[-1]))
    if in_weight.shape[-1] % 2 != 1:
        raise ValueError(f"in_weight: 'same' padding needs an odd kernel size, got K={in_weight.shape[-1]}")
    check_tensor("in_bias", in_bias, 1, audio.dtype, audio.device)
    check_shape("in_bias", in_bias, (2 * c,))
    check_tensor("cond", cond, 3, audio.dtype, audio.device)
    check_shape("cond", cond, (b, 2 * c, t))
    rows = c if last else 2 * c
    check_tensor("rs_weight", rs_weight, 3, audio.dtype, audio.device)
    check_shape("rs_weight", rs_weight, (rows, c, 1))
    check_tensor("rs_bias", rs_bias, 1, audio.dtype, audio.device)
    check_shape("rs_bias", rs_bias, (rows,))
    if skip is not None:
        check_tensor("skip", skip, 3, audio.dtype, audio.device)
        check_shape("skip", skip, (b, c, t))
    check_positive_int("dilation", dilation)
    if not isinstance(last, bool):
        raise TypeError(f"last: expected a bool, got {type(last).__name__}")


def wn_layer(audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias, dilation=1, last=False):
    """(audio, skip) after one WN layer; see the module docstring. Differentiable."""
    audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias = autocast_inputs(
        audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias)
    _check(audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias, dilation, last)
    return OP(audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias, dilation, last)


def _fake(audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias, dilation, last):
    return torch.empty_like(audio), torch.empty_like(audio)


def _fake_backward(grad_audio, grad_skip, audio, cond, in_weight, in_bias, rs_weight, rs_bias, dilation, last):
    return (torch.empty_like(audio), torch.empty_like(cond), torch.empty_like(in_weight), torch.empty_like(in_bias),
            torch.empty_like(rs_weight), torch.empty_like(rs_bias))


def _setup_context(ctx, inputs, output):
    audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias, dilation, last = inputs
    ctx.save_for_backward(audio, cond, in_weight, in_bias, rs_weight, rs_bias)
    ctx.args = (dilation, last)
    ctx.has_skip = skip is not None


def _backward(ctx, backward_kernel, grad_audio, grad_skip):
    grads = backward_kernel(grad_audio, grad_skip, *ctx.saved_tensors, *ctx.args)
    grad_audio_in, grad_cond, *grad_weights = grads
    return (grad_audio_in, grad_skip if ctx.has_skip else None, grad_cond, *grad_weights, None, None)


def _triton_forward(audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias, dilation=1, last=False):
    from ..kernels import _launch, wn_layer as kernels
    args = (audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias, dilation, last)
    if audio.dtype == torch.float64:  # the kernels take fp32/fp16/bf16: fp64 runs the reference
        return _launch.fp64_reference("wn_layer", wn_layer_ref, *args)
    return kernels.wn_layer_triton(*args)


def _triton_backward(grad_audio, grad_skip, audio, cond, in_weight, in_bias, rs_weight, rs_bias, dilation, last):
    from ..kernels import _launch, wn_layer as kernels
    args = (grad_audio, grad_skip, audio, cond, in_weight, in_bias, rs_weight, rs_bias, dilation, last)
    if audio.dtype == torch.float64:
        return _launch.fp64_reference("wn_layer", wn_layer_backward_ref, *args)
    return kernels.wn_layer_backward_triton(*args)


OP = FusedOp("wn_layer", reference=wn_layer_ref, fake=_fake, setup_context=_setup_context, backward=_backward,
             backward_reference=wn_layer_backward_ref, backward_fake=_fake_backward,
             triton_forward=_triton_forward, triton_backward=_triton_backward)

"""wn_layer: one layer of WaveGlow's WN (the WaveNet-like stack inside each affine coupling).

Shapes ([B, C, T], T = the grouped audio rate): audio [B, C, T]; skip [B, C, T] or None (a zero skip sum:
the first layer); cond [B, 2C, T], this layer's conditioning (precomputed from the mel for all layers);
in_weight [2C, C, K] (K odd), in_bias [2C]; rs_weight [2C, C, 1], or [C, C, 1] on the last layer, rs_bias.

    a = conv1d(audio, in_weight, in_bias, dilation, "same") + cond
    acts = tanh(a[:, :C]) * sigmoid(a[:, C:])
    rs = conv1d(acts, rs_weight, rs_bias)
    -> (audio + rs[:, :C], skip + rs[:, C:])        or, last=True: (audio, skip + rs)

The registered op also returns a (the pre-activation, "preact") when asked (keep_preact, set by
`wn_layer` whenever a gradient is needed): the backward recomputes the gate from it instead of
recomputing the dilated conv (~40% more backward FLOPs), at the memory of one [B, 2C, T] per layer.
Without keep_preact the third output is an empty tensor and nothing extra is written.
"""
import torch
import torch.nn.functional as F

from ._checks import autocast_inputs, check_positive_int, check_shape, check_tensor
from .registry import FusedOp


def wn_layer_ref(audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias, dilation, last, keep_preact=False):
    """The ground truth, in plain PyTorch, computed in the input dtype: (audio_out, skip_out, preact)."""
    c = audio.shape[1]
    a = _in_conv(audio, in_weight, in_bias, dilation) + cond
    acts = torch.tanh(a[:, :c]) * torch.sigmoid(a[:, c:])
    rs = F.conv1d(acts, rs_weight, rs_bias)
    preact = a if keep_preact else a.new_empty(0)
    if last:
        return audio.clone(), rs if skip is None else skip + rs, preact
    # fresh tensors, never views of one another
    return audio + rs[:, :c], rs[:, c:].clone() if skip is None else skip + rs[:, c:], preact


def wn_layer_backward_ref(grad_audio, grad_skip, audio, preact, in_weight, rs_weight, dilation, last):
    """Gradients (audio, cond, in_weight, in_bias, rs_weight, rs_bias); the gate is recomputed from preact."""
    if preact.numel() == 0:
        raise RuntimeError("wn_layer_backward: preact is empty: the forward must run with keep_preact=True "
                           "(vocoder_ext.ops.wn_layer sets it whenever a gradient is needed)")
    c = audio.shape[1]
    t, s = torch.tanh(preact[:, :c]), torch.sigmoid(preact[:, c:])
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
    tensors = (audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias)
    keep_preact = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    audio_out, skip_out, _ = OP(*tensors, dilation, last, keep_preact)
    return audio_out, skip_out


def _fake(audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias, dilation, last, keep_preact=False):
    preact = audio.new_empty(cond.shape) if keep_preact else audio.new_empty(0)
    return torch.empty_like(audio), torch.empty_like(audio), preact


def _fake_backward(grad_audio, grad_skip, audio, preact, in_weight, rs_weight, dilation, last):
    return (torch.empty_like(audio), torch.empty_like(preact), torch.empty_like(in_weight),
            in_weight.new_empty(in_weight.shape[0]), torch.empty_like(rs_weight), rs_weight.new_empty(rs_weight.shape[0]))


def _setup_context(ctx, inputs, output):
    audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias, dilation, last, keep_preact = inputs
    ctx.save_for_backward(audio, output[2], in_weight, rs_weight)  # output[2]: preact (empty without keep_preact)
    ctx.args = (dilation, last)
    ctx.has_skip = skip is not None


def _backward(ctx, backward_kernel, grad_audio, grad_skip, grad_preact):
    # preact is the backward's input, not a result: wn_layer never hands it out, so grad_preact is unused
    grads = backward_kernel(grad_audio, grad_skip, *ctx.saved_tensors, *ctx.args)
    grad_audio_in, grad_cond, *grad_weights = grads
    return (grad_audio_in, grad_skip if ctx.has_skip else None, grad_cond, *grad_weights, None, None, None)


def _triton_forward(audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias, dilation=1, last=False,
                    keep_preact=False):
    from ..kernels import _launch, wn_layer as kernels
    args = (audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias, dilation, last, keep_preact)
    if audio.dtype == torch.float64:  # the kernels take fp32/fp16/bf16: fp64 runs the reference
        return _launch.fp64_reference("wn_layer", wn_layer_ref, *args)
    return kernels.wn_layer_triton(*args)


def _triton_backward(grad_audio, grad_skip, audio, preact, in_weight, rs_weight, dilation, last):
    from ..kernels import _launch, wn_layer as kernels
    args = (grad_audio, grad_skip, audio, preact, in_weight, rs_weight, dilation, last)
    if audio.dtype == torch.float64:
        return _launch.fp64_reference("wn_layer", wn_layer_backward_ref, *args)
    return kernels.wn_layer_backward_triton(*args)


OP = FusedOp("wn_layer", reference=wn_layer_ref, fake=_fake, setup_context=_setup_context, backward=_backward,
             backward_reference=wn_layer_backward_ref, backward_fake=_fake_backward,
             triton_forward=_triton_forward, triton_backward=_triton_backward)

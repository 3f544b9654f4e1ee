"""conv1d_lrelu: strided, grouped conv1d with a leaky-ReLU epilogue (the HiFi-GAN discriminators' layers).

Shapes: x [B, C_in, T], weight [C_out, C_in / groups, K], bias [C_out] or None
-> y [B, C_out, (T + 2 * padding - K) // stride + 1] = leaky_relu(conv1d(x, ...), slope); slope 1 is no
activation (conv_post). x may also be [B, C_in, T, W]: W columns, each convolved along T (y [B, C_out, T', W]),
which is the MPD's (K, 1) conv2d over its folded [B, C, T/p, p] audio.

The backward takes the forward's output instead of its pre-activation: with slope > 0, leaky-ReLU keeps
the sign, so leaky' is read from the output (nothing else is stored). It computes only the gradients autograd
will use (its output_mask, as ATen's convolution_backward): the recipe's generator step backpropagates through
the discriminators to the generator alone (`backward(inputs=...)`), where their weight gradients would be
about half the backward's work for nothing.
"""
import torch
import torch.nn.functional as F
from torch.autograd.graph import _get_grad_fn_or_grad_acc

from ._checks import autocast_inputs, check_positive_int, check_shape, check_tensor
from .registry import FusedOp


def conv1d_lrelu_ref(x, weight, bias, stride, padding, groups, slope):
    """The ground truth, in plain PyTorch, computed in the input dtype."""
    if x.dim() == 4:
        y = F.conv2d(x, weight.unsqueeze(3), bias, (stride, 1), (padding, 0), 1, groups)
    else:
        y = F.conv1d(x, weight, bias, stride, padding, 1, groups)
    return y if slope == 1.0 else F.leaky_relu(y, slope)


def conv1d_lrelu_backward_ref(grad_out, out, x, weight, stride, padding, groups, slope,
                              output_mask=(True, True, True)):
    """Gradients (x, weight, bias) of conv1d_lrelu, leaky' read from the output's sign; those output_mask leaves
    out come back as empty tensors."""
    g = grad_out if slope == 1.0 else torch.where(out > 0, grad_out, grad_out * slope)
    mask = [bool(m) for m in output_mask]
    if x.dim() == 4:
        grads = list(torch.ops.aten.convolution_backward(
            g, x, weight.unsqueeze(3), [weight.shape[0]], [stride, 1], [padding, 0], [1, 1], False, [0, 0], groups,
            mask))
        if mask[1]:
            grads[1] = grads[1].squeeze(3)
    else:
        grads = list(torch.ops.aten.convolution_backward(g, x, weight, [weight.shape[0]], [stride], [padding], [1],
                                                         False, [0], groups, mask))
    return tuple(gr if m else x.new_empty(0) for gr, m in zip(grads, mask))


def masked(grads, output_mask):
    """The schema's contract for a backward that computed everything: what output_mask leaves out, empty."""
    return tuple(g if m else g.new_empty(0) for g, m in zip(grads, output_mask))


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


def _fake_backward(grad_out, out, x, weight, stride, padding, groups, slope, output_mask=(True, True, True)):
    return masked((torch.empty_like(x), torch.empty_like(weight), weight.new_empty((weight.shape[0],))),
                  output_mask)


def _setup_context(ctx, inputs, output):
    x, weight, bias, stride, padding, groups, slope = inputs
    ctx.save_for_backward(output, x, weight)
    ctx.args = (stride, padding, groups, slope)
    ctx.has_bias = bias is not None


def _will_use(ctx, i, node):
    """Whether autograd will use the gradient of input i, whose autograd node is `node`: it must need it, and
    this backward pass must reach it (not so for the discriminators' weights in a `backward(inputs=generator
    parameters)` pass, which ctx.needs_input_grad, fixed at forward time, cannot tell)."""
    if not ctx.needs_input_grad[i] or node is None:
        return ctx.needs_input_grad[i]
    try:
        return torch._C._will_engine_execute_node(node)
    except RuntimeError:  # a leaf's node under torch.autograd.grad(): not answered there, so compute it
        return True


def _node(t):
    """t's autograd node: its grad_fn, or a leaf's AccumulateGrad (found through a view, so grad mode on)."""
    if t is None or not t.requires_grad:
        return None
    with torch.enable_grad():
        return _get_grad_fn_or_grad_acc(t)


def _backward(ctx, backward_kernel, grad):
    out, x, weight = ctx.saved_tensors
    # grad_b (a sum) whenever the bias needs it: the bias is not saved, so its node is not at hand here
    mask = [_will_use(ctx, 0, _node(x)), _will_use(ctx, 1, _node(weight)), ctx.has_bias and ctx.needs_input_grad[2]]
    grad_x, grad_w, grad_b = backward_kernel(grad, out, x, weight, *ctx.args, mask)
    return (grad_x if mask[0] else None, grad_w if mask[1] else None, grad_b if mask[2] else None,
            None, None, None, None)


def _triton_forward(x, weight, bias, stride, padding, groups, slope):
    from ..kernels import _launch, conv1d_lrelu as kernels
    args = (x, weight, bias, stride, padding, groups, slope)
    if x.dtype == torch.float64:  # the kernels take fp32/fp16/bf16: fp64 runs the reference
        return _launch.fp64_reference("conv1d_lrelu", conv1d_lrelu_ref, *args)
    return kernels.conv1d_lrelu_triton(*args)


def _triton_backward(grad_out, out, x, weight, stride, padding, groups, slope, output_mask=(True, True, True)):
    """The schema's three gradients, those output_mask leaves out empty (the kernels compute all three)."""
    from ..kernels import _launch, conv1d_lrelu as kernels
    args = (grad_out, out, x, weight, stride, padding, groups, slope)
    if x.dtype == torch.float64:
        return _launch.fp64_reference("conv1d_lrelu", conv1d_lrelu_backward_ref, *args, output_mask)
    return masked(kernels.conv1d_lrelu_backward_triton(*args), output_mask)


OP = FusedOp("conv1d_lrelu", reference=conv1d_lrelu_ref, fake=_fake, setup_context=_setup_context,
             backward=_backward, backward_reference=conv1d_lrelu_backward_ref, backward_fake=_fake_backward,
             triton_forward=_triton_forward, triton_backward=_triton_backward)

"""resblock: a whole HiFi-GAN residual block as one op, accumulated into the MRF average.

x [B, C, T]; weights: n convs [C, C, K] (K odd, same for all); biases: n x [C]; dilations: n ints;
group: convs per residual (2 = ResBlock1's pairs, 1 = ResBlock2). Each conv is preceded by
leaky-ReLU. Returns accum + scale * block(x) (accum optional), [B, C, T].

The fused kernels are inference-only; with gradients required, or where recomputing each tile's
halo costs more than the memory passes it saves (wide channels, long kernels; CPU), the block runs as
a chain of lrelu_conv1d ops (each with its own fused backward).
"""
import torch

from ..runtime import backend
from ._checks import autocast_inputs, check_positive_int, check_shape, check_tensor
from .lrelu_conv1d import lrelu_conv1d, lrelu_conv1d_ref
from .registry import FusedOp


def resblock_ref(x, weights, biases, dilations, group, slope=0.1, accum=None, scale=1.0):
    """The ground truth, in plain PyTorch."""
    return _chain(lrelu_conv1d_ref, x, weights, biases, dilations, group, slope, accum, scale)


def _chain(conv, x, weights, biases, dilations, group, slope, accum, scale):
    for i in range(0, len(weights), group):
        xt = x
        for j in range(i, i + group):
            # the residual joins in the group's last conv (its epilogue), not in a separate pass
            xt = conv(xt, weights[j], biases[j], dilations[j], slope, residual=x if j == i + group - 1 else None)
        x = xt
    if accum is None:
        return x if scale == 1.0 else x * scale
    return torch.add(accum, x, alpha=scale)


def _check(x, weights, biases, dilations, group, accum):
    check_tensor("x", x, 3)
    if not (len(weights) == len(biases) == len(dilations) > 0):
        raise ValueError(f"resblock: expected as many weights, biases and dilations (at least one), got "
                         f"{len(weights)}, {len(biases)} and {len(dilations)}")
    check_positive_int("group", group)
    if len(weights) % group:
        raise ValueError(f"resblock: {len(weights)} convs do not split into groups of {group}")
    c, k = x.shape[1], weights[0].shape[-1]
    if k % 2 != 1:
        raise ValueError(f"resblock: 'same' padding needs an odd kernel size, got K={k}")
    for i, (w, b, d) in enumerate(zip(weights, biases, dilations)):
        check_tensor(f"weights[{i}]", w, 3, x.dtype, x.device)
        check_shape(f"weights[{i}]", w, (c, c, k))
        check_tensor(f"biases[{i}]", b, 1, x.dtype, x.device)
        check_shape(f"biases[{i}]", b, (c,))
        check_positive_int(f"dilations[{i}]", d)
    if accum is not None:
        check_tensor("accum", accum, 3, x.dtype, x.device)
        check_shape("accum", accum, tuple(x.shape))


def _fused_block_pays(channels, k, dilations):
    """The fused block recomputes each tile's halo. Measured (2-core AVX-512, 2 threads) it beats the
    per-conv chain up to 64 channels, where memory passes dominate, and beyond that only while the
    halo adds under ~4% to a tile (tile ~ 1.5 MiB / (12 bytes x channels), as resblock.cpp picks it)."""
    halo = sum(d * (k - 1) // 2 for d in dilations)
    tile = (3 << 19) // (12 * channels) - 2 * halo
    return channels <= 64 or (tile > 0 and 2 * halo / tile < 0.04)


def resblock(x, weights, biases, dilations, group, slope=0.1, accum=None, scale=1.0):
    """accum + scale * ResBlock(x); see the module docstring."""
    weights, biases, dilations = list(weights), list(biases), [int(d) for d in dilations]
    n = len(weights)
    cast = autocast_inputs(x, accum, *weights, *biases)
    x, accum, weights, biases = cast[0], cast[1], list(cast[2:2 + n]), list(cast[2 + n:])
    _check(x, weights, biases, dilations, group, accum)
    tensors = [x, *weights, *biases] + ([accum] if accum is not None else [])
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    # The whole-block kernels: C++ on CPU; on CUDA tensors with the CUDA C++ backend forced, its chain
    # of fused launches (MRF sum included). Elsewhere -- under auto on a GPU each conv of the chain gets
    # its own per-shape choice of kernel -- the block is the chain of lrelu_conv1d ops.
    cpu_block = (x.dtype in (torch.float32, torch.bfloat16) and x.device.type == "cpu"
                 and backend.requested() != "triton"
                 and _fused_block_pays(x.shape[1], weights[0].shape[-1], dilations))
    cuda_block = x.device.type == "cuda" and backend.requested() == "cuda"
    if not needs_grad and (cpu_block or cuda_block) and backend.use_registered_op("resblock", x.device.type):
        return OP.op(x, weights, biases, dilations, group, float(slope), accum, float(scale))
    return _chain(lrelu_conv1d, x, weights, biases, dilations, group, slope, accum, scale)


def _fake(x, weights, biases, dilations, group, slope=0.1, accum=None, scale=1.0):
    return torch.empty_like(x)


# No backward: with gradients required, resblock() runs the chain of lrelu_conv1d ops instead.
OP = FusedOp("resblock", reference=resblock_ref, fake=_fake, chain_of="lrelu_conv1d")

"""Triton kernels for lrelu_conv1d: leaky-ReLU prologue + dilated 'same' conv1d + bias [+ tanh] [+ residual].

The contract and the ground truth are in vocoder_ext/ops/lrelu_conv1d.py (lrelu_conv1d_ref and
lrelu_conv1d_backward_ref). Shapes (channels first):

    x [B, C_in, T], weight [C_out, C_in, K] (K odd), bias [C_out] or None, residual [B, C_out, T] or None
    y[b, co, t] = sum_{ci, k} weight[co, ci, k] * leaky(x[b, ci, t + k*d - pad]) + bias[co],  pad = d*(K-1)//2
    then tanh(y) if epilogue == "tanh", then y + residual.

Two @triton.jit kernels serve forward and backward:

- `_conv_kernel`: an implicit GEMM. One program owns an output tile [BLOCK_CO, BLOCK_T] of one batch
  item and loops over taps k and input-channel blocks, accumulating weight[k] @ x_shifted_k with tl.dot
  in fp32. Constexpr flags choose the prologue (leaky-ReLU or none) and the epilogue, so the same kernel
  computes the forward output, the tanh derivative for the backward, and grad_x (the same conv over the
  output gradient with transposed, flipped weights).
- `_grad_weight_kernel`: grad_w[co, ci, k] = sum_{b, t} g[b, co, t] * leaky(x)[b, ci, t + k*d - pad], one
  program per [BLOCK_CO, BLOCK_CI] tile, tap and time chunk, reducing over B and its chunk's T blocks
  with tl.dot; grad_b rides along (the same g tiles, summed over t). When the weight has few tiles (late
  stages, long audio) the time axis is cut into chunks run by separate programs (time_splits) and
  their partial sums are added in fp32 afterwards: deterministic, no atomics.

On a GPU the kernels are wrapped in triton.autotune, over a tile set per operand width (fp32 IEEE FMAs
vs 16-bit tensor cores; _tiles.py), each chosen so that no config spills registers (`bench --static`).
Under the Triton interpreter (TRITON_INTERPRET=1, CPU tensors, used by the tests) they run with one
fixed config, because multi-config autotuning does not work there. The choice is made at import time, like Triton's own choice of interpreter vs compiler.
"""
import torch
import triton
import triton.language as tl

from ._launch import (
    check_device,
    INTERPRET,
    SUPPORTED_DTYPES,
    add_partials,
    cached_on,
    dot_dtype,
    empty_out,
    finish,
    meta,
    split_partials,
    time_splits,
    tuned,
)
from ._tiles import (
    CONV_CONFIGS,
    GRAD_WEIGHT_CONFIGS,
    INTERPRETER_CONV_CONFIG,
    INTERPRETER_GRAD_WEIGHT_CONFIG,
)

EPILOGUES = ("none", "tanh")



# --------------------------------------------------------------------------------------------- kernels

@triton.jit
def _tanh(z):
    """tanh in fp32 from tl.exp: Triton has no tl.tanh, and libdevice is unavailable under the interpreter."""
    a = tl.abs(z)
    # exp(-2a) never overflows, so large |z| saturates cleanly to +-1.
    e = tl.exp(-2.0 * a)
    t_big = (1.0 - e) / (1.0 + e)
    # Near 0 the form above loses digits to cancellation (1 - e); the odd Taylor series is exact there
    # to ~1e-10 relative for |z| < 0.1.
    z2 = a * a
    t_small = a * (1.0 + z2 * (-1.0 / 3.0 + z2 * (2.0 / 15.0 + z2 * (-17.0 / 315.0))))
    t = tl.where(a < 0.1, t_small, t_big)
    return tl.where(z < 0, -t, t)


@triton.jit
def _conv_kernel(
    x_ptr,   # conv input [B, C_in, T], any strides (x, or the output gradient for grad_x)
    w_ptr,   # packed weight [K, C_out, C_in], contiguous (see pack_weight)
    b_ptr,   # bias [C_out] (read only if HAS_BIAS)
    e_ptr,   # epilogue operand [B, C_out, T], any strides: residual, grad_out, or x (see EPILOGUE)
    y_ptr,   # output [B, C_out, T], any strides; stored in its own dtype
    C_in, C_out, T, K, T_BUCKET,  # T_BUCKET (next power of two of T) only keys the autotuner
    dilation, pad, slope,
    stride_xb, stride_xc, stride_xt,
    stride_eb, stride_ec, stride_et,
    stride_yb, stride_yc, stride_yt,
    PROLOGUE_LRELU: tl.constexpr,  # apply leaky-ReLU to every loaded input tile (forward) or not (grad_x)
    HAS_BIAS: tl.constexpr,
    # "none":       y = acc + bias
    # "tanh":       y = tanh(acc + bias)
    # "tanh_grad":  y = e * (1 - tanh(acc + bias)^2)   e = grad_out: the gradient through the tanh epilogue
    # "lrelu_grad": y = acc * (1 if e > 0 else slope)  e = x: grad_x through the leaky-ReLU prologue
    EPILOGUE: tl.constexpr,
    ADD_E: tl.constexpr,  # then y += e (the residual, forward only)
    DOT_DTYPE: tl.constexpr,  # operand dtype fed to tl.dot; accumulation is always fp32
    BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_T: tl.constexpr,
):
    pid_t = tl.program_id(0)
    pid_co = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)  # int64: batch offsets of long audio can pass 2**31 elements

    co = pid_co * BLOCK_CO + tl.arange(0, BLOCK_CO)
    t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    co_ok = co < C_out
    t_ok = t < T

    x_batch = x_ptr + b * stride_xb
    acc = tl.zeros((BLOCK_CO, BLOCK_T), dtype=tl.float32)
    for k in range(K):
        # Tap k reads x at t + k*d - pad. Positions outside [0, T) load 0: that is the zero padding, and
        # masking before the leaky-ReLU is right because leaky(0) = 0.
        t_in = t + k * dilation - pad
        t_in_ok = (t_in >= 0) & (t_in < T)
        w_tap = w_ptr + k * C_out * C_in
        for ci0 in range(0, C_in, BLOCK_CI):
            ci = ci0 + tl.arange(0, BLOCK_CI)
            ci_ok = ci < C_in
            xs = tl.load(x_batch + ci[:, None] * stride_xc + t_in[None, :] * stride_xt,
                         mask=ci_ok[:, None] & t_in_ok[None, :], other=0.0).to(tl.float32)
            if PROLOGUE_LRELU:
                xs = tl.where(xs > 0, xs, xs * slope)
            # The packed layout makes this [BLOCK_CO, BLOCK_CI] tile contiguous along C_in.
            ws = tl.load(w_tap + co[:, None] * C_in + ci[None, :],
                         mask=co_ok[:, None] & ci_ok[None, :], other=0.0)
            # "ieee" keeps fp32 operands out of TF32 (the op promises fp32 accuracy); it is moot for
            # fp16/bf16 operands.
            acc = tl.dot(ws.to(DOT_DTYPE), xs.to(DOT_DTYPE), acc, input_precision="ieee")

    if HAS_BIAS:
        acc += tl.load(b_ptr + co, mask=co_ok, other=0.0).to(tl.float32)[:, None]

    out_mask = co_ok[:, None] & t_ok[None, :]
    if ADD_E or EPILOGUE == "tanh_grad" or EPILOGUE == "lrelu_grad":
        e = tl.load(e_ptr + b * stride_eb + co[:, None] * stride_ec + t[None, :] * stride_et,
                    mask=out_mask, other=0.0).to(tl.float32)

    if EPILOGUE == "tanh":
        acc = _tanh(acc)
    elif EPILOGUE == "tanh_grad":
        th = _tanh(acc)
        acc = e * (1.0 - th * th)
    elif EPILOGUE == "lrelu_grad":
        acc = tl.where(e > 0, acc, acc * slope)
    if ADD_E:
        acc += e

    tl.store(y_ptr + b * stride_yb + co[:, None] * stride_yc + t[None, :] * stride_yt,
             acc.to(y_ptr.dtype.element_ty), mask=out_mask)


@triton.jit
def _grad_weight_kernel(
    g_ptr,   # gradient at the conv output [B, C_out, T], any strides (after the tanh derivative, if any)
    x_ptr,   # forward input [B, C_in, T], any strides; leaky-ReLU is recomputed from it
    gw_ptr,  # grad_w partial sums [SPLITS, C_out, C_in, K], any strides (SPLITS = 1: grad_w itself)
    gb_ptr,  # grad_b partial sums [SPLITS, C_out] (written only if HAS_BIAS)
    B, C_in, C_out, T, K, T_BUCKET,  # T_BUCKET only keys the autotuner
    dilation, pad, slope,
    T_CHUNK,  # program (.., .., k + K*s) reduces over t in [s*T_CHUNK, (s+1)*T_CHUNK) of every batch item
    stride_gb, stride_gc, stride_gt,
    stride_xb, stride_xc, stride_xt,
    stride_ws, stride_wo, stride_wi, stride_wk,
    stride_bs,
    HAS_BIAS: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_T: tl.constexpr,
):
    pid_co = tl.program_id(0)
    pid_ci = tl.program_id(1)
    k = tl.program_id(2) % K
    split = tl.program_id(2) // K
    t_start = split * T_CHUNK
    t_end = tl.minimum(t_start + T_CHUNK, T)

    co = pid_co * BLOCK_CO + tl.arange(0, BLOCK_CO)
    ci = pid_ci * BLOCK_CI + tl.arange(0, BLOCK_CI)
    co_ok = co < C_out
    ci_ok = ci < C_in

    acc = tl.zeros((BLOCK_CO, BLOCK_CI), dtype=tl.float32)
    acc_b = tl.zeros((BLOCK_CO,), dtype=tl.float32)
    # The batch base pointers advance by one stride per item (no b * stride product to overflow int32).
    g_batch = g_ptr
    x_batch = x_ptr
    for _ in range(B):
        for t0 in range(t_start, t_end, BLOCK_T):
            t = t0 + tl.arange(0, BLOCK_T)
            t_ok = t < t_end
            gs = tl.load(g_batch + co[:, None] * stride_gc + t[None, :] * stride_gt,
                         mask=co_ok[:, None] & t_ok[None, :], other=0.0).to(tl.float32)
            # The same shifted, zero-padded, activated input the forward tap k saw, loaded [time, C_in]:
            # the dot's right operand as it is (no transpose in registers).
            t_in = t + k * dilation - pad
            t_in_ok = t_ok & (t_in >= 0) & (t_in < T)
            xs = tl.load(x_batch + t_in[:, None] * stride_xt + ci[None, :] * stride_xc,
                         mask=t_in_ok[:, None] & ci_ok[None, :], other=0.0).to(tl.float32)
            xs = tl.where(xs > 0, xs, xs * slope)
            # [BLOCK_CO, BLOCK_T] @ [BLOCK_T, BLOCK_CI]: the reduction runs over time.
            acc = tl.dot(gs.to(DOT_DTYPE), xs.to(DOT_DTYPE), acc, input_precision="ieee")
            if HAS_BIAS:
                acc_b += tl.sum(gs, axis=1)
        g_batch += stride_gb
        x_batch += stride_xb

    tl.store(gw_ptr + split * stride_ws + co[:, None] * stride_wo + ci[None, :] * stride_wi + k * stride_wk,
             acc.to(gw_ptr.dtype.element_ty), mask=co_ok[:, None] & ci_ok[None, :])
    if HAS_BIAS:
        # Every (ci block, tap) program of a split summed the same g; the first one writes grad_b.
        owner = (pid_ci == 0) & (k == 0)
        tl.store(gb_ptr + split * stride_bs + co, acc_b.to(gb_ptr.dtype.element_ty), mask=co_ok & owner)


# ------------------------------------------------------------------------------------------- autotuning

# The tile sets are in _tiles.py. Keyed on shapes, the epilogue (tanh costs registers) and T bucketed to a power of two, so a new audio
# length reuses the tuning of its bucket instead of re-running the autotuner.
conv_kernel = tuned(_conv_kernel, CONV_CONFIGS, key=["C_in", "C_out", "T_BUCKET", "K", "EPILOGUE", "ADD_E"])
grad_weight_kernel = tuned(_grad_weight_kernel, GRAD_WEIGHT_CONFIGS, key=["C_in", "C_out", "T_BUCKET", "K"])


# ------------------------------------------------------------------------------------------ launchers

def pack_weight(weight):
    """weight [C_out, C_in, K] -> [K, C_out, C_in], contiguous: the layout the conv kernel reads.

    Each tap's [BLOCK_CO, BLOCK_CI] weight tile is then one contiguous run per row. The launchers keep
    it on the weight (cached_on) until the weight changes.
    """
    return weight.permute(2, 0, 1).contiguous()


def _pack_for_grad_x(weight):
    """The packed weight of grad_x's conv: C_in and C_out swapped, taps flipped."""
    return pack_weight(weight.transpose(0, 1).flip(-1))


def _check(x, weight, bias, dilation, residual, epilogue):
    for name, t in (("x", x), ("weight", weight)):
        if not isinstance(t, torch.Tensor) or t.dim() != 3:
            raise ValueError(f"{name}: expected a 3-D tensor, got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"x: the Triton kernel supports {SUPPORTED_DTYPES}, got {x.dtype}")
    c_out, c_in, k = weight.shape
    if k % 2 != 1:
        raise ValueError(f"weight: 'same' padding needs an odd kernel size, got K={k}")
    if c_in != x.shape[1]:
        raise ValueError(f"weight: expected {x.shape[1]} input channels (x is {tuple(x.shape)}), "
                         f"got weight of shape {tuple(weight.shape)}")
    if x.shape[2] < 1:
        raise ValueError(f"x: expected at least one time step, got shape {tuple(x.shape)}")
    if not isinstance(dilation, int) or isinstance(dilation, bool) or dilation < 1:
        raise ValueError(f"dilation: expected an int >= 1, got {dilation!r}")
    if epilogue not in EPILOGUES:
        raise ValueError(f"epilogue: expected one of {EPILOGUES}, got {epilogue!r}")
    expected = {"weight": weight, "bias": bias, "residual": residual}
    for name, t in expected.items():
        if t is not None and (t.dtype != x.dtype or t.device != x.device):
            raise TypeError(f"{name}: expected dtype {x.dtype} on {x.device} (same as x), "
                            f"got {t.dtype} on {t.device}")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"bias: expected shape {(c_out,)}, got {tuple(bias.shape)}")
    if residual is not None and tuple(residual.shape) != (x.shape[0], c_out, x.shape[2]):
        raise ValueError(f"residual: expected shape {(x.shape[0], c_out, x.shape[2])}, "
                         f"got {tuple(residual.shape)}")
    check_device("x", x)


def _launch_conv(inp, packed, bias, e, out, dilation, slope, prologue_lrelu, epilogue, add_e, dtype):
    """out[b, co, t] = epilogue(sum_{ci,k} packed[k, co, ci] * prologue(inp[b, ci, t + k*d - pad]) + bias)."""
    batch, c_in, t_len = inp.shape
    k, c_out, _ = packed.shape
    e_strides = e.stride() if e is not None else (0, 0, 0)

    def grid(meta):
        return (triton.cdiv(t_len, meta["BLOCK_T"]), triton.cdiv(c_out, meta["BLOCK_CO"]), batch)

    conv_kernel[grid](
        inp, packed, bias if bias is not None else packed, e if e is not None else out, out,
        c_in, c_out, t_len, k, triton.next_power_of_2(t_len),
        dilation, dilation * (k - 1) // 2, slope,
        *inp.stride(), *e_strides, *out.stride(),
        PROLOGUE_LRELU=prologue_lrelu, HAS_BIAS=bias is not None, EPILOGUE=epilogue, ADD_E=add_e,
        DOT_DTYPE=dot_dtype(dtype), **meta(INTERPRETER_CONV_CONFIG))


def lrelu_conv1d_triton(x, weight, bias=None, dilation=1, slope=0.1, residual=None, epilogue="none"):
    """Forward of lrelu_conv1d on the Triton kernel; y [B, C_out, T] in x's dtype.

    x [B, C_in, T] may be non-contiguous (e.g. a slice): strides go to the kernel, nothing is copied.
    The packed weight is made on the first call and kept on `weight` until it changes.
    """
    _check(x, weight, bias, dilation, residual, epilogue)
    packed = cached_on(weight, "lrelu_conv1d", pack_weight)
    y = empty_out((x.shape[0], weight.shape[0], x.shape[2]), x)
    _launch_conv(x, packed, bias, residual, y, dilation, float(slope), prologue_lrelu=True,
                 epilogue=epilogue, add_e=residual is not None, dtype=x.dtype)
    return finish(y, x.dtype)


def lrelu_conv1d_backward_triton(grad_out, x, weight, bias, dilation, slope, epilogue):
    """Gradients (grad_x, grad_w, grad_b or None) of lrelu_conv1d, in x's dtype.

    Leaky-ReLU (and, for epilogue="tanh", the tanh output) are recomputed from x, not stored. The
    residual's gradient is grad_out itself and is left to the caller.
    """
    _check(x, weight, bias, dilation, None, epilogue)
    if grad_out.shape != (x.shape[0], weight.shape[0], x.shape[2]) or grad_out.dtype != x.dtype \
            or grad_out.device != x.device:
        raise ValueError(f"grad_out: expected shape {(x.shape[0], weight.shape[0], x.shape[2])}, dtype "
                         f"{x.dtype} on {x.device}, got {tuple(grad_out.shape)}, {grad_out.dtype} on "
                         f"{grad_out.device}")
    slope = float(slope)
    batch, _, t_len = x.shape
    c_out = weight.shape[0]

    # g: the gradient at the conv output (before tanh). Through tanh it is grad_out * (1 - tanh(z)^2),
    # with z recomputed by the forward conv; kept in fp32 so no extra rounding enters both grads below.
    if epilogue == "tanh":
        g = torch.empty((batch, c_out, t_len), dtype=torch.float32, device=x.device)
        _launch_conv(x, cached_on(weight, "lrelu_conv1d", pack_weight), bias, grad_out, g, dilation, slope, prologue_lrelu=True,
                     epilogue="tanh_grad", add_e=False, dtype=x.dtype)
    else:
        g = grad_out

    # grad_x: y's taps read x at t + k*d - pad, so x's gradient gathers g at t - k*d + pad, i.e. the same
    # 'same' conv over g with weights transposed (C_in <-> C_out) and flipped in k. Times leaky'(x).
    grad_x = empty_out(x.shape, x)
    _launch_conv(g, cached_on(weight, "lrelu_conv1d grad_x", _pack_for_grad_x), None, x, grad_x, dilation, slope,
                 prologue_lrelu=False, epilogue="lrelu_grad", add_e=False, dtype=x.dtype)

    grad_w, grad_b = _grad_weight(g, x, weight, bias is not None, dilation, slope)
    return finish(grad_x, x.dtype), grad_w, grad_b


def _grad_weight(g, x, weight, has_bias, dilation, slope):
    """(grad_w, grad_b or None) in x's dtype: the reduction over B x T, split over time into chunks run
    by separate programs when the weight alone has too few tiles to fill the GPU (late HiFi-GAN stages:
    32 channels, 10^5+ steps), then summed in fp32 (deterministic: no atomics)."""
    batch, c_in, t_len = x.shape
    c_out, _, k = weight.shape
    splits, chunk = time_splits(triton.cdiv(c_out, 64) * triton.cdiv(c_in, 64) * k, t_len, x.device,
                                INTERPRETER_GRAD_WEIGHT_CONFIG["BLOCK_T"])
    grad_w = split_partials(splits, weight.shape, x)
    grad_b = split_partials(splits, (c_out,), x) if has_bias else None

    def grid(meta):
        return (triton.cdiv(c_out, meta["BLOCK_CO"]), triton.cdiv(c_in, meta["BLOCK_CI"]), k * splits)

    grad_weight_kernel[grid](
        g, x, grad_w, grad_b if grad_b is not None else grad_w,
        batch, c_in, c_out, t_len, k, triton.next_power_of_2(t_len),
        dilation, dilation * (k - 1) // 2, slope, chunk,
        *g.stride(), *x.stride(), *grad_w.stride(), grad_b.stride(0) if grad_b is not None else 0,
        HAS_BIAS=grad_b is not None, DOT_DTYPE=dot_dtype(x.dtype), **meta(INTERPRETER_GRAD_WEIGHT_CONFIG))
    return add_partials(grad_w, x.dtype), add_partials(grad_b, x.dtype) if grad_b is not None else None

"""Triton kernels for lrelu_conv_transpose1d: leaky-ReLU prologue + transposed conv1d + bias (upsampling).

The contract and the ground truth are in vocoder_ext/ops/lrelu_conv_transpose1d.py
(lrelu_conv_transpose1d_ref and lrelu_conv_transpose1d_backward_ref). Shapes (channels first):

    x [B, C_in, T_in], weight [C_in, C_out, K] (ConvTranspose1d layout), bias [C_out] or None
    T_out = (T_in - 1)*s - 2p + K + output_padding   (0 <= output_padding < s: outputs added at the end)
    y[b, co, t] = bias[co] + sum_{ci, k} weight[ci, co, k] * leaky(x[b, ci, (t + p - k) / s])
    over the (ci, k) with (t + p - k) divisible by s and 0 <= (t + p - k) / s < T_in.

Two @triton.jit kernels serve forward and backward:

- `_conv_kernel`: an implicit GEMM. One program owns an output tile [BLOCK_CO, BLOCK_T] of one batch
  item and loops over taps k and input-channel blocks, accumulating weight[k] @ x_k with tl.dot in
  fp32. The constexpr TRANSPOSED picks the index map: the forward is polyphase -- a program's outputs
  are one phase t = ph + i*s, reached only by the taps k = ph + p (mod s), each reading the contiguous
  input positions i + (ph + p - k) / s (out of range: 0) -- and grad_x reads the output
  gradient at j*s - p + k (a plain strided conv, with weights transposed to [K, C_in, C_out]); the
  epilogue then adds the bias (forward) or multiplies by leaky'(x) (grad_x).
- `_grad_weight_kernel`: grad_w[ci, co, k] = sum_{b, j} leaky(x)[b, ci, j] * g[b, co, j*s - p + k], one
  program per [BLOCK_CI, BLOCK_CO] tile, tap and chunk of T_in, reducing over B and the chunk's blocks
  with tl.dot (partial sums per chunk added in fp32 afterwards, as in lrelu_conv1d.py). A tap sees only
  every s-th output position, so grad_b (= g summed over B and T_out) is a separate loop run by the
  programs of the first C_in block and tap, over the chunk's output positions.

On a GPU the kernels are wrapped in triton.autotune. Under the Triton interpreter (TRITON_INTERPRET=1,
CPU tensors, used by the tests) they run with one fixed config, because multi-config autotuning does not
work there. The choice is made at import time, as in kernels/lrelu_conv1d.py.

The launch helpers (interpreter vs GPU, autotuning, output and dot dtypes) are shared with
kernels/lrelu_conv1d.py, in kernels/_launch.py.
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

# --------------------------------------------------------------------------------------------- kernels

@triton.jit
def _conv_kernel(
    x_ptr,   # conv input [B, C_in, T_in], any strides (x for the forward, the output gradient for grad_x)
    w_ptr,   # packed weight [K, C_out, C_in], contiguous (pack_weight, or its transpose for grad_x)
    b_ptr,   # bias [C_out] (read only if HAS_BIAS)
    e_ptr,   # epilogue operand [B, C_out, T_out], any strides: x for grad_x (read only if LRELU_GRAD)
    y_ptr,   # output [B, C_out, T_out], any strides; stored in its own dtype
    # C_in/C_out/T_in/T_out are the kernel's own input/output: for grad_x, C_in is the op's C_out, etc.
    C_in, C_out, T_in, T_out, K, T_BUCKET,  # T_BUCKET (next power of two of T_out) only keys the autotuner
    conv_stride, pad, slope,
    stride_xb, stride_xc, stride_xt,
    stride_eb, stride_ec, stride_et,
    stride_yb, stride_yc, stride_yt,
    # True:  transposed conv, out position t reads in position (t + pad - k) / conv_stride when exact,
    #        computed polyphase (one output phase per program)
    # False: strided conv,    out position t reads in position t * conv_stride - pad + k
    TRANSPOSED: tl.constexpr,
    PROLOGUE_LRELU: tl.constexpr,  # apply leaky-ReLU to every loaded input tile (forward) or not (grad_x)
    HAS_BIAS: tl.constexpr,
    LRELU_GRAD: tl.constexpr,  # y = acc * (1 if e > 0 else slope), e = x: grad_x through the prologue
    DOT_DTYPE: tl.constexpr,  # operand dtype fed to tl.dot; accumulation is always fp32
    BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_T: tl.constexpr,
):
    pid_t = tl.program_id(0)
    pid_co = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)  # int64: batch offsets of long audio can pass 2**31 elements

    co = pid_co * BLOCK_CO + tl.arange(0, BLOCK_CO)
    if TRANSPOSED:
        # Polyphase: axis 0 is (time block, phase). The outputs of phase ph are t = ph + i*stride, and
        # only the taps k = ph + pad (mod stride) reach them, from input position
        # j = (t + pad - k) / stride = i + (ph + pad - k) / stride (exact): a contiguous input tile per
        # tap, and no tap whose products would all be masked away.
        phase = pid_t % conv_stride
        i = (pid_t // conv_stride) * BLOCK_T + tl.arange(0, BLOCK_T)
        t = phase + i * conv_stride
        k_first = (phase + pad) % conv_stride
        k_step = conv_stride
    else:
        t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
        k_first = 0
        k_step = 1
    co_ok = co < C_out
    t_ok = t < T_out

    x_batch = x_ptr + b * stride_xb
    acc = tl.zeros((BLOCK_CO, BLOCK_T), dtype=tl.float32)
    for k in range(k_first, K, k_step):
        if TRANSPOSED:
            # phase + pad - k is a multiple of the stride (possibly negative): the division is exact.
            t_in = i + (phase + pad - k) // conv_stride
        else:
            t_in = t * conv_stride - pad + k
        t_in_ok = (t_in >= 0) & (t_in < T_in)
        # Invalid positions load 0, and masking before the leaky-ReLU is right because leaky(0) = 0.
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
                         mask=co_ok[:, None] & ci_ok[None, :], other=0.0).to(tl.float32)
            # "ieee" keeps fp32 operands out of TF32 (the op promises fp32 accuracy); it is moot for
            # fp16/bf16 operands.
            acc = tl.dot(ws.to(DOT_DTYPE), xs.to(DOT_DTYPE), acc, input_precision="ieee")

    if HAS_BIAS:
        acc += tl.load(b_ptr + co, mask=co_ok, other=0.0).to(tl.float32)[:, None]

    out_mask = co_ok[:, None] & t_ok[None, :]
    if LRELU_GRAD:
        e = tl.load(e_ptr + b * stride_eb + co[:, None] * stride_ec + t[None, :] * stride_et,
                    mask=out_mask, other=0.0).to(tl.float32)
        acc = tl.where(e > 0, acc, acc * slope)

    tl.store(y_ptr + b * stride_yb + co[:, None] * stride_yc + t[None, :] * stride_yt,
             acc.to(y_ptr.dtype.element_ty), mask=out_mask)


@triton.jit
def _grad_weight_kernel(
    g_ptr,   # output gradient [B, C_out, T_out], any strides
    x_ptr,   # forward input [B, C_in, T_in], any strides; leaky-ReLU is recomputed from it
    gw_ptr,  # grad_w partial sums [SPLITS, C_in, C_out, K], any strides (SPLITS = 1: grad_w itself)
    gb_ptr,  # grad_b partial sums [SPLITS, C_out]
    B, C_in, C_out, T_in, T_out, K, T_BUCKET,  # T_BUCKET only keys the autotuner
    conv_stride, pad, slope,
    T_CHUNK,  # program (.., .., k + K*s) reduces over input positions j in [s*T_CHUNK, (s+1)*T_CHUNK)
    stride_gb, stride_gc, stride_gt,
    stride_xb, stride_xc, stride_xt,
    stride_ws, stride_wi, stride_wo, stride_wk,
    stride_bs,
    DOT_DTYPE: tl.constexpr,
    BLOCK_CI: tl.constexpr, BLOCK_CO: tl.constexpr, BLOCK_T: tl.constexpr,
):
    pid_ci = tl.program_id(0)
    pid_co = tl.program_id(1)
    k = tl.program_id(2) % K
    split = tl.program_id(2) // K
    j_start = split * T_CHUNK
    j_end = tl.minimum(j_start + T_CHUNK, T_in)

    ci = pid_ci * BLOCK_CI + tl.arange(0, BLOCK_CI)
    co = pid_co * BLOCK_CO + tl.arange(0, BLOCK_CO)
    ci_ok = ci < C_in
    co_ok = co < C_out

    acc = tl.zeros((BLOCK_CI, BLOCK_CO), dtype=tl.float32)
    # The batch base pointers advance by one stride per item (no b * stride product to overflow int32).
    g_batch = g_ptr
    x_batch = x_ptr
    for _ in range(B):
        for j0 in range(j_start, j_end, BLOCK_T):
            j = j0 + tl.arange(0, BLOCK_T)
            j_ok = j < j_end
            xs = tl.load(x_batch + ci[:, None] * stride_xc + j[None, :] * stride_xt,
                         mask=ci_ok[:, None] & j_ok[None, :], other=0.0).to(tl.float32)
            xs = tl.where(xs > 0, xs, xs * slope)
            # x[j] fed output position j*s - p + k through tap k; positions cropped by padding load 0.
            # Loaded [time, C_out]: the dot's right operand as it is (no transpose in registers).
            t = j * conv_stride - pad + k
            t_ok = j_ok & (t >= 0) & (t < T_out)
            gs = tl.load(g_batch + t[:, None] * stride_gt + co[None, :] * stride_gc,
                         mask=t_ok[:, None] & co_ok[None, :], other=0.0).to(tl.float32)
            # [BLOCK_CI, BLOCK_T] @ [BLOCK_T, BLOCK_CO]: the reduction runs over time.
            acc = tl.dot(xs.to(DOT_DTYPE), gs.to(DOT_DTYPE), acc, input_precision="ieee")
        g_batch += stride_gb
        x_batch += stride_xb

    tl.store(gw_ptr + split * stride_ws + ci[:, None] * stride_wi + co[None, :] * stride_wo + k * stride_wk,
             acc.to(gw_ptr.dtype.element_ty), mask=ci_ok[:, None] & co_ok[None, :])

    # grad_b[co] = sum_{b, t} g: every output position, so its own loop, run by the programs of the first
    # C_in block and tap: output positions [s*T_CHUNK*stride, (s+1)*T_CHUNK*stride), the last split to T_out.
    if (pid_ci == 0) & (k == 0):
        t_start = j_start * conv_stride
        t_end = tl.where(j_end == T_in, T_out, j_end * conv_stride)
        acc_b = tl.zeros((BLOCK_CO,), dtype=tl.float32)
        g_batch = g_ptr
        for _ in range(B):
            for t0 in range(t_start, t_end, BLOCK_T):
                t = t0 + tl.arange(0, BLOCK_T)
                gs = tl.load(g_batch + co[:, None] * stride_gc + t[None, :] * stride_gt,
                             mask=co_ok[:, None] & (t < t_end)[None, :], other=0.0).to(tl.float32)
                acc_b += tl.sum(gs, axis=1)
            g_batch += stride_gb
        tl.store(gb_ptr + split * stride_bs + co, acc_b.to(gb_ptr.dtype.element_ty), mask=co_ok)


# ------------------------------------------------------------------------------------------- autotuning

# The tile sets are in _tiles.py. Keyed on shapes, the tap geometry and T_out bucketed to a power of
# two, so a new audio length reuses the tuning of its bucket instead of re-running the autotuner.
conv_kernel = tuned(_conv_kernel, CONV_CONFIGS,
                     key=["C_in", "C_out", "T_BUCKET", "K", "conv_stride", "TRANSPOSED"])
grad_weight_kernel = tuned(_grad_weight_kernel, GRAD_WEIGHT_CONFIGS,
                            key=["C_in", "C_out", "T_BUCKET", "K", "conv_stride"])


def out_len(t_in, k, stride, padding, output_padding=0):
    """T_out of the transposed conv: (T_in - 1)*stride - 2*padding + K + output_padding."""
    return (t_in - 1) * stride - 2 * padding + k + output_padding


def pack_weight(weight):
    """weight [C_in, C_out, K] -> [K, C_out, C_in], contiguous: the layout the forward kernel reads.

    Each tap's [BLOCK_CO, BLOCK_CI] weight tile is then one contiguous run per row. The launchers keep
    it on the weight (cached_on) until the weight changes.
    """
    return weight.permute(2, 1, 0).contiguous()


def _pack_for_grad_x(weight):
    """The packed weight of grad_x's strided conv: [K, C_in, C_out] (C_out is its reduction)."""
    return weight.permute(2, 0, 1).contiguous()


def _check_int(name, v, minimum):
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {v!r}")


def _check(x, weight, bias, stride, padding, output_padding):
    """Validates the forward's arguments; returns T_out."""
    for name, t in (("x", x), ("weight", weight)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 3:
            raise ValueError(f"{name}: expected a 3-D tensor, got shape {tuple(t.shape)}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"x: the Triton kernel supports {SUPPORTED_DTYPES}, got {x.dtype}")
    c_in, c_out, k = weight.shape
    if c_in != x.shape[1]:
        raise ValueError(f"weight: expected shape ({x.shape[1]}, C_out, K) for x of shape {tuple(x.shape)} "
                         f"(ConvTranspose1d layout [C_in, C_out, K]), got {tuple(weight.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor or None, got {type(t).__name__}")
        if t is not None and (t.dtype != x.dtype or t.device != x.device):
            raise TypeError(f"{name}: expected dtype {x.dtype} on {x.device} (same as x), "
                            f"got {t.dtype} on {t.device}")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"bias: expected shape {(c_out,)}, got {tuple(bias.shape)}")
    _check_int("stride", stride, 1)
    _check_int("padding", padding, 0)
    _check_int("output_padding", output_padding, 0)
    if output_padding >= stride:
        raise ValueError(f"output_padding: expected an int < stride ({stride}), got {output_padding}")
    if k < 1:
        raise ValueError(f"weight: expected a kernel size K >= 1, got shape {tuple(weight.shape)}")
    t_out = out_len(x.shape[2], k, stride, padding, output_padding)
    if x.shape[2] < 1 or t_out < 1:
        raise ValueError(f"x: length T_in={x.shape[2]} gives T_out={t_out} < 1 for K={k}, stride={stride}, "
                         f"padding={padding}; expected T_out = (T_in - 1)*stride - 2*padding + K >= 1")
    check_device("x", x)
    return t_out


def _launch_conv(inp, packed, bias, e, out, stride, padding, slope, transposed, dtype):
    """out = conv(prologue(inp)) (+ bias) (* leaky'(e)); transposed: the forward, else grad_x over g."""
    batch, c_in, t_in = inp.shape
    k, c_out, _ = packed.shape
    t_out = out.shape[2]
    e_strides = e.stride() if e is not None else (0, 0, 0)

    def grid(meta):
        if transposed:  # (time block, phase) pairs: each phase has at most cdiv(t_out, stride) outputs
            return (stride * triton.cdiv(triton.cdiv(t_out, stride), meta["BLOCK_T"]),
                    triton.cdiv(c_out, meta["BLOCK_CO"]), batch)
        return (triton.cdiv(t_out, meta["BLOCK_T"]), triton.cdiv(c_out, meta["BLOCK_CO"]), batch)

    conv_kernel[grid](
        inp, packed, bias if bias is not None else packed, e if e is not None else out, out,
        c_in, c_out, t_in, t_out, k, triton.next_power_of_2(t_out),
        stride, padding, slope,
        *inp.stride(), *e_strides, *out.stride(),
        TRANSPOSED=transposed, PROLOGUE_LRELU=transposed, HAS_BIAS=bias is not None,
        LRELU_GRAD=e is not None, DOT_DTYPE=dot_dtype(dtype), **meta(INTERPRETER_CONV_CONFIG))


def lrelu_conv_transpose1d_triton(x, weight, bias=None, stride=1, padding=0, slope=0.1, output_padding=0):
    """Forward of lrelu_conv_transpose1d on the Triton kernel; y [B, C_out, T_out] in x's dtype.

    x [B, C_in, T_in] may be non-contiguous (e.g. a slice): strides go to the kernel, nothing is copied.
    The packed weight is made on the first call and kept on `weight` until it changes.
    """
    t_out = _check(x, weight, bias, stride, padding, output_padding)
    packed = cached_on(weight, "lrelu_conv_transpose1d", pack_weight)
    y = empty_out((x.shape[0], weight.shape[1], t_out), x)
    _launch_conv(x, packed, bias, None, y, stride, padding, float(slope), transposed=True, dtype=x.dtype)
    return finish(y, x.dtype)


def lrelu_conv_transpose1d_backward_triton(grad_out, x, weight, stride, padding, slope, output_padding=0):
    """Gradients (grad_x, grad_w, grad_b) of lrelu_conv_transpose1d, in x's dtype.

    Same signature and results as lrelu_conv_transpose1d_backward_ref: grad_b is always computed (the
    caller drops it when there is no bias). Leaky-ReLU is recomputed from x, not stored. grad_out and x
    may be non-contiguous.
    """
    t_out = _check(x, weight, None, stride, padding, output_padding)
    batch, c_in, t_in = x.shape
    _, c_out, k = weight.shape
    expected = (batch, c_out, t_out)
    if not isinstance(grad_out, torch.Tensor):
        raise TypeError(f"grad_out: expected a torch.Tensor, got {type(grad_out).__name__}")
    if tuple(grad_out.shape) != expected or grad_out.dtype != x.dtype or grad_out.device != x.device:
        raise ValueError(f"grad_out: expected shape {expected}, dtype {x.dtype} on {x.device}, got "
                         f"{tuple(grad_out.shape)}, {grad_out.dtype} on {grad_out.device}")
    slope = float(slope)

    # grad_x: x[j] reached y[j*s - p + k] through tap k, so its gradient gathers g there: a strided conv
    # over g with weights [K, C_in, C_out] (C_out is the reduction), times leaky'(x).
    grad_x = empty_out(x.shape, x)
    _launch_conv(grad_out, cached_on(weight, "lrelu_conv_transpose1d grad_x", _pack_for_grad_x), None, x, grad_x, stride, padding, slope,
                 transposed=False, dtype=x.dtype)

    splits, chunk = time_splits(triton.cdiv(c_in, 64) * triton.cdiv(c_out, 64) * k, t_in, x.device,
                                INTERPRETER_GRAD_WEIGHT_CONFIG["BLOCK_T"])
    # Partial sums per time chunk (late stages: few channels, long audio), added in fp32 below.
    grad_w, grad_b = split_partials(splits, weight.shape, x), split_partials(splits, (c_out,), x)

    def grid(meta):
        return (triton.cdiv(c_in, meta["BLOCK_CI"]), triton.cdiv(c_out, meta["BLOCK_CO"]), k * splits)

    grad_weight_kernel[grid](
        grad_out, x, grad_w, grad_b,
        batch, c_in, c_out, t_in, t_out, k, triton.next_power_of_2(t_out),
        stride, padding, slope, chunk,
        *grad_out.stride(), *x.stride(), *grad_w.stride(), grad_b.stride(0),
        DOT_DTYPE=dot_dtype(x.dtype), **meta(INTERPRETER_GRAD_WEIGHT_CONFIG))
    return finish(grad_x, x.dtype), add_partials(grad_w, x.dtype), add_partials(grad_b, x.dtype)

"""Triton kernels for conv1d_lrelu: strided, grouped conv1d + bias + leaky-ReLU (the HiFi-GAN discriminators).

The contract and the ground truth are in vocoder_ext/ops/conv1d_lrelu.py (conv1d_lrelu_ref and
conv1d_lrelu_backward_ref). Shapes (channels first), cg = C_in / groups, og = C_out / groups:

    x [B, C_in, T] or [B, C_in, T, W] (W columns, each convolved along T: the MPD's (K, 1) conv2d),
    weight [C_out, cg, K], bias [C_out] or None, T_out = (T + 2p - K) // s + 1
    y[b, co, t, w] = leaky(bias[co] + sum_{ci, k} weight[co, ci, k] * x[b, g*cg + ci, t*s + k - p, w]),
    g = co // og the group of co; positions outside [0, T) read 0 (the zero padding); slope 1: no leaky.

Every kernel flattens (time, column) into one axis n = t * W + w (3-D x is W = 1), so a short time axis
with many columns still fills a tile, and runs one group of one batch item per program (grid axis 2).
Three @triton.jit kernels, each an implicit GEMM with tl.dot in fp32:

- `_conv_kernel` (forward): an output tile [BLOCK_CO, BLOCK_T] of y; the reduction runs over the
  flattened (input channel, tap) axis r = ci * K + k of the group, BLOCK_CI at a time: weight[co, r]
  (the weight's own layout, no packing) @ x gathered at (ci, t*s + k - p). Folding the taps into the
  reduction keeps the dot full for the MSD's 4-channel groups and the 1-channel first layers. Epilogue:
  bias, then leaky-ReLU.
- `_grad_x_kernel`: grad_x = the transposed conv of g = grad_out * leaky'(out) (leaky' from the sign of
  out; slope > 0 keeps it). Gather form, polyphase: the programs of phase ph own the input positions
  t = ph + j*s, which only the taps k = ph + p (mod s) reach, from output position j + q - u for tap
  k0 + u*s (q = (ph + p - k0) / s, exact). The reduction runs over (output channel, u) of the group:
  weight^T tiles @ g gathered there; no product is wasted on a tap that cannot reach the phase.
  A check of the gradients against a higher-precision reference must give both the same `out`: an fp32
  output within rounding of 0 can have the other sign than an fp64 one (about one per 10^6 outputs at
  1024 x 5 deep reductions), and leaky' there differs by (1 - slope) * g, one weight column in grad_x.
- `_grad_weight_kernel`: grad_w[co, r] = sum_{b, t, w} g[b, co, t, w] * x[b, g*cg + ci, t*s + k - p, w]
  (r = ci*K + k as in the forward), one program per [BLOCK_CO, BLOCK_CI] tile of the group's weight and
  chunk of n, reducing over B and its chunk's blocks of n with tl.dot; grad_b (= g summed) rides along.
  Chunks (time_splits) are separate programs whose partial sums are added in fp32 afterwards, as in
  kernels/lrelu_conv1d.py: deterministic, no atomics.

Inputs and outputs take any strides (slices, the MPD's folded views): strides go to the kernels, nothing
is copied. fp32/fp16/bf16 (SUPPORTED_DTYPES), fp32 accumulation; fp64 is left to the op's reference
(vocoder_ext/ops/conv1d_lrelu.py). On a GPU the kernels are autotuned over the tile sets of _tiles.py
(CONV1D_LRELU_*); under the interpreter (TRITON_INTERPRET=1, the tests) they run one fixed config, as
the other kernel modules (kernels/_launch.py).
"""
import torch
import triton
import triton.language as tl

from ._launch import (
    INTERPRET,
    SUPPORTED_DTYPES,
    add_partials,
    check_device,
    dot_dtype,
    empty_out,
    finish,
    meta,
    split_partials,
    time_splits,
    tuned,
)
from ._tiles import (
    CONV1D_LRELU_CONFIGS,
    CONV1D_LRELU_GRAD_WEIGHT_CONFIGS,
    INTERPRETER_CONV1D_LRELU_CONFIG,
)

# --------------------------------------------------------------------------------------------- kernels


@triton.jit
def _conv_kernel(
    x_ptr,  # x [B, C_in, T, W], any strides (3-D x: W = 1, stride_xw = 0)
    w_ptr,  # weight [C_out, C_in / GROUPS, K], any strides
    b_ptr,  # bias [C_out] (read only if HAS_BIAS)
    y_ptr,  # y [B, C_out, T_out, W], any strides; stored in its own dtype
    C_in, C_out, T, T_out, W, K, GROUPS, N_BUCKET,  # N_BUCKET (next power of two of T_out * W) keys the autotuner
    conv_stride, pad, slope,
    stride_xb, stride_xc, stride_xt, stride_xw,
    stride_wo, stride_wi, stride_wk,
    stride_yb, stride_yc, stride_yt, stride_yw,
    HAS_BIAS: tl.constexpr,
    ACTIVATED: tl.constexpr,  # slope != 1: leaky-ReLU epilogue
    DOT_DTYPE: tl.constexpr,  # operand dtype fed to tl.dot; accumulation is always fp32
    BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_T: tl.constexpr,  # BLOCK_CI: of (ci, k) = the dot's depth
):
    pid_n = tl.program_id(0)
    pid_co = tl.program_id(1)
    pid_bg = tl.program_id(2)
    b = (pid_bg // GROUPS).to(tl.int64)  # int64: batch offsets of long audio can pass 2**31 elements
    grp = pid_bg % GROUPS
    cg = C_in // GROUPS
    og = C_out // GROUPS

    co_local = pid_co * BLOCK_CO + tl.arange(0, BLOCK_CO)
    co_ok = co_local < og
    co = grp * og + co_local
    n = pid_n * BLOCK_T + tl.arange(0, BLOCK_T)
    n_ok = n < T_out * W
    t_out = n // W
    col = n % W
    t_base = t_out * conv_stride - pad

    x_group = x_ptr + b * stride_xb + (grp * cg).to(tl.int64) * stride_xc
    acc = tl.zeros((BLOCK_CO, BLOCK_T), dtype=tl.float32)
    for r0 in range(0, cg * K, BLOCK_CI):
        r = r0 + tl.arange(0, BLOCK_CI)
        r_ok = r < cg * K
        ci = r // K
        k = r % K
        # Positions outside [0, T) load 0: the zero padding.
        t_in = t_base[None, :] + k[:, None]
        x_ok = r_ok[:, None] & n_ok[None, :] & (t_in >= 0) & (t_in < T)
        xs = tl.load(x_group + ci[:, None] * stride_xc + t_in * stride_xt + col[None, :] * stride_xw,
                     mask=x_ok, other=0.0)
        ws = tl.load(w_ptr + co[:, None] * stride_wo + ci[None, :] * stride_wi + k[None, :] * stride_wk,
                     mask=co_ok[:, None] & r_ok[None, :], other=0.0)
        # "ieee" keeps fp32 operands out of TF32 (the op promises fp32 accuracy); moot for fp16/bf16.
        acc = tl.dot(ws.to(DOT_DTYPE), xs.to(DOT_DTYPE), acc, input_precision="ieee")

    if HAS_BIAS:
        acc += tl.load(b_ptr + co, mask=co_ok, other=0.0).to(tl.float32)[:, None]
    if ACTIVATED:
        acc = tl.where(acc > 0, acc, acc * slope)
    tl.store(y_ptr + b * stride_yb + co[:, None] * stride_yc + t_out[None, :] * stride_yt + col[None, :] * stride_yw,
             acc.to(y_ptr.dtype.element_ty), mask=co_ok[:, None] & n_ok[None, :])


@triton.jit
def _grad_x_kernel(
    g_ptr,  # grad_out [B, C_out, T_out, W], any strides
    o_ptr,  # the forward's output, same shape, any strides (read only if ACTIVATED: leaky' from its sign)
    w_ptr,  # weight [C_out, C_in / GROUPS, K], any strides
    y_ptr,  # grad_x [B, C_in, T, W], any strides; stored in its own dtype
    C_in, C_out, T, T_out, W, K, GROUPS, N_BUCKET,  # N_BUCKET: next power of two of ceil(T / s) * W
    conv_stride, pad, slope,
    stride_gb, stride_gc, stride_gt, stride_gw,
    stride_ob, stride_oc, stride_ot, stride_ow,
    stride_wo, stride_wi, stride_wk,
    stride_yb, stride_yc, stride_yt, stride_yw,
    ACTIVATED: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    # The roles of the forward's conv kernel: BLOCK_CO rows of what this kernel writes (x's channels),
    # BLOCK_CI of the flattened (output channel, tap) reduction = the dot's depth.
    BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_T: tl.constexpr,
):
    pid_n = tl.program_id(0)
    phase = tl.program_id(1) % conv_stride
    pid_c = tl.program_id(1) // conv_stride
    pid_bg = tl.program_id(2)
    b = (pid_bg // GROUPS).to(tl.int64)
    grp = pid_bg % GROUPS
    cg = C_in // GROUPS
    og = C_out // GROUPS

    ci_local = pid_c * BLOCK_CO + tl.arange(0, BLOCK_CO)
    ci_ok = ci_local < cg
    n = pid_n * BLOCK_T + tl.arange(0, BLOCK_T)
    j = n // W
    col = n % W
    t = phase + j * conv_stride  # this phase's input positions
    n_ok = t < T

    # The taps that reach phase ph: k = k0 + u*s, u < taps, reading output position j + q - u.
    k0 = (phase + pad) % conv_stride
    taps = (K - k0 + conv_stride - 1) // conv_stride  # 0 when k0 >= K (the numerator is > 0 either way)
    q = (phase + pad - k0) // conv_stride

    g_group = g_ptr + b * stride_gb + (grp * og).to(tl.int64) * stride_gc
    o_group = o_ptr + b * stride_ob + (grp * og).to(tl.int64) * stride_oc
    w_group = w_ptr + (grp * og).to(tl.int64) * stride_wo
    acc = tl.zeros((BLOCK_CO, BLOCK_T), dtype=tl.float32)
    for r0 in range(0, og * taps, BLOCK_CI):
        r = r0 + tl.arange(0, BLOCK_CI)
        r_ok = r < og * taps
        co_local = r // taps
        u = r % taps
        t_out = j[None, :] + q - u[:, None]
        g_ok = r_ok[:, None] & n_ok[None, :] & (t_out >= 0) & (t_out < T_out)
        gs = tl.load(g_group + co_local[:, None] * stride_gc + t_out * stride_gt + col[None, :] * stride_gw,
                     mask=g_ok, other=0.0).to(tl.float32)
        if ACTIVATED:
            outs = tl.load(o_group + co_local[:, None] * stride_oc + t_out * stride_ot + col[None, :] * stride_ow,
                         mask=g_ok, other=0.0)
            gs = tl.where(outs > 0, gs, gs * slope)
        ws = tl.load(w_group + co_local[None, :] * stride_wo + ci_local[:, None] * stride_wi
                     + (k0 + u * conv_stride)[None, :] * stride_wk,
                     mask=ci_ok[:, None] & r_ok[None, :], other=0.0)
        acc = tl.dot(ws.to(DOT_DTYPE), gs.to(DOT_DTYPE), acc, input_precision="ieee")

    ci = grp * cg + ci_local
    tl.store(y_ptr + b * stride_yb + ci[:, None] * stride_yc + t[None, :] * stride_yt + col[None, :] * stride_yw,
             acc.to(y_ptr.dtype.element_ty), mask=ci_ok[:, None] & n_ok[None, :])


@triton.jit
def _grad_weight_kernel(
    g_ptr,   # grad_out [B, C_out, T_out, W], any strides
    o_ptr,   # the forward's output (read only if ACTIVATED)
    x_ptr,   # x [B, C_in, T, W], any strides
    gw_ptr,  # grad_w partial sums [SPLITS, C_out, (C_in / GROUPS) * K], any strides (SPLITS = 1: grad_w itself)
    gb_ptr,  # grad_b partial sums [SPLITS, C_out]
    B, C_in, C_out, T, T_out, W, K, GROUPS, N_BUCKET,  # N_BUCKET only keys the autotuner
    conv_stride, pad, slope,
    N_CHUNK,  # program (.., .., grp + GROUPS*s) reduces over n in [s*N_CHUNK, (s+1)*N_CHUNK) of every batch item
    stride_gb, stride_gc, stride_gt, stride_gw,
    stride_ob, stride_oc, stride_ot, stride_ow,
    stride_xb, stride_xc, stride_xt, stride_xw,
    stride_ws, stride_wo, stride_wr,
    stride_bs,
    ACTIVATED: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_T: tl.constexpr,  # BLOCK_T: of n = the dot's depth
):
    pid_co = tl.program_id(0)
    pid_r = tl.program_id(1)
    grp = tl.program_id(2) % GROUPS
    split = tl.program_id(2) // GROUPS
    cg = C_in // GROUPS
    og = C_out // GROUPS
    n_start = split * N_CHUNK
    n_end = tl.minimum(n_start + N_CHUNK, T_out * W)

    co_local = pid_co * BLOCK_CO + tl.arange(0, BLOCK_CO)
    co_ok = co_local < og
    co = grp * og + co_local
    r = pid_r * BLOCK_CI + tl.arange(0, BLOCK_CI)
    r_ok = r < cg * K
    ci = grp * cg + r // K
    k = r % K

    acc = tl.zeros((BLOCK_CO, BLOCK_CI), dtype=tl.float32)
    acc_b = tl.zeros((BLOCK_CO,), dtype=tl.float32)
    # The batch base pointers advance by one stride per item (no b * stride product to overflow int32).
    g_batch = g_ptr
    o_batch = o_ptr
    x_batch = x_ptr
    for _ in range(B):
        for n0 in range(n_start, n_end, BLOCK_T):
            n = n0 + tl.arange(0, BLOCK_T)
            n_ok = n < n_end
            t_out = n // W
            col = n % W
            g_ok = co_ok[:, None] & n_ok[None, :]
            gs = tl.load(g_batch + co[:, None] * stride_gc + t_out[None, :] * stride_gt + col[None, :] * stride_gw,
                         mask=g_ok, other=0.0).to(tl.float32)
            if ACTIVATED:
                outs = tl.load(o_batch + co[:, None] * stride_oc + t_out[None, :] * stride_ot
                             + col[None, :] * stride_ow, mask=g_ok, other=0.0)
                gs = tl.where(outs > 0, gs, gs * slope)
            # The input each (ci, k) of the tile met at these outputs, loaded [n, r]: the dot's right operand.
            t_in = (t_out * conv_stride - pad)[:, None] + k[None, :]
            x_ok = n_ok[:, None] & r_ok[None, :] & (t_in >= 0) & (t_in < T)
            xs = tl.load(x_batch + ci[None, :] * stride_xc + t_in * stride_xt + col[:, None] * stride_xw,
                         mask=x_ok, other=0.0)
            # [BLOCK_CO, BLOCK_T] @ [BLOCK_T, BLOCK_CI]: the reduction runs over (time, column).
            acc = tl.dot(gs.to(DOT_DTYPE), xs.to(DOT_DTYPE), acc, input_precision="ieee")
            acc_b += tl.sum(gs, axis=1)
        g_batch += stride_gb
        o_batch += stride_ob
        x_batch += stride_xb

    tl.store(gw_ptr + split * stride_ws + co[:, None] * stride_wo + r[None, :] * stride_wr,
             acc.to(gw_ptr.dtype.element_ty), mask=co_ok[:, None] & r_ok[None, :])
    # Every (ci, k) block of a split summed the same g; the first one writes grad_b.
    tl.store(gb_ptr + split * stride_bs + co, acc_b.to(gb_ptr.dtype.element_ty), mask=co_ok & (pid_r == 0))


# ------------------------------------------------------------------------------------------- autotuning

# Keyed on the shapes, with the flattened output length bucketed to a power of two (a new audio length
# reuses its bucket's tuning).
_KEY = ["C_in", "C_out", "K", "GROUPS", "conv_stride", "N_BUCKET", "ACTIVATED"]
conv_kernel = tuned(_conv_kernel, CONV1D_LRELU_CONFIGS, key=_KEY + ["HAS_BIAS"])
grad_x_kernel = tuned(_grad_x_kernel, CONV1D_LRELU_CONFIGS, key=_KEY)
grad_weight_kernel = tuned(_grad_weight_kernel, CONV1D_LRELU_GRAD_WEIGHT_CONFIGS, key=_KEY)


# ------------------------------------------------------------------------------------------ launchers

def out_len(t, k, stride, padding):
    return (t + 2 * padding - k) // stride + 1


def _int(name, v, minimum):
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {v!r}")


def _check(x, weight, bias, stride, padding, groups, slope):
    """The launchers' own checks (the op wrapper checks more, with the same messages); returns T_out."""
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
        raise ValueError(f"x: expected a 3-D [B, C, T] or 4-D [B, C, T, W] tensor, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 3:
        raise ValueError(f"weight: expected a 3-D tensor [C_out, C_in / groups, K], got "
                         f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"x: the Triton kernel supports {SUPPORTED_DTYPES}, got {x.dtype}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and (t.dtype != x.dtype or t.device != x.device):
            raise TypeError(f"{name}: expected dtype {x.dtype} on {x.device} (same as x), got {t.dtype} on {t.device}")
    _int("stride", stride, 1)
    _int("padding", padding, 0)
    _int("groups", groups, 1)
    c_out, cg, k = weight.shape
    if x.shape[1] % groups or c_out % groups or cg * groups != x.shape[1]:
        raise ValueError(f"weight: expected shape (C_out, C_in / groups, K) with C_out a multiple of "
                         f"groups={groups}, for x of shape {tuple(x.shape)}, got {tuple(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"bias: expected shape {(c_out,)}, got {tuple(bias.shape)}")
    if not slope > 0:
        raise ValueError(f"slope: expected a leaky-ReLU slope > 0 (1 for none), got {slope!r}")
    if x.shape[2] + 2 * padding < k:
        raise ValueError(f"x: length {x.shape[2]} with padding {padding} is shorter than the kernel (K={k})")
    check_device("x", x)
    return out_len(x.shape[2], k, stride, padding)


def _strides4(t):
    """(b, c, t, w) strides of a [B, C, T] (w: 0, one column) or [B, C, T, W] tensor."""
    return (*t.stride(), 0) if t.dim() == 3 else t.stride()


def conv1d_lrelu_triton(x, weight, bias, stride=1, padding=0, groups=1, slope=0.1):
    """Forward of conv1d_lrelu on the Triton kernel: y [B, C_out, T_out(, W)] in x's dtype."""
    t_out = _check(x, weight, bias, stride, padding, groups, slope)
    batch, c_in, t_len = x.shape[:3]
    cols = x.shape[3] if x.dim() == 4 else 1
    c_out, _, k = weight.shape
    y = empty_out((batch, c_out, t_out, *x.shape[3:]), x)
    n_len = t_out * cols

    def grid(meta):
        return (triton.cdiv(n_len, meta["BLOCK_T"]), triton.cdiv(c_out // groups, meta["BLOCK_CO"]), batch * groups)

    conv_kernel[grid](
        x, weight, bias if bias is not None else weight, y,
        c_in, c_out, t_len, t_out, cols, k, groups, triton.next_power_of_2(n_len),
        stride, padding, float(slope),
        *_strides4(x), *weight.stride(), *_strides4(y),
        HAS_BIAS=bias is not None, ACTIVATED=float(slope) != 1.0, DOT_DTYPE=dot_dtype(x.dtype),
        **meta(INTERPRETER_CONV1D_LRELU_CONFIG))
    return finish(y, x.dtype)


def conv1d_lrelu_backward_triton(grad_out, out, x, weight, stride, padding, groups, slope):
    """(grad_x, grad_w, grad_b) of conv1d_lrelu, in x's dtype; leaky' is read from the sign of `out`
    (the forward's output). grad_b is always computed (the op's schema returns it)."""
    t_out = _check(x, weight, None, stride, padding, groups, slope)
    want = (x.shape[0], weight.shape[0], t_out, *x.shape[3:])
    for name, t in (("grad_out", grad_out), ("out", out)):
        if tuple(t.shape) != want or t.dtype != x.dtype or t.device != x.device:
            raise ValueError(f"{name}: expected shape {want}, dtype {x.dtype} on {x.device}, got "
                             f"{tuple(t.shape)}, {t.dtype} on {t.device}")
    slope = float(slope)
    batch, c_in, t_len = x.shape[:3]
    cols = x.shape[3] if x.dim() == 4 else 1
    c_out, cg, k = weight.shape
    og = c_out // groups
    common = (c_in, c_out, t_len, t_out, cols, k, groups)
    activated, dot = slope != 1.0, dot_dtype(x.dtype)

    grad_x = empty_out(x.shape, x)
    n_x = triton.cdiv(t_len, stride) * cols  # the first phase's positions (the most of any phase)

    def grid_x(meta):
        return (triton.cdiv(n_x, meta["BLOCK_T"]), stride * triton.cdiv(cg, meta["BLOCK_CO"]), batch * groups)

    grad_x_kernel[grid_x](
        grad_out, out, weight, grad_x, *common, triton.next_power_of_2(n_x), stride, padding, slope,
        *_strides4(grad_out), *_strides4(out), *weight.stride(), *_strides4(grad_x),
        ACTIVATED=activated, DOT_DTYPE=dot, **meta(INTERPRETER_CONV1D_LRELU_CONFIG))

    # grad_w (+ grad_b): the reduction over B x (T_out * W), split into chunks run by separate programs when
    # the weight alone has too few tiles to fill the GPU, then summed in fp32.
    n_len = t_out * cols
    splits, chunk = time_splits(triton.cdiv(og, 64) * triton.cdiv(cg * k, 64) * groups, n_len, x.device,
                                INTERPRETER_CONV1D_LRELU_CONFIG["BLOCK_T"])
    grad_w = split_partials(splits, (c_out, cg * k), x)
    grad_b = split_partials(splits, (c_out,), x)

    def grid_w(meta):
        return (triton.cdiv(og, meta["BLOCK_CO"]), triton.cdiv(cg * k, meta["BLOCK_CI"]), groups * splits)

    grad_weight_kernel[grid_w](
        grad_out, out, x, grad_w, grad_b, batch, *common, triton.next_power_of_2(n_len), stride, padding, slope,
        chunk, *_strides4(grad_out), *_strides4(out), *_strides4(x), *grad_w.stride(), grad_b.stride(0),
        ACTIVATED=activated, DOT_DTYPE=dot, **meta(INTERPRETER_CONV1D_LRELU_CONFIG))
    return (finish(grad_x, x.dtype), add_partials(grad_w, x.dtype).view(c_out, cg, k),
            add_partials(grad_b, x.dtype))

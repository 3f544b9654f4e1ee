"""Triton kernels for invertible_conv1x1: WaveGlow's c x c channel mix (c <= 8 there), forward and backward.

The contract and the ground truth are in vocoder_ext/ops/invertible_conv1x1.py (invertible_conv1x1_ref,
invertible_conv1x1_backward_ref). x [B, c, T], weight [c, c, 1]:

    forward: (W x, B*T*log|det W|)          reverse: (W^-1 x, -B*T*log|det W|)

What is per element runs here; what is c x c stays in torch, as the reference computes it (slogdet and
the inverse of W in fp32, matrix products of c x c matrices): a few microseconds, whatever T is.

- `_mix_kernel`: y[b, :, t] = M x[b, :, t] for an fp32 c x c matrix M, one program per time tile of one
  batch item, the c input rows streamed once each (rank-1 FMA updates of a [C_PAD, BLOCK_T] fp32 tile;
  c is far too small for tl.dot). M is W rounded to x's dtype (the forward product runs in x's dtype,
  as the reference's conv1d does), W^-1 (reverse), or W^T / W^-T (grad_x).
- `_outer_kernel`: S = sum_{b,t} g[b, :, t] x[b, :, t]^T, the c x c reduction the weight gradient needs,
  as fp32 partial sums over time chunks (time_splits, one program each) added afterwards in torch:
  deterministic, no atomics. Forward: grad_W = S + grad_log_det * B*T * W^-T; reverse (y = V x, V = W^-1):
  grad_W = -V^T S V^T - grad_log_det * B*T * V^T.

c is padded to C_PAD, the next power of two; the kernels take c <= MAX_CHANNELS (the outer product
tile grows as C_PAD^2). Tiles: _tiles.MIX_CONFIGS / OUTER_CONFIGS, fp32 FMAs whatever the dtype.
Tested under the Triton interpreter and compiled for sm_80/sm_90 (bench --static); not yet run or
timed on a GPU.
"""
import torch
import triton
import triton.language as tl

from ._launch import INTERPRET, SUPPORTED_DTYPES, check_device, empty_out, finish, meta, time_splits, tuned_one_set
from ._tiles import INTERPRETER_MIX_CONFIG, MIX_CONFIGS, OUTER_CONFIGS

MAX_CHANNELS = 16


@triton.jit
def _mix_kernel(
    x_ptr,  # x [B, C, T], any strides
    m_ptr,  # M [C, C], fp32, contiguous
    y_ptr,  # y [B, C, T], any strides
    C, T, T_BUCKET,  # T_BUCKET only keys the autotuner
    stride_xb, stride_xc, stride_xt,
    stride_yb, stride_yc, stride_yt,
    C_PAD: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    b = tl.program_id(1).to(tl.int64)
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    t_ok = t < T
    co = tl.arange(0, C_PAD)
    co_ok = co < C
    x_batch = x_ptr + b * stride_xb
    acc = tl.zeros((C_PAD, BLOCK_T), dtype=tl.float32)
    for ci in range(C):
        m = tl.load(m_ptr + co * C + ci, mask=co_ok, other=0.0)
        xs = tl.load(x_batch + ci * stride_xc + t * stride_xt, mask=t_ok, other=0.0).to(tl.float32)
        acc += m[:, None] * xs[None, :]
    tl.store(y_ptr + b * stride_yb + co[:, None] * stride_yc + t[None, :] * stride_yt,
             acc.to(y_ptr.dtype.element_ty), mask=co_ok[:, None] & t_ok[None, :])


@triton.jit
def _outer_kernel(
    g_ptr,    # g [B, C, T], any strides
    x_ptr,    # x [B, C, T], any strides
    out_ptr,  # partial sums [SPLITS, C, C], fp32, contiguous
    B, C, T, T_BUCKET,
    T_CHUNK,  # program s sums t in [s*T_CHUNK, (s+1)*T_CHUNK) of every batch item
    stride_gb, stride_gc, stride_gt,
    stride_xb, stride_xc, stride_xt,
    C_PAD: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    split = tl.program_id(0)
    t_start = split * T_CHUNK
    t_end = tl.minimum(t_start + T_CHUNK, T)
    c = tl.arange(0, C_PAD)
    c_ok = c < C
    acc = tl.zeros((C_PAD, C_PAD), dtype=tl.float32)
    # The batch base pointers advance by one stride per item (no b * stride product to overflow int32).
    g_batch = g_ptr
    x_batch = x_ptr
    for _ in range(B):
        for t0 in range(t_start, t_end, BLOCK_T):
            t = t0 + tl.arange(0, BLOCK_T)
            mask = c_ok[:, None] & (t < t_end)[None, :]
            gs = tl.load(g_batch + c[:, None] * stride_gc + t[None, :] * stride_gt, mask=mask, other=0.0)
            xs = tl.load(x_batch + c[:, None] * stride_xc + t[None, :] * stride_xt, mask=mask, other=0.0)
            acc += tl.sum(gs.to(tl.float32)[:, None, :] * xs.to(tl.float32)[None, :, :], axis=2)
        g_batch += stride_gb
        x_batch += stride_xb
    tl.store(out_ptr + split * C * C + c[:, None] * C + c[None, :], acc, mask=c_ok[:, None] & c_ok[None, :])


mix_kernel = tuned_one_set(_mix_kernel, MIX_CONFIGS, key=["C", "T_BUCKET"])
outer_kernel = tuned_one_set(_outer_kernel, OUTER_CONFIGS, key=["C", "T_BUCKET"])


def _check(x, weight):
    for name, t in (("x", x), ("weight", weight)):
        if t.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"{name}: the Triton kernels support {SUPPORTED_DTYPES}, got {t.dtype}")
    if weight.device != x.device:
        raise ValueError(f"weight: expected device {x.device} (same as x), got {weight.device}")
    if x.shape[1] > MAX_CHANNELS:
        raise ValueError(f"x: the Triton kernels mix at most {MAX_CHANNELS} channels (WaveGlow's groups are "
                         f"8), got {x.shape[1]}")
    check_device("x", x)


def _mix(inp, matrix, like):
    """matrix [c, c] (fp32) applied to every [c] column of inp [B, c, T]; the result in like's dtype."""
    batch, c, t_len = inp.shape
    out = empty_out(inp.shape, like)

    def grid(meta):
        return (triton.cdiv(t_len, meta["BLOCK_T"]), batch)

    mix_kernel[grid](inp, matrix.contiguous(), out, c, t_len, triton.next_power_of_2(t_len),
                     *inp.stride(), *out.stride(), C_PAD=triton.next_power_of_2(c), **meta(INTERPRETER_MIX_CONFIG))
    return finish(out, like.dtype)


def _outer(g, x):
    """sum over batch and time of g[:, :, t] x[:, :, t]^T, [c, c] in fp32."""
    batch, c, t_len = x.shape
    splits, chunk = time_splits(1, t_len, x.device, INTERPRETER_MIX_CONFIG["BLOCK_T"])
    partials = torch.empty((splits, c, c), dtype=torch.float32, device=x.device)
    outer_kernel[(splits,)](g, x, partials, batch, c, t_len, triton.next_power_of_2(t_len), chunk,
                            *g.stride(), *x.stride(), C_PAD=triton.next_power_of_2(c),
                            **meta(INTERPRETER_MIX_CONFIG))
    return partials.sum(0)


def invertible_conv1x1_triton(x, weight, reverse=False):
    """(W x, B*T*log|det W|), or (W^-1 x, -B*T*log|det W|); the product in x's dtype, log|det| in fp32."""
    _check(x, weight)
    w = weight[:, :, 0].float()
    log_det = x.shape[0] * x.shape[2] * torch.linalg.slogdet(w)[1]
    if reverse:
        return _mix(x, torch.linalg.inv_ex(w)[0], x), -log_det  # _ex: no host sync for an error check
    # Rounded to x's dtype first, as the reference's conv1d(x, weight.to(x.dtype)); exact in fp32 after.
    return _mix(x, weight[:, :, 0].to(x.dtype).float(), x), log_det


def invertible_conv1x1_backward_triton(grad_out, grad_log_det, x, weight, reverse):
    """Gradients (x in x's dtype, weight in weight's dtype), computed in fp32."""
    _check(x, weight)
    w = weight[:, :, 0].float()
    grad_log_det = grad_log_det.float()
    n = x.shape[0] * x.shape[2]
    w_inv = torch.linalg.inv_ex(w)[0]
    s = _outer(grad_out, x)
    if reverse:
        grad_x = _mix(grad_out, w_inv.t(), x)
        grad_w = -w_inv.t() @ s @ w_inv.t() - grad_log_det * n * w_inv.t()
    else:
        grad_x = _mix(grad_out, w.t(), x)
        grad_w = s + grad_log_det * n * w_inv.t()
    return grad_x, grad_w.unsqueeze(-1).to(weight.dtype)

"""Triton kernels for affine_coupling: WaveGlow's affine transform of the second half of the audio channels.

The contract and the ground truth are in vocoder_ext/ops/affine_coupling.py (affine_coupling_ref,
affine_coupling_backward_ref). x [B, n, T]; wn_out [B, 2n, T] = [b; log_s]:

    forward: y = exp(log_s) * x + b          reverse: y = (x - b) * exp(-log_s)

Elementwise, so one kernel each way, one program per (batch item, channel) row and time tile. Every
load is converted to fp32 and the math runs in fp32 (an fp16 exp overflows past log_s = 11), each output
stored in its own tensor's dtype: y and grad_x in x's, grad_wn_out in wn_out's. x and wn_out may differ
in dtype (the model keeps the audio channels in fp32 while the WN runs in fp16/bf16); the pointers carry
their own element types, so no copy is made for that.

- `_coupling_kernel`: y, either direction (REVERSE constexpr).
- `_coupling_backward_kernel`: grad_x, and grad_b and grad_log_s written into rows c and n + c of
  grad_wn_out [B, 2n, T]:
      forward: grad_x = g e^log_s,  grad_b = g,       grad_log_s = g e^log_s x
      reverse: grad_x = g e^-log_s, grad_b = -grad_x, grad_log_s = -grad_x (x - b)

Memory-bound: long time tiles (_tiles.ELEMENTWISE_CONFIGS, tuned over one set whatever the dtype).
Tested under the Triton interpreter and compiled for sm_80/sm_90 (bench --static); not yet run or
timed on a GPU.
"""
import triton
import triton.language as tl

from ._launch import INTERPRET, SUPPORTED_DTYPES, check_device, empty_out, finish, meta, tuned_one_set
from ._tiles import ELEMENTWISE_CONFIGS, INTERPRETER_ELEMENTWISE_CONFIG


@triton.jit
def _coupling_kernel(
    x_ptr,   # x [B, n, T], any strides
    wn_ptr,  # wn_out [B, 2n, T], any strides
    y_ptr,   # y [B, n, T]
    N, T, T_BUCKET,  # N = n, the channels transformed; T_BUCKET only keys the autotuner
    stride_xb, stride_xc, stride_xt,
    stride_wb, stride_wc, stride_wt,
    stride_yb, stride_yc, stride_yt,
    REVERSE: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    row = tl.program_id(1)
    b = (row // N).to(tl.int64)
    c = row % N
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    ok = t < T
    x = tl.load(x_ptr + b * stride_xb + c * stride_xc + t * stride_xt, mask=ok, other=0.0).to(tl.float32)
    wn = wn_ptr + b * stride_wb + t * stride_wt
    shift = tl.load(wn + c * stride_wc, mask=ok, other=0.0).to(tl.float32)
    log_s = tl.load(wn + (c + N) * stride_wc, mask=ok, other=0.0).to(tl.float32)
    if REVERSE:
        y = (x - shift) * tl.exp(-log_s)
    else:
        y = tl.exp(log_s) * x + shift
    tl.store(y_ptr + b * stride_yb + c * stride_yc + t * stride_yt, y.to(y_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _coupling_backward_kernel(
    g_ptr,    # grad_out [B, n, T], any strides
    x_ptr,    # x [B, n, T]
    wn_ptr,   # wn_out [B, 2n, T]
    gx_ptr,   # grad_x [B, n, T]
    gwn_ptr,  # grad_wn_out [B, 2n, T]
    N, T, T_BUCKET,
    stride_gb, stride_gc, stride_gt,
    stride_xb, stride_xc, stride_xt,
    stride_wb, stride_wc, stride_wt,
    stride_yb, stride_yc, stride_yt,
    stride_ywb, stride_ywc, stride_ywt,
    REVERSE: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    row = tl.program_id(1)
    b = (row // N).to(tl.int64)
    c = row % N
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    ok = t < T
    g = tl.load(g_ptr + b * stride_gb + c * stride_gc + t * stride_gt, mask=ok, other=0.0).to(tl.float32)
    x = tl.load(x_ptr + b * stride_xb + c * stride_xc + t * stride_xt, mask=ok, other=0.0).to(tl.float32)
    wn = wn_ptr + b * stride_wb + t * stride_wt
    log_s = tl.load(wn + (c + N) * stride_wc, mask=ok, other=0.0).to(tl.float32)
    if REVERSE:
        shift = tl.load(wn + c * stride_wc, mask=ok, other=0.0).to(tl.float32)
        grad_x = g * tl.exp(-log_s)
        grad_b = -grad_x
        grad_log_s = -grad_x * (x - shift)
    else:
        grad_x = g * tl.exp(log_s)
        grad_b = g
        grad_log_s = grad_x * x
    tl.store(gx_ptr + b * stride_yb + c * stride_yc + t * stride_yt, grad_x.to(gx_ptr.dtype.element_ty), mask=ok)
    gwn = gwn_ptr + b * stride_ywb + t * stride_ywt
    tl.store(gwn + c * stride_ywc, grad_b.to(gwn_ptr.dtype.element_ty), mask=ok)
    tl.store(gwn + (c + N) * stride_ywc, grad_log_s.to(gwn_ptr.dtype.element_ty), mask=ok)


coupling_kernel = tuned_one_set(_coupling_kernel, ELEMENTWISE_CONFIGS, key=["T_BUCKET", "REVERSE"])
coupling_backward_kernel = tuned_one_set(_coupling_backward_kernel, ELEMENTWISE_CONFIGS, key=["T_BUCKET", "REVERSE"])


def _check(x, tensors):
    for name, t in {"x": x, **tensors}.items():
        if t.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"{name}: the Triton kernels support {SUPPORTED_DTYPES}, got {t.dtype}")
        if t.device != x.device:
            raise ValueError(f"{name}: expected device {x.device} (same as x), got {t.device}")
    check_device("x", x)


def _grid(batch, n, t_len):
    def grid(meta):
        return (triton.cdiv(t_len, meta["BLOCK_T"]), batch * n)
    return grid


def affine_coupling_triton(x, wn_out, reverse=False):
    """exp(log_s) * x + b, or (x - b) * exp(-log_s) when reverse; [b; log_s] = wn_out. In x's dtype."""
    _check(x, dict(wn_out=wn_out))
    batch, n, t_len = x.shape
    y = empty_out(x.shape, x)
    coupling_kernel[_grid(batch, n, t_len)](
        x, wn_out, y, n, t_len, triton.next_power_of_2(t_len), *x.stride(), *wn_out.stride(), *y.stride(),
        REVERSE=reverse, **meta(INTERPRETER_ELEMENTWISE_CONFIG))
    return finish(y, x.dtype)


def affine_coupling_backward_triton(grad_out, x, wn_out, reverse):
    """Gradients (x in x's dtype, wn_out in wn_out's dtype)."""
    _check(x, dict(grad_out=grad_out, wn_out=wn_out))
    batch, n, t_len = x.shape
    grad_x = empty_out(x.shape, x)
    grad_wn = empty_out(wn_out.shape, wn_out)
    coupling_backward_kernel[_grid(batch, n, t_len)](
        grad_out, x, wn_out, grad_x, grad_wn, n, t_len, triton.next_power_of_2(t_len),
        *grad_out.stride(), *x.stride(), *wn_out.stride(), *grad_x.stride(), *grad_wn.stride(),
        REVERSE=reverse, **meta(INTERPRETER_ELEMENTWISE_CONFIG))
    return finish(grad_x, x.dtype), finish(grad_wn, wn_out.dtype)

"""Triton kernels for wn_layer: one WaveGlow WN layer, forward and backward.

The contract and the ground truth are in vocoder_ext/ops/wn_layer.py (wn_layer_ref, wn_layer_backward_ref).
Shapes: audio [B, C, T], skip [B, C, T] or None, cond [B, 2C, T], in_w [2C, C, K] (K odd), in_b [2C],
rs_w [R, C, 1] with R = 2C (R = C when last), rs_b [R]:

    a = conv1d(audio, in_w, in_b, dilation, "same") + cond
    acts = tanh(a[:C]) * sigmoid(a[C:])
    rs = rs_w @ acts + rs_b
    (audio + rs[:C], skip + rs[C:])      or, last: (audio, skip + rs)

Forward, two kernels:
- `_gate_kernel`: the dilated in-conv as an implicit GEMM (taps x C_in blocks, tl.dot, fp32 accumulation).
  A program owns channels c of one time tile and computes both gate rows c (tanh) and C + c (sigmoid)
  from the same loaded input tiles, so the gate is formed in registers: bias + cond + tanh * sigmoid in
  the epilogue, and acts [B, C, T] (in the input dtype, as the reference rounds it) is written. With
  KEEP_PREACT (keep_preact: the op sets it whenever a gradient is needed) the epilogue also stores the
  two pre-activation rows, a[c] and a[C + c] = in-conv + in_b + cond before the nonlinearity, into
  preact [B, 2C, T] in the input dtype; without it preact is an empty tensor and nothing more is written.
- `_res_skip_kernel`: the 1x1 conv over acts. A program owns rows c of the audio half and of the skip
  half (again one acts tile feeds both dots); the epilogue adds the biases, the residual into audio
  and the skip sum (none for the first layer), writing new tensors. When last, only the skip half exists
  and the audio output is a copy.

Backward (reads the forward's preact: the gate is recomputed from it, the dilated in-conv is not rerun):
- `_gate_backward_kernel`: computes grad_acts = rs_w^T [grad_audio; grad_skip] (grad_skip alone when
  last) with one dot loop, then loads the two preact rows of its channels, t = tanh(preact[c]) and
  s = sigmoid(preact[C + c]), and writes grad_a = [grad_acts * s (1 - t^2); grad_acts * t s (1 - s)]
  (= grad_cond) and acts = t * s (for the res/skip weight gradient). An empty preact (a forward run
  without keep_preact) raises the reference's RuntimeError.
- grad_audio_in = grad_audio + the transposed in-conv of grad_a: kernels/lrelu_conv1d.py's conv kernel
  (no leaky-ReLU prologue, weights transposed and flipped, grad_audio added in its epilogue), under its
  own autotuner: its tile set leaves out the one CONV_CONFIGS tile that spills in this variant.
- weight and bias gradients: lrelu_conv1d.py's time-split grad-weight kernel with slope 1 (leaky-ReLU
  with slope 1 is the identity, exactly): in_w and in_b (= grad_a summed over batch and time) from
  (grad_a, audio); rs_w from (grad_audio, acts) and (grad_skip, acts), one launch per half of rs_w.

Tiles: _tiles.py (WN_GATE_CONFIGS, WN_CONFIGS, WN_BACKWARD_CONFIGS, WN_GRAD_AUDIO_CONFIGS), autotuned
per operand width on a GPU, one fixed config under the interpreter (see _launch.tuned).
Tested under the Triton interpreter and compiled for sm_80/sm_90 (bench --static); not yet run or
timed on a GPU.
"""
import torch
import triton
import triton.language as tl

from ._launch import INTERPRET, SUPPORTED_DTYPES, cached_on, check_device, dot_dtype, empty_out, finish, meta, tuned
from ._tiles import (
    INTERPRETER_CONV_CONFIG,
    INTERPRETER_WN_CONFIG,
    WN_BACKWARD_CONFIGS,
    WN_CONFIGS,
    WN_GATE_CONFIGS,
    WN_GRAD_AUDIO_CONFIGS,
)
# lrelu_conv1d's conv kernel and grad-weight launcher are reused (slope 1 = no activation); they are
# module-private there because its public launchers wrap them with its own argument checks.
from .lrelu_conv1d import _conv_kernel, _grad_weight, _pack_for_grad_x, _tanh, pack_weight


# --------------------------------------------------------------------------------------------- kernels

@triton.jit
def _sigmoid(z):
    """sigmoid in fp32 from exp(-|z|), which never overflows; each tail keeps full relative accuracy."""
    e = tl.exp(-tl.abs(z))
    return tl.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@triton.jit
def _gate_inputs(x_batch, w_ptr, b_ptr, cond_batch, co, co_ok, t, t_ok, C, T, K, dilation, pad,
                 stride_xc, stride_xt, stride_cc, stride_ct,
                 DOT_DTYPE: tl.constexpr, BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_T: tl.constexpr):
    """The gate's pre-activations a[co] (tanh rows) and a[C + co] (sigmoid rows) of one tile, in fp32:
    in-conv + in_b + cond. w_ptr is the packed in_w [K, 2C, C]."""
    acc_t = tl.zeros((BLOCK_CO, BLOCK_T), dtype=tl.float32)
    acc_s = tl.zeros((BLOCK_CO, BLOCK_T), dtype=tl.float32)
    w_mask_rows = co_ok[:, None]
    for k in range(K):
        # Tap k reads t + k*d - pad; outside [0, T) the load gives 0: the conv's zero padding. A
        # dilation past T leaves only the centre tap in range, and the masks handle that too.
        t_in = t + k * dilation - pad
        t_in_ok = (t_in >= 0) & (t_in < T)
        w_tap = w_ptr + k * 2 * C * C
        for ci0 in range(0, C, BLOCK_CI):
            ci = ci0 + tl.arange(0, BLOCK_CI)
            ci_ok = ci < C
            xs = tl.load(x_batch + ci[:, None] * stride_xc + t_in[None, :] * stride_xt,
                         mask=ci_ok[:, None] & t_in_ok[None, :], other=0.0).to(DOT_DTYPE)
            w_mask = w_mask_rows & ci_ok[None, :]
            wt = tl.load(w_tap + co[:, None] * C + ci[None, :], mask=w_mask, other=0.0).to(DOT_DTYPE)
            ws = tl.load(w_tap + (co[:, None] + C) * C + ci[None, :], mask=w_mask, other=0.0).to(DOT_DTYPE)
            # One input tile, two dots: the tanh and sigmoid rows of channel c meet in this program.
            acc_t = tl.dot(wt, xs, acc_t, input_precision="ieee")
            acc_s = tl.dot(ws, xs, acc_s, input_precision="ieee")
    mask = co_ok[:, None] & t_ok[None, :]
    cond_t = tl.load(cond_batch + co[:, None] * stride_cc + t[None, :] * stride_ct, mask=mask, other=0.0)
    cond_s = tl.load(cond_batch + (co[:, None] + C) * stride_cc + t[None, :] * stride_ct, mask=mask, other=0.0)
    acc_t += tl.load(b_ptr + co, mask=co_ok, other=0.0).to(tl.float32)[:, None] + cond_t.to(tl.float32)
    acc_s += tl.load(b_ptr + C + co, mask=co_ok, other=0.0).to(tl.float32)[:, None] + cond_s.to(tl.float32)
    return acc_t, acc_s


@triton.jit
def _gate_kernel(
    x_ptr,     # audio [B, C, T], any strides
    w_ptr,     # packed in_w [K, 2C, C], contiguous
    b_ptr,     # in_b [2C]
    cond_ptr,  # cond [B, 2C, T], any strides
    y_ptr,     # acts [B, C, T], any strides
    p_ptr,     # preact [B, 2C, T], any strides (written if KEEP_PREACT)
    C, T, K, T_BUCKET,  # T_BUCKET (next power of two of T) only keys the autotuner
    dilation, pad,
    stride_xb, stride_xc, stride_xt,
    stride_cb, stride_cc, stride_ct,
    stride_yb, stride_yc, stride_yt,
    stride_pb, stride_pc, stride_pt,
    KEEP_PREACT: tl.constexpr,  # store a (in-conv + in_b + cond, before the gate) for the backward
    DOT_DTYPE: tl.constexpr,
    BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_T: tl.constexpr,
):
    b = tl.program_id(2).to(tl.int64)  # int64: batch offsets of long audio can pass 2**31 elements
    co = tl.program_id(1) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    co_ok, t_ok = co < C, t < T
    a_t, a_s = _gate_inputs(x_ptr + b * stride_xb, w_ptr, b_ptr, cond_ptr + b * stride_cb, co, co_ok, t, t_ok,
                            C, T, K, dilation, pad, stride_xc, stride_xt, stride_cc, stride_ct,
                            DOT_DTYPE, BLOCK_CO, BLOCK_CI, BLOCK_T)
    mask = co_ok[:, None] & t_ok[None, :]
    if KEEP_PREACT:
        p_batch = p_ptr + b * stride_pb
        tl.store(p_batch + co[:, None] * stride_pc + t[None, :] * stride_pt, a_t.to(p_ptr.dtype.element_ty), mask=mask)
        tl.store(p_batch + (co[:, None] + C) * stride_pc + t[None, :] * stride_pt, a_s.to(p_ptr.dtype.element_ty),
                 mask=mask)
    acts = _tanh(a_t) * _sigmoid(a_s)
    tl.store(y_ptr + b * stride_yb + co[:, None] * stride_yc + t[None, :] * stride_yt,
             acts.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _res_skip_kernel(
    x_ptr,     # acts [B, C, T], any strides
    w_ptr,     # rs_w [R, C, 1] read as [R, C] through its strides
    b_ptr,     # rs_b [R]
    a_ptr,     # audio [B, C, T] (read unless LAST)
    s_ptr,     # skip [B, C, T] (read if HAS_SKIP)
    ya_ptr,    # audio out [B, C, T] (written unless LAST)
    ys_ptr,    # skip out [B, C, T]
    C, T, T_BUCKET,
    stride_rwo, stride_rwi,
    stride_xb, stride_xc, stride_xt,
    stride_ab, stride_ac, stride_at,
    stride_sb, stride_sc, stride_st,
    stride_yab, stride_yac, stride_yat,
    stride_ysb, stride_ysc, stride_yst,
    LAST: tl.constexpr,      # rs has only the skip half: rows [0, C) of rs_w
    HAS_SKIP: tl.constexpr,  # False on the first layer: the skip sum starts at zero
    DOT_DTYPE: tl.constexpr,
    BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_T: tl.constexpr,
):
    b = tl.program_id(2).to(tl.int64)
    co = tl.program_id(1) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    co_ok, t_ok = co < C, t < T
    skip_row = co if LAST else co + C  # the rs_w / rs_b row of skip channel co
    acc_a = tl.zeros((BLOCK_CO, BLOCK_T), dtype=tl.float32)
    acc_s = tl.zeros((BLOCK_CO, BLOCK_T), dtype=tl.float32)
    x_batch = x_ptr + b * stride_xb
    for ci0 in range(0, C, BLOCK_CI):
        ci = ci0 + tl.arange(0, BLOCK_CI)
        ci_ok = ci < C
        xs = tl.load(x_batch + ci[:, None] * stride_xc + t[None, :] * stride_xt,
                     mask=ci_ok[:, None] & t_ok[None, :], other=0.0).to(DOT_DTYPE)
        w_mask = co_ok[:, None] & ci_ok[None, :]
        ws = tl.load(w_ptr + skip_row[:, None] * stride_rwo + ci[None, :] * stride_rwi, mask=w_mask, other=0.0)
        acc_s = tl.dot(ws.to(DOT_DTYPE), xs, acc_s, input_precision="ieee")
        if not LAST:
            wa = tl.load(w_ptr + co[:, None] * stride_rwo + ci[None, :] * stride_rwi, mask=w_mask, other=0.0)
            acc_a = tl.dot(wa.to(DOT_DTYPE), xs, acc_a, input_precision="ieee")

    mask = co_ok[:, None] & t_ok[None, :]
    acc_s += tl.load(b_ptr + skip_row, mask=co_ok, other=0.0).to(tl.float32)[:, None]
    if HAS_SKIP:
        acc_s += tl.load(s_ptr + b * stride_sb + co[:, None] * stride_sc + t[None, :] * stride_st,
                         mask=mask, other=0.0).to(tl.float32)
    tl.store(ys_ptr + b * stride_ysb + co[:, None] * stride_ysc + t[None, :] * stride_yst,
             acc_s.to(ys_ptr.dtype.element_ty), mask=mask)
    if not LAST:
        acc_a += tl.load(b_ptr + co, mask=co_ok, other=0.0).to(tl.float32)[:, None]
        acc_a += tl.load(a_ptr + b * stride_ab + co[:, None] * stride_ac + t[None, :] * stride_at,
                         mask=mask, other=0.0).to(tl.float32)
        tl.store(ya_ptr + b * stride_yab + co[:, None] * stride_yac + t[None, :] * stride_yat,
                 acc_a.to(ya_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _rs_transposed_dot(acc, g_batch, w_ptr, row0, co, co_ok, t, t_ok, C, stride_rwo, stride_rwi, stride_gc, stride_gt,
                       DOT_DTYPE: tl.constexpr, BLOCK_CI: tl.constexpr):
    """acc + rs_w[row0 + r, co]^T @ g[r, t] over the C rows r of one half of rs (g: its gradient)."""
    for r0 in range(0, C, BLOCK_CI):
        r = r0 + tl.arange(0, BLOCK_CI)
        r_ok = r < C
        gs = tl.load(g_batch + r[:, None] * stride_gc + t[None, :] * stride_gt,
                     mask=r_ok[:, None] & t_ok[None, :], other=0.0).to(DOT_DTYPE)
        # [BLOCK_CO, BLOCK_CI] tile of rs_w^T, read through the strides (the 1x1 weight is small and cached).
        ws = tl.load(w_ptr + (row0 + r)[None, :] * stride_rwo + co[:, None] * stride_rwi,
                     mask=co_ok[:, None] & r_ok[None, :], other=0.0).to(DOT_DTYPE)
        acc = tl.dot(ws, gs, acc, input_precision="ieee")
    return acc


@triton.jit
def _gate_backward_kernel(
    p_ptr,     # preact [B, 2C, T] (the forward's a, in the input dtype)
    rw_ptr,    # rs_w [R, C, 1] read as [R, C]
    ga_ptr,    # grad_audio [B, C, T] (read unless LAST)
    gs_ptr,    # grad_skip [B, C, T]
    y_ptr,     # grad_a [B, 2C, T] (= grad_cond)
    acts_ptr,  # acts [B, C, T], recomputed from preact for the rs_w gradient
    C, T, T_BUCKET,
    stride_rwo, stride_rwi,
    stride_pb, stride_pc, stride_pt,
    stride_gab, stride_gac, stride_gat,
    stride_gsb, stride_gsc, stride_gst,
    stride_yb, stride_yc, stride_yt,
    stride_actb, stride_actc, stride_actt,
    LAST: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_T: tl.constexpr,
):
    b = tl.program_id(2).to(tl.int64)
    co = tl.program_id(1) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    co_ok, t_ok = co < C, t < T
    mask = co_ok[:, None] & t_ok[None, :]

    # The dot loop first, with its one accumulator; the gate's tiles are loaded after it, so they are
    # never live across it.
    grad_acts = tl.zeros((BLOCK_CO, BLOCK_T), dtype=tl.float32)
    grad_acts = _rs_transposed_dot(grad_acts, gs_ptr + b * stride_gsb, rw_ptr, 0 if LAST else C, co, co_ok, t, t_ok,
                                   C, stride_rwo, stride_rwi, stride_gsc, stride_gst, DOT_DTYPE, BLOCK_CI)
    if not LAST:
        grad_acts = _rs_transposed_dot(grad_acts, ga_ptr + b * stride_gab, rw_ptr, 0, co, co_ok, t, t_ok,
                                       C, stride_rwo, stride_rwi, stride_gac, stride_gat, DOT_DTYPE, BLOCK_CI)

    # The gate from the forward's pre-activations, as the reference recomputes it (from preact as stored).
    p_batch = p_ptr + b * stride_pb
    a_t = tl.load(p_batch + co[:, None] * stride_pc + t[None, :] * stride_pt, mask=mask, other=0.0)
    a_s = tl.load(p_batch + (co[:, None] + C) * stride_pc + t[None, :] * stride_pt, mask=mask, other=0.0)
    th = _tanh(a_t.to(tl.float32))
    sg = _sigmoid(a_s.to(tl.float32))
    tl.store(acts_ptr + b * stride_actb + co[:, None] * stride_actc + t[None, :] * stride_actt,
             (th * sg).to(acts_ptr.dtype.element_ty), mask=mask)
    # d acts / d a_t = s (1 - t^2) and d acts / d a_s = t s (1 - s).
    y_batch = y_ptr + b * stride_yb
    tl.store(y_batch + co[:, None] * stride_yc + t[None, :] * stride_yt,
             (grad_acts * (sg * (1.0 - th * th))).to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(y_batch + (co[:, None] + C) * stride_yc + t[None, :] * stride_yt,
             (grad_acts * (th * sg * (1.0 - sg))).to(y_ptr.dtype.element_ty), mask=mask)


# ------------------------------------------------------------------------------------------- autotuning

gate_kernel = tuned(_gate_kernel, WN_GATE_CONFIGS, key=["C", "T_BUCKET", "K", "KEEP_PREACT"])
res_skip_kernel = tuned(_res_skip_kernel, WN_CONFIGS, key=["C", "T_BUCKET", "LAST", "HAS_SKIP"])
gate_backward_kernel = tuned(_gate_backward_kernel, WN_BACKWARD_CONFIGS, key=["C", "T_BUCKET", "LAST"])
grad_audio_kernel = tuned(_conv_kernel, WN_GRAD_AUDIO_CONFIGS, key=["C_in", "C_out", "T_BUCKET", "K"])


# ------------------------------------------------------------------------------------------ launchers

def _check(audio, tensors):
    """The op's wrapper has checked shapes; this guards what the kernels themselves need."""
    if audio.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"audio: the Triton kernels support {SUPPORTED_DTYPES}, got {audio.dtype}")
    for name, t in tensors.items():
        if t is not None and (t.dtype != audio.dtype or t.device != audio.device):
            raise TypeError(f"{name}: expected dtype {audio.dtype} on {audio.device} (same as audio), "
                            f"got {t.dtype} on {t.device}")
    check_device("audio", audio)


def _grid(batch, c, t_len):
    def grid(meta):
        return (triton.cdiv(t_len, meta["BLOCK_T"]), triton.cdiv(c, meta["BLOCK_CO"]), batch)
    return grid


# wn_layer_backward_ref's error, word for word (kernels sit below vocoder_ext.ops and do not import it).
EMPTY_PREACT = ("wn_layer_backward: preact is empty: the forward must run with keep_preact=True "
                "(vocoder_ext.ops.wn_layer sets it whenever a gradient is needed)")


def wn_layer_triton(audio, skip, cond, in_weight, in_bias, rs_weight, rs_bias, dilation=1, last=False,
                    keep_preact=False):
    """(audio out, skip out, preact) of one WN layer, new tensors in audio's dtype; preact is a [B, 2C, T]
    (in-conv + in_b + cond) when keep_preact, else an empty tensor. Inputs may be non-contiguous (strides
    go to the kernels); in_weight's packed layout is kept on it until it changes (cached_on)."""
    _check(audio, dict(skip=skip, cond=cond, in_weight=in_weight, in_bias=in_bias, rs_weight=rs_weight,
                       rs_bias=rs_bias))
    batch, c, t_len = audio.shape
    k = in_weight.shape[-1]
    packed = cached_on(in_weight, "wn_layer", pack_weight)
    acts = empty_out((batch, c, t_len), audio)
    # Without keep_preact the kernel never touches p_ptr (KEEP_PREACT is a constexpr): acts stands in.
    preact = empty_out((batch, 2 * c, t_len), audio) if keep_preact else None
    gate_kernel[_grid(batch, c, t_len)](
        audio, packed, in_bias, cond, acts, preact if keep_preact else acts, c, t_len, k,
        triton.next_power_of_2(t_len), dilation, dilation * (k - 1) // 2, *audio.stride(), *cond.stride(),
        *acts.stride(), *(preact.stride() if keep_preact else (0, 0, 0)),
        KEEP_PREACT=keep_preact, DOT_DTYPE=dot_dtype(audio.dtype), **meta(INTERPRETER_WN_CONFIG))

    skip_out = empty_out((batch, c, t_len), audio)
    audio_out = audio.clone() if last else empty_out((batch, c, t_len), audio)
    res_skip_kernel[_grid(batch, c, t_len)](
        acts, rs_weight, rs_bias, audio, skip if skip is not None else skip_out, audio_out, skip_out,
        c, t_len, triton.next_power_of_2(t_len), rs_weight.stride(0), rs_weight.stride(1),
        *acts.stride(), *audio.stride(), *(skip.stride() if skip is not None else (0, 0, 0)),
        *audio_out.stride(), *skip_out.stride(),
        LAST=last, HAS_SKIP=skip is not None, DOT_DTYPE=dot_dtype(audio.dtype), **meta(INTERPRETER_WN_CONFIG))
    preact = finish(preact, audio.dtype) if keep_preact else audio.new_empty(0)
    return finish(audio_out, audio.dtype), finish(skip_out, audio.dtype), preact


def wn_layer_backward_triton(grad_audio, grad_skip, audio, preact, in_weight, rs_weight, dilation, last):
    """Gradients (audio, cond, in_weight, in_bias, rs_weight, rs_bias) in audio's dtype; the gate is
    recomputed from preact (the forward's, with keep_preact), not from the in-conv. grad_audio / grad_skip
    and preact may have any strides (zeros expanded by autograd included)."""
    if preact.numel() == 0:
        raise RuntimeError(EMPTY_PREACT)
    _check(audio, dict(grad_audio=grad_audio, grad_skip=grad_skip, preact=preact, in_weight=in_weight,
                       rs_weight=rs_weight))
    dtype = audio.dtype
    batch, c, t_len = audio.shape
    k = in_weight.shape[-1]
    if tuple(preact.shape) != (batch, 2 * c, t_len):
        raise ValueError(f"preact: expected shape {(batch, 2 * c, t_len)} (audio's [B, 2C, T]), "
                         f"got {tuple(preact.shape)}")
    # grad_a is both the op's grad_cond and the input of the two reductions below; stored in the input
    # dtype like the reference's, and acts likewise (the rs_w gradient's operand, as in the forward).
    grad_a = empty_out((batch, 2 * c, t_len), audio)
    acts = empty_out((batch, c, t_len), audio)
    gate_backward_kernel[_grid(batch, c, t_len)](
        preact, rs_weight, grad_audio, grad_skip, grad_a, acts, c, t_len, triton.next_power_of_2(t_len),
        rs_weight.stride(0), rs_weight.stride(1), *preact.stride(), *grad_audio.stride(), *grad_skip.stride(),
        *grad_a.stride(), *acts.stride(),
        LAST=last, DOT_DTYPE=dot_dtype(dtype), **meta(INTERPRETER_WN_CONFIG))

    # audio's gradient through the in-conv: the 'same' conv of grad_a with in_w transposed and flipped,
    # plus grad_audio itself (the residual path) in the same kernel's epilogue.
    grad_audio_in = empty_out(audio.shape, audio)
    packed_t = cached_on(in_weight, "wn_layer grad_audio", _pack_for_grad_x)
    grad_audio_kernel[_grid(batch, c, t_len)](
        grad_a, packed_t, packed_t, grad_audio, grad_audio_in, 2 * c, c, t_len, k, triton.next_power_of_2(t_len),
        dilation, dilation * (k - 1) // 2, 1.0, *grad_a.stride(), *grad_audio.stride(), *grad_audio_in.stride(),
        PROLOGUE_LRELU=False, HAS_BIAS=False, EPILOGUE="none", ADD_E=True, DOT_DTYPE=dot_dtype(dtype),
        **meta(INTERPRETER_CONV_CONFIG))

    grad_in_w, grad_in_b = _grad_weight(grad_a, audio, in_weight, True, dilation, 1.0)
    if last:
        grad_rs_w, grad_rs_b = _grad_weight(grad_skip, acts, rs_weight, True, 1, 1.0)
    else:
        halves = [_grad_weight(g, acts, rs_weight[:c], True, 1, 1.0) for g in (grad_audio, grad_skip)]
        grad_rs_w = torch.cat([h[0] for h in halves])
        grad_rs_b = torch.cat([h[1] for h in halves])
    return tuple(finish(g, dtype) for g in (grad_audio_in, grad_a, grad_in_w, grad_in_b, grad_rs_w, grad_rs_b))

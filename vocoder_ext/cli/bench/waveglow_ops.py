"""The per-op rows of `bench --waveglow`: each WaveGlow op alone, the eager math vs the fused op.

At NVIDIA's config with `--waveglow-channels` C, the grouped length T = seconds * 22050 / 8 and batch B =
`--op-batch`, in inference mode, fp32, random inputs (`--inputs` of them, used in turn) and fixed weights:

  wn_layer (middle)    layer 5 of 8: dilation 16, a skip sum coming in, res/skip conv C -> 2C
  wn_layer (last)      layer 8 of 8: dilation 128, res/skip conv C -> C (all skip)
  conditioning         one flow's 8 layers at once from the grouped mel [B, 80*8, T]: eager is the
                       torch.baddbmm of vocoder_ext/models/waveglow.py WN.conditioning, fused is
                       vocoder_ext.ops.lrelu_conv1d(spect, weight [2C*8, 80*8, 1], bias, 1, slope 1.0)
  affine_coupling      reverse (inference), n_half = 4: (x - b) * exp(-log_s)
  invertible_conv1x1   reverse, c = 8: W^-1 x and -B*T*log|det W|

eager = the op's `*_ref` in vocoder_ext/ops/<op>.py (the eager math); fused = `torch.ops.vocoder_ext.<op>`
(served by the backend the report's header names). Timed with ops.time_op: warm-up, then round-robin samples
of >= 10 ms each (one call each with --quick), medians. GFLOP/s = the FLOP count of waveglow_common.py /
median time; GB/s = bytes of the op's tensor arguments read once and its outputs written once / time.
"""
import math

import torch

from ...ops import affine_coupling_ref, invertible_conv1x1_ref, lrelu_conv1d, wn_layer_ref
from ...runtime import extension
from .ops import OP_MIN_SAMPLE_S, time_op
from .timing import fmt, log, table
from .waveglow_common import (KERNEL, N_LAYERS, conditioning_flop, coupling_flop, grouped_length,
                              invertible_conv_flop, wn_layer_flop)

N_MEL, N_GROUP = 80, 8
N_HALF, C_MIX = 4, 8  # the first flows' coupling half and 1x1 conv size (n_group channels)


def ops_section(channels, settings):
    """-> one row per op (see the module docstring): shape, FLOP, bytes, every sample, medians, speedup."""
    batch, length = settings["op_batch"], grouped_length(settings["seconds"], N_GROUP)
    min_sample_s = 0.0 if settings["quick"] else OP_MIN_SAMPLE_S
    gen = torch.Generator().manual_seed(settings["seed"])
    rows = []
    with torch.inference_mode():
        for spec in op_specs(channels, batch, length, gen):
            log(f"waveglow ops: {spec['op']} {spec['shape']}")
            inputs = [spec["make_input"]() for _ in range(settings["inputs"])]
            engines = {"eager": spec["eager"]}
            if extension.loaded:
                engines["fused"] = spec["fused"]
            bytes_moved = io_bytes(inputs[0], spec["eager"](inputs[0]))
            result = time_op(engines, inputs, settings["repeats"], min_sample_s, spec["flop"], bytes_moved)
            rows.append({"op": spec["op"], "shape": spec["shape"], "batch": batch, "length": length, **result})
    return rows


def op_specs(channels, batch, length, gen):
    """[{op, shape, flop, make_input() -> a tuple of the activations, eager(inp), fused(inp)}]."""
    c, b, t = channels, batch, length

    def randn(*shape, scale=1.0):
        return scale * torch.randn(*shape, generator=gen)

    specs = []
    for layer in (N_LAYERS // 2, N_LAYERS - 1):  # 0-based: the middle layer (dilation 16) and the last
        dilation, last = 2 ** layer, layer == N_LAYERS - 1
        rows = c if last else 2 * c
        w = (randn(2 * c, c, KERNEL, scale=1 / math.sqrt(c * KERNEL)), randn(2 * c, scale=0.1),
             randn(rows, c, 1, scale=1 / math.sqrt(c)), randn(rows, scale=0.1))
        specs.append({
            "op": f"wn_layer ({'last' if last else 'middle'})",
            "shape": f"C={c} T={t} K={KERNEL} dilation={dilation} res/skip {rows} rows, skip in",
            "flop": wn_layer_flop(c, KERNEL, rows, t, b),
            "make_input": lambda: (randn(b, c, t), randn(b, c, t), randn(b, 2 * c, t)),
            "eager": lambda inp, w=w, d=dilation, last=last: wn_layer_ref(*inp, *w, d, last),
            "fused": lambda inp, w=w, d=dilation, last=last: torch.ops.vocoder_ext.wn_layer(*inp, *w, d, last)})

    cond_in, cond_rows = N_MEL * N_GROUP, 2 * c * N_LAYERS
    cond_w, cond_b = randn(cond_rows, cond_in, 1, scale=1 / math.sqrt(cond_in)), randn(cond_rows, scale=0.1)
    specs.append({
        "op": "conditioning",
        "shape": f"[{cond_rows}, {cond_in}] x [{cond_in}, T={t}] (8 layers' 1x1 convs)",
        "flop": conditioning_flop(c, N_LAYERS, cond_in, t, b),
        "make_input": lambda: (randn(b, cond_in, t),),
        # WN.conditioning's two paths, with the flow's weights already concatenated
        "eager": lambda inp: torch.baddbmm(cond_b[None, :, None], cond_w[:, :, 0].expand(b, -1, -1), inp[0]),
        "fused": lambda inp: lrelu_conv1d(inp[0], cond_w, cond_b, 1, 1.0)})

    specs.append({
        "op": "affine_coupling",
        "shape": f"reverse, n_half={N_HALF} T={t}",
        "flop": coupling_flop(N_HALF, t, b),
        "make_input": lambda: (randn(b, N_HALF, t), torch.cat([randn(b, N_HALF, t), randn(b, N_HALF, t, scale=0.1)],
                                                               1)),
        "eager": lambda inp: affine_coupling_ref(*inp, True),
        "fused": lambda inp: torch.ops.vocoder_ext.affine_coupling(*inp, True)})

    mix = torch.linalg.qr(randn(C_MIX, C_MIX))[0].unsqueeze(-1).contiguous()
    specs.append({
        "op": "invertible_conv1x1",
        "shape": f"reverse, c={C_MIX} T={t}",
        "flop": invertible_conv_flop(C_MIX, t, b),
        "make_input": lambda: (randn(b, C_MIX, t),),
        "eager": lambda inp: invertible_conv1x1_ref(inp[0], mix, True),
        "fused": lambda inp: torch.ops.vocoder_ext.invertible_conv1x1(inp[0], mix, True)})
    return specs


def io_bytes(inputs, outputs):
    """Bytes of the activations read and the outputs written (weights are not counted: they stay in cache
    or are small next to the activations at these T)."""
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    return sum(x.numel() * x.element_size() for x in (*inputs, *outputs))


def render_ops(rows, s, channels):
    body = [[r["op"], r["shape"], fmt(r["eager_ms"]), fmt(r["fused_ms"]) if r["fused_ms"] else r.get("fused_status"),
             fmt(r["speedup"]), fmt(r["eager_gflops"]), fmt(r.get("fused_gflops")), fmt(r.get("fused_gbps")),
             fmt(r["max_abs_diff"], 2)] for r in rows]
    return "\n".join([
        f"## Ops: WaveGlow, {channels} channels, T = {rows[0]['length']} (grouped length of {s['seconds']:g} s), "
        f"batch {s['op_batch']}",
        "",
        "eager = the op's `*_ref` (vocoder_ext/ops/<op>.py), except conditioning: the `torch.baddbmm` of "
        "`WN.conditioning`; fused = `torch.ops.vocoder_ext.<op>`, conditioning = `vocoder_ext.ops.lrelu_conv1d"
        "(spect, weight [2C*8, 640, 1], bias, 1, 1.0)`. Reverse (inference) direction for the coupling and the 1x1 "
        "conv. GFLOP/s: wn_layer 2*T*B*(2C*C*K + rows*C); conditioning 2*T*B*(2C*8)*640; affine_coupling "
        "3*B*n_half*T (subtract, exp, multiply); invertible_conv1x1 2*B*T*c*c. GB/s: activations read + outputs "
        "written, once.",
        "",
        table(["op", "shape", "eager ms", "fused ms", "speedup", "eager GFLOP/s", "fused GFLOP/s", "fused GB/s",
               "max abs diff"], body),
    ])

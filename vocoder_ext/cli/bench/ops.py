"""The `ops` section of the bench: each fused op alone, the eager reference vs the registered op.

lrelu_conv1d (with a residual, as in the resblocks) at each distinct (C, T, K, dilation) of each config's
upsampling stages, and lrelu_conv_transpose1d at each upsampling layer: `vocoder_ext.ops.*_ref` vs
`torch.ops.vocoder_ext.*`. ms, speedup, GFLOP/s, GB/s, and the largest difference of the outputs.
"""
import math
import statistics

import torch

from ...models.hifigan import LRELU_SLOPE
from ...ops import lrelu_conv1d_ref, lrelu_conv_transpose1d_ref
from ...runtime import extension
from .timing import fmt, frames_for, log, max_abs_diff, round_robin, table, warm_up

# A timed op sample repeats the call until it lasts at least this long, so short ops are not lost in
# timer and scheduling noise (not with --quick); e2e and training samples are always one call.
OP_MIN_SAMPLE_S = 0.01


def conv1d_shapes(name, h, frames):
    """The resblock convs of one config, one entry per distinct (C, T, K, dilation) of each stage,
    with how many convs of a forward pass have that shape."""
    shapes = {}
    uic, length = h["upsample_initial_channel"], frames
    for stage, rate in enumerate(h["upsample_rates"]):
        length *= rate
        channels = uic // 2 ** (stage + 1)
        for k, dilations in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"]):
            convs = [(k, d) for d in dilations]
            if h["resblock"] == "1":  # each dilated conv is followed by one of dilation 1
                convs += [(k, 1)] * len(dilations)
            for kernel, dilation in convs:
                key = (channels, length, kernel, dilation)
                if key not in shapes:
                    shapes[key] = {"config": name, "stage": stage, "channels": channels, "length": length,
                                   "kernel": kernel, "dilation": dilation, "convs": 0}
                shapes[key]["convs"] += 1
    return list(shapes.values())


def conv_transpose1d_shapes(name, h, frames):
    rows, uic, length = [], h["upsample_initial_channel"], frames
    for layer, (rate, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"])):
        rows.append({"config": name, "layer": layer, "in_channels": uic // 2 ** layer,
                     "out_channels": uic // 2 ** (layer + 1), "length": length, "out_length": length * rate,
                     "kernel": k, "stride": rate, "padding": (k - rate) // 2})
        length *= rate
    return rows


def ops_section(configs, settings):
    batch, n_inputs, repeats = settings["op_batch"], settings["inputs"], settings["repeats"]
    min_sample_s = 0.0 if settings["quick"] else OP_MIN_SAMPLE_S  # --quick: one call a sample, fast
    have_op = extension.loaded
    conv_rows, transpose_rows, measured = [], [], {}
    with torch.inference_mode():
        for name, h in configs:
            frames = frames_for(h, settings["seconds"])
            for shape in conv1d_shapes(name, h, frames):
                key = ("conv1d", shape["channels"], shape["length"], shape["kernel"], shape["dilation"])
                if key not in measured:
                    log(f"ops: lrelu_conv1d {name} stage {shape['stage']} C={shape['channels']} "
                        f"T={shape['length']} K={shape['kernel']} dilation={shape['dilation']}")
                    measured[key] = time_conv1d(shape, batch, n_inputs, repeats, min_sample_s, have_op,
                                                settings["seed"])
                    measured[key]["timed_as"] = f"{name} stage {shape['stage']}"
                conv_rows.append({**shape, "batch": batch, **measured[key]})
            for shape in conv_transpose1d_shapes(name, h, frames):
                key = ("transpose", shape["in_channels"], shape["out_channels"], shape["length"], shape["kernel"],
                       shape["stride"], shape["padding"])
                if key not in measured:
                    log(f"ops: lrelu_conv_transpose1d {name} layer {shape['layer']} C_in={shape['in_channels']} "
                        f"T_in={shape['length']} K={shape['kernel']} stride={shape['stride']}")
                    measured[key] = time_conv_transpose1d(shape, batch, n_inputs, repeats, min_sample_s, have_op,
                                                          settings["seed"])
                    measured[key]["timed_as"] = f"{name} layer {shape['layer']}"
                transpose_rows.append({**shape, "batch": batch, **measured[key]})
    return {"lrelu_conv1d": conv_rows, "lrelu_conv_transpose1d": transpose_rows}


def time_conv1d(shape, batch, n_inputs, repeats, min_sample_s, have_op, seed):
    c, t, k, d = shape["channels"], shape["length"], shape["kernel"], shape["dilation"]
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(c, c, k, generator=gen) / math.sqrt(c * k)
    bias = 0.1 * torch.randn(c, generator=gen)
    inputs = [(torch.randn(batch, c, t, generator=gen), torch.randn(batch, c, t, generator=gen))
              for _ in range(n_inputs)]
    engines = {"eager": lambda inp: lrelu_conv1d_ref(inp[0], weight, bias, d, LRELU_SLOPE, inp[1])}
    if have_op:
        engines["fused"] = lambda inp: torch.ops.vocoder_ext.lrelu_conv1d(inp[0], weight, bias, d, LRELU_SLOPE,
                                                                          inp[1], "none")
    flop = 2 * c * c * k * t * batch
    bytes_moved = 4 * (3 * batch * c * t + weight.numel() + bias.numel())  # x, residual, y once; the weights
    return time_op(engines, inputs, repeats, min_sample_s, flop, bytes_moved)


def time_conv_transpose1d(shape, batch, n_inputs, repeats, min_sample_s, have_op, seed):
    c_in, c_out, t, k = shape["in_channels"], shape["out_channels"], shape["length"], shape["kernel"]
    stride, padding = shape["stride"], shape["padding"]
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(c_in, c_out, k, generator=gen) / math.sqrt(c_in * k)
    bias = 0.1 * torch.randn(c_out, generator=gen)
    inputs = [torch.randn(batch, c_in, t, generator=gen) for _ in range(n_inputs)]
    engines = {"eager": lambda x: lrelu_conv_transpose1d_ref(x, weight, bias, stride, padding, LRELU_SLOPE)}
    if have_op:
        engines["fused"] = lambda x: torch.ops.vocoder_ext.lrelu_conv_transpose1d(x, weight, bias, stride, padding,
                                                                                  LRELU_SLOPE)
    flop = 2 * c_in * c_out * k * t * batch  # every input sample meets K taps of every (in, out) pair
    out_len = (t - 1) * stride - 2 * padding + k
    bytes_moved = 4 * (batch * c_in * t + batch * c_out * out_len + weight.numel() + bias.numel())
    return time_op(engines, inputs, repeats, min_sample_s, flop, bytes_moved)


def time_op(engines, inputs, repeats, min_sample_s, flop, bytes_moved):
    outputs, _, failed = warm_up(engines, inputs[0], 1)
    engines = {name: fn for name, fn in engines.items() if name not in failed}
    timings = round_robin(engines, inputs, repeats, min_sample_s)
    result = {"flop": flop, "bytes": bytes_moved, "timings": timings}
    for name in ("eager", "fused"):
        if name in timings:
            seconds = statistics.median(timings[name]["seconds"])
            result[f"{name}_ms"] = 1e3 * seconds
            result[f"{name}_gflops"] = flop / seconds / 1e9
            result[f"{name}_gbps"] = bytes_moved / seconds / 1e9
        else:
            result[f"{name}_ms"] = None
            result[f"{name}_status"] = failed.get(name, "skipped: vocoder_ext._C not loaded")
    if result["eager_ms"] and result["fused_ms"]:
        result["speedup"] = result["eager_ms"] / result["fused_ms"]
        result["max_abs_diff"] = max_abs_diff(outputs["fused"], outputs["eager"])
    else:
        result["speedup"] = result["max_abs_diff"] = None
    return result


def render_ops(ops, s):
    conv = [[r["config"], r["stage"], r["channels"], r["length"], r["kernel"], r["dilation"], r["convs"],
             fmt(r["eager_ms"]), fmt(r["fused_ms"]) if r["fused_ms"] else r.get("fused_status"), fmt(r["speedup"]),
             fmt(r["eager_gflops"]), fmt(r.get("fused_gflops")), fmt(r.get("fused_gbps")), fmt(r["max_abs_diff"], 2)]
            for r in ops["lrelu_conv1d"]]
    transpose = [[r["config"], r["layer"], r["in_channels"], r["out_channels"], r["length"], r["out_length"],
                  r["kernel"], r["stride"], fmt(r["eager_ms"]),
                  fmt(r["fused_ms"]) if r["fused_ms"] else r.get("fused_status"), fmt(r["speedup"]),
                  fmt(r["eager_gflops"]), fmt(r.get("fused_gflops")), fmt(r["max_abs_diff"], 2)]
                 for r in ops["lrelu_conv_transpose1d"]]
    return "\n".join([
        f"## Ops: lrelu_conv1d (leaky-ReLU, dilated conv1d, bias, residual), batch {s['op_batch']}",
        "",
        f"eager = `vocoder_ext.ops.lrelu_conv1d_ref`; fused = `torch.ops.vocoder_ext.lrelu_conv1d`. "
        f"Stage i of a config: C = upsample_initial_channel / 2^(i+1), T = frames of {s['seconds']:g} s of audio "
        f"* prod(upsample_rates[:i+1]); convs = resblock convs of that shape in one forward pass. Each distinct "
        f"shape is timed once: a row whose shape appeared above repeats that measurement. "
        f"GFLOP/s = 2*C*C*K*T*B / time; GB/s = (x, residual, y, weights) bytes / time.",
        "",
        table(["config", "stage", "C", "T", "K", "dilation", "convs", "eager ms", "fused ms", "speedup",
               "eager GFLOP/s", "fused GFLOP/s", "fused GB/s", "max abs diff"], conv),
        "",
        f"## Ops: lrelu_conv_transpose1d (leaky-ReLU, transposed conv1d: the upsampling layers), batch {s['op_batch']}",
        "",
        "eager = `vocoder_ext.ops.lrelu_conv_transpose1d_ref`; fused = `torch.ops.vocoder_ext.lrelu_conv_transpose1d`. "
        "GFLOP/s = 2*C_in*C_out*K*T_in*B / time.",
        "",
        table(["config", "layer", "C_in", "C_out", "T_in", "T_out", "K", "stride", "eager ms", "fused ms", "speedup",
               "eager GFLOP/s", "fused GFLOP/s", "max abs diff"], transpose),
    ])

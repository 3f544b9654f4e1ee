"""The `disc` section of the bench: the HiFi-GAN discriminators (MPD + MSD) eager vs fused, whole and per layer.

whole  MPD + MSD forward and backward (a loss over every logit and feature map, as the recipe's losses read
       them all), on --gan-batch real and --gan-batch generated items of --gan-frames * 256 samples, grads of
       the audio included (the generator step needs them): MultiPeriodDiscriminator() and
       MultiScaleDiscriminator() eager vs fused=True.
layers every conv layer of both at batch 2 * --gan-batch (the real and generated passes together), the shapes taken from a forward pass: the eager layer
       (`conv1d_lrelu_ref`: ATen's conv + leaky-ReLU; backward `conv1d_lrelu_backward_ref`: leaky' then ATen's
       convolution_backward) vs the registered op (`torch.ops.vocoder_ext.conv1d_lrelu` and its backward),
       forward and backward (grad_x, grad_w, grad_b) timed apart, with GFLOP/s: forward
       2 * B * C_out * C_in/groups * K * T_out * W, backward twice that. --quick: the layers of the MPD's
       period-2 and the MSD's first sub-discriminator only.
"""
import statistics

import torch

from ...models.discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
from ...ops.conv1d_lrelu import conv1d_lrelu_backward_ref, conv1d_lrelu_ref
from ...runtime import extension
from .ops import OP_MIN_SAMPLE_S
from .timing import fmt, log, round_robin, table, warm_up

HOP = 256  # the recipe's segment is frames * 256 samples (every preset's hop)


def layer_shapes(batch, samples, seed=0):
    """[{"disc", "layer", "x_shape", "weight_shape", "stride", "padding", "groups", "slope"}] of every conv of
    the MPD and MSD on [batch, 1, samples] audio, read by forward pre-hooks on eager modules."""
    from ...models.hifigan import LRELU_SLOPE
    torch.manual_seed(seed)
    shapes, hooks = [], []
    discs = {"mpd": MultiPeriodDiscriminator(), "msd": MultiScaleDiscriminator()}
    for disc_name, disc in discs.items():
        for sub_index, sub in enumerate(disc.discriminators):
            sub_name = f"p{sub.period}" if disc_name == "mpd" else f"s{sub_index}"
            layers = list(sub.convs) + [sub.conv_post]
            for i, conv in enumerate(layers):
                def record(module, args, name=f"{disc_name} {sub_name} conv{i}", post=conv is sub.conv_post):
                    w = module.weight
                    shapes.append({"disc": disc_name, "layer": name, "x_shape": tuple(args[0].shape),
                                   "weight_shape": tuple(w.shape[:3]), "stride": module.stride[0],
                                   "padding": module.padding[0], "groups": module.groups,
                                   "slope": 1.0 if post else LRELU_SLOPE})
                hooks.append(conv.register_forward_pre_hook(record))
    try:
        with torch.no_grad():
            audio = torch.randn(batch, 1, samples)
            for disc in discs.values():
                disc(audio, audio)
    finally:
        for h in hooks:
            h.remove()
    # each sub-discriminator saw y and y_hat: keep the first call of each layer
    seen, unique = set(), []
    for s in shapes:
        if s["layer"] not in seen:
            seen.add(s["layer"])
            unique.append(s)
    return unique


def layer_flop(shape):
    """Multiply-adds * 2 of the forward: B * C_out * C_in/groups * K * T_out * W."""
    b, _, t = shape["x_shape"][:3]
    w = shape["x_shape"][3] if len(shape["x_shape"]) == 4 else 1
    c_out, cg, k = shape["weight_shape"]
    t_out = (t + 2 * shape["padding"] - k) // shape["stride"] + 1
    return 2 * b * c_out * cg * k * t_out * w


def time_layer(shape, n_inputs, repeats, min_sample_s, seed):
    gen = torch.Generator().manual_seed(seed)
    c_out, cg, k = shape["weight_shape"]
    w = torch.randn(c_out, cg, k, generator=gen) / (cg * k) ** 0.5
    bias = 0.1 * torch.randn(c_out, generator=gen)
    args = (shape["stride"], shape["padding"], shape["groups"], shape["slope"])
    xs = [torch.randn(*shape["x_shape"], generator=gen) for _ in range(n_inputs)]
    outs = [conv1d_lrelu_ref(x, w, bias, *args) for x in xs]
    inputs = [(x, out, torch.randn(out.shape, generator=gen)) for x, out in zip(xs, outs)]
    wb, bb = w.bfloat16(), bias.bfloat16()
    inputs = [(*i, *(t.bfloat16() for t in i)) for i in inputs]  # + the bf16 copies (--amp's dtype)
    engines = {"eager forward": lambda i: conv1d_lrelu_ref(i[0], w, bias, *args),
               "eager backward": lambda i: conv1d_lrelu_backward_ref(i[2], i[1], i[0], w, *args),
               "eager bf16 forward": lambda i: conv1d_lrelu_ref(i[3], wb, bb, *args),
               "eager bf16 backward": lambda i: conv1d_lrelu_backward_ref(i[5], i[4], i[3], wb, *args)}
    if extension.loaded:
        op = torch.ops.vocoder_ext
        engines["fused forward"] = lambda i: op.conv1d_lrelu(i[0], w, bias, *args)
        engines["fused backward"] = lambda i: op.conv1d_lrelu_backward(i[2], i[1], i[0], w, *args)
        engines["fused bf16 forward"] = lambda i: op.conv1d_lrelu(i[3], wb, bb, *args)
        engines["fused bf16 backward"] = lambda i: op.conv1d_lrelu_backward(i[5], i[4], i[3], wb, *args)
    _, _, failed = warm_up(engines, inputs[0], 1)
    timings = round_robin({n: f for n, f in engines.items() if n not in failed}, inputs, repeats, min_sample_s)
    flop = layer_flop(shape)
    row = {**shape, "flop": flop, "timings": timings, "failed": failed}
    for name, work in (("forward", flop), ("backward", 2 * flop)):
        for engine in ("eager", "fused", "eager bf16", "fused bf16"):
            t = timings.get(f"{engine} {name}")
            ms = 1e3 * statistics.median(t["seconds"]) if t else None
            row[f"{engine.replace(' ', '_')}_{name}_ms"] = ms
            row[f"{engine.replace(' ', '_')}_{name}_gflops"] = work / ms / 1e6 if ms else None
    return row


def time_whole(batch, samples, repeats, seed):
    """MPD + MSD forward + backward, eager vs fused (same weights), medians over round-robin repeats."""
    torch.manual_seed(seed)
    eager = [MultiPeriodDiscriminator(), MultiScaleDiscriminator()]
    fused = [MultiPeriodDiscriminator(fused=True), MultiScaleDiscriminator(fused=True)]
    for e, f in zip(eager, fused):
        f.load_state_dict(e.state_dict())
    gen = torch.Generator().manual_seed(seed)
    half = batch // 2
    inputs = [(torch.randn(half, 1, samples, generator=gen), torch.randn(half, 1, samples, generator=gen))
              for _ in range(2)]

    def step(discs, amp=False):
        def fn(pair):
            y, y_hat = (a.clone().requires_grad_(True) for a in pair)  # the G step needs grad of the audio too
            loss = 0
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):  # amp: the recipe's --amp on CPU
                for d in discs:
                    logits_r, logits_g, fmaps_r, fmaps_g = d(y, y_hat)
                    for logit, fmap in zip(logits_r + logits_g, fmaps_r + fmaps_g):
                        loss = loss + logit.float().square().mean() + sum(f.float().square().mean() for f in fmap)
            loss.backward()
            for d in discs:
                d.zero_grad(set_to_none=True)
            return loss.detach()
        return fn

    engines = {"eager": step(eager), "eager amp": step(eager, True)}
    if extension.loaded:
        engines["fused"] = step(fused)
        engines["fused amp"] = step(fused, True)
    outputs, _, failed = warm_up(engines, inputs[0], 1)
    timings = round_robin({n: f for n, f in engines.items() if n not in failed}, inputs, repeats)
    row = {"batch": batch, "samples": samples, "timings": timings, "failed": failed}
    for name in ("eager", "fused", "eager amp", "fused amp"):
        row[f"{name.replace(' ', '_')}_s"] = statistics.median(timings[name]["seconds"]) if name in timings else None
    row["speedup"] = row["eager_s"] / row["fused_s"] if row["fused_s"] else None
    row["speedup_amp"] = row["eager_amp_s"] / row["fused_amp_s"] if row["fused_amp_s"] else None
    if "fused" in outputs and "eager" in outputs:
        row["loss_rel_diff"] = abs((outputs["fused"] - outputs["eager"]) / outputs["eager"]).item()
    return row


def disc_section(settings):
    batch, samples = 2 * settings["gan_batch"], settings["gan_frames"] * HOP
    min_sample_s = 0.0 if settings["quick"] else OP_MIN_SAMPLE_S
    log(f"disc: MPD + MSD forward + backward, {batch} x {samples} samples")
    whole = time_whole(batch, samples, settings["repeats"], settings["seed"])
    layers = []
    shapes = layer_shapes(batch, samples, settings["seed"])
    if settings["quick"]:  # tests: the first sub-discriminator of each, every kind of layer once
        shapes = [s for s in shapes if s["layer"].split()[1] in ("p2", "s0")]
    for shape in shapes:
        log(f"disc: {shape['layer']} x {shape['x_shape']} weight {shape['weight_shape']}")
        layers.append(time_layer(shape, settings["inputs"], settings["repeats"], min_sample_s, settings["seed"]))
    return {"whole": whole, "layers": layers}


def render_disc(disc, s):
    w = disc["whole"]
    totals = {key: sum(r[key] or 0 for r in disc["layers"]) for key in
              [f"{e}_{p}_ms" for e in ("eager", "fused", "eager_bf16", "fused_bf16") for p in ("forward", "backward")]}
    rows = []
    for r in disc["layers"]:
        c_out, cg, k = r["weight_shape"]
        rows.append([r["layer"], "x".join(map(str, r["x_shape"])), f"{c_out}x{cg}x{k}", r["stride"], r["groups"],
                     fmt(r["flop"] / 1e9), fmt(r["eager_forward_ms"]), fmt(r["fused_forward_ms"]),
                     fmt(r["eager_forward_gflops"]), fmt(r["fused_forward_gflops"]),
                     fmt(r["eager_backward_ms"]), fmt(r["fused_backward_ms"]),
                     fmt(r["eager_backward_gflops"]), fmt(r["fused_backward_gflops"]),
                     fmt(r["eager_bf16_forward_ms"]), fmt(r["fused_bf16_forward_ms"]),
                     fmt(r["eager_bf16_backward_ms"]), fmt(r["fused_bf16_backward_ms"])])
    rows.append(["all layers", "", "", "", "", fmt(sum(r["flop"] for r in disc["layers"]) / 1e9),
                 fmt(totals["eager_forward_ms"]), fmt(totals["fused_forward_ms"]), "", "",
                 fmt(totals["eager_backward_ms"]), fmt(totals["fused_backward_ms"]), "", "",
                 fmt(totals["eager_bf16_forward_ms"]), fmt(totals["fused_bf16_forward_ms"]),
                 fmt(totals["eager_bf16_backward_ms"]), fmt(totals["fused_bf16_backward_ms"])])
    return "\n".join([
        f"## Discriminators: MPD + MSD, {w['batch']} x {w['samples']} samples (real and generated audio in one batch)",
        "",
        "Forward + backward of a loss over every logit and feature map, grad of the input included, "
        "`MultiPeriodDiscriminator()` + `MultiScaleDiscriminator()` eager vs `fused=True` (same weights): "
        f"eager {fmt(w['eager_s'])} s, fused {fmt(w['fused_s'])} s, speedup {fmt(w['speedup'])}"
        + (f" (losses differ by {w['loss_rel_diff']:.1e} relative)" if w.get("loss_rel_diff") is not None else "")
        + f"; under bf16 autocast (--amp) eager {fmt(w['eager_amp_s'])} s, fused {fmt(w['fused_amp_s'])} s, "
        f"speedup {fmt(w['speedup_amp'])}"
        + (f" (against fp32 eager: {fmt(w['eager_s'] / w['fused_amp_s'])})" if w["fused_amp_s"] else "") + ".",
        "",
        "Per layer (shapes from that pass): eager = `conv1d_lrelu_ref` / `conv1d_lrelu_backward_ref` (ATen's conv "
        "and convolution_backward, leaky-ReLU and leaky' around them); fused = `torch.ops.vocoder_ext.conv1d_lrelu` "
        "and its backward (grad_x, grad_w, grad_b). GFLOP = 2 * B * C_out * C_in/groups * K * T_out * W of the "
        "forward; the backward does twice that. bf16 = the same on bf16 tensors (what --amp hands the layers).",
        "",
        table(["layer", "x", "weight", "stride", "groups", "GFLOP fwd", "eager fwd ms", "fused fwd ms",
               "eager fwd GFLOP/s", "fused fwd GFLOP/s", "eager bwd ms", "fused bwd ms", "eager bwd GFLOP/s",
               "fused bwd GFLOP/s", "eager bf16 fwd ms", "fused bf16 fwd ms", "eager bf16 bwd ms",
               "fused bf16 bwd ms"], rows),
    ])

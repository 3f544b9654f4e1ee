"""The training-step rows of `bench --waveglow`: one WaveGlow training step, eager vs fused.

A step: gradients set to None, forward `model(mel, audio)` -> (z, log_s_list, log_det_W_list),
`vocoder_ext.losses.waveglow_loss(outputs, sigma=1.0)` (NVIDIA's WaveGlowLoss), backward. Weight norm on
(training keeps it), train mode, fp32, the same seeded weights for both engines (waveglow_common.build_model).
Input: `--waveglow-train-batch` items of `--waveglow-train-samples` audio samples (NVIDIA's segment length
16000 by default) in [-0.5, 0.5), and samples // 256 + 1 mel frames (what a centred STFT of the segment gives).
Step time: median of `--repeats` round-robin samples after warm-up (timing.py). Peak memory: each engine alone
in a fresh spawned process, training.py's peak_memory_in_child (its MEMORY_METHOD: RSS growth over two steps).
"""
import statistics

import torch

from ...losses import waveglow_loss
from .timing import fmt, log, round_robin, table, warm_up
from .training import peak_memory_in_child
from .waveglow_common import TRAIN_SIGMA, build_model

HOP = 256


def train_section(channels, settings, batch, samples):
    """-> one row per engine: step seconds (every sample), speedup, loss difference, peak memory."""
    frames = samples // HOP + 1
    log(f"waveglow train: batch {batch} x {samples} samples ({frames} mel frames), weight norm on")
    models = {e: build_model(channels, settings["seed"], e == "fused", weight_norm=True).train()
              for e in ("eager", "fused")}
    gen = torch.Generator().manual_seed(settings["seed"])
    inputs = [train_input(batch, samples, gen) for _ in range(settings["inputs"])]
    engines = {engine: training_step(model) for engine, model in models.items()}
    outputs, first_call, failed = warm_up(engines, inputs[0], settings["warmup"])
    timings = round_robin({e: fn for e, fn in engines.items() if e not in failed}, inputs, settings["repeats"])
    del models, engines
    eager_s = statistics.median(timings["eager"]["seconds"]) if "eager" in timings else None
    rows = []
    for engine in ("eager", "fused"):
        row = {"engine": engine, "batch": batch, "samples": samples, "frames": frames}
        if engine in timings:
            seconds = statistics.median(timings[engine]["seconds"])
            row.update(status="ok", median_s=seconds, speedup_vs_eager=eager_s / seconds if eager_s else None,
                       first_step_loss=outputs[engine].item(),
                       loss_diff_vs_eager=abs(outputs[engine] - outputs["eager"]).item() if "eager" in outputs
                       else None,
                       first_call_s=first_call[engine], seconds=timings[engine]["seconds"])
            log(f"waveglow train: peak memory of {engine} in a fresh process")
            row["memory"] = peak_memory_in_child(_step_setup, {"channels": channels, "seed": settings["seed"]},
                                                 engine == "fused", batch, samples, settings)
        else:
            row["status"] = f"failed: {failed[engine]}"
        rows.append(row)
    return rows


def train_input(batch, samples, gen=None):
    """(mel [batch, 80, samples // 256 + 1], audio [batch, samples])."""
    mel = torch.randn(batch, 80, samples // HOP + 1, generator=gen) - 5.0
    return mel, torch.rand(batch, samples, generator=gen) - 0.5


def training_step(model):
    """fn((mel, audio)) -> the loss (detached): one forward + waveglow_loss + backward."""
    def fn(inp):
        mel, audio = inp
        model.zero_grad(set_to_none=True)
        loss = waveglow_loss(model(mel, audio), TRAIN_SIGMA)
        loss.backward()
        return loss.detach()
    return fn


def _step_setup(h, fused, batch, samples):
    """Run in peak_memory_in_child's fresh process (module level: picklable) -> (step, its input)."""
    model = build_model(h["channels"], h["seed"], fused, weight_norm=True).train()
    return training_step(model), train_input(batch, samples)


def render_train(rows, channels):
    body = []
    for r in rows:
        if r["status"] == "ok":
            mem = r["memory"]["peak_increase_mib"]
            body.append([r["engine"], f"{r['batch']} x {r['samples']}", fmt(1e3 * r["median_s"]),
                         fmt(r["speedup_vs_eager"]), fmt(mem) if mem is not None else r["memory"]["method"],
                         f"{r['first_step_loss']:.6g}", fmt(r["loss_diff_vs_eager"], 2)])
        else:
            body.append([r["engine"], f"{r['batch']} x {r['samples']}", r["status"], "", "", "", ""])
    methods = sorted({r["memory"]["method"] for r in rows if r.get("memory", {}).get("peak_increase_mib") is not None})
    return "\n".join([
        f"## Training step: WaveGlow forward + waveglow_loss + backward, {channels} channels, weight norm on",
        "",
        "eager = `WaveGlow(fused=False)`, fused = `WaveGlow(fused=True)`, same weights, train mode, fp32, "
        f"`waveglow_loss(model(mel, audio), sigma={TRAIN_SIGMA:g})`, gradients set to None before each step. "
        "Peak memory: " + ("; ".join(methods) if methods else "-") + ".",
        "",
        table(["engine", "batch x samples", "median step ms", "speedup vs eager", "peak memory MiB",
               "first step loss", "loss diff vs eager"], body),
    ])

"""The end-to-end inference table of `bench --waveglow`: WaveGlow.infer, engine by engine.

  eager    "nvidia-equivalent eager": WaveGlow(fused=False). It reproduces NVIDIA's math (python_tests/
           test_waveglow.py checks it against an independent copy of NVIDIA's model) and is as fast as NVIDIA's
           own on the CPU (README: measured side by side), so it stands in for NVIDIA's WaveGlow.
  compile  torch.compile (inductor, freezing, dynamic=False) of that eager model's `infer`. If compiling the
           whole `infer` fails, each flow's WN module is compiled instead (the rest runs eager); the row
           says which. Compiling happens in the warm-up call: its time is `first_call_s`, never in a median.
  fused    WaveGlow(fused=True): the WN layers, couplings and 1x1 convs on vocoder_ext's fused ops.

Same weights (weight norm removed, eval), fp32, sigma 0.9, a fixed noise z per input; each batch of
`--waveglow-batches` gets `--inputs` different (mel, z) pairs, used in turn. Warm-up, then `--repeats`
round-robin rounds (timing.py); each sample is one infer call, timed with the wall clock. x real-time =
audio seconds * batch / wall seconds; GFLOP/s = waveglow_common.infer_flop / median seconds.
"""
import copy
import statistics

import torch

from ..common import DEFAULT_SAMPLING_RATE
from .timing import fmt, log, max_abs_diff, round_robin, table, warm_up
from .waveglow_common import SIGMA, infer_flop

ENGINES = {"eager": "nvidia-equivalent eager", "compile": "torch.compile", "fused": "fused"}
WHOLE, PER_WN = "whole WaveGlow.infer", "per-flow WN modules"


def e2e_section(eager_model, fused_model, settings, batches, engines_wanted, not_wanted_reason):
    """-> rows, one per (batch, engine) with its samples; an engine left out or failing gets a status."""
    frames = max(1, round(settings["seconds"] * DEFAULT_SAMPLING_RATE / eager_model.hop_length))
    audio_s = frames * eager_model.hop_length / DEFAULT_SAMPLING_RATE
    rows = []
    for batch in batches:
        log(f"waveglow e2e: batch {batch}, {frames} frames ({audio_s:.2f} s of audio per item)")
        gen = torch.Generator().manual_seed(settings["seed"] + batch)
        inputs = []
        for _ in range(settings["inputs"]):
            mel = torch.randn(batch, eager_model.n_mel_channels, frames, generator=gen) - 5.0
            inputs.append((mel, torch.randn(eager_model.noise_shape(mel), generator=gen)))
        engines = {}
        for name in ENGINES:
            if name in engines_wanted:
                engines[name] = (CompiledInfer(eager_model) if name == "compile"
                                 else inference(eager_model if name == "eager" else fused_model))
        outputs, first_call, failed = warm_up(engines, inputs[0], settings["warmup"])
        timings = round_robin({n: f for n, f in engines.items() if n not in failed}, inputs, settings["repeats"])
        flop = infer_flop(eager_model, frames, batch)
        eager_s = statistics.median(timings["eager"]["seconds"]) if "eager" in timings else None
        for name, label in ENGINES.items():
            row = {"batch": batch, "frames": frames, "audio_s": audio_s, "engine": name, "label": label,
                   "flop": flop}
            if name == "compile" and name in engines:
                row.update(compile_mode=engines[name].mode, whole_infer_error=engines[name].whole_error)
            if name in timings:
                seconds = statistics.median(timings[name]["seconds"])
                row.update(status="ok", median_s=seconds, x_realtime=audio_s * batch / seconds,
                           speedup_vs_eager=eager_s / seconds if eager_s else None, gflops=flop / seconds / 1e9,
                           max_abs_diff_vs_eager=max_abs_diff(outputs[name], outputs["eager"])
                           if "eager" in outputs else None,
                           first_call_s=first_call[name], seconds=timings[name]["seconds"],
                           calls_per_sample=timings[name]["calls_per_sample"])
            elif name in failed:
                row["status"] = f"failed: {failed[name]}"
            else:
                row["status"] = not_wanted_reason
            rows.append(row)
        del engines  # the compiled graphs (frozen weight copies) of this batch
    return rows


def inference(model):
    def fn(inp):
        with torch.inference_mode():
            return model.infer(inp[0], SIGMA, inp[1])
    return fn


class CompiledInfer:
    """fn((mel, z)) -> audio: torch.compile (inductor, freezing, dynamic=False) of the eager model's infer.

    Compiling happens on the first call. If the whole `infer` fails to compile or run there, `whole_error`
    keeps why and a copy of the model with each flow's WN forward compiled runs instead (`mode` says which);
    a failure after that is raised (warm_up reports it). `compile` is torch.compile (tests pass a stand-in)."""

    def __init__(self, model, compile=None):
        import torch._dynamo  # noqa: F401  (imported here, not when the CLI starts)
        import torch._inductor.config  # noqa: F401  (the freezing switch)
        torch._dynamo.reset()  # a fresh cache for each batch: no recompile limits, no stale graphs
        self.model, self.compile = model, compile or torch.compile
        self.fn = self.compile(model.infer, dynamic=False)
        self.mode, self.whole_error = WHOLE, None

    def __call__(self, inp):
        mel, z = inp
        with torch.no_grad(), torch._inductor.config.patch(freezing=True):
            try:
                return self.fn(mel, SIGMA, z)
            except Exception as e:
                if self.mode != WHOLE:
                    raise
                self.whole_error = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"[:300]
                log(f"  torch.compile of the whole infer failed ({self.whole_error}); compiling the WN modules")
                self.model = copy.deepcopy(self.model)  # the eager engine keeps its uncompiled model
                for wn in self.model.WN:
                    wn.forward = self.compile(wn.forward, dynamic=False)
                self.fn, self.mode = self.model.infer, PER_WN
                return self.fn(mel, SIGMA, z)


def render_e2e(rows, s, channels):
    body = []
    for r in rows:
        if r["status"] == "ok":
            body.append([r["batch"], r["label"], fmt(r["median_s"]), fmt(r["x_realtime"]), fmt(r["speedup_vs_eager"]),
                         fmt(r["gflops"]), f"{r['max_abs_diff_vs_eager']:.2e}", fmt(r["first_call_s"])])
        else:
            body.append([r["batch"], r["label"], r["status"], "", "", "", "", ""])
    compiled = [r for r in rows if r.get("compile_mode")]
    if compiled:
        modes = sorted({r["compile_mode"] for r in compiled})
        errors = sorted({r["whole_infer_error"] for r in compiled if r["whole_infer_error"]})
        compile_note = (f"torch.compile compiled: {' / '.join(modes)}"
                        + (f" (compiling the whole infer failed: {'; '.join(errors)})" if errors else "")
                        + "; compile time is in first call s, never in the medians.")
    else:
        compile_note = "torch.compile: not run (see its rows)."
    return "\n".join([
        f"## End to end: WaveGlow.infer, {channels} channels, {rows[0]['audio_s']:.2f} s of audio per item",
        "",
        "nvidia-equivalent eager = `WaveGlow(fused=False)`: NVIDIA's math (tested against an independent copy of "
        "NVIDIA's model) at NVIDIA's speed or better on the CPU. torch.compile = inductor with freezing, "
        "dynamic=False, of that model's infer. fused = `WaveGlow(fused=True)`. Same weights, weight norm removed, "
        f"fp32, sigma {SIGMA}, fixed z. x real-time = audio s * batch / wall s; GFLOP/s = the model's FLOP count "
        f"(header) / median s. {compile_note}",
        "",
        table(["batch", "engine", "median s", "x real-time", "speedup vs eager", "GFLOP/s", "max abs diff vs eager",
               "first call s"], body),
    ])

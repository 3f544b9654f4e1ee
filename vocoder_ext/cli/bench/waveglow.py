"""`python -m vocoder_ext bench --waveglow`: WaveGlow inference on the CPU, and its fp16/bf16 error.

One table: WaveGlow (NVIDIA's config, `--waveglow-channels` WN channels, random weights with the `end`
layers randomised too, weight norm removed) inferring `--seconds` of audio per item at sigma 0.9 with a
fixed z, eager (`fused=False`) vs fused (`fused=True`), timed round-robin after warm-up (timing.py);
x real-time = audio seconds / wall seconds. Then the same model in fp16 and bf16 on the first input:
whether the audio is finite, and its error against the fp32 model's. OUT/bench_waveglow.md and .json.
"""
import datetime
import statistics

import torch

from ...models import WaveGlow
from ..common import DEFAULT_SAMPLING_RATE, write_outputs
from .timing import fmt, load_average, log, machine_info, round_robin, table, versions, warm_up

SIGMA = 0.9
PRECISION_FRAMES = 24  # fp16 convs on a CPU without AVX512-FP16 run a slow path: the error needs no long input
DEFAULT_SECONDS = 2.0  # a 256-channel WaveGlow runs at ~0.3x real time on 2 cores: --seconds 10 would take minutes


def run_waveglow(settings, channels):
    torch.manual_seed(settings["seed"])
    model = WaveGlow(WN_config={"n_layers": 8, "n_channels": channels, "kernel_size": 3})
    for wn in model.WN:  # a fresh model's couplings are the identity; trained ones are not
        torch.nn.init.normal_(wn.end.weight, std=0.02)
        torch.nn.init.normal_(wn.end.bias, std=0.02)
    model.remove_weight_norm().eval()
    frames = max(1, round(settings["seconds"] * DEFAULT_SAMPLING_RATE / model.hop_length))
    gen = torch.Generator().manual_seed(settings["seed"])
    inputs = []
    for _ in range(settings["inputs"]):
        mel = torch.randn(1, model.n_mel_channels, frames, generator=gen) - 5.0
        inputs.append((mel, torch.randn(model.noise_shape(mel), generator=gen)))

    def engine(fused):
        def infer(inp):
            model.fused = fused
            with torch.inference_mode():
                return model.infer(inp[0], SIGMA, inp[1])
        return infer

    engines = {"eager": engine(False), "fused": engine(True)}
    log(f"waveglow: {channels} channels, {frames} frames ({settings['seconds']:g} s of audio), batch 1")
    outputs, first_call, failed = warm_up(engines, inputs[0], settings["warmup"])
    timings = round_robin({n: f for n, f in engines.items() if n not in failed}, inputs, settings["repeats"])
    audio_s = frames * model.hop_length / DEFAULT_SAMPLING_RATE
    rows = [{"engine": name, "median_s": statistics.median(t["seconds"]),
             "x_realtime": audio_s / statistics.median(t["seconds"]), "samples_s": t["seconds"],
             "first_call_s": first_call[name],
             "max_abs_diff_vs_eager": (outputs[name] - outputs["eager"]).abs().max().item()}
            for name, t in timings.items()]
    precision = precision_rows(model, inputs[0])
    report = {"command": settings["command"],
              "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "settings": {**settings, "waveglow_channels": channels, "sigma": SIGMA, "frames": frames},
              "machine": machine_info(), "versions": versions(), "load_average": load_average(),
              "timings": rows, "failed": failed, "precision": precision}
    write_outputs(settings["out"], "bench_waveglow", render(report, audio_s, channels), report)


def precision_rows(model, inp):
    """fp16 and bf16 copies of the model on (the first PRECISION_FRAMES frames of) the same input: finite?,
    and the error vs fp32."""
    mel = inp[0][:, :, :PRECISION_FRAMES]
    z = inp[1][:, :, :model.noise_shape(mel)[2]]
    with torch.inference_mode():
        fp32_audio = model.infer(mel, SIGMA, z)
    rows = []
    scale = fp32_audio.abs().max().item()
    for dtype in (torch.float16, torch.bfloat16):
        low = model.to(dtype)
        log(f"waveglow: {dtype} inference")
        with torch.inference_mode():
            out = low.infer(mel.to(dtype), SIGMA, z).float()
        err = out - fp32_audio
        rows.append({"dtype": str(dtype).removeprefix("torch."), "frames": mel.shape[2],
                     "finite": bool(torch.isfinite(out).all()),
                     "max_abs_err": err.abs().max().item(), "max_abs_err_rel_peak": err.abs().max().item() / scale,
                     "rms_err_rel": (err.pow(2).mean().sqrt() / fp32_audio.pow(2).mean().sqrt()).item()})
    model.to(torch.float32)
    return rows


def render(report, audio_s, channels):
    s = report["settings"]
    lines = [f"# WaveGlow inference, CPU ({report['machine']['cpu']}, {s['threads']} threads)", "",
             f"`{report['command']}` — {report['date']}; WaveGlow {channels} channels (NVIDIA's config, random "
             f"weights), batch 1, {audio_s:.2f} s of audio, sigma {SIGMA}, fp32; median of {s['repeats']} "
             f"round-robin runs after {s['warmup']} warm-up. The WaveGlow ops have no fused kernels yet: "
             f"fused runs their references.", ""]
    lines.append(table(["engine", "median s", "x real-time", "max abs diff vs eager"],
                       [[r["engine"], fmt(r["median_s"]), fmt(r["x_realtime"]), f"{r['max_abs_diff_vs_eager']:.2e}"]
                        for r in report["timings"]]))
    lines += ["", f"fp16 / bf16 model (WN stacks and upsampling in that dtype; grouped audio, coupling exp and "
                  f"inverse 1x1 convs in fp32) vs the fp32 model, same mel and z, first "
                  f"{report['precision'][0]['frames']} frames:", ""]
    lines.append(table(["dtype", "finite", "max abs err", "max abs err / fp32 peak", "RMS err / fp32 RMS"],
                       [[r["dtype"], str(r["finite"]), f"{r['max_abs_err']:.2e}", f"{r['max_abs_err_rel_peak']:.2e}",
                         f"{r['rms_err_rel']:.2e}"] for r in report["precision"]]))
    return "\n".join(lines)

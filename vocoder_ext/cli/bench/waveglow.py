"""`python -m vocoder_ext bench --waveglow`: WaveGlow on the CPU, eager vs fused. OUT/bench_waveglow.md + .json.

Four sections, on NVIDIA's config with `--waveglow-channels` WN channels (default 256) and seeded random
weights (waveglow_common.py), fp32 unless said:

  ops        each op alone at T = seconds * 22050 / 8, batch --op-batch: wn_layer (a middle and the last
             layer), the conditioning, affine_coupling and invertible_conv1x1 (reverse): eager ms (the op's
             *_ref), fused ms (torch.ops.vocoder_ext.*), speedup, GFLOP/s, GB/s (waveglow_ops.py)
  e2e        WaveGlow.infer of --seconds of audio per item, batch --waveglow-batches (default 1,4):
             nvidia-equivalent eager (fused=False), torch.compile of it, fused (fused=True): median s,
             x real-time, speedup, GFLOP/s, max abs diff vs eager (waveglow_infer.py)
  train      one training step (forward + waveglow_loss + backward, weight norm on), eager vs fused, batch
             --waveglow-train-batch x --waveglow-train-samples: step ms, peak memory of a fresh process
             per engine (waveglow_train.py)
  precision  the eager and the fused model in fp16 and bf16 on the first PRECISION_FRAMES frames: finite?,
             and the error vs the fp32 eager model, same mel and z (this file)

Timing: warm-up runs first (compile time is kept as first_call_s, never in a median), then --repeats
round-robin rounds over --inputs different random inputs (timing.py); tables show medians, the JSON has every
sample, the settings, the machine and its threads. The header states the model's FLOP count per audio second
(waveglow_common.infer_flop). --quick (tests): 0.2 s, 2 repeats, 2048 training samples, no torch.compile.
"""
import datetime

import torch

from ...runtime import backends
from ..common import UserError, write_outputs
from .options import positive_ints
from .timing import fmt, load_average, log, machine_info, table, versions
from .waveglow_common import SIGMA, build_model, flop_per_audio_second
from .waveglow_infer import ENGINES, e2e_section, render_e2e
from .waveglow_ops import ops_section, render_ops
from .waveglow_train import render_train, train_section

PRECISION_FRAMES = 24  # fp16 convs on a CPU without AVX512-FP16 run a slow path: the error needs no long input
DEFAULT_SECONDS = 2.0  # a 256-channel WaveGlow runs at ~0.3x real time on 2 cores: --seconds 10 would take minutes
DEFAULTS = {"waveglow_batches": "1,4", "waveglow_train_batch": 1, "waveglow_train_samples": 16000}
QUICK = {"waveglow_train_samples": 2048}
WAVEGLOW_OPS = ("wn_layer", "lrelu_conv1d", "affine_coupling", "invertible_conv1x1")


def add_arguments(p):
    p.add_argument("--waveglow-channels", type=int, default=256,
                   help="WN channels of the --waveglow model (default: 256, NVIDIA's checkpoint)")
    p.add_argument("--waveglow-batches", help=f"comma-separated batch sizes of the --waveglow inference table "
                                              f"(default: {DEFAULTS['waveglow_batches']})")
    p.add_argument("--waveglow-train-batch", type=int,
                   help=f"batch of the --waveglow training step (default: {DEFAULTS['waveglow_train_batch']})")
    p.add_argument("--waveglow-train-samples", type=int,
                   help=f"audio samples per item of the --waveglow training step (default: "
                        f"{DEFAULTS['waveglow_train_samples']}, NVIDIA's segment length; --quick: "
                        f"{QUICK['waveglow_train_samples']})")


def waveglow_settings(args, settings):
    """The --waveglow options -> a dict (checked; UserError on a bad value)."""
    def pick(name):
        value = getattr(args, name, None)
        return value if value is not None else QUICK.get(name, DEFAULTS[name]) if args.quick else DEFAULTS[name]

    channels = args.waveglow_channels
    if channels < 2 or channels % 2:
        raise UserError(f"--waveglow-channels: expected an even number >= 2, got {channels}")
    for name in ("waveglow_train_batch", "waveglow_train_samples"):
        if pick(name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {pick(name)}")
    if pick("waveglow_train_samples") < 8:
        raise UserError(f"--waveglow-train-samples: expected at least 8 (one group of n_group=8 samples), got "
                        f"{pick('waveglow_train_samples')}")
    if args.engines is not None and any(e not in ENGINES for e in settings["engines"]):
        raise UserError(f"--engines with --waveglow: expected a comma-separated subset of {','.join(ENGINES)}, got "
                        f"{args.engines!r}")
    engines = [e for e in settings["engines"] if e in ENGINES]
    return {"channels": channels, "batches": positive_ints("waveglow-batches", pick("waveglow_batches")),
            "train_batch": pick("waveglow_train_batch"), "train_samples": pick("waveglow_train_samples"),
            "engines": engines,
            "not_wanted": "skipped: --quick leaves torch.compile out (compiling takes minutes); add --engines "
                          "eager,compile,fused" if args.quick and args.engines is None else "skipped: not in --engines"}


def run_waveglow(settings, args):
    wg = waveglow_settings(args, settings)
    channels = wg["channels"]
    log(f"waveglow: {channels} channels")
    eager_model = build_model(channels, settings["seed"], fused=False)
    fused_model = build_model(channels, settings["seed"], fused=True)
    report = {"command": settings["command"],
              "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "settings": {**settings, "waveglow": wg, "sigma": SIGMA},
              "machine": {**machine_info(), "torch_threads": torch.get_num_threads()}, "versions": versions(),
              "backends": {op: backends()[op]["cpu"] for op in WAVEGLOW_OPS},
              "flop_per_audio_second": flop_per_audio_second(eager_model),
              "load_average": {"start": load_average()}}
    report["ops"] = ops_section(channels, settings)
    report["e2e"] = e2e_section(eager_model, fused_model, settings, wg["batches"], wg["engines"], wg["not_wanted"])
    report["train"] = train_section(channels, settings, wg["train_batch"], wg["train_samples"])
    report["precision"] = precision_rows({"eager": eager_model, "fused": fused_model}, settings["seed"])
    report["load_average"]["end"] = load_average()
    write_outputs(settings["out"], "bench_waveglow", render(report), report)


def precision_rows(models, seed):
    """Each model in fp16 and bf16 on a PRECISION_FRAMES-frame mel: finite?, and the error vs the fp32 eager
    model on the same mel and z. The models are returned to fp32."""
    gen = torch.Generator().manual_seed(seed)
    mel = torch.randn(1, models["eager"].n_mel_channels, PRECISION_FRAMES, generator=gen) - 5.0
    z = torch.randn(models["eager"].noise_shape(mel), generator=gen)
    with torch.inference_mode():
        fp32_audio = models["eager"].infer(mel, SIGMA, z)
    rows = []
    scale = fp32_audio.abs().max().item()
    for engine, model in models.items():
        for dtype in (torch.float16, torch.bfloat16):
            log(f"waveglow precision: {engine} {dtype}")
            low = model.to(dtype)
            with torch.inference_mode():
                out = low.infer(mel.to(dtype), SIGMA, z).float()
            model.to(torch.float32)
            err = out - fp32_audio
            rows.append({"engine": engine, "dtype": str(dtype).removeprefix("torch."), "frames": PRECISION_FRAMES,
                         "finite": bool(torch.isfinite(out).all()), "max_abs_err": err.abs().max().item(),
                         "max_abs_err_rel_peak": err.abs().max().item() / scale,
                         "rms_err_rel": (err.pow(2).mean().sqrt() / fp32_audio.pow(2).mean().sqrt()).item()})
    return rows


def render(report):
    s, m, wg = report["settings"], report["machine"], report["settings"]["waveglow"]
    e2e_ok = [r for r in report["e2e"] if r["status"] == "ok"]
    lines = [
        f"# WaveGlow, CPU ({m['cpu']}, {s['threads']} threads)",
        "",
        f"- command: `{report['command']}`",
        f"- date: {report['date']}",
        f"- machine: {m['cpu']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable), torch CPU "
        f"capability {m['torch_cpu_capability']}; {m['platform']}; torch threads {m['torch_threads']}",
        f"- versions: vocoder_ext {report['versions']['vocoder_ext']}, torch {report['versions']['torch']}, "
        f"python {m['python']}",
        f"- load average (1, 5, 15 min) at start: {report['load_average']['start']}, at end: "
        f"{report['load_average']['end']} (other work on the machine skews timings; the JSON has every sample)",
        "- fused ops served on CPU by: " + "; ".join(f"{op}: {b}" for op, b in report["backends"].items()),
        f"- model: NVIDIA's WaveGlow config (12 flows, n_group 8, 8 WN layers, K 3), {wg['channels']} channels, "
        f"random weights (`end` layers too), fp32",
        f"- FLOP count: {report['flop_per_audio_second'] / 1e9:.1f} GFLOP per second of audio (inference: 2 per "
        f"multiply-add of the upsampling, the start/conditioning/WN/end convs and the inverse 1x1 convs; gates and "
        f"couplings not counted). Achieved: "
        + (", ".join(f"{r['label']} batch {r['batch']} {fmt(r['gflops'])} GFLOP/s" for r in e2e_ok) or "-"),
        f"- timing: median of {s['repeats']} samples after {s['warmup']} warm-up run(s); engines interleaved "
        f"round-robin within each repeat; {s['inputs']} different random inputs of each shape used in turn",
        "",
        render_ops(report["ops"], s, wg["channels"]),
        "",
        render_e2e(report["e2e"], s, wg["channels"]),
        "",
        render_train(report["train"], wg["channels"]),
        "",
        f"## Precision: fp16 / bf16 models vs the fp32 eager model, first {PRECISION_FRAMES} frames",
        "",
        "WN stacks and upsampling in that dtype (the fused kernels compute fp16/bf16 in fp32 and round once); "
        "grouped audio, coupling exp and inverse 1x1 convs in fp32; same mel and z.",
        "",
        table(["engine", "dtype", "finite", "max abs err", "max abs err / fp32 peak", "RMS err / fp32 RMS"],
              [[r["engine"], r["dtype"], str(r["finite"]), f"{r['max_abs_err']:.2e}",
                f"{r['max_abs_err_rel_peak']:.2e}", f"{r['rms_err_rel']:.2e}"] for r in report["precision"]]),
    ]
    return "\n".join(lines)

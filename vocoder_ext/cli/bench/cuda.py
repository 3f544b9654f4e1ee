"""`python -m vocoder_ext bench --device cuda`: the end-to-end inference table on a GPU.

One table, on stdout and in OUT/bench_cuda.md, with every raw sample in OUT/bench_cuda.json (settings,
GPU, machine, versions, which backend serves each fused op on CUDA): the generator (weight norm removed,
eval, no autograd) per config, batch size and dtype, for four engines:

  eager    HiFiGAN(h, fused=False): PyTorch layers (cuDNN convolutions)
  compile  torch.compile(eager model, mode="reduce-overhead", dynamic=False): inductor + CUDA graphs;
           for fp16 it compiles the half model
  fused    HiFiGAN(h, fused=True): the registered ops, served on CUDA tensors by whatever
           vocoder_ext.backends() names in its cuda column (VOCODER_EXT_BACKEND as set; auto: per shape,
           the fastest of the CUDA C++ kernels, the Triton kernels and cuDNN + eager)
  cuda     the same fused model with VOCODER_EXT_BACKEND=cuda for each call (forced.py): vocoder_ext._C's
           CUDA C++ kernels, no fallback. Where they cannot serve the model's ops (an extension built
           without CUDA kernels, a CPU device), its rows say why instead of numbers

fp16 = model.half() fed half mels. Columns: median ms, x real-time (audio seconds / wall seconds), kHz
(output samples per second / 1000), speedup vs eager, max abs difference vs eager's output (same dtype,
same input: a sanity check), first-call seconds.

How it times (the discipline of the CPU bench, vocoder_ext/cli/bench/timing.py): every engine first runs
--warmup times, at least CUDA_MIN_WARMUP on a GPU (reduce-overhead compiles on the first call, records
its CUDA graph on a later one; the Triton kernels autotune on their first call): the first call's
seconds go to the JSON as `first_call_s`, never into the medians. Then --repeats rounds, each running
every engine once (round-robin), round r on input r mod --inputs. On CUDA a sample is the time between
two torch.cuda.Event(enable_timing=True) recorded around one call, the device synchronized before the
start event and after the end event (so no call overlaps the next); the wall time around the same call
(perf_counter, synchronized) is kept beside it in the JSON. fp32 means IEEE fp32 for every engine: TF32
is off in cuDNN and matmuls for the run unless --tf32.

Everything below run_cuda takes a torch.device, so the same path runs on CPU tensors (perf_counter
timing, and the CPU bench's torch.compile for the compile engine): that is how the tests exercise it.
"""
import argparse
import contextlib
import copy
import datetime
import re
import statistics
import time
import warnings

import torch

from ...models.config import resolve_config
from ...models.hifigan import HiFiGAN
from ...runtime import backends
from ...runtime.backend import OPS
from ..common import DEFAULT_SAMPLING_RATE, UserError, package_version, write_outputs
from . import forced
from .cuda_markdown import render_markdown
from .inference import compiled_engine as cpu_compiled_engine, inference
from .options import resolve_settings
from .timing import config_name, frames_for, load_average, log, machine_info, round_robin, versions, warm_up

CUDA_ENGINES = ("eager", "compile", "fused", "cuda")
FORCED_ENGINES = {"cuda": "cuda"}  # engine -> the backend it forces on the fused model
HIFIGAN_OPS = ("lrelu_conv_transpose1d", "resblock", "lrelu_conv1d")  # what HiFiGAN(fused=True) calls
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CUDA_MIN_WARMUP = 3  # reduce-overhead: compile + warm-up run, CUDA graph recording, a first replay
# Defaults of the GPU table (--quick: tiny sizes, for a smoke run), each unless given.
FULL = {"configs": "v1,v2,v3", "batches": "1,8", "seconds": 10.0, "repeats": 20, "dtypes": "fp32,fp16",
        "engines": ",".join(CUDA_ENGINES)}
QUICK = {"configs": "v2", "batches": "1", "seconds": 0.2, "repeats": 2, "dtypes": "fp32,fp16",
         "engines": "eager,fused,cuda"}
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")
NO_CUDA = "no CUDA device"


def add_arguments(p):
    """The GPU bench's own options (the bench package's add_arguments adds them to `bench`)."""
    p.add_argument("--device", default="cpu", type=_device_name,
                   help="cpu: the CPU benchmark (default); cuda or cuda:N: instead, only the end-to-end inference "
                        "table on that GPU, engines eager, torch.compile(mode='reduce-overhead'), fused "
                        "(VOCODER_EXT_BACKEND as set: auto picks per shape) and cuda (the fused model with "
                        f"VOCODER_EXT_BACKEND=cuda: the CUDA C++ kernels), defaults --configs {FULL['configs']} "
                        f"--batches {FULL['batches']} --engines {FULL['engines']} "
                        f"--repeats {FULL['repeats']} --dtypes {FULL['dtypes']}, --warmup at least "
                        f"{CUDA_MIN_WARMUP}; writes OUT/bench_cuda.md and OUT/bench_cuda.json "
                        "(vocoder_ext/cli/bench/cuda.py)")
    p.add_argument("--dtypes", help=f"with --device cuda: comma-separated subset of {','.join(DTYPES)} "
                                    f"(default: {FULL['dtypes']}); fp16/bf16 = model.half()/bfloat16() and half mels")
    p.add_argument("--tf32", action="store_true",
                   help="with --device cuda: let cuDNN and matmuls use TF32 in the fp32 rows (default: off, so "
                        "fp32 is IEEE fp32 for every engine, as the Triton kernels compute)")


def _device_name(text):
    if not DEVICE_PATTERN.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    return text.strip()


def run_cuda(args):
    """The `bench --device cuda...` command: refuses without a GPU, else times and writes the table."""
    for flag, why in (("static", "--static needs no GPU: run it without --device"),
                      ("ops_only", ("--ops-only: the GPU benchmark (--device cuda) has only the end-to-end "
                                    "inference table"))):
        if getattr(args, flag, False):
            raise UserError(why)
    device = cuda_device(args.device)
    settings = resolve_cuda_settings(args)
    with torch.cuda.device(device), tf32(settings["tf32"]):
        benchmark(settings, device)


def cuda_device(name):
    """torch.device(name) of a CUDA device this machine has; a UserError starting "no CUDA device" if none."""
    if not torch.cuda.is_available():
        raise UserError(f"{NO_CUDA}: --device {name} runs the GPU benchmark and needs a GPU, but "
                        f"torch.cuda.is_available() is False here (torch {torch.__version__}, CUDA build "
                        f"{torch.version.cuda or 'none'}); without --device the CPU benchmark runs")
    device = torch.device(name)
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if device.index >= torch.cuda.device_count():
        raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def resolve_cuda_settings(args):
    """The command line -> the settings dict of the GPU table (options.resolve_settings validates the shared
    options, with this table's defaults filled in first)."""
    defaults = QUICK if args.quick else FULL
    shared = copy.copy(args)
    for name in ("configs", "batches", "seconds", "repeats", "engines"):
        if getattr(shared, name) is None:
            setattr(shared, name, defaults[name])
    engines = list(dict.fromkeys(e.strip() for e in shared.engines.split(",") if e.strip()))
    if not engines or not set(engines) <= set(CUDA_ENGINES):
        raise UserError(f"--engines: with --device {args.device}, expected a comma-separated subset of "
                        f"{','.join(CUDA_ENGINES)}, got {shared.engines!r}")
    if "eager" not in engines:
        engines.insert(0, "eager")  # the reference every other engine is compared with
    shared.engines = "eager"  # checked here: the CPU bench's engine list has no cuda
    s = resolve_settings(shared) | {"engines": engines}
    text = args.dtypes if args.dtypes is not None else defaults["dtypes"]
    dtypes = {d.strip() for d in text.split(",") if d.strip()}
    if not dtypes or not dtypes <= set(DTYPES):
        raise UserError(f"--dtypes: expected a comma-separated subset of {','.join(DTYPES)}, got {text!r}")
    return {key: s[key] for key in ("configs", "batches", "seconds", "repeats", "inputs", "engines", "seed",
                                    "out", "quick", "command")} | {
        "device": args.device,
        "dtypes": [d for d in DTYPES if d in dtypes],  # fp32 first: the other dtypes are compared with it
        "warmup": max(args.warmup, CUDA_MIN_WARMUP), "warmup_asked": args.warmup, "tf32": args.tf32}


@contextlib.contextmanager
def tf32(allow):
    """cuDNN and matmul TF32 set to `allow` for the run, restored after (main() may run in-process)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def benchmark(settings, device):
    """Time, print the Markdown, write OUT/bench_cuda.md and OUT/bench_cuda.json; -> the report."""
    configs = [(config_name(c), resolve_config(c)) for c in settings["configs"]]
    with warnings.catch_warnings():
        # The header says which backend serves each op; the per-op fallback warning would only repeat it.
        warnings.filterwarnings("ignore", message="vocoder_ext: no fused kernel", category=RuntimeWarning)
        report = run_report(configs, settings, device)
    write_outputs(settings["out"], "bench_cuda", render_markdown(report), report)
    return report


def run_report(configs, settings, device):
    """[(name, config dict)] -> the whole report (what bench_cuda.json holds)."""
    report = {"command": settings["command"],
              "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "settings": settings, "device": device_info(device), "machine": machine_info(),
              "versions": {**versions(), "triton": package_version("triton")},
              "backends": {op: backends()[op][device.type] for op in OPS},
              "forced_backends": {engine: {"backend": FORCED_ENGINES[engine],
                                           "served_by": forced.served_by(FORCED_ENGINES[engine], device.type,
                                                                         HIFIGAN_OPS)}
                                  for engine in settings["engines"] if engine in FORCED_ENGINES},
              "load_average": {"start": load_average()}}
    report["e2e"] = e2e_rows(configs, settings, device)
    report["load_average"]["end"] = load_average()
    return report


def e2e_rows(configs, settings, device):
    rows = []
    for name, h in configs:
        torch.manual_seed(settings["seed"])
        eager_fp32 = HiFiGAN(h, fused=False).remove_weight_norm().eval()
        fused_fp32 = HiFiGAN(h, fused=True).remove_weight_norm().eval()
        fused_fp32.load_state_dict(eager_fp32.state_dict())
        models = {dtype: (copy.deepcopy(eager_fp32).to(device, DTYPES[dtype]),
                          copy.deepcopy(fused_fp32).to(device, DTYPES[dtype])) for dtype in settings["dtypes"]}
        frames = frames_for(h, settings["seconds"])
        sampling_rate = h.get("sampling_rate", DEFAULT_SAMPLING_RATE)
        for batch in settings["batches"]:
            gen = torch.Generator().manual_seed(settings["seed"] + batch)
            mels = [torch.randn(batch, h["num_mels"], frames, generator=gen) for _ in range(settings["inputs"])]
            fp32_reference = None  # eager fp32 audio of the first mel: how far the other dtypes are from it
            for dtype in settings["dtypes"]:
                log(f"e2e {device.type}: {name} batch {batch} {dtype}, {frames} frames "
                    f"({settings['seconds']:g} s of audio per item)")
                inputs = [m.to(device, DTYPES[dtype]) for m in mels]
                skips = _cudagraph_skips()
                engines, unavailable = make_engines(settings["engines"], *models[dtype], device)
                outputs, first_call, failed, timings = time_engines(engines, inputs, settings, device)
                if dtype == "fp32" and "eager" in outputs:
                    fp32_reference = outputs["eager"]
                case = {"config": name, "batch": batch, "dtype": dtype, "frames": frames}
                for row in case_rows(case, settings["engines"], outputs, first_call, failed, timings, sampling_rate,
                                     fp32_reference, unavailable):
                    if row["engine"] == "compile" and device.type == "cuda":
                        row["cudagraph_skips"] = _cudagraph_skips() - skips
                    rows.append(row)
                del engines, outputs, inputs
                torch._dynamo.reset()  # frees the compiled graphs (and their CUDA graph memory pools)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        del models
    return rows


def make_engines(names, eager_model, fused_model, device):
    """-> ({engine: fn(mel) -> audio} for eager, compile, fused and cuda, {engine: "unavailable: why"} for a
    forced-backend engine whose backend cannot serve the model's ops on this device)."""
    engines, unavailable = {}, {}
    for name in names:
        if name == "eager":
            engines[name] = inference(eager_model)
        elif name == "fused":
            engines[name] = inference(fused_model)
        elif name == "compile":
            engines[name] = compiled_engine(eager_model, device)
        elif name in FORCED_ENGINES:
            why = forced.problem(FORCED_ENGINES[name], device.type, HIFIGAN_OPS)
            if why is None:
                engines[name] = forced.engine(inference(fused_model), FORCED_ENGINES[name])
            else:
                unavailable[name] = f"unavailable: {why}"
                log(f"  {name} {unavailable[name]}")
        else:
            raise ValueError(f"not an engine of the GPU table: {name!r}")
    return engines, unavailable


def compiled_engine(model, device):
    """On CUDA: torch.compile(mode="reduce-overhead") (inductor + CUDA graphs), one static graph per input
    shape, under torch.no_grad(). Elsewhere the CPU bench's compile engine (inductor with freezing)."""
    if device.type != "cuda":
        return cpu_compiled_engine(model)
    torch._dynamo.reset()  # a fresh cache for each case: no recompile limits, no stale graphs
    compiled = torch.compile(model, mode="reduce-overhead", dynamic=False)

    def fn(mel):
        with torch.no_grad():
            torch.compiler.cudagraph_mark_step_begin()  # each call is a new inference step
            return compiled(mel)
    return fn


def time_engines(engines, inputs, settings, device):
    """Warm-up (timing.warm_up, each call synchronized), then round-robin rounds timed for the device.

    -> (outputs of the first input, first-call seconds, {engine: error}, {engine: {"seconds": [...], ...}})."""
    synced = {name: synchronized(fn, device) for name, fn in engines.items()}
    outputs, first_call, failed = warm_up(synced, inputs[0], settings["warmup"])
    working = {name: fn for name, fn in engines.items() if name not in failed}
    if device.type == "cuda":
        timings = cuda_round_robin(working, inputs, settings["repeats"], device)
    else:
        timings = {name: {**t, "timer": "perf_counter"}
                   for name, t in round_robin(working, inputs, settings["repeats"]).items()}
    return outputs, first_call, failed, timings


def synchronized(fn, device):
    """fn, waiting for the device's queued work before returning (CUDA runs asynchronously)."""
    if device.type != "cuda":
        return fn

    def call(x):
        out = fn(x)
        torch.cuda.synchronize(device)
        return out
    return call


def cuda_round_robin(engines, inputs, repeats, device):
    """timing.round_robin for CUDA: round r runs each engine once on inputs[r % len(inputs)]; a sample is the
    CUDA-event time of one call (device idle before it, waited for after it), plus its synchronized wall time."""
    samples = {name: {"seconds": [], "wall_seconds": [], "calls_per_sample": 1, "timer": "cuda events"}
               for name in engines}
    for r in range(repeats):
        inp = inputs[r % len(inputs)]
        for name, fn in engines.items():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            wall = time.perf_counter()
            start.record()
            fn(inp)
            end.record()
            end.synchronize()
            samples[name]["wall_seconds"].append(time.perf_counter() - wall)
            samples[name]["seconds"].append(start.elapsed_time(end) / 1e3)  # elapsed_time is in ms
    return samples


def case_rows(case, names, outputs, first_call, failed, timings, sampling_rate, fp32_reference, unavailable=None):
    """One row per engine of one (config, batch, dtype) case, derived numbers from the medians.
    failed: {engine: the error its warm-up raised}; unavailable: {engine: its status, never run}."""
    unavailable = unavailable or {}
    samples = outputs["eager"].numel() if "eager" in outputs else None
    eager_s = statistics.median(timings["eager"]["seconds"]) if "eager" in timings else None
    rows = []
    for engine in names:
        row = {**case, "engine": engine, "audio_s": samples / sampling_rate if samples else None,
               "output_samples": samples}
        if engine in timings and eager_s:
            seconds = statistics.median(timings[engine]["seconds"])
            out = outputs[engine]
            row.update(status="ok", median_s=seconds, x_realtime=row["audio_s"] / seconds,
                       khz=samples / seconds / 1e3, speedup_vs_eager=eager_s / seconds,
                       max_abs_diff_vs_eager=(out - outputs["eager"]).abs().max().item(),
                       max_abs_diff_vs_fp32_eager=(out - fp32_reference).abs().max().item()
                       if fp32_reference is not None else None,
                       first_call_s=first_call[engine], **timings[engine])
        elif engine in unavailable:
            row["status"] = unavailable[engine]
        elif engine in failed:
            row["status"] = f"failed: {failed[engine]}"
        else:
            row["status"] = "skipped: eager failed (every number is relative to eager)"
        rows.append(row)
    return rows


def _cudagraph_skips():
    """Inductor's count of graphs that fell back from CUDA graphs (each logs why)."""
    from torch._dynamo.utils import counters
    return counters["inductor"]["cudagraph_skips"]


def device_info(device):
    info = {"type": device.type, "index": device.index}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=torch.cuda.get_device_name(device),
                    capability=list(torch.cuda.get_device_capability(device)),
                    memory_gib=props.total_memory / 2 ** 30, multiprocessors=props.multi_processor_count,
                    torch_cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                    cudnn_benchmark=torch.backends.cudnn.benchmark,
                    tf32={"cudnn": torch.backends.cudnn.allow_tf32,
                          "matmul": torch.backends.cuda.matmul.allow_tf32})
    return info

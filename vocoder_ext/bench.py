"""`python -m vocoder_ext bench`: kernel microbenchmarks and end-to-end speed tables.

Four sections, each a Markdown table on stdout; together in OUT/bench.md, and every raw timing in
OUT/bench.json (with the settings and the machine):

  ops    lrelu_conv1d (with a residual, as in the resblocks) at each distinct (C, T, K, dilation) of each
         config's upsampling stages, and lrelu_conv_transpose1d at each upsampling layer: the eager
         reference (`vocoder_ext.ops.*_ref`) vs the registered op (`torch.ops.vocoder_ext.*`, served by
         whatever backend `vocoder_ext.backends()` names). ms, speedup, GFLOP/s (2*C_in*C_out*K*T*B / time).
  e2e    the generator (weight norm removed, eval, no autograd), per config and batch size:
         eager (HiFiGAN(fused=False)), torch.compile (inductor with freezing, of the eager model),
         ONNX Runtime and OpenVINO (fp32, from one ONNX export of the eager model per config) and
         fused (HiFiGAN(fused=True)). x real-time = audio seconds / wall seconds; kHz = output samples
         per second / 1000.
  train  one generator training step (forward, L1 loss against a random target, backward; weight norm
         on), eager vs fused: step time, and peak memory measured in a fresh child process per engine.
  gan    the recipe's whole training step (train.hifigan: discriminator step + generator step), eager vs
         --fused: step time, steps/s, peak memory. Needs the `train` package (run from the repo root).

--static runs none of these, only the static GPU resource report of the Triton kernels (registers,
shared memory, spills per kernel/variant/autotune config/target, from an ahead-of-time compile and
ptxas -v; no GPU needed): OUT/static.md and OUT/static.json, see vocoder_ext/static_report.py.

--device cuda runs none of these, only the end-to-end inference table on a GPU (eager, torch.compile
reduce-overhead, fused on Triton; fp32 and fp16): OUT/bench_cuda.md and OUT/bench_cuda.json, see
vocoder_ext/bench_cuda.py.

How it times: every engine first runs --warmup times (torch.compile compiles then; that time is kept
in the JSON as `first_call_s`, never in the medians). Then come --repeats rounds; each round runs every
engine once, one after the other (round-robin), so slow drifts of a shared machine hit all engines
alike. Round r feeds input r mod --inputs (a few different random inputs of the same shape). The table
shows medians; the JSON has every sample. Timings are wall clock (time.perf_counter) on the CPU.
"""
import concurrent.futures
import contextlib
import datetime
import importlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import math
import multiprocessing
import os
import platform
import resource
import shlex
import statistics
import sys
import tempfile
import time
import warnings

import torch
import torch.nn.functional as F

from . import __version__, _extension
from .backend import OPS, backends
from .config import AUDIO_DEFAULTS, ConfigError, resolve_config
from .hifigan import LRELU_SLOPE, HiFiGAN
from .ops import lrelu_conv1d_ref, lrelu_conv_transpose1d_ref

ENGINES = ("eager", "compile", "onnxruntime", "openvino", "fused")
QUICK_ENGINES = ("eager", "fused")
DEFAULT_OUT = os.path.join("out", "bench")
DEFAULT_SAMPLING_RATE = 22050
# A timed op sample repeats the call until it lasts at least this long, so short ops are not lost in
# timer and scheduling noise (not with --quick); e2e and training samples are always one call.
OP_MIN_SAMPLE_S = 0.01
MIB = 2 ** 20

# Settings that --quick changes (unless given explicitly): tiny sizes, for tests.
FULL = {"configs": "v1,v2,v3", "batches": "1,4", "seconds": 10.0, "repeats": 5,
        "engines": ",".join(ENGINES), "train_batch": 4, "train_frames": 32,
        "gan_batch": 2, "gan_frames": 32}
QUICK = {"configs": "v2", "batches": "1", "seconds": 0.2, "repeats": 2,
         "engines": ",".join(QUICK_ENGINES), "train_batch": 1, "train_frames": 8,
         "gan_batch": 1, "gan_frames": 8}


def add_arguments(p):
    p.add_argument("--configs", help=f"comma-separated presets or config.json paths (default: {FULL['configs']})")
    p.add_argument("--batches", help=f"comma-separated batch sizes for the e2e table (default: {FULL['batches']})")
    p.add_argument("--seconds", type=float,
                   help=f"audio seconds per item; sets T of the op shapes too (default: {FULL['seconds']:g})")
    p.add_argument("--repeats", type=int, help=f"timed rounds; the median is reported (default: {FULL['repeats']})")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs of each engine first (default: 1)")
    p.add_argument("--inputs", type=int, default=3,
                   help="different random inputs of each shape, used in turn (default: 3)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads, and the threads of "
                                                          "ONNX Runtime and OpenVINO (default: 2)")
    p.add_argument("--engines", help=f"comma-separated subset of {','.join(ENGINES)} for the e2e table "
                                     f"(default: all; with --quick: {','.join(QUICK_ENGINES)})")
    p.add_argument("--op-batch", type=int, default=1, help="batch size B of the op shapes (default: 1)")
    p.add_argument("--train-batch", type=int, help=f"training-step batch (default: {FULL['train_batch']})")
    p.add_argument("--train-frames", type=int,
                   help=f"training-step mel frames per item (default: {FULL['train_frames']}, i.e. 8192 samples "
                        f"at hop 256)")
    p.add_argument("--gan-batch", type=int, help=f"batch of the recipe's training step (default: {FULL['gan_batch']})")
    p.add_argument("--gan-frames", type=int,
                   help=f"mel frames per item of the recipe's training step (default: {FULL['gan_frames']})")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--ops-only", action="store_true", help="only the op tables")
    only.add_argument("--e2e-only", action="store_true", help="only the end-to-end tables (inference, training)")
    only.add_argument("--static", action="store_true",
                      help="only the static GPU resource report of the Triton kernels (registers, shared "
                           "memory, spills from an ahead-of-time compile for sm_80/sm_90 + ptxas -v; no GPU "
                           "needed): OUT/static.md and OUT/static.json (vocoder_ext/static_report.py)")
    p.add_argument("--no-train", action="store_true", help="leave out the training-step tables")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs (default: 0)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"folder for bench.md and bench.json (default: {DEFAULT_OUT})")
    p.add_argument("--quick", action="store_true",
                   help="tiny run for tests: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items())
                        + " (each unless given)")
    from . import bench_cuda
    bench_cuda.add_arguments(p)  # --device (cpu: this bench; cuda: bench_cuda's GPU table), --dtypes, --tf32


def main(argv=None):
    """`python -m vocoder_ext.bench ...` == `python -m vocoder_ext bench ...`; returns the exit status."""
    from .cli import main as cli_main
    return cli_main(["bench", *(sys.argv[1:] if argv is None else argv)])


def run(args):
    if getattr(args, "device", "cpu") != "cpu":  # the GPU table: vocoder_ext/bench_cuda.py
        from . import bench_cuda
        bench_cuda.run_cuda(args)
        return
    if getattr(args, "static", False):
        from .static_report import run_static
        run_static(args.out)
        return
    settings = resolve_settings(args)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings["threads"])
    try:
        with warnings.catch_warnings():
            # The header says which backend serves each op; the per-op fallback warning would only repeat it.
            warnings.filterwarnings("ignore", message="vocoder_ext: no fused kernel", category=RuntimeWarning)
            report = run_sections(settings)
    finally:
        torch.set_num_threads(previous_threads)  # main() may be called in-process (tests)
    write_outputs(settings["out"], "bench", render_markdown(report), report)


def write_outputs(out, stem, markdown, report):
    """The table on stdout, and OUT/<stem>.md + OUT/<stem>.json."""
    print(markdown)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{stem}.md"), "w") as f:
        f.write(markdown + "\n")
    with open(os.path.join(out, f"{stem}.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"\nwrote {stem}.md and {stem}.json to {out}", file=sys.stderr)


def resolve_settings(args):
    """The command line -> a plain dict of every setting (also what bench.json records)."""
    from .cli import UserError

    defaults = QUICK if args.quick else FULL

    def pick(name):
        value = getattr(args, name)
        return defaults[name] if value is None else value

    def int_list(name, text):
        try:
            values = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise UserError(f"--{name}: expected comma-separated integers, got {text!r}") from None
        if not values or min(values) < 1:
            raise UserError(f"--{name}: expected positive integers, got {text!r}")
        return values

    engines = list(dict.fromkeys(e.strip() for e in pick("engines").split(",") if e.strip()))
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise UserError(f"--engines: expected a comma-separated subset of {','.join(ENGINES)}, got {pick('engines')!r}")
    if "eager" not in engines:
        engines.insert(0, "eager")  # the reference every other engine is compared with
    configs = [c.strip() for c in pick("configs").split(",") if c.strip()]
    if not configs:
        raise UserError("--configs: expected at least one config")
    for name, minimum in (("threads", 1), ("warmup", 0), ("inputs", 1), ("op_batch", 1)):
        if getattr(args, name) < minimum:
            raise UserError(f"--{name.replace('_', '-')} must be at least {minimum}, got {getattr(args, name)}")
    for name in ("repeats", "train_batch", "train_frames", "gan_batch", "gan_frames"):
        if pick(name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {pick(name)}")
    if not pick("seconds") > 0:
        raise UserError(f"--seconds must be positive, got {pick('seconds')}")
    for c in configs:  # fail on a bad config now, not after minutes of benchmarking
        try:
            resolve_config(c)
        except ConfigError as e:
            raise UserError(str(e)) from e
    return {
        "configs": configs, "batches": int_list("batches", pick("batches")), "seconds": float(pick("seconds")),
        "repeats": pick("repeats"), "warmup": args.warmup, "inputs": args.inputs, "threads": args.threads,
        "engines": engines, "op_batch": args.op_batch, "train_batch": pick("train_batch"),
        "train_frames": pick("train_frames"), "gan_batch": pick("gan_batch"), "gan_frames": pick("gan_frames"),
        "seed": args.seed, "out": args.out, "quick": args.quick,
        "sections": sections(args),
        "command": "python -m vocoder_ext " + shlex.join(getattr(args, "argv", None) or ["bench"]),
    }


def sections(args):
    if args.ops_only:
        return ["ops"]
    chosen = ["e2e"] if args.e2e_only else ["ops", "e2e"]
    return chosen if args.no_train else chosen + ["train", "gan"]


def run_sections(settings):
    configs = [(config_name(c), resolve_config(c)) for c in settings["configs"]]
    report = {"command": settings["command"],
              "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "settings": settings, "machine": machine_info(), "versions": versions(),
              "backends": {op: backends()[op]["cpu"] for op in OPS}, "load_average": {"start": load_average()}}
    if "ops" in settings["sections"]:
        report["ops"] = ops_section(configs, settings)
    if "e2e" in settings["sections"]:
        report["e2e"] = e2e_section(configs, settings)
    if "train" in settings["sections"]:
        report["train"] = train_section(configs, settings)
    if "gan" in settings["sections"]:
        report["gan"] = gan_section(configs, settings)
    report["load_average"]["end"] = load_average()
    return report


def config_name(config):
    return os.path.splitext(os.path.basename(config))[0] if config.lower().endswith(".json") else config


def frames_for(h, seconds):
    """Mel frames of `seconds` of audio at the config's sampling rate and hop."""
    hop = math.prod(h["upsample_rates"])
    return max(1, round(seconds * h.get("sampling_rate", DEFAULT_SAMPLING_RATE) / hop))


_START = time.perf_counter()


def log(message):
    """Progress on stderr, with the seconds since the module was imported."""
    print(f"[{time.perf_counter() - _START:7.1f} s] {message}", file=sys.stderr, flush=True)


# ---- timing ---------------------------------------------------------------------------------
def warm_up(engines, first_input, warmup):
    """Run each engine `warmup` times (at least once) on the first input.

    -> (outputs on that input, seconds of each engine's first call, {engine: error} for engines that raised)."""
    outputs, first_call, failed = {}, {}, {}
    for name, fn in engines.items():
        try:
            for i in range(max(1, warmup)):
                start = time.perf_counter()
                out = fn(first_input)
                if i == 0:
                    first_call[name] = time.perf_counter() - start
            outputs[name] = out.detach().float().clone()  # ORT/OpenVINO may reuse their output buffers
        except Exception as e:  # an engine that cannot run this model is reported, not fatal
            failed[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
            log(f"  {name} failed: {failed[name]}")
    return outputs, first_call, failed


def round_robin(engines, inputs, repeats, min_sample_s=0.0):
    """Time the engines side by side: round r runs each engine once (one sample) on inputs[r % len(inputs)].

    A sample is `number` calls, number chosen per engine so a sample lasts >= min_sample_s.
    -> {engine: {"seconds": [seconds per call of each sample], "calls_per_sample": number}}."""
    number = {name: 1 for name in engines}
    if min_sample_s > 0:
        for name, fn in engines.items():
            start = time.perf_counter()
            fn(inputs[0])
            number[name] = max(1, math.ceil(min_sample_s / max(time.perf_counter() - start, 1e-9)))
    samples = {name: [] for name in engines}
    for r in range(repeats):
        inp = inputs[r % len(inputs)]
        for name, fn in engines.items():
            start = time.perf_counter()
            for _ in range(number[name]):
                fn(inp)
            samples[name].append((time.perf_counter() - start) / number[name])
    return {name: {"seconds": samples[name], "calls_per_sample": number[name]} for name in engines}


# ---- ops ------------------------------------------------------------------------------------
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
    have_op = _extension.loaded
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
        result["max_abs_diff"] = (outputs["fused"] - outputs["eager"]).abs().max().item()
    else:
        result["speedup"] = result["max_abs_diff"] = None
    return result


# ---- end to end: inference ------------------------------------------------------------------
def e2e_section(configs, settings):
    rows = []
    for name, h in configs:
        torch.manual_seed(settings["seed"])
        eager_model = HiFiGAN(h, fused=False).remove_weight_norm().eval()
        fused_model = HiFiGAN(h, fused=True).remove_weight_norm().eval()
        fused_model.load_state_dict(eager_model.state_dict())
        frames = frames_for(h, settings["seconds"])
        sampling_rate = h.get("sampling_rate", DEFAULT_SAMPLING_RATE)
        with tempfile.TemporaryDirectory(prefix="vocoder_ext_bench_") as tmp:
            onnx_path, onnx_info = None, None
            if any(e in ("onnxruntime", "openvino") and installed(e) for e in settings["engines"]):
                onnx_path, onnx_info = export_onnx(eager_model, name, h, frames, os.path.join(tmp, f"{name}.onnx"))
            for batch in settings["batches"]:
                log(f"e2e: {name} batch {batch}, {frames} frames ({settings['seconds']:g} s of audio per item)")
                gen = torch.Generator().manual_seed(settings["seed"] + batch)
                mels = [torch.randn(batch, h["num_mels"], frames, generator=gen) for _ in range(settings["inputs"])]
                engines, status = make_engines(settings["engines"], eager_model, fused_model, onnx_path, onnx_info,
                                               batch, h["num_mels"], frames, settings["threads"])
                rows += time_models(name, batch, engines, status, mels, settings, sampling_rate, onnx_info)
    return rows


def make_engines(names, eager_model, fused_model, onnx_path, onnx_info, batch, num_mels, frames, threads):
    """-> ({engine: fn(mel) -> audio tensor}, {engine: why it is skipped})."""
    engines, status = {}, {}
    for name in names:
        try:
            if name == "eager":
                engines[name] = inference(eager_model)
            elif name == "fused":
                engines[name] = inference(fused_model)
            elif name == "compile":
                engines[name] = compiled_engine(eager_model)
            elif not installed(name):
                raise MissingPackage(name)
            elif onnx_path is None:
                status[name] = onnx_info["status"]
            elif name == "onnxruntime":
                engines[name] = onnxruntime_engine(onnx_path, threads)
            elif name == "openvino":
                engines[name] = openvino_engine(onnx_path, [batch, num_mels, frames], threads)
        except MissingPackage as e:
            status[name] = f"skipped: {e} not installed"
        except Exception as e:  # e.g. a runtime that rejects the exported model: report it, run the others
            status[name] = f"failed: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"[:300]
            log(f"  {name} failed: {status[name]}")
    return engines, status


def inference(model):
    def fn(mel):
        with torch.inference_mode():
            return model(mel)
    return fn


def compiled_engine(model):
    """torch.compile (inductor) with freezing: weights folded in as constants, which inductor does only
    with autograd off; torch.no_grad() here (inference tensors are not needed for that). One static graph
    per input shape (dynamic=False); the compile happens in the warm-up call."""
    torch._dynamo.reset()  # a fresh cache for each (config, batch): no recompile limits, no stale graphs
    compiled = torch.compile(model, dynamic=False)

    def fn(mel):
        with torch.no_grad(), torch._inductor.config.patch(freezing=True):
            return compiled(mel)
    return fn


class MissingPackage(Exception):
    """An optional package (requirements-bench.txt) is not installed; the message is its name."""


def installed(package):
    return importlib.util.find_spec(package) is not None


def optional_import(package):
    try:
        return importlib.import_module(package)
    except ImportError:
        raise MissingPackage(package) from None


def export_onnx(model, name, h, frames, path):
    """Export `model` to ONNX with dynamic batch and time axes.

    The torch.export-based exporter (dynamo=True, needs onnxscript) is tried first, then the legacy
    TorchScript one (dynamo=False). -> (path or None, {"exporter", "export_s", "status", "errors"})."""
    info = {"exporter": None, "export_s": None, "status": None, "errors": {}}
    try:
        optional_import("onnx")
    except MissingPackage as e:
        info["status"] = f"skipped: {e} not installed (needed for the ONNX export)"
        return None, info
    example = torch.randn(2, h["num_mels"], max(frames, 8))
    attempts = []
    if installed("onnxscript"):
        dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("frames")}
        attempts.append(("dynamo", {"dynamo": True, "dynamic_shapes": {"mel": dims}}))
    else:
        info["errors"]["dynamo"] = "onnxscript not installed"
    axes = {"mel": {0: "batch", 2: "frames"}, "audio": {0: "batch", 2: "samples"}}
    attempts.append(("legacy", {"dynamo": False, "dynamic_axes": axes}))
    for exporter, kwargs in attempts:
        log(f"e2e: exporting {name} to ONNX ({exporter} exporter)")
        start = time.perf_counter()
        try:
            with torch.no_grad(), quiet():
                torch.onnx.export(model, (example,), path, input_names=["mel"], output_names=["audio"], **kwargs)
        except Exception as e:  # report it, try the next exporter
            info["errors"][exporter] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"[:500]
            log(f"  {exporter} exporter failed: {info['errors'][exporter]}")
            continue
        info.update(exporter=exporter, export_s=time.perf_counter() - start, status="ok")
        return path, info
    info["status"] = "skipped: ONNX export failed (" + "; ".join(f"{k}: {v}" for k, v in info["errors"].items()) + ")"
    return None, info


@contextlib.contextmanager
def quiet():
    """Silence the exporters' progress prints, warnings and log lines (e.g. "torchvision is not installed")."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def onnxruntime_engine(path, threads):
    ort = optional_import("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle threads would otherwise spin after each run and steal the cores of the next engine in the round.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def fn(mel):
        return torch.from_numpy(session.run(None, {"mel": mel.numpy()})[0])
    return fn


def openvino_engine(path, shape, threads):
    """OpenVINO CPU, fp32, the ONNX model reshaped to this case's static input shape."""
    ov = optional_import("openvino")
    core = ov.Core()
    model = core.read_model(path)
    model.reshape(shape)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()

    def fn(mel):
        return torch.from_numpy(request.infer([mel.numpy()])[0])
    return fn


def time_models(name, batch, engines, status, mels, settings, sampling_rate, onnx_info):
    outputs, first_call, failed = warm_up(engines, mels[0], settings["warmup"])
    engines = {e: fn for e, fn in engines.items() if e not in failed}
    timings = round_robin(engines, mels, settings["repeats"])
    samples = outputs["eager"].numel() if "eager" in outputs else None
    eager_s = statistics.median(timings["eager"]["seconds"]) if "eager" in timings else None
    rows = []
    for engine in settings["engines"]:
        row = {"config": name, "batch": batch, "frames": mels[0].shape[2], "engine": engine,
               "audio_s": samples / sampling_rate if samples else None, "output_samples": samples}
        if engine in timings:
            seconds = statistics.median(timings[engine]["seconds"])
            row.update(status="ok", median_s=seconds, x_realtime=row["audio_s"] / seconds,
                       khz=samples / seconds / 1e3, speedup_vs_eager=eager_s / seconds,
                       max_abs_diff_vs_eager=(outputs[engine] - outputs["eager"]).abs().max().item(),
                       first_call_s=first_call[engine], seconds=timings[engine]["seconds"])
        else:
            row["status"] = status.get(engine) or f"failed: {failed[engine]}"
        if engine in ("onnxruntime", "openvino") and onnx_info:
            row["onnx_export"] = {k: v for k, v in onnx_info.items() if k != "status"}
        rows.append(row)
    return rows


# ---- end to end: training step --------------------------------------------------------------
def train_section(configs, settings):
    rows = []
    batch, frames = settings["train_batch"], settings["train_frames"]
    for name, h in configs:
        log(f"train: {name} batch {batch} x {frames} frames")
        torch.manual_seed(settings["seed"])
        models = {"eager": HiFiGAN(h, fused=False).train(), "fused": HiFiGAN(h, fused=True).train()}
        models["fused"].load_state_dict(models["eager"].state_dict())
        hop = models["eager"].hop_length
        gen = torch.Generator().manual_seed(settings["seed"])
        inputs = [(torch.randn(batch, h["num_mels"], frames, generator=gen),
                   2 * torch.rand(batch, 1, frames * hop, generator=gen) - 1) for _ in range(settings["inputs"])]
        engines = {engine: training_step(model) for engine, model in models.items()}
        outputs, first_call, failed = warm_up(engines, inputs[0], settings["warmup"])
        engines = {e: fn for e, fn in engines.items() if e not in failed}
        timings = round_robin(engines, inputs, settings["repeats"])
        del models, engines
        eager_s = statistics.median(timings["eager"]["seconds"]) if "eager" in timings else None
        for engine in ("eager", "fused"):
            row = {"config": name, "batch": batch, "frames": frames, "samples": frames * hop, "engine": engine}
            if engine in timings:
                seconds = statistics.median(timings[engine]["seconds"])
                row.update(status="ok", median_s=seconds, speedup_vs_eager=eager_s / seconds if eager_s else None,
                           max_abs_diff_vs_eager=(outputs[engine] - outputs["eager"]).abs().max().item()
                           if "eager" in outputs else None,
                           first_call_s=first_call[engine], seconds=timings[engine]["seconds"])
                row["memory"] = peak_memory_in_child(_generator_step_setup, h, engine == "fused", batch, frames,
                                                     settings)
            else:
                row["status"] = f"failed: {failed[engine]}"
            rows.append(row)
    return rows


def training_step(model):
    """fn((mel, target)) -> output: one forward + L1 loss + backward, gradients freshly allocated."""
    def fn(inp):
        mel, target = inp
        model.zero_grad(set_to_none=True)
        out = model(mel)
        F.l1_loss(out, target).backward()
        return out.detach()
    return fn


MEMORY_METHOD = ("peak resident memory (RSS) of a fresh spawned process, over its RSS after building the model "
                 "and inputs: the peak is reset there (Linux /proc/self/clear_refs) and read after two training "
                 "steps (VmHWM, /proc/self/status)")
MEMORY_METHOD_FALLBACK = ("peak RSS (getrusage ru_maxrss) of a fresh spawned process after two training steps, "
                          "less its RSS after building the model and inputs (the peak could not be reset, so a "
                          "higher earlier peak would hide the step's)")


def peak_memory_in_child(setup, h, fused, batch, frames, settings):
    """{"peak_increase_mib", "method"} of two training steps, each engine alone in a fresh process.

    setup(h, fused, batch, frames) -> (step function, its input), run in the child (module level, picklable)."""
    context = multiprocessing.get_context("spawn")
    try:
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            return pool.submit(_child_peak_memory, setup, h, fused, batch, frames, settings["threads"],
                               settings["seed"]).result()
    except Exception as e:  # e.g. no way to start a process here: report, keep the timings
        return {"peak_increase_mib": None, "method": f"failed: {type(e).__name__}: {e}"[:300]}


def _generator_step_setup(h, fused, batch, frames):
    model = HiFiGAN(h, fused=fused).train()
    mel = torch.randn(batch, h["num_mels"], frames)
    target = 2 * torch.rand(batch, 1, frames * model.hop_length) - 1
    return training_step(model), (mel, target)


def _child_peak_memory(setup, h, fused, batch, frames, threads, seed):
    warnings.filterwarnings("ignore", message="vocoder_ext: no fused kernel", category=RuntimeWarning)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    step, inp = setup(h, fused, batch, frames)
    baseline = _rss_bytes()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
        method = MEMORY_METHOD
    except OSError:
        method = MEMORY_METHOD_FALLBACK
    for _ in range(2):
        step(inp)
    if method == MEMORY_METHOD:
        peak = _proc_status_kib("VmHWM") * 1024
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"peak_increase_mib": max(0, peak - baseline) / MIB, "method": method}


# ---- end to end: the recipe's training step (python -m train.hifigan) -------------------------
GAN_SKIPPED = "skipped: the train package is not importable (run from the repository root)"


def gan_section(configs, settings):
    """Trainer.step of train.hifigan (D step + G step, MPD + MSD, all losses), eager vs --fused."""
    if importlib.util.find_spec("train") is None or importlib.util.find_spec("train.hifigan") is None:
        return [{"status": GAN_SKIPPED}]
    rows = []
    batch, frames = settings["gan_batch"], settings["gan_frames"]
    for name, h in configs:
        log(f"gan: {name} batch {batch} x {frames} frames")
        trainers = {engine: _gan_step_setup(h, engine == "fused", batch, frames, settings["seed"])[0]
                    for engine in ("eager", "fused")}  # same seed: same initial weights
        inputs = [_gan_input(h, batch, frames, settings["seed"] + i) for i in range(settings["inputs"])]
        outputs, first_call, failed = warm_up(trainers, inputs[0], settings["warmup"])
        engines = {e: fn for e, fn in trainers.items() if e not in failed}
        timings = round_robin(engines, inputs, settings["repeats"])
        del trainers, engines
        eager_s = statistics.median(timings["eager"]["seconds"]) if "eager" in timings else None
        for engine in ("eager", "fused"):
            row = {"config": name, "batch": batch, "frames": frames, "samples": frames * h["hop_size"],
                   "engine": engine}
            if engine in timings:
                seconds = statistics.median(timings[engine]["seconds"])
                row.update(status="ok", median_s=seconds, steps_per_s=1 / seconds,
                           speedup_vs_eager=eager_s / seconds if eager_s else None,
                           first_step_losses=outputs[engine].tolist(), first_call_s=first_call[engine],
                           seconds=timings[engine]["seconds"])
                row["memory"] = peak_memory_in_child(_gan_step_setup, h, engine == "fused", batch, frames, settings)
            else:
                row["status"] = f"failed: {failed[engine]}"
            rows.append(row)
    return rows


def _gan_step_setup(h, fused, batch, frames, seed=0):
    """A train.hifigan Trainer (seeded weights) -> (fn(micro-batch) -> [D loss, G loss], an input)."""
    from train.distributed import Context
    from train.hifigan import Trainer, build_parser
    args = build_parser().parse_args(["-o", "unused", *(["--fused"] if fused else []), "--seed", str(seed)])
    trainer = Trainer(args, Context("cpu"), {**AUDIO_DEFAULTS, **h})

    def step(inp):
        logs = trainer.step([inp])
        return torch.stack([logs["loss_disc_all"], logs["loss_gen_all"]]).detach()
    return step, _gan_input(h, batch, frames, seed)


def _gan_input(h, batch, frames, seed):
    """(mel, audio, loss mel) of random audio, as the training data pipeline gives them."""
    from .audio import mel_spectrogram
    h = {**AUDIO_DEFAULTS, **h}
    gen = torch.Generator().manual_seed(seed)
    audio = 2 * torch.rand(batch, frames * h["hop_size"], generator=gen) - 1
    mels = [mel_spectrogram(audio, h["n_fft"], h["num_mels"], h["sampling_rate"], h["hop_size"], h["win_size"],
                            h["fmin"], fmax) for fmax in (h["fmax"], h["fmax_for_loss"])]
    return mels[0], audio.unsqueeze(1), mels[1]


def _proc_status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def _rss_bytes():
    try:
        return _proc_status_kib("VmRSS") * 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---- machine and versions -------------------------------------------------------------------
def machine_info():
    cpu_model = None
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    return {"cpu": cpu_model or platform.processor() or platform.machine(), "logical_cpus": os.cpu_count(),
            "usable_cpus": usable, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "platform": platform.platform(), "python": platform.python_version()}


def load_average():
    """The 1, 5 and 15 minute load averages: other work on the machine skews every timing."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def versions():
    result = {"vocoder_ext": __version__, "torch": torch.__version__}
    for package in ("onnx", "onnxscript", "onnxruntime", "openvino"):
        try:
            result[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            result[package] = None
    return result


# ---- Markdown -------------------------------------------------------------------------------
def fmt(value, digits=3):
    """A number with `digits` significant digits, without scientific notation for ordinary sizes."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if abs(value) < 1e-3:
        return f"{value:.1e}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report):
    s, m, v = report["settings"], report["machine"], report["versions"]
    optional = ", ".join(f"{p} {v[p] or 'not installed'}" for p in ("onnx", "onnxscript", "onnxruntime", "openvino"))
    lines = [
        "# vocoder_ext benchmark",
        "",
        f"- command: `{report['command']}`",
        f"- date: {report['date']}",
        f"- machine: {m['cpu']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable), "
        f"torch CPU capability {m['torch_cpu_capability']}; {m['platform']}",
        f"- threads: {s['threads']} (torch.set_num_threads; ONNX Runtime intra-op threads; OpenVINO "
        f"INFERENCE_NUM_THREADS)",
        f"- versions: vocoder_ext {v['vocoder_ext']}, torch {v['torch']}, python {m['python']}; {optional}",
        f"- load average (1, 5, 15 min) at start: {report['load_average']['start']}, at end: "
        f"{report['load_average']['end']} (other work on the machine skews timings; the JSON has every sample)",
        "- fused ops served on CPU by: " + "; ".join(f"{op}: {b}" for op, b in report["backends"].items()),
        f"- timing: median of {s['repeats']} samples after {s['warmup']} warm-up run(s); engines interleaved "
        f"round-robin within each repeat; {s['inputs']} different random inputs of each shape used in turn",
    ]
    if "ops" in report:
        lines += ["", render_ops(report["ops"], s)]
    if "e2e" in report:
        lines += ["", render_e2e(report["e2e"], s)]
    if "train" in report:
        lines += ["", render_train(report["train"], s)]
    if "gan" in report:
        lines += ["", render_gan(report["gan"], s)]
    return "\n".join(lines)


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


def render_e2e(rows, s):
    body = []
    for r in rows:
        if r["status"] == "ok":
            body.append([r["config"], r["batch"], r["engine"], fmt(1e3 * r["median_s"]), fmt(r["x_realtime"]),
                         fmt(r["khz"]), fmt(r["speedup_vs_eager"]), fmt(r["max_abs_diff_vs_eager"], 2),
                         fmt(r["first_call_s"])])
        else:
            body.append([r["config"], r["batch"], r["engine"], r["status"], "", "", "", "", ""])
    exporters = sorted({f"{r['onnx_export']['exporter']} exporter" for r in rows
                        if r.get("onnx_export", {}).get("exporter")})
    return "\n".join([
        f"## End to end: inference, {s['seconds']:g} s of audio per item",
        "",
        "Weight norm removed, eval. eager = HiFiGAN(fused=False) and fused = HiFiGAN(fused=True) under "
        "torch.inference_mode(); compile = torch.compile(eager model, inductor, freezing=True, dynamic=False) under "
        "torch.no_grad(); onnxruntime (CPUExecutionProvider) and openvino (CPU, f32 precision hint, static input "
        "shape) run an fp32 ONNX export of the eager model" + (f" ({', '.join(exporters)})" if exporters else "") +
        ". x real-time = audio seconds (all items) / wall seconds; kHz = output samples per second / 1000; "
        "first call = the warm-up call, which includes compilation, not in the medians.",
        "",
        table(["config", "batch", "engine", "median ms", "x real-time", "kHz", "speedup vs eager",
               "max abs diff vs eager", "first call s"], body),
    ])


def render_gan(rows, s):
    header = ["## GAN training step of the recipe: `python -m train.hifigan` vs `--fused`", "",
              "train.hifigan's Trainer.step: the discriminator step (MPD + MSD on G(x).detach()) then the generator "
              "step (LSGAN + 2 x feature matching + 45 x mel L1, AdamW), fp32. eager and --fused start from the same "
              "seeded weights; only the generator's path differs, so the discriminators' share of the step "
              "bounds the gain. Peak memory as in the table above.", ""]
    if rows and rows[0]["status"] == GAN_SKIPPED:
        return "\n".join(header + [GAN_SKIPPED])
    body = []
    for r in rows:
        if r["status"] == "ok":
            mem = r["memory"]["peak_increase_mib"]
            body.append([r["config"], f"{r['batch']} x {r['samples']}", r["engine"], fmt(1e3 * r["median_s"]),
                         fmt(r["steps_per_s"]), fmt(r["speedup_vs_eager"]),
                         fmt(mem) if mem is not None else r["memory"]["method"]])
        else:
            body.append([r["config"], f"{r['batch']} x {r['samples']}", r["engine"], r["status"], "", "", ""])
    return "\n".join(header + [table(["config", "batch x samples", "engine", "median step ms", "steps/s",
                                     "speedup vs eager", "peak memory MiB"], body)])


def render_train(rows, s):
    body = []
    for r in rows:
        if r["status"] == "ok":
            mem = r["memory"]["peak_increase_mib"]
            body.append([r["config"], f"{r['batch']} x {r['samples']}", r["engine"], fmt(1e3 * r["median_s"]),
                         fmt(r["speedup_vs_eager"]), fmt(mem) if mem is not None else r["memory"]["method"],
                         fmt(r["max_abs_diff_vs_eager"], 2)])
        else:
            body.append([r["config"], f"{r['batch']} x {r['samples']}", r["engine"], r["status"], "", "", ""])
    methods = sorted({r["memory"]["method"] for r in rows if r.get("memory", {}).get("peak_increase_mib") is not None})
    return "\n".join([
        "## Training step: generator forward + L1 loss + backward, weight norm on",
        "",
        "eager = HiFiGAN(fused=False), fused = HiFiGAN(fused=True), same weights, train mode, gradients set to None "
        "before each step. Peak memory: " + ("; ".join(methods) if methods else "-") + ".",
        "",
        table(["config", "batch x samples", "engine", "median step ms", "speedup vs eager", "peak memory MiB",
               "max abs diff vs eager"], body),
    ])


if __name__ == "__main__":
    sys.exit(main())

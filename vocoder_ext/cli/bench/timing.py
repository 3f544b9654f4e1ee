"""What every section of the bench shares: progress lines, the warm-up and round-robin timing
discipline, the machine and versions a report records, the config helpers, and the Markdown helpers.

A leaf module: it imports no other module of vocoder_ext.cli.bench, so every section (and the GPU table,
vocoder_ext/cli/bench/cuda.py, and the static report) can use it without an import cycle.
"""
import math
import os
import platform
import sys
import time

import torch

from ... import __version__
from ..common import DEFAULT_SAMPLING_RATE, package_version


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

    -> (outputs on that input, seconds of each engine's first call, {engine: error} for engines that raised).
    An output is a tensor or a tuple of tensors (an op with several results); compare them with max_abs_diff."""
    outputs, first_call, failed = {}, {}, {}
    for name, fn in engines.items():
        try:
            for i in range(max(1, warmup)):
                start = time.perf_counter()
                out = fn(first_input)
                if i == 0:
                    first_call[name] = time.perf_counter() - start
            outputs[name] = _snapshot(out)  # ORT/OpenVINO may reuse their output buffers
        except Exception as e:  # an engine that cannot run this model is reported, not fatal
            failed[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
            log(f"  {name} failed: {failed[name]}")
    return outputs, first_call, failed


def _snapshot(out):
    if isinstance(out, (tuple, list)):
        return tuple(_snapshot(o) for o in out)
    return out.detach().float().clone()


def max_abs_diff(a, b):
    """The largest |a - b| over two outputs of warm_up (tensors, or tuples of tensors compared pairwise;
    an empty tensor, e.g. an output an op leaves unfilled, differs by 0)."""
    if isinstance(a, tuple):
        return max(max_abs_diff(x, y) for x, y in zip(a, b, strict=True))
    return (a - b).abs().max().item() if (a - b).numel() else 0.0


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
    return {"vocoder_ext": __version__, "torch": torch.__version__,
            **{package: package_version(package) for package in ("onnx", "onnxscript", "onnxruntime", "openvino")}}


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

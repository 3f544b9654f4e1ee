"""Per-shape choice on the GPU: our CUDA C++ kernel, the Triton kernel, or cuDNN's conv + eager ops.

The fused kernels win where the elementwise passes they fuse dominate (small batch, few channels, long
audio) and may lose to cuDNN on large GEMM-like shapes. So with VOCODER_EXT_BACKEND=auto, the first
call of an op at a new (op, shape, dtype, device) times every candidate on the real inputs and keeps the
fastest. The choice is persisted in a JSON file under the user's cache directory, so a shape is timed
once per machine, GPU, torch and triton version, not once per process.

- Cache file: $VOCODER_EXT_CACHE_DIR/autotune.json, else $XDG_CACHE_HOME/vocoder_ext/autotune.json, else
  ~/.cache/vocoder_ext/autotune.json. Written atomically (merged with what is on disk, so processes
  sharing it lose nothing but a concurrent first measurement). A file that cannot be read is reported
  once and replaced by the next choice.
- VOCODER_EXT_AUTOTUNE=0 turns the choice off: the first fused kernel (Triton where installed, else
  CUDA C++) always runs.
- `vocoder_ext.backends()["autotune"]` says whether it is on, where the file is and how many choices it
  holds.

Time sequence lengths are bucketed to a power of two in the keys (as Triton's own autotune keys are),
so variable-length audio does not time every new length.
"""
import datetime
import functools
import json
import os
import statistics
import threading
import time
import warnings

import torch

from ..atomic import atomic_file
from .backend import requested

FILE_NAME = "autotune.json"
FORMAT = 1
WARMUP = 2
REPEATS = 7
_lock = threading.RLock()  # re-entrant: a candidate may itself run an op that chooses
_choices = None  # {key: entry}, loaded from the file on first use
_warned = set()


def enabled():
    value = os.environ.get("VOCODER_EXT_AUTOTUNE", "1").strip().lower()
    if value in ("0", "off", "false", "no"):
        return False
    if value in ("", "1", "on", "true", "yes"):
        return True
    raise ValueError(f"VOCODER_EXT_AUTOTUNE must be 1 or 0, got {value!r}")


def cache_path():
    folder = os.environ.get("VOCODER_EXT_CACHE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "vocoder_ext")
    return os.path.join(folder, FILE_NAME)


def bucket(n):
    """n rounded up to a power of two: the time-length part of a key."""
    return 1 << max(0, int(n) - 1).bit_length()


def _warn_once(what, message):
    if what not in _warned:
        _warned.add(what)
        warnings.warn(f"vocoder_ext autotune: {message}", RuntimeWarning, stacklevel=4)


def _read_file(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        _warn_once(("read", path), f"cannot read {path} ({type(e).__name__}: {e}); choices will be timed "
                                   f"again and the file rewritten")
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("choices"), dict):
        _warn_once(("read", path), f"{path} is not a format-{FORMAT} autotune cache; choices will be timed "
                                   f"again and the file rewritten")
        return {}
    return data["choices"]


def _loaded():
    global _choices
    if _choices is None:
        _choices = _read_file(cache_path())
    return _choices


def reset():
    """Forget the in-memory choices (the next lookup reads the file again)."""
    global _choices
    with _lock:
        _choices = None


def _save(key, entry):
    path = cache_path()
    try:
        merged = {**_read_file(path), key: entry}
        with atomic_file(path) as f:
            f.write(json.dumps({"format": FORMAT, "choices": merged}, indent=1, sort_keys=True).encode())
    except OSError as e:
        _warn_once(("write", path), f"cannot write {path} ({e}); choices are kept for this process only")


@functools.cache  # these two are part of every op call's key on CUDA
def device_label(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


@functools.cache
def _versions():
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = "none"
    return f"torch {torch.__version__}, triton {triton_version}"


def measure(fn, device):
    """Median milliseconds of fn() after WARMUP calls; CUDA events on a GPU, wall clock elsewhere."""
    for _ in range(WARMUP):
        fn()
    samples = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(REPEATS):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
    else:
        for _ in range(REPEATS):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


# How far a candidate may stray from the reference (relative to the reference's peak) before it is
# called wrong: loose enough for any summation order, tight enough to catch a broken kernel.
AGREEMENT = {torch.float16: 3e-2, torch.bfloat16: 6e-2}
AGREEMENT_DEFAULT = 1e-3


def disagreement(got, want):
    """Why a candidate's outputs `got` are not the reference's `want`, or None."""
    got, want = [v if isinstance(v, (tuple, list)) else (v,) for v in (got, want)]
    for i, (g, w) in enumerate(zip(got, want)):
        if not isinstance(w, torch.Tensor):
            continue
        if g.shape != w.shape or g.dtype != w.dtype:
            return f"output {i} is {g.dtype} {tuple(g.shape)}, the reference's {w.dtype} {tuple(w.shape)}"
        if w.numel() == 0:
            continue
        peak = w.abs().max().item()
        err = (g.double() - w.double()).abs().max().item()
        if not err <= AGREEMENT.get(w.dtype, AGREEMENT_DEFAULT) * max(peak, 1e-6):  # NaN fails too
            return f"output {i} differs from the reference by {err:.3g} (its peak {peak:.3g})"
    return None


def _finite(outputs):
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    return all(bool(torch.isfinite(v).all()) for v in outputs if isinstance(v, torch.Tensor))


def _capturing(device):
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()


def choose(op, shape_key, candidates, device):
    """The name of the candidate to run for this (op, shape_key, device): {name: zero-argument callable}.

    The first candidate is the default: what runs with VOCODER_EXT_AUTOTUNE=0, when a backend is forced
    (VOCODER_EXT_BACKEND=triton means Triton, always) and, with no stored choice,
    while a CUDA graph is being captured (no timing is possible then). Otherwise a stored choice is
    reused, or every candidate is timed now (`measure`) and the fastest is stored. A candidate that
    raises is left out of the choice (its error is stored); if all raise, the default's error propagates.
    Where the reference is a candidate ("eager"), every other one must first agree with its result on
    these inputs (`disagreement`), or it is left out with a warning: a fast wrong kernel never wins. Where
    the reference's own result is not finite, nothing is chosen or stored: "eager" runs this once.
    """
    default = next(iter(candidates))
    if not enabled() or requested() != "auto":
        return default
    key = f"{op} | {shape_key} | {device_label(device)} | {_versions()}"
    with _lock:
        entry = _loaded().get(key)
        if entry is not None and entry.get("choice") in candidates:
            return entry["choice"]
        if _capturing(device):
            return default
        timings, errors = {}, {}
        expected = candidates["eager"]() if "eager" in candidates else None
        if expected is not None and not _finite(expected):
            # Overflowed inputs (fp16 gradients before a GradScaler backs off, say) cannot tell a right
            # kernel from a wrong one: run the reference this time, choose on a later call.
            return "eager"
        for name, fn in candidates.items():
            try:
                why = None if expected is None or name == "eager" else disagreement(fn(), expected)
                if why is not None:
                    errors[name] = f"wrong result: {why}"
                    _warn_once((op, name, shape_key), f"the {name} kernel of {op} gave a wrong result for "
                                                      f"{shape_key} ({why}); not using it for that shape")
                    continue
                timings[name] = measure(fn, device)
            except Exception as e:  # noqa: BLE001 -- a candidate that cannot run is not chosen
                errors[name] = f"{type(e).__name__}: {e}"[:300]
        if not timings:
            candidates[default]()  # raises the default's own error
        choice = min(timings, key=timings.get)
        entry = {"choice": choice, "ms": {n: round(t, 4) for n, t in timings.items()},
                 "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        if errors:
            entry["errors"] = errors
        _loaded()[key] = entry
        _save(key, entry)
        return choice


def status():
    """One line for vocoder_ext.backends()."""
    if not enabled():
        return "off (VOCODER_EXT_AUTOTUNE=0): CUDA ops always run the first fused kernel (Triton, else CUDA C++)"
    path = cache_path()
    return (f"on: each new CUDA (op, shape, dtype) times CUDA C++, Triton and cuDNN + eager once; "
            f"{len(_read_file(path))} choices in {path}")

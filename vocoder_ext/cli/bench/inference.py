"""The `e2e` section of the bench: end-to-end inference of the generator (weight norm removed, eval,
no autograd), per config and batch size, engine by engine:

  eager        HiFiGAN(fused=False)
  compile      torch.compile (inductor with freezing) of the eager model
  onnxruntime  ONNX Runtime, fp32, from one ONNX export of the eager model per config
  openvino     OpenVINO, fp32, from the same export
  fused        HiFiGAN(fused=True)

and in bf16, in the same rounds, each measured against the fp32 eager output (SNR):

  fused_bf16     the fused fp32 model inside compute_in_bf16() (our kernels: bf16 products, fp32 sums)
  eager_bf16     PyTorch's bf16: a copy of the eager model .to(torch.bfloat16) fed a bf16 mel
  openvino_bf16  OpenVINO from the same ONNX export, bf16 precision hint

The GPU table (vocoder_ext/cli/bench/cuda.py) reuses `inference` and, off CUDA, `compiled_engine`.
"""
import contextlib
import copy
import importlib
import importlib.util
import io
import logging
import os
import statistics
import tempfile
import time
import warnings

import torch

from ...models.hifigan import HiFiGAN
from ...runtime.precision import compute_in_bf16
from ..common import DEFAULT_SAMPLING_RATE
from ..precision import snr_db
from .timing import fmt, frames_for, log, round_robin, table, warm_up

ENGINES = ("eager", "compile", "onnxruntime", "openvino", "fused", "fused_bf16", "eager_bf16", "openvino_bf16")
QUICK_ENGINES = ("eager", "fused", "fused_bf16")
BF16_ENGINES = ("fused_bf16", "eager_bf16", "openvino_bf16")  # every other engine computes in fp32
ONNX_ENGINES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "openvino_bf16": "openvino"}  # -> package


def engine_precision(engine):
    return "bf16" if engine in BF16_ENGINES else "fp32"


def e2e_section(configs, settings):
    rows = []
    for name, h in configs:
        torch.manual_seed(settings["seed"])
        eager_model = HiFiGAN(h, fused=False).remove_weight_norm().eval()
        fused_model = HiFiGAN(h, fused=True).remove_weight_norm().eval()
        fused_model.load_state_dict(eager_model.state_dict())
        models = {"eager": eager_model, "fused": fused_model}
        if "eager_bf16" in settings["engines"]:
            models["eager_bf16"] = copy.deepcopy(eager_model).to(torch.bfloat16)
        frames = frames_for(h, settings["seconds"])
        sampling_rate = h.get("sampling_rate", DEFAULT_SAMPLING_RATE)
        with tempfile.TemporaryDirectory(prefix="vocoder_ext_bench_") as tmp:
            onnx_path, onnx_info = None, None
            if any(e in ONNX_ENGINES and installed(ONNX_ENGINES[e]) for e in settings["engines"]):
                onnx_path, onnx_info = export_onnx(eager_model, name, h, frames, os.path.join(tmp, f"{name}.onnx"))
            for batch in settings["batches"]:
                log(f"e2e: {name} batch {batch}, {frames} frames ({settings['seconds']:g} s of audio per item)")
                gen = torch.Generator().manual_seed(settings["seed"] + batch)
                mels = [torch.randn(batch, h["num_mels"], frames, generator=gen) for _ in range(settings["inputs"])]
                engines, status = make_engines(settings["engines"], models, onnx_path, onnx_info,
                                               batch, h["num_mels"], frames, settings["threads"])
                rows += time_models(name, batch, engines, status, mels, settings, sampling_rate, onnx_info)
    return rows


def make_engines(names, models, onnx_path, onnx_info, batch, num_mels, frames, threads):
    """models: {"eager", "fused" and, for eager_bf16, "eager_bf16": its bf16 copy}.
    -> ({engine: fn(mel) -> audio tensor}, {engine: why it is skipped})."""
    engines, status = {}, {}
    for name in names:
        try:
            if name in ("eager", "fused"):
                engines[name] = inference(models[name])
            elif name == "fused_bf16":
                engines[name] = bf16_compute_inference(models["fused"])
            elif name == "eager_bf16":
                engines[name] = bf16_tensor_inference(models["eager_bf16"])
            elif name == "compile":
                engines[name] = compiled_engine(models["eager"])
            elif not installed(ONNX_ENGINES[name]):
                raise MissingPackage(ONNX_ENGINES[name])
            elif onnx_path is None:
                status[name] = onnx_info["status"]
            elif name == "onnxruntime":
                engines[name] = onnxruntime_engine(onnx_path, threads)
            else:
                engines[name] = openvino_engine(onnx_path, [batch, num_mels, frames], threads,
                                                "bf16" if name == "openvino_bf16" else "f32")
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


def bf16_compute_inference(model):
    """The fp32 model with its fp32 convs computing in bf16 for this call only: the switch is process-wide,
    and the fp32 engines of the same round must not see it."""
    def fn(mel):
        with compute_in_bf16(), torch.inference_mode():
            return model(mel)
    return fn


def bf16_tensor_inference(model):
    """A bf16 model: its input is cast to bf16 inside the timed call, as a caller holding fp32 mels would
    (80 x frames values: nothing beside the model)."""
    def fn(mel):
        with torch.inference_mode():
            return model(mel.to(torch.bfloat16))
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


def openvino_engine(path, shape, threads, precision="f32"):
    """OpenVINO CPU, the ONNX model reshaped to this case's static input shape; precision: its inference
    precision hint, "f32" or "bf16" (an OpenVINO element type name)."""
    ov = optional_import("openvino")
    core = ov.Core()
    model = core.read_model(path)
    model.reshape(shape)
    compiled = core.compile_model(model, "CPU",
                                  {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision})
    request = compiled.create_infer_request()

    def fn(mel):
        return torch.from_numpy(request.infer([mel.numpy()])[0])
    return fn


def time_models(name, batch, engines, status, mels, settings, sampling_rate, onnx_info):
    outputs, first_call, failed = warm_up(engines, mels[0], settings["warmup"])
    engines = {e: fn for e, fn in engines.items() if e not in failed}
    timings = round_robin(engines, mels, settings["repeats"])
    samples = outputs["eager"].numel() if "eager" in outputs else None
    reference = outputs.get("eager")  # fp32 eager: what every engine, fp32 or bf16, is measured against
    eager_s = statistics.median(timings["eager"]["seconds"]) if "eager" in timings else None
    rows = []
    for engine in settings["engines"]:
        row = {"config": name, "batch": batch, "frames": mels[0].shape[2], "engine": engine,
               "precision": engine_precision(engine),
               "audio_s": samples / sampling_rate if samples else None, "output_samples": samples}
        if engine in timings:
            seconds = statistics.median(timings[engine]["seconds"])
            row.update(status="ok", median_s=seconds, x_realtime=row["audio_s"] / seconds,
                       khz=samples / seconds / 1e3, speedup_vs_eager=eager_s / seconds,
                       max_abs_diff_vs_eager=(outputs[engine] - reference).abs().max().item(),
                       snr_db_vs_eager=snr_db(outputs[engine], reference),
                       first_call_s=first_call[engine], seconds=timings[engine]["seconds"])
        else:
            row["status"] = status.get(engine) or f"failed: {failed[engine]}"
        if engine in ONNX_ENGINES and onnx_info:
            row["onnx_export"] = {k: v for k, v in onnx_info.items() if k != "status"}
        rows.append(row)
    return rows


def render_e2e(rows, s):
    body = []
    for r in rows:
        if r["status"] == "ok":
            body.append([r["config"], r["batch"], r["engine"], fmt(1e3 * r["median_s"]), fmt(r["x_realtime"]),
                         fmt(r["khz"]), fmt(r["speedup_vs_eager"]), fmt(r["max_abs_diff_vs_eager"], 2),
                         snr_cell(r["snr_db_vs_eager"]), fmt(r["first_call_s"])])
        else:
            body.append([r["config"], r["batch"], r["engine"], r["status"], "", "", "", "", "", ""])
    exporters = sorted({f"{r['onnx_export']['exporter']} exporter" for r in rows
                        if r.get("onnx_export", {}).get("exporter")})
    return "\n".join([
        f"## End to end: inference, {s['seconds']:g} s of audio per item",
        "",
        "Weight norm removed, eval. eager = HiFiGAN(fused=False) and fused = HiFiGAN(fused=True) under "
        "torch.inference_mode(); compile = torch.compile(eager model, inductor, freezing=True, dynamic=False) under "
        "torch.no_grad(); onnxruntime (CPUExecutionProvider) and openvino (CPU, f32 precision hint, static input "
        "shape) run an fp32 ONNX export of the eager model" + (f" ({', '.join(exporters)})" if exporters else "") +
        ". bf16 engines: fused_bf16 = the fused fp32 model inside compute_in_bf16() (our kernels multiply in "
        "bf16, add in fp32); eager_bf16 = PyTorch's bf16, the eager model .to(torch.bfloat16) fed a bf16 mel; "
        "openvino_bf16 = openvino with the bf16 precision hint. SNR = 10 log10(sum ref^2 / sum (y - ref)^2) "
        "against the fp32 eager output of the same input (exact: identical). x real-time = audio seconds "
        "(all items) / wall seconds; kHz = output samples per second / 1000; "
        "first call = the warm-up call, which includes compilation, not in the medians.",
        "",
        table(["config", "batch", "engine", "median ms", "x real-time", "kHz", "speedup vs eager",
               "max abs diff vs eager", "SNR dB vs eager", "first call s"], body),
    ])


def snr_cell(value):
    return "exact" if value is None else f"{value:.1f}"

"""The Markdown of the GPU table (`python -m vocoder_ext bench --device cuda`, vocoder_ext/cli/bench/cuda.py):
the setup (GPU, host, versions, which backend serves each op, for each engine that forces one) and the end
to end table, one row per (config, batch, dtype, engine); a row without numbers says why in their place."""
from .timing import fmt, table


def render_markdown(report):
    s, d, m, v = report["settings"], report["device"], report["machine"], report["versions"]
    if d["type"] == "cuda":
        gpu = (f"- GPU: {d['name']} (cuda:{d['index']}), compute capability {d['capability'][0]}.{d['capability'][1]}, "
               f"{d['memory_gib']:.0f} GiB, {d['multiprocessors']} SMs; CUDA {d['torch_cuda']}, cuDNN {d['cudnn']} "
               f"(benchmark mode {'on' if d['cudnn_benchmark'] else 'off'}); TF32 "
               f"{'on' if d['tf32']['cudnn'] else 'off'} in cuDNN, {'on' if d['tf32']['matmul'] else 'off'} in matmuls")
        timer = ("CUDA events around each call (device synchronized before and after); the JSON also has the "
                 "synchronized wall time of each sample")
    else:
        gpu = f"- device: {d['type']} (no GPU: the path the tests exercise)"
        timer = "wall clock (time.perf_counter)"
    warmup = f"{s['warmup']} warm-up run(s)" + (f" (--warmup {s['warmup_asked']} raised to the minimum)"
                                                 if s.get("warmup_asked", s["warmup"]) != s["warmup"] else "")
    lines = [
        "# vocoder_ext GPU benchmark",
        "",
        f"- command: `{report['command']}`",
        f"- date: {report['date']}",
        gpu,
        f"- host CPU (launches the kernels): {m['cpu']}, {m['logical_cpus']} logical CPUs; {m['platform']}",
        (f"- versions: vocoder_ext {v['vocoder_ext']}, torch {v['torch']}, "
         f"triton {v['triton'] or 'not installed'}, python {m['python']}"),
        f"- fused ops served on {d['type']} by: " + "; ".join(f"{op}: {b}" for op, b in report["backends"].items()),
        *(f"- {engine} engine = the fused model with VOCODER_EXT_BACKEND={forced['backend']}; its ops served by: "
          + "; ".join(f"{op}: {b}" for op, b in forced["served_by"].items())
          for engine, forced in report.get("forced_backends", {}).items()),
        (f"- timing: median of {s['repeats']} samples after {warmup}; engines interleaved round-robin within "
         f"each repeat; {s['inputs']} different random inputs of each shape used in turn; {timer}"),
        "",
        render_e2e(report["e2e"], s, d["type"]),
    ]
    return "\n".join(lines)


def render_e2e(rows, s, device_type):
    body, skipped = [], []
    for r in rows:
        engine = r["engine"]
        if r.get("cudagraph_skips"):
            engine += "*"
            skipped.append(f"{r['config']} batch {r['batch']} {r['dtype']}")
        if r["status"] == "ok":
            body.append([r["config"], r["batch"], r["dtype"], engine, fmt(1e3 * r["median_s"]),
                         fmt(r["x_realtime"]), fmt(r["khz"]), fmt(r["speedup_vs_eager"]),
                         fmt(r["max_abs_diff_vs_eager"], 2), fmt(r["first_call_s"])])
        else:
            body.append([r["config"], r["batch"], r["dtype"], engine, r["status"], "", "", "", "", ""])
    compile_text = ("torch.compile(eager model, mode=\"reduce-overhead\", dynamic=False) under torch.no_grad() "
                    "(inductor + CUDA graphs; for fp16/bf16 the half model is compiled)" if device_type == "cuda"
                    else "torch.compile(eager model, inductor, freezing=True) under torch.no_grad()")
    lines = [
        f"## End to end on {device_type}: inference, {s['seconds']:g} s of audio per item",
        "",
        ("Weight norm removed, eval. eager = HiFiGAN(fused=False) and fused = HiFiGAN(fused=True) under "
         f"torch.inference_mode(); compile = {compile_text}. fp16/bf16 = the model cast to that dtype, fed mels "
         "of that dtype. x real-time = audio seconds (all items) / wall seconds; kHz = output samples per "
         "second / 1000; max abs diff vs eager = against eager's output in the same dtype on the same input "
         "(the JSON also has each output's max abs diff from eager fp32); first call = the first warm-up call "
         "(compilation, CUDA graph capture, autotuning), not in the medians."
         + (" cuda = the fused model with VOCODER_EXT_BACKEND=cuda for each call: vocoder_ext._C's CUDA C++ "
            "kernels, no fallback (where they cannot serve, its rows say why instead of numbers)."
            if "cuda" in s["engines"] else "")),
        "",
        table(["config", "batch", "dtype", "engine", "median ms", "x real-time", "kHz", "speedup vs eager",
               "max abs diff vs eager", "first call s"], body),
    ]
    if skipped:
        lines += ["", "\\* inductor fell back from CUDA graphs for part of the model (the log says why; "
                  "`cudagraph_skips` in the JSON): " + "; ".join(skipped)]
    return "\n".join(lines)

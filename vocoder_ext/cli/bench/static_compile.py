"""The compiling half of the static GPU resource report (vocoder_ext/cli/bench/static.py): what to
compile (each kernel's constexpr variants x operand dtypes x autotune configs x targets x input
specializations), the ahead-of-time Triton compile of one combination and `ptxas -v` on its PTX (whose
log ptxas_log.py reads, as for the CUDA C++ kernels). It runs in the report's child process (`python -m
vocoder_ext.cli.bench.static --json ...`, without TRITON_INTERPRET): `_child_main` prints the rows as
JSON for the parent to read. Only the standard library (and ptxas_log.py, which needs nothing else) is
imported at the top; Triton and the kernel modules are imported in the child.
"""
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from .ptxas_log import first_error, parse_ptxas_log

TARGETS = (80, 90)
# What Triton specializes a launch on: "generic" assumes nothing about the arguments; "contiguous" is
# the usual launch, on contiguous tensors: time (and tap) strides equal 1, which Triton turns into
# constants, and 16-byte aligned pointers. The register allocation differs between the two, either way.
INPUTS = ("generic", "contiguous")
_UNIT_STRIDES = ("stride_xt", "stride_et", "stride_yt", "stride_gt", "stride_wk",
                 # the WaveGlow kernels' time strides (and the rs_w rows of wn_layer's 1x1 weight)
                 "stride_ct", "stride_at", "stride_st", "stride_yat", "stride_yst", "stride_gat", "stride_gst",
                 "stride_actt", "stride_pt", "stride_wt", "stride_ywt", "stride_rwi")
DTYPES = ("fp32", "fp16")
KERNEL_MODULES = ("lrelu_conv1d", "lrelu_conv_transpose1d")
# Compiled by `bench --static` (report(waveglow=True)); kept out of report()'s default set, which
# python_tests/test_static_report.py pins to the HiFi-GAN kernels' 8 smoke rows.
WAVEGLOW_KERNEL_MODULES = ("wn_layer", "affine_coupling", "invertible_conv1x1")
# The same flags Triton's make_cubin passes to its bundled ptxas (plus -v), so the numbers are those of
# the cubin a launch would load (up to the ptxas version).
PTXAS_FLAGS = ("-lineinfo", "--regAllocOptLevel=2", "-v")


# ------------------------------------------------------------------------------------------ variants

def _variants():
    """(module, kernel, variant, pointer dtypes for operand dtype d, constexprs for d, dtypes) per variant.

    The constexpr flags are the ones the launchers pass (kernels/*.py: _launch_conv and the backward
    functions). HAS_BIAS is True where the launcher may pass a bias (HiFi-GAN's convs all have one: the
    heavier variant). Pointer dtypes: "d" stands for the operand dtype; fp32 buffers that the launchers
    use whatever the dtype (the tanh gradient g) are spelled out.
    """
    conv1d_ptrs = ("x_ptr", "w_ptr", "b_ptr", "e_ptr", "y_ptr")
    return [
        # kernels/lrelu_conv1d.py, _launch_conv from lrelu_conv1d_triton / lrelu_conv1d_backward_triton.
        ("lrelu_conv1d", "_conv_kernel", "fwd", dict.fromkeys(conv1d_ptrs, "d"),
         dict(PROLOGUE_LRELU=True, HAS_BIAS=True, EPILOGUE="none", ADD_E=False), DTYPES),
        ("lrelu_conv1d", "_conv_kernel", "fwd+residual", dict.fromkeys(conv1d_ptrs, "d"),
         dict(PROLOGUE_LRELU=True, HAS_BIAS=True, EPILOGUE="none", ADD_E=True), DTYPES),
        ("lrelu_conv1d", "_conv_kernel", "fwd tanh", dict.fromkeys(conv1d_ptrs, "d"),
         dict(PROLOGUE_LRELU=True, HAS_BIAS=True, EPILOGUE="tanh", ADD_E=False), DTYPES),
        # backward through tanh: g (fp32) = grad_out * (1 - tanh(conv(x))^2)
        ("lrelu_conv1d", "_conv_kernel", "bwd tanh_grad", {**dict.fromkeys(conv1d_ptrs, "d"), "y_ptr": "fp32"},
         dict(PROLOGUE_LRELU=True, HAS_BIAS=True, EPILOGUE="tanh_grad", ADD_E=False), DTYPES),
        # grad_x: conv over g (= grad_out, dtype d) with flipped weights, times leaky'(x)
        ("lrelu_conv1d", "_conv_kernel", "bwd grad_x", dict.fromkeys(conv1d_ptrs, "d"),
         dict(PROLOGUE_LRELU=False, HAS_BIAS=False, EPILOGUE="lrelu_grad", ADD_E=False), DTYPES),
        # ... after a tanh epilogue g is fp32 (for fp32 operands that is the row above)
        ("lrelu_conv1d", "_conv_kernel", "bwd grad_x (g fp32)", {**dict.fromkeys(conv1d_ptrs, "d"), "x_ptr": "fp32"},
         dict(PROLOGUE_LRELU=False, HAS_BIAS=False, EPILOGUE="lrelu_grad", ADD_E=False), ("fp16",)),
        ("lrelu_conv1d", "_grad_weight_kernel", "bwd grad_w+b",
         dict(g_ptr="d", x_ptr="d", gw_ptr="d", gb_ptr="d"), dict(HAS_BIAS=True), DTYPES),
        ("lrelu_conv1d", "_grad_weight_kernel", "bwd grad_w+b (g fp32)",
         dict(g_ptr="fp32", x_ptr="d", gw_ptr="d", gb_ptr="d"), dict(HAS_BIAS=True), ("fp16",)),
        # kernels/lrelu_conv_transpose1d.py
        ("lrelu_conv_transpose1d", "_conv_kernel", "fwd", dict.fromkeys(conv1d_ptrs, "d"),
         dict(TRANSPOSED=True, PROLOGUE_LRELU=True, HAS_BIAS=True, LRELU_GRAD=False), DTYPES),
        ("lrelu_conv_transpose1d", "_conv_kernel", "bwd grad_x", dict.fromkeys(conv1d_ptrs, "d"),
         dict(TRANSPOSED=False, PROLOGUE_LRELU=False, HAS_BIAS=False, LRELU_GRAD=True), DTYPES),
        ("lrelu_conv_transpose1d", "_grad_weight_kernel", "bwd grad_w+b",
         dict(g_ptr="d", x_ptr="d", gw_ptr="d", gb_ptr="d"), {}, DTYPES),
    ] + _waveglow_variants()


def _waveglow_variants():
    """The WaveGlow kernels' variants (kernels/wn_layer.py, affine_coupling.py, invertible_conv1x1.py),
    as _variants() lists them. C_PAD=8: WaveGlow's groups of 8 channels (the widest of its mixes)."""
    # p_ptr: wn_layer's preact [B, 2C, T] (written by the gate kernel with KEEP_PREACT, read by its backward)
    gate = dict.fromkeys(("x_ptr", "w_ptr", "b_ptr", "cond_ptr", "y_ptr", "p_ptr"), "d")
    res_skip = dict.fromkeys(("x_ptr", "w_ptr", "b_ptr", "a_ptr", "s_ptr", "ya_ptr", "ys_ptr"), "d")
    gate_bwd = dict.fromkeys(("p_ptr", "rw_ptr", "ga_ptr", "gs_ptr", "y_ptr", "acts_ptr"), "d")
    coupling = dict.fromkeys(("x_ptr", "wn_ptr", "y_ptr"), "d")
    coupling_bwd = dict.fromkeys(("g_ptr", "x_ptr", "wn_ptr", "gx_ptr", "gwn_ptr"), "d")
    # The model's audio channels stay fp32 while its WN (wn_out) runs in 16 bits.
    coupling_mixed = {**coupling, "x_ptr": "fp32", "y_ptr": "fp32"}
    coupling_bwd_mixed = {**coupling_bwd, "g_ptr": "fp32", "x_ptr": "fp32", "gx_ptr": "fp32"}
    conv1d_ptrs = ("x_ptr", "w_ptr", "b_ptr", "e_ptr", "y_ptr")
    return [
        # keep_preact (training: the backward reads preact) first, the heavier one, for the smoke test
        ("wn_layer", "_gate_kernel", "fwd keep_preact", gate, dict(KEEP_PREACT=True), DTYPES),
        ("wn_layer", "_gate_kernel", "fwd", gate, dict(KEEP_PREACT=False), DTYPES),
        ("wn_layer", "_res_skip_kernel", "fwd", res_skip, dict(LAST=False, HAS_SKIP=True), DTYPES),
        ("wn_layer", "_res_skip_kernel", "fwd first", res_skip, dict(LAST=False, HAS_SKIP=False), DTYPES),
        ("wn_layer", "_res_skip_kernel", "fwd last", res_skip, dict(LAST=True, HAS_SKIP=True), DTYPES),
        ("wn_layer", "_gate_backward_kernel", "bwd", gate_bwd, dict(LAST=False), DTYPES),
        ("wn_layer", "_gate_backward_kernel", "bwd last", gate_bwd, dict(LAST=True), DTYPES),
        # grad_audio + the transposed in-conv of grad_a, on lrelu_conv1d's conv kernel (WN_GRAD_AUDIO_CONFIGS)
        ("wn_layer", "_conv_kernel", "bwd grad_audio", dict.fromkeys(conv1d_ptrs, "d"),
         dict(PROLOGUE_LRELU=False, HAS_BIAS=False, EPILOGUE="none", ADD_E=True), DTYPES),
        ("affine_coupling", "_coupling_kernel", "fwd", coupling, dict(REVERSE=False), DTYPES),
        ("affine_coupling", "_coupling_kernel", "reverse", coupling, dict(REVERSE=True), DTYPES),
        ("affine_coupling", "_coupling_kernel", "fwd (x fp32)", coupling_mixed, dict(REVERSE=False), ("fp16",)),
        ("affine_coupling", "_coupling_backward_kernel", "bwd", coupling_bwd, dict(REVERSE=False), DTYPES),
        ("affine_coupling", "_coupling_backward_kernel", "bwd reverse", coupling_bwd, dict(REVERSE=True), DTYPES),
        ("affine_coupling", "_coupling_backward_kernel", "bwd (x fp32)", coupling_bwd_mixed, dict(REVERSE=False),
         ("fp16",)),
        ("invertible_conv1x1", "_mix_kernel", "mix", dict(x_ptr="d", m_ptr="fp32", y_ptr="d"), dict(C_PAD=8),
         DTYPES),
        ("invertible_conv1x1", "_outer_kernel", "bwd g x^T", dict(g_ptr="d", x_ptr="d", out_ptr="fp32"),
         dict(C_PAD=8), DTYPES),
    ]


_CONFIG_LISTS = {"_conv_kernel": "CONV_CONFIGS", "_grad_weight_kernel": "GRAD_WEIGHT_CONFIGS",
                 "_gate_kernel": "WN_GATE_CONFIGS", "_res_skip_kernel": "WN_CONFIGS",
                 "_gate_backward_kernel": "WN_BACKWARD_CONFIGS", "_coupling_kernel": "ELEMENTWISE_CONFIGS",
                 "_coupling_backward_kernel": "ELEMENTWISE_CONFIGS", "_mix_kernel": "MIX_CONFIGS",
                 "_outer_kernel": "OUTER_CONFIGS",
                 ("wn_layer", "_conv_kernel"): "WN_GRAD_AUDIO_CONFIGS"}  # (module, kernel) first, then kernel


def _config_dtype(dtype):
    """The key of a kernel's config dict that serves this operand dtype (kernels/_launch.py: tuned)."""
    return "fp32" if dtype == "fp32" else "fp16"


def jobs(kernel_modules, first_config_only=False, targets=TARGETS, dtypes=DTYPES, variant_filter=None):
    """Every (kernel, variant, dtype, config, target) combination, as JSON-able dicts.

    kernel_modules: {name: imported module of vocoder_ext.kernels} (compiled mode, not interpreted).
    variant_filter(module, kernel, variant) -> bool keeps a subset.
    """
    out = []
    for module, kernel, variant, pointers, flags, variant_dtypes in _variants():
        if module not in kernel_modules or (variant_filter and not variant_filter(module, kernel, variant)):
            continue
        for dtype in (d for d in variant_dtypes if d in dtypes):
            # The launchers tune over their operand dtype's tile set only (kernels/_launch.py: tuned).
            configs = getattr(kernel_modules[module], _CONFIG_LISTS.get((module, kernel)) or _CONFIG_LISTS[kernel])
            if isinstance(configs, dict):  # per operand width; a plain list serves every dtype (tuned_one_set)
                configs = configs[_config_dtype(dtype)]
            for cfg in configs[:1] if first_config_only else configs:
                for target, inputs in ((t, i) for t in targets for i in INPUTS):
                    out.append(dict(module=module, kernel=kernel, variant=variant, dtype=dtype, inputs=inputs,
                                    pointers={n: dtype if v == "d" else v for n, v in pointers.items()},
                                    flags=dict(flags), blocks=dict(cfg.kwargs), num_warps=cfg.num_warps,
                                    num_stages=cfg.num_stages, target=target))
    return out


# ------------------------------------------------------------------------------------------------ ptxas

def kernel_resources(log, name):
    """The numbers of the entry `name` in a ptxas -v log (else of its first entry), as parse_ptxas_log
    gives them; None where the log has no registers for it."""
    kernels = {n: f for n, f in parse_ptxas_log(log)["functions"].items() if f["kind"] == "kernel"}
    info = kernels.get(name) or next(iter(kernels.values()), None)
    return info if info is not None and info["registers"] is not None else None


def find_cuda_tool(name, env_var=None, extra=()):
    """The CUDA toolkit binary `name`: $env_var, else CUDA_HOME's, CUDA_PATH's or /usr/local/cuda's, else
    one of `extra`, else PATH's; None if none is an executable file. The CUDA C++ half finds nvcc and
    cuobjdump this way too (static_cuda.py, static_cuda_binary.py)."""
    candidates = [os.environ.get(env_var) if env_var else None]
    candidates += [os.path.join(home, "bin", name) for home in
                   (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda") if home]
    candidates += [*extra, shutil.which(name)]
    return next((p for p in candidates if p and os.path.isfile(p) and os.access(p, os.X_OK)), None)


def find_ptxas():
    """$PTXAS, else the CUDA toolkit's (CUDA_HOME or /usr/local/cuda), else ptxas on PATH; None if none."""
    return find_cuda_tool("ptxas", "PTXAS")


def ptxas_version(ptxas):
    try:
        done = subprocess.run([ptxas, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError as e:
        return f"unavailable ({e})"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return lines[-2].strip() if len(lines) >= 2 else (lines[-1].strip() if lines else "unknown")


# ------------------------------------------------------------------------- compiling (child process)

def _short(exc):
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    line = next((t for t in text if "error" in t.lower()), text[0] if text else type(exc).__name__)
    return line[:200].replace("|", "/")


def _compile_one(job, ptxas):
    """One job -> its row (job fields + status and the numbers). Runs without TRITON_INTERPRET."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    import triton.language as tl

    module = sys.modules[f"vocoder_ext.kernels.{job['module']}"]
    fn = getattr(module, job["kernel"])
    dot = {"fp32": tl.float32, "fp16": tl.float16, "bf16": tl.bfloat16}[job["dtype"]]
    constexprs = {**job["flags"], "DOT_DTYPE": dot, **job["blocks"]}
    if "DOT_DTYPE" not in fn.arg_names:  # kernels without tl.dot (elementwise, small-channel FMAs)
        del constexprs["DOT_DTYPE"]
    # Pointers by the variant; `slope` is the one float scalar; every other runtime argument is an int32.
    signature = {n: "constexpr" if p.is_constexpr else
                 ("*" + job["pointers"][n] if n in job["pointers"] else "fp32" if n == "slope" else "i32")
                 for n, p in zip(fn.arg_names, fn.params)}
    missing = [n for n, p in zip(fn.arg_names, fn.params) if p.is_constexpr and n not in constexprs]
    row = {k: v for k, v in job.items() if k != "pointers"}
    row.update(status="ok", registers=None, smem_bytes=None, ptxas_smem_bytes=None, spill_stores=None,
               spill_loads=None, stack_frame=None, triton_num_warps=None, ptxas_arch=None)
    if missing:
        row["status"] = f"not compiled: no value for constexpr {', '.join(missing)}"
        return row
    attrs = {}
    if job["inputs"] == "contiguous":
        for i, name in enumerate(fn.arg_names):
            if name in _UNIT_STRIDES:
                signature[name], constexprs[name] = "constexpr", 1
            elif name in job["pointers"]:
                attrs[(i,)] = [["tt.divisibility", 16]]
    start = time.perf_counter()
    try:
        src = ASTSource(fn=fn, signature=signature, attrs=attrs,
                        constexprs={(fn.arg_names.index(n),): v for n, v in constexprs.items()})
        compiled = triton.compile(src, target=GPUTarget("cuda", job["target"], 32),
                                  options={"num_warps": job["num_warps"], "num_stages": job["num_stages"]})
    except Exception as e:  # noqa: BLE001 -- any compiler error becomes the row's status
        row["status"] = "compile failed: " + _short(e)
        return row
    row["smem_bytes"] = compiled.metadata.shared
    row["triton_num_warps"] = compiled.metadata.num_warps
    row["compile_s"] = round(time.perf_counter() - start, 3)
    ptx = compiled.asm["ptx"]
    target_line = re.search(r"^\s*\.target\s+(sm_\w+)", ptx, re.M)
    arch = target_line.group(1) if target_line else f"sm_{job['target']}{'a' if job['target'] >= 90 else ''}"
    row["ptxas_arch"] = arch
    if ptxas is None:
        row["status"] = "no ptxas"
        return row
    with tempfile.TemporaryDirectory(prefix="vocoder_static_") as tmp:
        ptx_path = os.path.join(tmp, "kernel.ptx")
        with open(ptx_path, "w") as f:
            f.write(ptx)
        try:
            done = subprocess.run([ptxas, *PTXAS_FLAGS, f"--gpu-name={arch}", ptx_path,
                                   "-o", os.path.join(tmp, "kernel.cubin")],
                                  capture_output=True, text=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            row["status"] = "ptxas failed: " + _short(e)
            return row
    log = done.stderr + done.stdout
    if done.returncode != 0:
        row["status"] = "ptxas failed: " + first_error(log, done.returncode)
        return row
    info = kernel_resources(log, compiled.metadata.name)
    if info is None:
        row["status"] = "ptxas log not understood"
        return row
    row.update(registers=info["registers"], ptxas_smem_bytes=info["smem_bytes"],
               spill_stores=info["spill_stores"], spill_loads=info["spill_loads"],
               stack_frame=info["stack_frame"])
    return row


def _import_compiled_kernels(waveglow=True):
    """The kernel modules in compiled mode; refuses to run under the interpreter."""
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise RuntimeError("the static report must compile without TRITON_INTERPRET (use static.report(), "
                           "which starts a child process with it removed)")
    import importlib
    names = KERNEL_MODULES + (WAVEGLOW_KERNEL_MODULES if waveglow else ())
    mods = {name: importlib.import_module(f"vocoder_ext.kernels.{name}") for name in names}
    interpreted = [name for name, m in mods.items() if m.INTERPRET]
    if interpreted:
        raise RuntimeError(f"kernel modules imported under the Triton interpreter: {interpreted}")
    return mods


def _worker_init():
    _import_compiled_kernels()


def _worker(job, ptxas):
    try:
        return _compile_one(job, ptxas)
    except Exception as e:  # noqa: BLE001 -- never lose a row
        row = {k: v for k, v in job.items() if k != "pointers"}
        row["status"] = "failed: " + _short(e)
        return row


def compile_all(job_list, ptxas, workers=1, progress_every=0):
    """Rows in job order. workers > 1: a process pool (fork; the parent has only imported, not compiled)."""
    _import_compiled_kernels()
    rows = []

    def progress(row):
        rows.append(row)
        if progress_every and (len(rows) % progress_every == 0 or len(rows) == len(job_list)):
            print(f"  static report: {len(rows)}/{len(job_list)} compiled", file=sys.stderr, flush=True)

    if workers <= 1 or len(job_list) <= 1:
        for job in job_list:
            progress(_worker(job, ptxas))
        return rows
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                                initializer=_worker_init) as pool:
        for row in pool.map(_worker, job_list, [ptxas] * len(job_list)):
            progress(row)
    return rows


def _child_main(args):
    named = {k.split(".")[0] for k in args.kernels.split(",")} if args.kernels else set()
    mods = _import_compiled_kernels(waveglow=args.waveglow or bool(named & set(WAVEGLOW_KERNEL_MODULES)))
    import triton
    keep = None
    if args.kernels:
        wanted = set(args.kernels.split(","))
        keep = lambda module, kernel, variant: f"{module}.{kernel}" in wanted or module in wanted  # noqa: E731
    targets = tuple(int(t) for t in args.targets.split(","))
    dtypes = tuple(args.dtypes.split(","))
    job_list = jobs(mods, first_config_only=args.first_config, targets=targets, dtypes=dtypes,
                    variant_filter=keep)
    if args.variant_per_kernel:  # only the first variant of each kernel: the smoke test
        first = {}
        for job in job_list:
            first.setdefault((job["module"], job["kernel"]), job["variant"])
        job_list = [job for job in job_list if first[(job["module"], job["kernel"])] == job["variant"]]
    ptxas = args.ptxas or find_ptxas()
    start = time.perf_counter()
    rows = compile_all(job_list, ptxas, workers=args.workers, progress_every=args.progress)
    result = dict(rows=rows, ptxas=ptxas, ptxas_version=ptxas_version(ptxas) if ptxas else None,
                  triton_version=triton.__version__, ptxas_flags=list(PTXAS_FLAGS),
                  wall_s=round(time.perf_counter() - start, 1))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0

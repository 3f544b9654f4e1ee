"""Static GPU resource report of the Triton kernels in vocoder_ext.kernels (no GPU needed).

`python -m vocoder_ext bench --static` (or `python -m vocoder_ext.cli.bench.static`) compiles every
@triton.jit kernel ahead of time (HiFi-GAN's and WaveGlow's), for each autotune config of its launcher
(kernels/_tiles.py: CONV_CONFIGS, GRAD_WEIGHT_CONFIGS, WN_CONFIGS, ...: block sizes, num_warps,
num_stages), each constexpr variant the launchers actually use, each operand dtype (fp32, fp16:
DOT_DTYPE and the pointer dtypes follow it, as in the launchers), each target (sm_80, sm_90 -- Triton
emits `.target sm_90a` for the latter) and two specializations of the arguments (INPUTS: generic, and
contiguous tensors as a usual launch sees them). The PTX goes through `ptxas -v` (the CUDA toolkit's,
with the flags Triton itself passes), whose log gives registers, static shared memory and spill
stores/loads per thread. Triton's own metadata gives the dynamic shared memory the launch reserves
(`metadata.shared`) and num_warps.

Triton chooses interpreter vs compiler when @triton.jit runs, i.e. when the kernel modules are imported,
and the test suite sets TRITON_INTERPRET=1 for the whole session. So the compilation always runs in a
child process (`python -m vocoder_ext.cli.bench.static --json ...`) whose environment has no
TRITON_INTERPRET; `report()` starts it and reads the rows back as JSON. Nothing is cached on disk
beyond Triton's own cache (the PTX and cubin for ptxas live in a temporary folder, removed after).

A row that fails to compile (or that ptxas rejects) is kept, with the reason in its status column.

This module is the parent side (the child process, the Markdown, the files, the command line);
the compiling and ptxas -v are in vocoder_ext/cli/bench/static_compile.py, run by the child.
"""
import argparse
import json
import os
import subprocess
import sys

from . import static_cuda
from .static_compile import DTYPES, TARGETS, _child_main

# Per-job limit of the child process as a whole, in seconds per job (compile + ptxas), plus a floor.
CHILD_TIMEOUT_PER_JOB_S = 60
CHILD_TIMEOUT_MIN_S = 300


# ------------------------------------------------------------------------------------ parent side

def child_env():
    """This process's environment without TRITON_INTERPRET (and with the repo importable)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    here = os.path.abspath(__file__)  # <root>/vocoder_ext/cli/bench/static.py
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(here))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def report(first_config=False, targets=TARGETS, dtypes=DTYPES, kernels=None, workers=None,
           variant_per_kernel=False, ptxas=None, timeout_s=None, progress=0, waveglow=False):
    """Compile in a child process without TRITON_INTERPRET; returns its result dict (rows, versions).
    waveglow: the WaveGlow kernels too (static_compile.WAVEGLOW_KERNEL_MODULES; `bench --static` sets it)."""
    if workers is None:
        workers = max(1, min(2, os.cpu_count() or 1))
    cmd = [sys.executable, "-m", "vocoder_ext.cli.bench.static", "--json", "--workers", str(workers),
           "--targets", ",".join(str(t) for t in targets), "--dtypes", ",".join(dtypes)]
    if first_config:
        cmd.append("--first-config")
    if variant_per_kernel:
        cmd.append("--variant-per-kernel")
    if waveglow:
        cmd.append("--waveglow")
    if kernels:
        cmd += ["--kernels", ",".join(kernels)]
    if ptxas:
        cmd += ["--ptxas", ptxas]
    if timeout_s is None:
        timeout_s = max(CHILD_TIMEOUT_MIN_S, CHILD_TIMEOUT_PER_JOB_S * 250 // workers)
    if progress:
        cmd += ["--progress", str(progress)]
    # The child's stderr (progress lines, Triton warnings) goes through to ours; stdout is the JSON.
    done = subprocess.run(cmd, env=child_env(), stdout=subprocess.PIPE, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"static report child failed (rc {done.returncode}); its error is on stderr above")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _spills(row):
    return bool(row.get("spill_stores") or row.get("spill_loads"))


def config_label(row):
    b = row["blocks"]
    blocks = " ".join(f"{k.replace('BLOCK_', '')}{v}" for k, v in b.items())
    return f"{blocks} w{row['num_warps']} s{row['num_stages']}"


def summary(result):
    rows = result["rows"]
    ok = [r for r in rows if r.get("status") == "ok"]
    failed = [r for r in rows if r.get("status") != "ok"]
    spilling = [r for r in ok if _spills(r)]
    n_kernels = len({(r["module"], r["kernel"]) for r in rows})
    line = (f"static: {len(rows)} combinations ({n_kernels} kernels x variant x dtype x inputs x config x target), "
            f"{len(ok)} compiled, {len(failed)} failed, {len(spilling)} spill"
            + (f", max {max(r['registers'] for r in ok)} registers" if ok else ""))
    return line, spilling, failed


def render_markdown(result):
    from .timing import table  # the bench's own table helper (imported lazily: timing imports torch)
    rows = result["rows"]
    headers = ["kernel", "variant", "dtype", "inputs", "config", "target", "status", "registers", "smem bytes",
               "spill stores", "spill loads"]

    def cell(v):
        return "-" if v is None else v

    body = [[f"{r['module']}.{r['kernel']}", r["variant"], r["dtype"], r["inputs"], config_label(r),
             r.get("ptxas_arch") or f"sm_{r['target']}", ("SPILLS" if _spills(r) else "ok")
             if r.get("status") == "ok" else r.get("status"), cell(r.get("registers")),
             cell(r.get("smem_bytes")) if not r.get("ptxas_smem_bytes") else
             f"{r['smem_bytes']} + {r['ptxas_smem_bytes']} static", cell(r.get("spill_stores")),
             cell(r.get("spill_loads"))] for r in rows]
    line, spilling, failed = summary(result)
    parts = [
        "## Static GPU resources of the Triton kernels (ahead-of-time compile, no GPU)",
        "",
        f"Triton {result.get('triton_version')}; ptxas `{result.get('ptxas')}` ({result.get('ptxas_version')}), "
        f"flags `{' '.join(result.get('ptxas_flags', []))}`. registers and spills (bytes per thread) from "
        "ptxas -v; smem bytes = the dynamic shared memory Triton reserves (metadata.shared), plus any static "
        "shared memory ptxas reports. config: block sizes, w = num_warps, s = num_stages.",
        "",
        table(headers, body),
        "",
        line,
    ]
    if spilling:
        parts += ["", "Spilling (the requirement is that no kernel spills):"]
        parts += [f"- {r['module']}.{r['kernel']} {r['variant']} {r['dtype']} {r['inputs']} {config_label(r)} {r['ptxas_arch']}: "
                  f"{r['registers']} registers, {r['spill_stores']} B spill stores, {r['spill_loads']} B spill loads"
                  for r in spilling]
    if failed:
        parts += ["", "Not compiled:"]
        parts += [f"- {r['module']}.{r['kernel']} {r['variant']} {r['dtype']} {r['inputs']} {config_label(r)} sm_{r['target']}: "
                  f"{r['status']}" for r in failed]
    return "\n".join(parts)


def run_static(out, cuda_archs=static_cuda.DEFAULT_ARCHS, **kwargs):
    """`bench --static`: the report on stdout, and OUT/static.md + OUT/static.json. The Triton part comes
    first and its JSON keys stay where they were; the CUDA C++ kernels' part (static_cuda.py, compiled for
    cuda_archs) follows as its own section and sits under the JSON's "cuda" key."""
    print("static report: compiling every kernel/variant/config/target ahead of time (no GPU) ...",
          file=sys.stderr, flush=True)
    kwargs.setdefault("progress", 20)
    kwargs.setdefault("waveglow", True)
    result = report(**kwargs)
    markdown = render_markdown(result)
    print(markdown)
    print(f"static report: compiling csrc/cuda/*.cu for {', '.join(cuda_archs)} (nvcc -Xptxas -v) ...",
          file=sys.stderr, flush=True)
    cuda_result = static_cuda.report(archs=cuda_archs)
    cuda_markdown = static_cuda.render_markdown(cuda_result)
    print("\n" + cuda_markdown)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "static.md"), "w") as f:
        f.write(markdown + "\n\n" + cuda_markdown + "\n")
    line, spilling, failed = summary(result)
    cuda_line, cuda_spilling, cuda_failed = static_cuda.summary(cuda_result)
    cuda_json = {**cuda_result, "summary": cuda_line, "n_spilling": len(cuda_spilling), "n_failed": len(cuda_failed)}
    with open(os.path.join(out, "static.json"), "w") as f:
        json.dump({**result, "summary": line, "n_spilling": len(spilling), "n_failed": len(failed),
                   "cuda": cuda_json}, f, indent=2)
        f.write("\n")
    print(f"\nwrote static.md and static.json to {out}", file=sys.stderr)
    return result


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m vocoder_ext.cli.bench.static", description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true",
                   help="compile here (must run without TRITON_INTERPRET) and print the rows as JSON")
    p.add_argument("--first-config", action="store_true", help="only the first autotune config of each kernel")
    p.add_argument("--variant-per-kernel", action="store_true", help="only the first variant of each kernel")
    p.add_argument("--waveglow", action="store_true",
                   help="with --json: the WaveGlow kernels too (the report without --json always includes them)")
    p.add_argument("--targets", default=",".join(str(t) for t in TARGETS), help="compute capabilities (80,90)")
    p.add_argument("--dtypes", default=",".join(DTYPES), help="operand dtypes (fp32,fp16)")
    p.add_argument("--kernels", help="subset: module or module.kernel names, comma-separated")
    p.add_argument("--workers", type=int, default=1, help="parallel compile processes")
    p.add_argument("--progress", type=int, default=0, help="with --json: a progress line on stderr every N rows")
    p.add_argument("--ptxas", help="ptxas binary (default: $PTXAS, the CUDA toolkit's, or PATH)")
    p.add_argument("--cuda-archs", default=",".join(static_cuda.DEFAULT_ARCHS),
                   help="archs the CUDA C++ kernels (csrc/cuda/*.cu) are compiled for (not --json)")
    p.add_argument("--out", default=os.path.join("out", "bench"), help="folder for static.md/json (not --json)")
    args = p.parse_args(argv)
    if args.json:
        return _child_main(args)
    try:
        cuda_archs = static_cuda.parse_archs(args.cuda_archs)
    except ValueError as e:
        p.error(str(e))
    run_static(args.out, cuda_archs=cuda_archs, first_config=args.first_config, targets=tuple(int(t) for t in args.targets.split(",")),
               dtypes=tuple(args.dtypes.split(",")), kernels=args.kernels.split(",") if args.kernels else None,
               workers=args.workers, variant_per_kernel=args.variant_per_kernel, ptxas=args.ptxas)
    return 0


if __name__ == "__main__":
    sys.exit(main())

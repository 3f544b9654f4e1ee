"""Static GPU resources of the CUDA C++ kernels (csrc/cuda/*.cu), the second part of `bench --static`.

Per kernel (demangled name and template instance) and per arch (sm_80, sm_86, sm_89, sm_90 unless told
otherwise): registers per thread, spill stores/loads and stack frame (bytes per thread), static shared
memory, constant memory. The source of truth is ptxas itself: each .cu is compiled to a cubin in a
temporary folder, `nvcc -cubin -arch=sm_XX -Xptxas -v`, with the flags the build gives nvcc (setup.py's
list plus torch's COMMON_NVCC_FLAGS, which cpp_extension prepends: its __CUDA_NO_HALF_OPERATORS__ and
friends change which overloads the kernels call) and csrc/ as include folder, and its -v log parsed
(ptxas_log.py, which reads the Triton half's logs too; static_cuda_parse.py demangles the names). The
archs compile in parallel (2 workers by default: the machines here have 2 cores).

ptxas 13 prints no cmem for sm_90 and newer, so where cuobjdump is found (static_cuda_binary.py) the
constant memory of those rows is read from the very cubin ptxas just wrote, and that reader's registers
and stack are compared with the log's. The same reader then checks the installed extension
(vocoder_ext/_C*.so): which archs it holds cubins for, whether PTX is embedded, and that every kernel
compiled here is in its cubin of each built arch (a stale or partial build shows up as MISSING).

Nothing here needs a GPU or imports the CUDA sources' torch glue; a missing nvcc or csrc/ (an installed
wheel has no sources) becomes a line in the report, not an error.
"""
import concurrent.futures
import glob
import os
import re
import subprocess
import tempfile
import time

from . import static_cuda_binary as binary
from .ptxas_log import first_error, parse_ptxas_log
from .static_compile import find_cuda_tool
from .static_cuda_parse import demangle, split_demangled

DEFAULT_ARCHS = ("sm_80", "sm_86", "sm_89", "sm_90")
# What cpp_extension gives nvcc for a .cu of the build: torch's COMMON_NVCC_FLAGS (copied, not imported:
# importing torch.utils.cpp_extension guesses CUDA_HOME and logs about it), then setup.py's nvcc list
# (without DEBUG=1). python_tests/test_static_cuda.py checks that both sources still say so.
TORCH_NVCC_FLAGS = ("-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
                    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__", "--expt-relaxed-constexpr")
SETUP_NVCC_FLAGS = ("-O3", "-std=c++20", "--expt-relaxed-constexpr")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
NVCC_TIMEOUT_S = 600


# ---------------------------------------------------------------------------------------- archs, tools

def parse_archs(spec):
    """"80,8.6,sm_89,90a" (or a sequence) -> ("sm_80", "sm_86", "sm_89", "sm_90a"); ValueError if malformed."""
    items = spec.replace(";", ",").split(",") if isinstance(spec, str) else [str(s) for s in spec]
    archs = []
    for item in (i.strip() for i in items if i.strip()):
        core = re.sub(r"^(sm_|compute_)", "", item.lower()).replace(".", "")
        if not re.fullmatch(r"\d{2,3}[af]?", core):
            raise ValueError(f"expected CUDA archs like 80,86,89,90 (or sm_90, 9.0, 90a), got {item!r}")
        if f"sm_{core}" not in archs:
            archs.append(f"sm_{core}")
    if not archs:
        raise ValueError(f"expected at least one CUDA arch, got {spec!r}")
    return tuple(archs)


def find_nvcc():
    """The CUDA toolkit's nvcc (CUDA_HOME, CUDA_PATH, /usr/local/cuda), else PATH's; None if none."""
    return find_cuda_tool("nvcc")


def nvcc_version(nvcc):
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60, check=False).stdout
    except OSError as e:
        return f"unavailable ({e})"
    return next((line.strip() for line in out.splitlines() if "release" in line), "unknown")


def build_flags():
    """The build's device-code flags, each once (both lists pass --expt-relaxed-constexpr)."""
    return list(dict.fromkeys(TORCH_NVCC_FLAGS + SETUP_NVCC_FLAGS))


def cuda_sources(root=ROOT):
    return sorted(glob.glob(os.path.join(root, "csrc", "cuda", "*.cu")))


# ------------------------------------------------------------------------------------------- compiling

def compile_one(source, arch, nvcc, flags, include_dirs, cuobjdump=None):
    """One .cu for one arch -> {source, arch, status, functions, module, wall_s} (ptxas -v parsed)."""
    job = dict(source=source, arch=arch, status="ok", functions={}, module={})
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vocoder_static_cuda_") as tmp:
        cubin = os.path.join(tmp, "kernels.cubin")
        cmd = [nvcc, "-cubin", f"-arch={arch}", *flags, *(f"-I{d}" for d in include_dirs),
               "-Xptxas", "-v", source, "-o", cubin]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=NVCC_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            job["status"] = f"nvcc failed: {e}"[:200]
            return job
        log = done.stderr + done.stdout
        if done.returncode != 0:
            job["status"] = "compile failed: " + first_error(log, done.returncode)
            return job
        parsed = parse_ptxas_log(log)
        job.update(functions=parsed["functions"], module=parsed["module"])
        if cuobjdump:
            _from_cubin(job, cubin, cuobjdump)
    job["wall_s"] = round(time.perf_counter() - start, 2)
    return job


def _from_cubin(job, cubin, cuobjdump):
    """Constant memory that the ptxas log leaves out, read from the cubin; registers/stack cross-checked."""
    sections, why = binary.resource_usage(cubin, cuobjdump)
    if why or not sections:
        job["cubin_check"] = why or "cubin has no device code"
        return
    usage = sections[0]
    if not job["module"].get("cmem"):
        job["module"].update(cmem=_banks(usage["common"]), cmem_source="cubin")
    for name, f in job["functions"].items():
        u = usage["functions"].get(name)
        if f["kind"] != "kernel" or u is None:
            continue
        if (u.get("REG"), u.get("STACK")) != (f["registers"], f["stack_frame"]):
            f["mismatch"] = f"cubin says {u.get('REG')} registers, {u.get('STACK')} B stack"
        if not f["cmem"]:
            f.update(cmem=_banks(u), cmem_source="cubin")


def _banks(fields):
    """cuobjdump's {"CONSTANT[0]": 560, "REG": 16, ...} -> {0: 560}: ptxas's cmem[bank] form."""
    return {int(k[len("CONSTANT["):-1]): v for k, v in fields.items() if k.startswith("CONSTANT[")}


# ---------------------------------------------------------------------------------------------- report

def report(archs=DEFAULT_ARCHS, sources=None, include_dirs=None, workers=None, extra_flags=(), nvcc=None,
           cuobjdump=None, check_extension=True, extension=None):
    """Compile every source for every arch; returns {rows, jobs, extension, tools and flags}.

    One row per (source, function, arch), kernels first. extra_flags go after the build's (the tests
    pass -maxrregcount to force a spill). check_extension: also read the installed _C*.so (or
    `extension`) and mark each kernel row present / MISSING / arch not built there.
    """
    archs = parse_archs(archs)
    sources = cuda_sources() if sources is None else list(sources)
    include_dirs = [os.path.join(ROOT, "csrc")] if include_dirs is None else list(include_dirs)
    nvcc = nvcc or find_nvcc()
    cuobjdump = cuobjdump or binary.find_cuobjdump()
    flags = build_flags() + list(extra_flags)
    result = dict(archs=list(archs), sources=[_relative(s) for s in sources], nvcc=nvcc,
                  nvcc_version=nvcc_version(nvcc) if nvcc else None, flags=flags,
                  include_dirs=[_relative(d) for d in include_dirs], cuobjdump=cuobjdump, rows=[], jobs=[],
                  status="ok")
    if nvcc is None:
        result["status"] = "no nvcc ($CUDA_HOME/bin, /usr/local/cuda/bin or PATH): nothing compiled"
    elif not sources:
        result["status"] = f"no CUDA C++ sources ({_relative(os.path.join(ROOT, 'csrc', 'cuda'))}/*.cu)"
    else:
        start = time.perf_counter()
        pairs = [(s, a) for s in sources for a in archs]
        workers = workers or max(1, min(2, os.cpu_count() or 1))
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:  # nvcc does the work
            jobs = list(pool.map(lambda p: compile_one(p[0], p[1], nvcc, flags, include_dirs, cuobjdump), pairs))
        result["jobs"] = [{k: v for k, v in j.items() if k != "functions"} | {"source": _relative(j["source"])}
                          for j in jobs]
        result["rows"] = _rows(jobs, archs)
        result["wall_s"] = round(time.perf_counter() - start, 1)
    if check_extension:
        result["extension"] = binary.inspect_extension(extension, cuobjdump)
        mark_extension(result)
    return result


def _rows(jobs, archs):
    names = demangle(n for j in jobs for n in j["functions"])
    order = {a: i for i, a in enumerate(archs)}
    rows = []
    for job in jobs:
        base = dict(source=_relative(job["source"]), arch=job["arch"])
        if job["status"] != "ok":
            rows.append(dict(base, mangled=None, name=None, instance="", params="", kind="kernel",
                             status=job["status"]))
            continue
        for mangled, f in job["functions"].items():
            name, instance, params = split_demangled(names[mangled])
            status = "ok" if f["arch"] in (job["arch"], None) else f"ptxas compiled for {f['arch']}"
            if f.get("mismatch"):
                status = "ptxas log and cubin disagree: " + f["mismatch"]
            rows.append(dict(base, mangled=mangled, name=name, instance=instance, params=params, status=status,
                             **{k: v for k, v in f.items() if k not in ("arch", "mismatch")}))
    rows.sort(key=lambda r: (r["source"], r["kind"] != "kernel", r["name"] or "", r["instance"], r["params"],
                             order.get(r["arch"], len(order))))
    return rows


def mark_extension(result):
    """row["in_extension"]: "yes", "MISSING" or "arch not built" (kernel rows; None where unknowable).
    result["extension"]: "missing", kernels compiled here but absent from a built arch's cubin (every built
    arch, compiled here or not: mangled names do not depend on the arch), and "unknown_kernels", kernels
    in the library that no compile here produced (a stale build, or flags other than the build's)."""
    ext = result["extension"]
    by_arch = binary.kernels_by_arch(ext) if ext["status"] == "ok" else {}
    by_arch = {arch: by_arch[arch] for arch in ext["built_archs"]}  # not the empty cubins of static cudart
    compiled = set()
    for row in result["rows"]:
        row["in_extension"] = row["extension_registers"] = None
        if row["kind"] != "kernel" or row["mangled"] is None:
            continue
        key = binary.normalize(row["mangled"])
        compiled.add(key)
        if ext["status"] != "ok":
            continue
        if row["arch"] not in by_arch:
            row["in_extension"] = "arch not built"
        elif key in by_arch[row["arch"]]:
            row["in_extension"] = "yes"
            row["extension_registers"] = by_arch[row["arch"]][key].get("REG")
        else:
            row["in_extension"] = "MISSING"
    if ext["status"] == "ok" and compiled:
        ext["missing"] = {arch: sorted(compiled - set(funcs)) for arch, funcs in by_arch.items()
                          if compiled - set(funcs)}
        ext["unknown_kernels"] = sorted({n for funcs in by_arch.values() for n in funcs} - compiled)


def _relative(path):
    path = os.fspath(path)
    rel = os.path.relpath(path, ROOT)
    return path if rel.startswith("..") else rel


# -------------------------------------------------------------------------------------------- Markdown

def _spills(row):
    return bool(row.get("spill_stores") or row.get("spill_loads"))


def summary(result):
    """One line, plus the spilling rows and the rows that did not compile."""
    rows = result["rows"]
    ok = [r for r in rows if r["status"] == "ok"]
    kernels = [r for r in ok if r["kind"] == "kernel"]
    spilling = [r for r in ok if _spills(r)]
    stack = [r for r in ok if r.get("stack_frame")]
    failed = [r for r in rows if r["status"] != "ok"]
    instances = {(r["source"], r["mangled"]) for r in kernels}
    line = (f"cuda static: {len(instances)} kernel instances x {len(result['archs'])} archs, {len(kernels)} rows "
            f"compiled, {len(failed)} failed, {len(spilling)} spill, {len(stack)} use a stack frame"
            + (f", max {max(r['registers'] or 0 for r in kernels)} registers" if kernels else ""))
    return line, spilling, failed


def _cmem(row):
    cmem = row.get("cmem") or {}
    text = ", ".join(f"c{bank} {n}" for bank, n in sorted(cmem.items(), key=lambda kv: int(kv[0])))
    return (text + ("*" if row.get("cmem_source") == "cubin" else "")) if text else "-"


def _installed(row):
    state = row.get("in_extension")
    if state == "yes" and row.get("extension_registers") not in (None, row.get("registers")):
        return f"yes ({row['extension_registers']} registers there)"
    return state or "-"


def _extension_lines(ext):
    if ext is None:
        return []
    where = os.path.basename(ext["path"]) if ext.get("path") else "vocoder_ext/_C*.so"
    if ext["status"] != "ok":
        cpu_only = " (a CPU-only build)" if ext["status"] == "no device code" else ""
        return [f"Installed extension `{where}`: {ext['status']}{cpu_only}."]
    ptx = ", ".join(a.replace("sm_", "compute_") for a in ext["ptx_archs"]) or "none"
    lines = [f"Installed extension `{where}` (read with `{ext['cuobjdump']}`): cubins for "
             f"{', '.join(ext['built_archs'])}; PTX embedded: {ptx}."]
    for arch, names in (ext.get("missing") or {}).items():
        lines.append(f"MISSING from the {arch} cubins (a stale or partial build?): "
                     + ", ".join(f"`{n}`" for n in names))
    if ext.get("unknown_kernels"):
        lines.append("Kernels in the extension that csrc/cuda/*.cu no longer produces (stale build?): "
                     + ", ".join(f"`{n}`" for n in ext["unknown_kernels"]))
    return lines


def _namespace(rows):
    """The namespace every function shares ("vocoder_ext::cuda::(anonymous namespace)::"), or "":
    the table names functions without it, so that the column stays readable."""
    paths = [r["name"].split("::")[:-1] for r in rows if r["name"]]
    common = paths[0] if paths else []
    for path in paths[1:]:
        while path[:len(common)] != common:
            common = common[:-1]
    return "".join(part + "::" for part in common)


def render_markdown(result):
    from .timing import table  # the bench's own table helper (imported lazily: timing imports torch)
    parts = ["## Static GPU resources of the CUDA C++ kernels (nvcc + ptxas -v, no GPU)", ""]
    if result["status"] != "ok":
        parts += [f"Not compiled: {result['status']}.", ""] + _extension_lines(result.get("extension"))
        return "\n".join(parts)
    namespace = _namespace(result["rows"])
    parts += [
        f"`{result['nvcc']}` ({result['nvcc_version']}): `nvcc -cubin -arch=sm_XX {' '.join(result['flags'])} "
        f"{' '.join('-I' + d for d in result['include_dirs'])} -Xptxas -v` per source and arch "
        f"({', '.join(result['archs'])}). registers per thread; spills and stack frame in bytes per thread; "
        "smem = static shared memory per block; cmem = constant banks in bytes (c0: kernel parameters and "
        "driver constants; * read from the cubin with cuobjdump, as ptxas prints none for sm_90+). "
        "in _C: the kernel is in the installed extension's cubin of that arch."
        + (f" Every function is in `{namespace}`." if namespace else ""),
        "",
    ]
    headers = ["source", "kernel", "instance", "arch", "status", "registers", "spill stores", "spill loads",
               "stack frame", "smem", "cmem", "in _C"]

    def cell(v):
        return "-" if v is None else v

    body = []
    for r in result["rows"]:
        kernel = "-" if r["name"] is None else (f"`{r['name'][len(namespace):]}`"
                                                + (" (device function)" if r["kind"] != "kernel" else ""))
        status = ("SPILLS" if _spills(r) else "ok") if r["status"] == "ok" else r["status"]
        body.append([r["source"], kernel, f"`{r['instance']}`" if r["instance"] else "-", r["arch"], status,
                     cell(r.get("registers")), cell(r.get("spill_stores")), cell(r.get("spill_loads")),
                     cell(r.get("stack_frame")), cell(r.get("smem_bytes")), _cmem(r), _installed(r)])
    line, spilling, failed = summary(result)
    parts += [table(headers, body), "", line]
    modules = [j for j in result["jobs"] if j.get("module", {}).get("cmem")]
    if modules:
        parts += ["", "Constant data of the files themselves (`__constant__` is bank 3): "
                  + "; ".join(f"{j['source']} {j['arch']}: {_cmem(j['module'])}" for j in modules)]
    if spilling:
        parts += ["", "Spilling (the requirement is that no kernel spills):"]
        parts += [f"- `{r['name']}{r['instance']}` {r['arch']}: {r['registers']} registers, {r['spill_stores']} B "
                  f"spill stores, {r['spill_loads']} B spill loads" for r in spilling]
    if failed:
        parts += ["", "Not compiled, or not as the log says:"]
        parts += [f"- {r['source']} {r['arch']}" + (f" `{r['name']}{r['instance']}`" if r["name"] else "")
                  + f": {r['status']}" for r in failed]
    parts += [""] + _extension_lines(result.get("extension"))
    return "\n".join(parts)

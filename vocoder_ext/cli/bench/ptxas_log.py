"""Reading `ptxas -v`'s log, for both halves of the static report: the Triton kernels' (static_compile.py
runs ptxas on Triton's PTX) and the CUDA C++ kernels' (static_cuda.py, `nvcc -Xptxas -v`). One reader,
so that the two tables count registers, spills, stack and shared memory the same way.
"""
import re

_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '([^']+)'")
_PROPERTIES = re.compile(r"Function properties for (\S+)")
# Every number ptxas -v prints is "N [bytes] what" in a comma-separated list ("Used 20 registers, used 1
# barriers, 1024 bytes smem, 384 bytes cmem[0]"), and which ones a line holds varies (ptxas 13 prints no
# cmem for sm_90+, nor smem for a kernel without static shared memory). So a line is read as {what: N}.
_AMOUNT = re.compile(r"(\d+) (?:bytes )?([a-z][a-z ]*(?:\[\d+\])?)")


def _amounts(line):
    return {what: int(n) for n, what in _AMOUNT.findall(line)}


def _banks(amounts):
    """{"cmem[0]": 384, "smem": 1024, ...} -> {0: 384}."""
    return {int(what[len("cmem["):-1]): n for what, n in amounts.items() if what.startswith("cmem[")}


def parse_ptxas_log(text):
    """`ptxas -v` output of one compile -> {"functions": {mangled: {...}}, "module": {gmem, cmem}}.

    A function is an entry ("Compiling entry function", kind "kernel") or a device function that was not
    inlined (only a "Function properties" block, kind "function", no registers of its own). Per function:
    arch, registers, barriers, stack_frame, spill_stores, spill_loads (bytes per thread), smem_bytes
    (static shared memory: 0 for Triton's kernels, whose shared memory is dynamic, see Triton's
    metadata.shared), cmem ({bank: bytes}; empty where ptxas prints none).
    module: the file's global memory and constant banks (user __constant__ data is cmem[3]).
    A log without entries (a failed compile) gives no functions and gmem None.
    """
    functions, module = {}, dict(gmem=None, cmem={})
    entry = target = arch = None

    def function(name, kind):
        return functions.setdefault(name, dict(kind=kind, arch=arch, registers=None, barriers=None, stack_frame=0,
                                               spill_stores=0, spill_loads=0, smem_bytes=0, cmem={}))

    for line in text.splitlines():
        if m := _ENTRY.search(line):
            entry, arch = m.group(1), m.group(2)
            function(entry, "kernel")
            continue
        if m := _PROPERTIES.search(line):
            target = function(m.group(1), "kernel" if m.group(1) == entry else "function")
            continue
        got = _amounts(line)
        if "stack frame" in got and target is not None:
            target.update(stack_frame=got["stack frame"], spill_stores=got.get("spill stores", 0),
                          spill_loads=got.get("spill loads", 0))
        elif "registers" in got and entry is not None:
            functions[entry].update(registers=got["registers"], barriers=got.get("barriers"),
                                    smem_bytes=got.get("smem", 0), cmem=_banks(got))
        elif "gmem" in got:
            module = dict(gmem=got["gmem"], cmem=_banks(got))
    return dict(functions=functions, module=module)


def first_error(log, rc):
    """The line of a failed compile's log to show in a status cell: its first error, else its last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()] or lines[-1:]
    return (errors[0] if errors else f"rc {rc}")[:200].replace("|", "/")

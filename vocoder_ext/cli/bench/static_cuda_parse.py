"""Reading what the CUDA C++ side of the static report (static_cuda.py) gets back as text: ptxas's -v log
of one compile (kernels, non-inlined device functions, their registers, spills, stack, shared and
constant memory) and the mangled kernel names (c++filt, then name / template instance / parameters).
"""
import re
import shutil
import subprocess

_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '([^']+)'")
_PROPERTIES = re.compile(r"Function properties for (\S+)")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers(.*)")
_MODULE = re.compile(r"ptxas info\s*:\s*(\d+) bytes gmem(.*)")
_SMEM = re.compile(r"(\d+) bytes smem")
_CMEM = re.compile(r"(\d+) bytes cmem\[(\d+)\]")
_BARRIERS = re.compile(r"used (\d+) barriers")


# ------------------------------------------------------------------------------------ ptxas -v parsing

def parse_ptxas_log(text):
    """`ptxas -v` output of one compile -> {"functions": {mangled: {...}}, "module": {gmem, cmem}}.

    A function is an entry ("Compiling entry function", kind "kernel") or a device function that was not
    inlined (only a "Function properties" block, kind "function", no registers of its own). Per function:
    arch, registers, barriers, stack_frame, spill_stores, spill_loads (bytes per thread), smem_bytes
    (static shared memory), cmem ({bank: bytes}; empty where ptxas prints none, as ptxas 13 does for sm_90+).
    module: the file's global memory and constant banks (user __constant__ data is cmem[3]).
    """
    functions, module = {}, dict(gmem=None, cmem={})
    entry = target = None

    def function(name, kind, arch):
        return functions.setdefault(name, dict(kind=kind, arch=arch, registers=None, barriers=None, stack_frame=0,
                                               spill_stores=0, spill_loads=0, smem_bytes=0, cmem={}))

    arch = None
    for line in text.splitlines():
        if m := _ENTRY.search(line):
            entry, arch = m.group(1), m.group(2)
            function(entry, "kernel", arch)
        elif m := _PROPERTIES.search(line):
            target = function(m.group(1), "kernel" if m.group(1) == entry else "function", arch)
        elif (m := _FRAME.search(line)) and target is not None:
            target.update(stack_frame=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
        elif (m := _USED.search(line)) and entry is not None:
            rest, f = m.group(2), functions[entry]
            f["registers"] = int(m.group(1))
            f["smem_bytes"] = int(s.group(1)) if (s := _SMEM.search(rest)) else 0
            f["cmem"] = {int(bank): int(n) for n, bank in _CMEM.findall(rest)}
            f["barriers"] = int(b.group(1)) if (b := _BARRIERS.search(rest)) else None
        elif m := _MODULE.search(line):
            module = dict(gmem=int(m.group(1)), cmem={int(bank): int(n) for n, bank in _CMEM.findall(m.group(2))})
    return dict(functions=functions, module=module)


# ------------------------------------------------------------------------------------------ demangling

def demangle(names):
    """{mangled: demangled} through c++filt (binutils; nvcc's host compiler needs it anyway); names it
    cannot demangle, or all of them without c++filt, map to themselves."""
    names = sorted(set(names))
    cxxfilt = shutil.which("c++filt")
    if not names or cxxfilt is None:
        return {n: n for n in names}
    try:
        done = subprocess.run([cxxfilt], input="\n".join(names) + "\n", capture_output=True, text=True,
                              timeout=60, check=False)
        out = done.stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        out = []
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


def split_demangled(text):
    """"void ns::conv<float, 3>(float const*, int)" -> ("ns::conv", "<float, 3>", "(float const*, int)")."""
    anon = "(anonymous namespace)"
    body = text.replace(anon, "\0")  # its parentheses are not the parameter list's
    if body.startswith("void "):  # c++filt prints the return type of template instances (kernels: void)
        body = body[len("void "):]
    depth, cut = 0, len(body)
    for i, ch in enumerate(body):
        depth += (ch == "<") - (ch == ">")
        if ch == "(" and depth == 0:
            cut = i
            break
    head, params = body[:cut], body[cut:]
    lt = head.find("<")
    name, instance = (head[:lt], head[lt:]) if lt >= 0 else (head, "")
    return tuple(part.replace("\0", anon) for part in (name, instance, params))

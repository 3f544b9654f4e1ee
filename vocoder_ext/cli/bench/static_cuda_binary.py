"""What the installed extension really carries: the cubins (and PTX) embedded in vocoder_ext/_C*.so.

The CUDA C++ half of the static report (static_cuda.py) compiles csrc/cuda/*.cu itself; this module
checks that the built library matches: for which archs it holds a cubin, which kernels each cubin
has (and their registers, as a cross-check of the compile flags), and whether PTX is embedded (which a
GPU newer than every cubin would JIT-compile). It reads them with `cuobjdump --dump-resource-usage`,
NVIDIA's own reader of fat binaries (compressed fatbins included, which a hand-written ELF walk would
have to decompress). The toolkit here ships no cuobjdump; requirements.txt installs the PyPI package
nvidia-cuda-cuobjdump, whose binary lives in the `nvidia` namespace package (cu13/bin).
"""
import glob
import importlib.util
import os
import re
import subprocess

from .static_compile import find_cuda_tool

_SECTION = re.compile(r"^Fatbin (elf|ptx) code:")
_ARCH = re.compile(r"^arch = (\S+)")
_FUNCTION = re.compile(r"^\s*Function (\S+?):\s*$")
_COMMON = re.compile(r"^\s*Common:\s*$")
_FIELD = re.compile(r"([A-Z]+(?:\[\d+\])?):(\d+)")
# nvcc names an anonymous namespace `_GLOBAL__N__<hash>_<length>_<file name>_<hash>` (the second hash not
# always), with hashes of the compile: the same kernel is `_GLOBAL__N__1fdc7233_9_conv1d_cu_1ebf6a0e` after
# an edit of conv1d.cu and `..._578d680f_9_conv1d_cu_1ebf6a0e` before it. Compared with both masked (the
# file name stays, so two files' kernels stay apart).
_ANON = re.compile(r"_GLOBAL__N__[0-9a-f]{8}_(\d+)_")


def normalize(mangled):
    """A kernel's mangled name, comparable across compiles (the anonymous namespace's hashes masked)."""
    out, pos = [], 0
    for m in _ANON.finditer(mangled):
        if m.start() < pos:
            continue
        out.append(mangled[pos:m.start()] + f"_GLOBAL__N__xxxxxxxx_{m.group(1)}_")
        pos = m.end() + int(m.group(1))  # past the file name
        out.append(mangled[m.end():pos])
        if re.fullmatch(r"_[0-9a-f]{8}", mangled[pos:pos + 9]):
            out.append("_xxxxxxxx")
            pos += 9
    return "".join(out) + mangled[pos:]


def find_cuobjdump():
    """$CUOBJDUMP, the CUDA toolkit's, the nvidia-cuda-cuobjdump wheel's, else PATH; None if none."""
    wheels = []
    spec = importlib.util.find_spec("nvidia")  # a namespace package: no __init__ to run
    for root in (spec.submodule_search_locations if spec and spec.submodule_search_locations else ()):
        wheels += sorted(glob.glob(os.path.join(root, "cu*", "bin", "cuobjdump")), reverse=True)
        wheels.append(os.path.join(root, "cuda_cuobjdump", "bin", "cuobjdump"))  # CUDA 12 wheels' layout
    return find_cuda_tool("cuobjdump", "CUOBJDUMP", wheels)


def _fields(line):
    return {key: int(value) for key, value in _FIELD.findall(line)}


def parse_resource_usage(text):
    """`cuobjdump --dump-resource-usage` output -> a list of sections, in file order:
    {kind: "elf" | "ptx", arch, common: {GLOBAL, CONSTANT[3], ...}, functions: {mangled: {REG, STACK,
    SHARED, LOCAL, CONSTANT[0], ...}}}. A bare cubin has no "Fatbin ... code" headers: one elf section
    with arch None."""
    sections = []
    current = None
    pending = None  # the function (or "common") whose numbers the next line holds
    for line in text.splitlines():
        if m := _SECTION.match(line):
            current = dict(kind=m.group(1), arch=None, common={}, functions={})
            sections.append(current)
            continue
        if current is None and ("Resource usage:" in line or _FUNCTION.match(line)):
            current = dict(kind="elf", arch=None, common={}, functions={})
            sections.append(current)
        if current is None:
            continue
        if (m := _ARCH.match(line)) and current["arch"] is None:
            current["arch"] = m.group(1)
        elif m := _FUNCTION.match(line):
            pending = m.group(1)
        elif _COMMON.match(line):
            pending = ""
        elif pending is not None and _FIELD.search(line):
            if pending:
                current["functions"][pending] = _fields(line)
            else:
                current["common"] = _fields(line)
            pending = None
    return sections


def resource_usage(path, cuobjdump):
    """(sections, None) for a cubin or a library, or (None, why not)."""
    try:
        done = subprocess.run([cuobjdump, "--dump-resource-usage", path], capture_output=True, text=True,
                              timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"cuobjdump failed: {e}"
    text = done.stdout + done.stderr
    if "does not contain device code" in text:
        return [], None
    if done.returncode != 0:
        lines = [line for line in text.splitlines() if line.strip()]
        return None, f"cuobjdump failed (rc {done.returncode}): {lines[-1] if lines else ''}"[:300]
    return parse_resource_usage(done.stdout), None


def find_extension():
    """The built vocoder_ext/_C*.so next to this package's modules (found without importing it), or None."""
    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # vocoder_ext/
    found = sorted(glob.glob(os.path.join(package, "_C*.so")) + glob.glob(os.path.join(package, "_C*.pyd")))
    return found[0] if found else None


def inspect_extension(path=None, cuobjdump=None):
    """The device code in the installed extension:
    {path, cuobjdump, status, built_archs: archs of the cubins with at least one kernel, ptx_archs,
    cubins: [{arch, functions: {normalized mangled name: resource usage}}]}. status "ok", "no device
    code" (a CPU-only build), or why it could not be read."""
    path = path or find_extension()
    cuobjdump = cuobjdump or find_cuobjdump()
    info = dict(path=path, cuobjdump=cuobjdump, status="ok", built_archs=[], ptx_archs=[], cubins=[])
    if path is None:
        info["status"] = "no built extension (vocoder_ext/_C*.so) found"
        return info
    if cuobjdump is None:
        info["status"] = ("no cuobjdump ($CUOBJDUMP, the CUDA toolkit's, or the nvidia-cuda-cuobjdump "
                          "package of requirements.txt)")
        return info
    sections, why = resource_usage(path, cuobjdump)
    if why:
        info["status"] = why
        return info
    for s in sections:
        if s["kind"] == "ptx":
            info["ptx_archs"].append(s["arch"])
        else:
            info["cubins"].append(dict(arch=s["arch"], functions={normalize(n): u for n, u in s["functions"].items()}))
    info["built_archs"] = sorted({c["arch"] for c in info["cubins"] if c["functions"]}, key=_arch_key)
    info["ptx_archs"] = sorted(set(info["ptx_archs"]), key=_arch_key)
    if not info["built_archs"]:
        info["status"] = "no device code"
    return info


def kernels_by_arch(info):
    """{arch: {normalized mangled name: resource usage}} over every cubin of that arch (one per .cu)."""
    out = {}
    for cubin in info["cubins"]:
        out.setdefault(cubin["arch"], {}).update(cubin["functions"])
    return out


def _arch_key(arch):
    digits = re.sub(r"\D", "", arch or "")
    return (int(digits) if digits else 0, arch or "")

"""Builds the CUDA backend's real sources (csrc/cuda: kernels, launchers, torch glue) as a CPU library,
with csrc/cuda/emulate.h standing in for the GPU, and loads it: its ops are torch.ops.vocoder_ext_emulated.*,
the same schemas as vocoder_ext's, taking CPU tensors. This is how the tests run the CUDA kernels on
machines without a GPU (slowly: every thread of a block is an OS thread; small shapes only).

What it cannot show: timing, the real memory model's reorderings, and code the compiler emits only for
a GPU (the static report, bench --static, covers registers and spills). python_tests/gpu_checks.py runs
the same kernels on a GPU.
"""
import functools
import hashlib
import os
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
NAME = "vocoder_ext_emulated"


def cuda_include_dir():
    """The CUDA toolkit's headers (cuda_fp16.h etc. compile for the host), or None."""
    from torch.utils.cpp_extension import CUDA_HOME
    for base in filter(None, (os.environ.get("CUDA_HOME"), CUDA_HOME, "/usr/local/cuda")):
        if (Path(base) / "include" / "cuda_runtime_api.h").exists():
            return str(Path(base) / "include")
    return None


@functools.cache
def load():
    """Compiles (once per source content) and loads the emulated library; returns torch.ops.vocoder_ext_emulated."""
    from torch.utils.cpp_extension import load as load_extension
    include = cuda_include_dir()
    if include is None:
        raise RuntimeError("no CUDA toolkit headers (cuda_runtime_api.h) found: set CUDA_HOME")
    sources = sorted(p for p in CSRC.rglob("*") if p.suffix in (".h", ".cuh", ".cu", ".cpp"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    build = Path(os.environ.get("TORCH_EXTENSIONS_DIR", Path.home() / ".cache" / "torch_extensions")) / f"{NAME}_{digest}"
    build.mkdir(parents=True, exist_ok=True)
    # The including files carry the digest, so any change in csrc/ rebuilds (cpp_extension hashes only
    # the listed sources, not what they include). Kernels compile one per file (each has its own
    # file-local constants); the glue files share one translation unit to parse torch's headers once.
    units = {"schemas.cpp": f'#include "schemas.h"\nTORCH_LIBRARY({NAME}, m) {{ vocoder_ext::define_schemas(m); }}\n',
             "glue.cpp": "".join(f'#include "cuda/{p.name}"\n' for p in sorted((CSRC / "cuda").glob("*.cpp")))}
    for cu in sorted((CSRC / "cuda").glob("*.cu")):
        units[f"{cu.stem}_cu.cpp"] = f'#include "cuda/{cu.name}"\n'
    paths = []
    for name, text in units.items():
        path = build / name
        text = f"// csrc digest {digest}\n{text}"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        paths.append(str(path))
    load_extension(name=f"{NAME}_{digest}", sources=paths, build_directory=str(build), is_python_module=False,
                   extra_cflags=["-O2", "-std=c++20", "-pthread", "-DVOCODER_EXT_EMULATE_CUDA", f"-I{CSRC}",
                                 f"-I{include}"],
                   extra_ldflags=["-pthread"], verbose=False)
    return getattr(torch.ops, NAME)

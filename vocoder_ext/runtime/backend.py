"""Which backend serves which op on which device.

Backends: "cpp" (csrc/cpu, CPU tensors), "cuda" (csrc/cuda, CUDA tensors), "triton" (kernels/,
CUDA tensors; CPU tensors too under TRITON_INTERPRET=1, which is how the tests run it), "eager" (the
op's *_ref, plain PyTorch, the ground truth).
`VOCODER_EXT_BACKEND=auto|cpp|cuda|triton|eager` forces one; `auto` (default) takes the fastest
available for the device: on CPU the C++ kernel; on CUDA, per shape, whichever of the CUDA C++
kernel, the Triton kernel and the reference (cuDNN + eager) runtime.autotune measured fastest. A forced backend that cannot serve raises; `auto` falling back to the
eager reference warns once per (op, device type) saying why.
"""
import functools
import importlib.util
import os
import warnings

import torch

from . import extension

BACKENDS = ("auto", "cpp", "cuda", "triton", "eager")
_DISPATCH_KEY = {"cpu": "CPU", "cuda": "CUDA"}
_KERNEL_BACKEND = {"cpu": "cpp", "cuda": "cuda"}  # compiled kernels registered per dispatch key
# Filled by vocoder_ext.ops.registry as each op is declared, in declaration order:
OPS = []  # every fused op's name
TRITON_OPS = set()  # ops with their own Triton kernels (vocoder_ext.kernels)
TRITON_CHAINS = {}  # op -> the op it runs as a chain of where it has no kernel of its own (on Triton)
PYTHON_CUDA_KERNELS = set()  # ops whose CUDA dispatch key holds the Python chooser (ops.registry), not _C's kernel
CPP_CUDA_KERNELS = set()  # ops (and backward ops) with a CUDA C++ kernel in _C, kept as a handle by the chooser
_warned = set()


def declare(op, triton=False, chain_of=None):
    """Make `op` known to the backend choice and the report (called once per op by ops.registry)."""
    if op not in OPS:
        OPS.append(op)
    if triton:
        TRITON_OPS.add(op)
    if chain_of is not None:
        TRITON_CHAINS[op] = chain_of


def requested():
    """The backend asked for through VOCODER_EXT_BACKEND (default "auto")."""
    value = os.environ.get("VOCODER_EXT_BACKEND", "auto").strip().lower() or "auto"
    if value not in BACKENDS:
        raise ValueError(f"VOCODER_EXT_BACKEND must be one of {', '.join(BACKENDS)}; got {value!r}")
    return value


def _has_compiled_kernel(op, device_type):
    key = _DISPATCH_KEY.get(device_type)
    if device_type == "cuda" and op in PYTHON_CUDA_KERNELS:
        return op in CPP_CUDA_KERNELS
    return (extension.loaded and key is not None
            and torch._C._dispatch_has_kernel_for_dispatch_key(f"vocoder_ext::{op}", key))


@functools.cache
def triton_installed():
    """Whether triton can be imported (looked up once: resolve() runs on every op call)."""
    return importlib.util.find_spec("triton") is not None


def triton_problem(op, device_type):
    """None when the Triton kernels can serve `op` on `device_type` tensors now, else why not."""
    op = TRITON_CHAINS.get(op, op)
    if op not in TRITON_OPS:
        return f"no Triton kernel for {op} yet"
    if not triton_installed():
        return "triton is not installed"
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    if device_type == "cpu":
        return None if interpreted else "Triton runs on CPU tensors only under TRITON_INTERPRET=1"
    if device_type == "cuda":
        if interpreted:
            return "TRITON_INTERPRET=1 runs Triton on CPU tensors only"
        return None if torch.cuda.is_available() else "no CUDA device"
    return f"no Triton path for device type {device_type!r}"


def _why_no_kernel(op, device_type):
    if not extension.loaded:
        return f"C++ extension not loaded: {extension.load_error}"
    if device_type not in _KERNEL_BACKEND:
        return f"no kernels exist for device type {device_type!r}"
    if device_type == "cuda" and not torch.backends.cuda.is_built():
        return "vocoder_ext._C was built without CUDA (torch has no CUDA)"
    return f"vocoder_ext._C has no {_DISPATCH_KEY[device_type]} kernel for {op} (built without CUDA: VOCODER_EXT_CUDA=0 or no nvcc)"


def why_not(op, backend, device_type):
    """Why `backend` ("cuda" or "triton") cannot serve `op` on `device_type` tensors."""
    if backend == "triton":
        return triton_problem(op.removesuffix("_backward"), device_type) or "no Triton kernel"
    if device_type != "cuda":
        return f"the CUDA C++ kernels take CUDA tensors, got {device_type}"
    return _why_no_kernel(op, device_type)


def cuda_candidates(op):
    """The backends auto chooses among for `op` on CUDA tensors, in autotune's order of default."""
    found = [name for name, ok in (("triton", triton_problem(op, "cuda") is None),
                                   ("cuda", _has_compiled_kernel(op, "cuda"))) if ok]
    return found + ["eager"]


def resolve(op, device_type):
    """(backend, why): the backend that serves `op` on `device_type`, and why, if it is a fallback."""
    want = requested()
    if want == "eager":
        return "eager", "forced by VOCODER_EXT_BACKEND=eager"
    if want == "auto":
        if device_type == "cuda":
            found = cuda_candidates(op)
            if len(found) > 1:
                return found[0], None
            return "eager", f"{_why_no_kernel(op, device_type)}; Triton: {triton_problem(op, device_type)}"
        if _has_compiled_kernel(op, device_type):
            return _KERNEL_BACKEND[device_type], None
        return "eager", _why_no_kernel(op, device_type)
    if want in ("cpp", "cuda"):
        if _KERNEL_BACKEND.get(device_type) != want:
            raise RuntimeError(f"VOCODER_EXT_BACKEND={want} cannot serve {op} on {device_type} tensors "
                               f"(it serves {'CPU' if want == 'cpp' else 'CUDA'} tensors)")
        if not _has_compiled_kernel(op, device_type):
            raise RuntimeError(f"VOCODER_EXT_BACKEND={want} cannot serve {op}: {_why_no_kernel(op, device_type)}")
        return want, None
    why = triton_problem(op, device_type)
    if why:
        raise RuntimeError(f"VOCODER_EXT_BACKEND=triton cannot serve {op} on {device_type} tensors: {why}")
    return "triton", None


def use_registered_op(op, device_type):
    """True when the call should go through torch.ops.vocoder_ext.<op> (the one graph node that
    torch.compile/export see); False means call the eager reference directly."""
    if torch.compiler.is_compiling():
        # The dispatcher picks the per-device kernel when the compiled graph runs.
        return extension.loaded and requested() != "eager"
    backend, why = resolve(op, device_type)
    if backend != "eager":
        return True
    if requested() == "auto" and (op, device_type) not in _warned:
        _warned.add((op, device_type))
        warnings.warn(f"vocoder_ext: no fused kernel serves {op} on {device_type} ({why}); "
                      f"running the eager PyTorch reference", RuntimeWarning, stacklevel=4)
    # With the extension loaded, the registered op's default kernel *is* the reference, so auto
    # keeps going through the op; only a forced "eager" or a missing extension bypasses it.
    return extension.loaded and requested() == "auto"

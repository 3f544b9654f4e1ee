"""What the Triton launchers share: interpreter vs GPU, autotuning, dtypes of outputs and dot operands.

Triton decides interpreter vs compiler when @triton.jit runs, i.e. when a kernel module is imported;
INTERPRET is read at the same moment (the first import of this package's kernels), so the launchers and
their kernels always agree.
"""
import os
import warnings

import torch
import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
# Correctness runs on a GPU (gpu_session.sh's Triton checks) set this to launch each set's first config only:
# the configs differ in tiling and summation order, not in what they compute, and compiling every config of
# every variant for every checked shape took minutes there.
FIRST_CONFIG_ONLY = os.environ.get("VOCODER_EXT_TRITON_FIRST_CONFIG") == "1"
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_TL_DTYPE = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}


def check_device(name, x):
    """The kernels run on CUDA tensors, or on CPU tensors under the interpreter: anything else is an error
    that says which."""
    if INTERPRET:
        if x.device.type != "cpu":
            raise ValueError(f"{name}: under TRITON_INTERPRET=1 the kernels run on CPU tensors, got {x.device}")
    elif x.device.type != "cuda":
        raise ValueError(f"{name}: the Triton kernels need a GPU tensor (or TRITON_INTERPRET=1 at import for "
                         f"CPU tensors), got {x.device}")


def tuned(kernel, configs, key):
    """The kernel as the launchers call it: autotuned on a GPU, plain under the interpreter (where
    multi-config autotuning does not work).

    configs: {"fp32": [...], "fp16": [...]}, the tile sets by operand width ("fp16" serves bf16 too). fp32
    runs tl.dot as IEEE FMAs whose operands live in registers, 16-bit runs on the tensor cores: each
    list holds the tiles that compile without register spills for its own path (bench --static), and a
    launch is tuned over its dtype's list only (the launchers pass DOT_DTYPE).
    """
    if INTERPRET:
        return kernel

    def for_dtype(all_configs, named_args, **kwargs):
        wanted = configs["fp32" if kwargs["DOT_DTYPE"] == tl.float32 else "fp16"]
        wanted = wanted[:1] if FIRST_CONFIG_ONLY else wanted
        return [c for c in all_configs if any(c is w for w in wanted)]
    return triton.autotune(configs=configs["fp32"] + configs["fp16"], key=key,
                           prune_configs_by={"early_config_prune": for_dtype})(kernel)


def tuned_one_set(kernel, configs, key):
    """tuned() for kernels without tl.dot (elementwise, or small-channel FMAs in fp32 whatever the
    dtype): one tile set, a plain list, serves every operand width."""
    if INTERPRET:
        return kernel
    return triton.autotune(configs=configs[:1] if FIRST_CONFIG_ONLY else configs, key=key)(kernel)


# Programs a split reduction aims for: a few waves of the GPU's SMs. Under the interpreter a small
# number, so that the tests' short inputs are split too.
_PROGRAMS_PER_SM = 4
_INTERPRETER_PROGRAMS = 64
_MAX_SPLITS = 1024
_GPU_GRANULE = 256  # time chunks are multiples of every BLOCK_T in the config sets


def time_splits(tiles, t_len, device, interpreter_granule):
    """(splits, chunk): a reduction over t_len time steps cut into `splits` chunks of `chunk` steps, so
    that tiles * splits programs keep the GPU busy. tiles: programs per chunk (output tiles x taps)."""
    if INTERPRET:
        programs, granule = _INTERPRETER_PROGRAMS, interpreter_granule
    else:
        programs, granule = _PROGRAMS_PER_SM * _sm_count(device), _GPU_GRANULE
    splits = max(1, min(programs // max(tiles, 1), triton.cdiv(t_len, granule), _MAX_SPLITS))
    chunk = triton.cdiv(triton.cdiv(t_len, splits), granule) * granule
    return triton.cdiv(t_len, chunk), chunk


def split_partials(splits, shape, like):
    """The output buffer [splits, *shape] of a reduction run as `splits` partial sums: with one split the
    result itself (empty_out), else fp32 partials that add_partials sums."""
    if splits == 1:
        return empty_out(shape, like).unsqueeze(0)
    return torch.empty((splits, *shape), dtype=torch.float32, device=like.device)


def add_partials(partials, dtype):
    """split_partials' buffer after the kernel -> the result in dtype (deterministic: no atomics)."""
    return finish(partials[0] if partials.shape[0] == 1 else partials.sum(0), dtype)


def _sm_count(device):
    return torch.cuda.get_device_properties(device).multi_processor_count


def meta(interpreter_config):
    """Block sizes the launcher passes: the fixed config under the interpreter; the autotuner's on a GPU."""
    return dict(interpreter_config) if INTERPRET else {}


def empty_out(shape, like):
    """An output buffer for a kernel whose result the caller returns in like.dtype (see finish)."""
    # The interpreter's fp32 -> bf16 cast truncates instead of rounding to nearest even (compiled Triton
    # rounds), costing up to one bf16 ulp. So under the interpreter bf16 results are written in fp32 and
    # rounded by torch; on a GPU the kernel stores bf16 itself.
    dtype = torch.float32 if INTERPRET and like.dtype == torch.bfloat16 else like.dtype
    return torch.empty(shape, dtype=dtype, device=like.device)


def finish(out, dtype):
    return out if out is None or out.dtype == dtype else out.to(dtype)


def dot_dtype(dtype):
    # On a GPU, fp16/bf16 go to the tensor cores as they are (fp32 accumulation). The interpreter has no
    # bf16 matmul, so there every operand is fp32 (which is also at least as accurate).
    return tl.float32 if INTERPRET else _TL_DTYPE[dtype]


def cached_on(weight, tag, make):
    """make(weight), computed once and kept on the weight tensor until the weight changes.

    The packed weight layouts are made once per module this way, not once per call: a stamp of the
    version counter (bumped by in-place updates: optimizer steps, load_state_dict), storage, shape and
    strides says when to make it again. Inference tensors have no version counter: no caching for them.
    """
    try:
        stamp = (weight._version, weight.data_ptr(), weight.dtype, tuple(weight.shape), tuple(weight.stride()))
    except RuntimeError:
        return make(weight)
    store = weight.__dict__.setdefault("_vocoder_ext_cache", {})
    hit = store.get(tag)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    with torch.no_grad():
        value = make(weight)
    store[tag] = (stamp, value)
    return value


_FP64_WARNED = set()


def fp64_reference(op, reference, *args):
    """reference(*args), for fp64 inputs given to an op's Triton path, with one warning per op.

    The kernels run fp32/fp16/bf16 (fp32 accumulation); fp64 is gradcheck's dtype, where an fp32
    kernel would fail the check's tolerance, so the op's eager reference computes it instead.
    """
    if op not in _FP64_WARNED:
        _FP64_WARNED.add(op)
        warnings.warn(f"vocoder_ext: the Triton kernels of {op} take fp32/fp16/bf16; fp64 inputs run the "
                      f"eager reference", RuntimeWarning, stacklevel=3)
    return reference(*args)

"""Engines that run the fused model with one backend forced: VOCODER_EXT_BACKEND=<backend> for the length of
each call, the previous value put back after it (vocoder_ext.runtime.backend reads the variable on every op
call, so the variable is the switch). A forced backend never falls back: where it cannot serve an op,
runtime.backend.resolve raises and says why; `problem` asks it before anything is timed, so a table can say
why instead of showing a number.

Used by the GPU table (cuda.py) for its `cuda` engine: the fused model on vocoder_ext._C's CUDA C++ kernels.
"""
import contextlib
import os

from ...runtime import backend

VARIABLE = "VOCODER_EXT_BACKEND"


@contextlib.contextmanager
def forced(name):
    """VOCODER_EXT_BACKEND=name inside the block; the previous value (or its absence) restored after."""
    saved = os.environ.get(VARIABLE)
    os.environ[VARIABLE] = name
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(VARIABLE, None)
        else:
            os.environ[VARIABLE] = saved


def engine(fn, name):
    """fn (one call of an engine), run with backend `name` forced."""
    def call(x):
        with forced(name):
            return fn(x)
    call.backend = name
    return call


def _resolve_all(name, device_type, ops):
    """{op: (backend, None) or (None, why it cannot serve)} with backend `name` forced."""
    result = {}
    with forced(name):
        for op in ops:
            try:
                result[op] = (backend.resolve(op, device_type)[0], None)
            except RuntimeError as e:
                result[op] = (None, str(e))
    return result


def served_by(name, device_type, ops):
    """{op: what serves it with backend `name` forced on `device_type` tensors}: the backend, or
    "unavailable (why)" in runtime.backend.resolve's own words."""
    return {op: served or f"unavailable ({why})" for op, (served, why) in _resolve_all(name, device_type, ops).items()}


def problem(name, device_type, ops):
    """None when backend `name`, forced, serves every op of `ops` on `device_type` tensors; else why not
    (the first op's reason, and how many more ops it cannot serve)."""
    reasons = [why for _, why in _resolve_all(name, device_type, ops).values() if why]
    if not reasons:
        return None
    return reasons[0] + (f" (and {len(reasons) - 1} more op(s))" if len(reasons) > 1 else "")

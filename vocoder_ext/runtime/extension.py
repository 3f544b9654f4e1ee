"""Load the compiled extension vocoder_ext._C, which registers every op schema.

If it is missing or fails to load, the package still works: every op runs its eager reference,
and one warning says why.
"""
import glob
import importlib.machinery
import os
import warnings

import torch

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # vocoder_ext/, where _C*.so is built

loaded = False
load_error = None  # why _C is not loaded, for vocoder_ext.backends() and the warning
library_path = None


def _find_library():
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(_PACKAGE, "_C" + suffix)
        if os.path.exists(path):
            return path
    found = sorted(glob.glob(os.path.join(_PACKAGE, "_C*.so")))
    return found[0] if found else None


def _load():
    global loaded, load_error, library_path
    if os.environ.get("VOCODER_EXT_NO_EXTENSION") == "1":
        load_error = "VOCODER_EXT_NO_EXTENSION=1"
        return
    path = _find_library()
    if path is None:
        load_error = f"no compiled vocoder_ext/_C*.so in {_PACKAGE} (build with `pip install --no-build-isolation -e .`)"
        return
    try:
        torch.ops.load_library(path)
    except Exception as e:  # a stale build against another torch, a missing symbol, ...
        load_error = f"loading {path} failed: {e}"
        return
    loaded, library_path = True, path


_load()
if not loaded:
    warnings.warn(f"vocoder_ext: C++ extension not loaded ({load_error}); all ops run their eager PyTorch references.",
                  RuntimeWarning, stacklevel=2)

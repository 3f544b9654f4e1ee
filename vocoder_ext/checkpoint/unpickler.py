"""A restricted pickle "module" for torch.load: it reads the original NVIDIA/waveglow checkpoints, which
pickle whole `glow.WaveGlow` objects, without importing or running any code of theirs.

torch.load(path, pickle_module=<this module>, weights_only=False) uses this module's `Unpickler` and
`load` (the zip format and the legacy pre-1.6 format both go through them). Every global the pickle
names goes through `Unpickler.find_class`, which answers only from ALLOWED below:

- the classes of NVIDIA/waveglow's glow.py and glow_old.py (WaveGlow, WN, Invertible1x1Conv,
  WaveGlowLoss) and the torch.nn classes a WaveGlow object holds (Conv1d, ConvTranspose1d, ModuleList,
  the weight-norm hook WeightNorm) -> inert stand-ins (`PickledObject` subclasses) that only keep the
  pickled attributes; nothing of glow or torch.nn is constructed or imported;
- torch's tensor / parameter rebuild functions, torch.nn.Parameter, torch.Tensor, torch.Size, dtypes
  (torch maps storage types such as torch.FloatStorage itself, before asking us);
- collections.OrderedDict, set, frozenset, and what object reconstruction needs (copyreg._reconstructor
  with base `object`, _codecs.encode for latin-1 bytes); torch<=1.3's module backend getter -> None.

Anything else raises ForbiddenGlobal (a CheckpointError) naming `module.name` when the pickle *names*
it, i.e. before it could be called. Use `restricted_torch_load(path)`, which also names the file.
"""
import _compat_pickle
import collections
import io
import pickle
import sys
import warnings

import torch

from .files import CheckpointError

class ForbiddenGlobal(CheckpointError):
    """The pickle names a global that is not in ALLOWED."""

    def __init__(self, global_name):
        self.global_name = global_name
        super().__init__(f"the pickle references the global {global_name}, which is not allowed "
                         "(only WaveGlow model classes, tensors and plain containers are)")


class PickledObject:
    """Stand-in for an object of a pickled class: keeps the attributes the pickle restores, runs nothing."""

    pickled_class = "?"
    dump_patches = False  # torch's legacy loader reads this from every pickled nn.Module class

    def __init__(self, *args, **kwargs):  # INST/OBJ opcodes (protocols 0/1) call the class
        pass

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state, slots = state
            if isinstance(slots, dict):
                self.__dict__.update({str(k): v for k, v in slots.items()})
        if state is None:
            return
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"state of a pickled {self.pickled_class} is a {type(state).__name__}")
        self.__dict__.update({str(k): v for k, v in state.items()})

    def __repr__(self):
        return f"<pickled {self.pickled_class}>"


def _stand_in(qualified_name):
    short = qualified_name.rsplit(".", 1)[1]
    return type(short, (PickledObject,), {"pickled_class": qualified_name, "__module__": __name__,
                                           "__qualname__": f"PickledObject[{qualified_name}]"})


def _reconstructor(cls, base, state):
    """copyreg._reconstructor, limited to the plain `object` base (protocol 0/1 object reconstruction)."""
    if base is not object or not (isinstance(cls, type) and issubclass(cls, PickledObject)):
        raise pickle.UnpicklingError(f"copyreg._reconstructor({cls!r}, {base!r}) is not allowed")
    return object.__new__(cls)


def _codecs_encode(text, encoding="utf-8"):
    """_codecs.encode as protocol 2 uses it for bytes objects: latin-1 text only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with {type(text).__name__}, {encoding!r} is not allowed")
    return text.encode("latin-1")


def _no_backend():
    """torch<=1.3 pickled every module's `_backend` as a call to _get_thnn_function_backend()."""
    return None


WAVEGLOW_CLASSES = ("WaveGlow", "WN", "Invertible1x1Conv", "WaveGlowLoss")
TORCH_NN_CLASSES = ("torch.nn.modules.conv.Conv1d", "torch.nn.modules.conv.ConvTranspose1d",
                    "torch.nn.modules.container.ModuleList", "torch.nn.utils.weight_norm.WeightNorm")


def _allowed():
    allowed = {}
    for module in ("glow", "glow_old"):
        for name in WAVEGLOW_CLASSES:
            allowed[f"{module}.{name}"] = _stand_in(f"{module}.{name}")
    for qualified in TORCH_NN_CLASSES:
        allowed[qualified] = _stand_in(qualified)
    for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
                 "_rebuild_parameter_with_state"):
        if hasattr(torch._utils, name):
            allowed[f"torch._utils.{name}"] = getattr(torch._utils, name)
    if hasattr(torch._tensor, "_rebuild_from_type_v2"):
        allowed["torch._tensor._rebuild_from_type_v2"] = torch._tensor._rebuild_from_type_v2
    allowed.update({
        "torch.nn.parameter.Parameter": torch.nn.Parameter,
        "torch.Tensor": torch.Tensor,
        "torch._tensor.Tensor": torch.Tensor,
        "torch.Size": torch.Size,
        "collections.OrderedDict": collections.OrderedDict,
        "builtins.set": set,
        "builtins.frozenset": frozenset,
        "builtins.object": object,
        "copyreg._reconstructor": _reconstructor,
        "_codecs.encode": _codecs_encode,
        "torch.nn.backends.thnn._get_thnn_function_backend": _no_backend,
    })
    for value in vars(torch).values():
        if isinstance(value, torch.dtype):
            allowed[str(value)] = value  # "torch.float32"
    return allowed


ALLOWED = _allowed()


def _python3_name(module, name):
    """Protocol 2 pickles written by Python 3 name some globals by their Python 2 names (__builtin__,
    copy_reg): map them back, as pickle's own find_class does, without importing anything."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class Unpickler(pickle.Unpickler):
    """pickle.Unpickler whose find_class answers only from ALLOWED."""

    def find_class(self, module, name):
        if not isinstance(module, str) or not isinstance(name, str):
            raise ForbiddenGlobal(f"{module!r}.{name!r}")
        module3, name3 = _python3_name(module, name)
        found = ALLOWED.get(f"{module3}.{name3}")
        if found is None:
            as_pickled = "" if (module3, name3) == (module, name) else f" (pickled as {module}.{name})"
            raise ForbiddenGlobal(f"{module3}.{name3}{as_pickled}")
        return found


def load(file, **kwargs):
    """pickle.load through the restricted Unpickler (torch's legacy format reads its headers with it)."""
    return Unpickler(file, **kwargs).load()


def loads(data, **kwargs):
    return load(io.BytesIO(data), **kwargs)


UnpicklingError = pickle.UnpicklingError


def restricted_torch_load(path, map_location="cpu"):
    """torch.load through this module: objects of allowed classes come back as PickledObject stand-ins.
    Raises CheckpointError naming the file (and the global, when the pickle names a forbidden one)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SourceChangeWarning for every stand-in class, FutureWarnings
            return torch.load(path, map_location=map_location, pickle_module=sys.modules[__name__],
                              weights_only=False)
    except ForbiddenGlobal as e:
        raise CheckpointError(f"refusing to load {path}: it references the global {e.global_name}, which is "
                              "not allowed (only WaveGlow model classes, tensors and plain containers are); "
                              "nothing in it was run") from e
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from e
    except Exception as e:  # truncated, garbage, or malformed pickles raise many kinds
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (truncated or not a checkpoint): "
                              f"{detail}") from e

"""Reading any checkpoint file safely and writing one atomically; the error type every reader raises."""
import os
import pickle

import torch

from ..atomic import atomic_file


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read, or whose contents do not fit the model."""



def safe_load(path, map_location="cpu"):
    """torch.load with weights_only=True and errors that name the file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a folder, expected a checkpoint file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise CheckpointError(f"refusing to load {path}: it needs arbitrary code to unpickle "
                                  f"(only tensors and plain containers are allowed): {str(e).splitlines()[0]}") from e
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {e}") from e
    except Exception as e:  # truncated zip, EOF, garbage bytes: torch raises many kinds
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (truncated or not a checkpoint): "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    return obj


def atomic_save(obj, path):
    """torch.save, atomically (see vocoder_ext.atomic)."""
    with atomic_file(path) as f:
        torch.save(obj, f)

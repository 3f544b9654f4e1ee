"""Checkpoints of every supported format: read safely (never running pickled code), written atomically.

files.py: safe_load, atomic_save, CheckpointError; hifigan.py: HiFi-GAN generator files and key layouts;
waveglow.py (+ waveglow_config.py): WaveGlow files, layouts and configs; unpickler.py: the restricted
unpickler for NVIDIA/waveglow's pickled model objects.
"""
from .files import CheckpointError, atomic_save, safe_load
from .hifigan import (FORMAT, FORMAT_VERSION, convert_generator_state_dict, latest_generator_file,
                      read_generator_checkpoint, save_generator)

__all__ = ["CheckpointError", "atomic_save", "safe_load", "FORMAT", "FORMAT_VERSION", "convert_generator_state_dict",
           "latest_generator_file", "read_generator_checkpoint", "save_generator"]
from .waveglow import FORMAT as WAVEGLOW_FORMAT, FORMAT_VERSION as WAVEGLOW_FORMAT_VERSION
from .waveglow import (convert_waveglow_state_dict, infer_waveglow_config, latest_waveglow_file,
                       read_waveglow_checkpoint, save_waveglow)

__all__ += ["WAVEGLOW_FORMAT", "WAVEGLOW_FORMAT_VERSION", "convert_waveglow_state_dict", "infer_waveglow_config",
            "latest_waveglow_file", "read_waveglow_checkpoint", "save_waveglow"]

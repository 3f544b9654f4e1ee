"""Checkpoints of every supported format: read safely (never running pickled code), written atomically.

files.py: safe_load, atomic_save, CheckpointError; hifigan.py: HiFi-GAN generator files and key layouts.
"""
from .files import CheckpointError, atomic_save, safe_load
from .hifigan import (FORMAT, FORMAT_VERSION, convert_generator_state_dict, latest_generator_file,
                      read_generator_checkpoint, save_generator)

__all__ = ["CheckpointError", "atomic_save", "safe_load", "FORMAT", "FORMAT_VERSION", "convert_generator_state_dict",
           "latest_generator_file", "read_generator_checkpoint", "save_generator"]

"""vocoder_ext: fused kernels and drop-in modules for HiFi-GAN and WaveGlow."""
from . import _extension  # noqa: F401  (loads vocoder_ext._C, or warns why not)
from . import ops
from .backend import backends
from .checkpoint import CheckpointError
from .config import PRESETS, ConfigError, resolve_config
from .hifigan import HiFiGAN, ResBlock1, ResBlock2

__version__ = "0.1.0"
__all__ = ["HiFiGAN", "ResBlock1", "ResBlock2", "ops", "backends", "resolve_config", "PRESETS",
           "CheckpointError", "ConfigError"]

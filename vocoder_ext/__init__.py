"""vocoder_ext: fused kernels and drop-in modules for HiFi-GAN and WaveGlow.

The layers, bottom up (each imports only those below it): runtime/ (the compiled extension, backend
choice, GPU autotune), ops/ (the fused ops, each with its eager reference), models/ (HiFiGAN, the
discriminators, configs), then audio, checkpoint and losses, then streaming (chunked inference of a
model); cli/ is the command line, which nothing in the library imports. CONTRIBUTING.md says where new things go.
"""
import sys

from . import runtime  # noqa: F401  (loads vocoder_ext._C, or warns why not)
from . import ops
from .checkpoint import CheckpointError
from .models import PRESETS, ConfigError, Denoiser, HiFiGAN, ResBlock1, ResBlock2, WaveGlow, resolve_config
from .models import config, discriminators, hifigan, layers
from .runtime import backends
from .streaming import Stream, receptive_field, stream

__version__ = "0.1.0"
__all__ = ["HiFiGAN", "WaveGlow", "Denoiser", "ResBlock1", "ResBlock2", "ops", "backends", "resolve_config", "PRESETS",
           "CheckpointError", "ConfigError", "stream", "Stream", "receptive_field"]

# The flat module paths of earlier versions (vocoder_ext.hifigan, .discriminators, .config, .layers)
# name the same module objects, so users' imports keep working.
for _module in (config, discriminators, hifigan, layers):
    sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module
del _module

"""The models: the HiFi-GAN generator, its discriminators, WaveGlow, the denoiser, their layers and configs.

Model code calls vocoder_ext.ops only (never a backend or a kernel directly) and reads top to bottom
like the original; the cleverness lives in the ops."""
from .config import PRESETS, ConfigError, resolve_config
from .denoiser import Denoiser
from .discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
from .hifigan import HiFiGAN, ResBlock1, ResBlock2
from .waveglow import WaveGlow

__all__ = ["HiFiGAN", "WaveGlow", "Denoiser", "ResBlock1", "ResBlock2", "MultiPeriodDiscriminator", "MultiScaleDiscriminator",
           "PRESETS", "ConfigError", "resolve_config"]

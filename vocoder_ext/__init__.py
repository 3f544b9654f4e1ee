"""vocoder_ext: fused kernels and drop-in modules for HiFi-GAN and WaveGlow."""
__version__ = "0.1.0"

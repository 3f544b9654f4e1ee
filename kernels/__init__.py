"""Triton kernels (installed as vocoder_ext.kernels). Kernels arrive with the GPU path."""

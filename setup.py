"""Build vocoder_ext and its C++/CUDA extension vocoder_ext._C.

Knobs (environment): VOCODER_EXT_CUDA=0|1 (default: on when torch was built with CUDA and nvcc
is found), VOCODER_EXT_CUDA_ARCHS (default "8.0;8.6;8.9;9.0+PTX": cubins for A100, A10/3090, L4/4090
and H100, PTX of the newest for later GPUs; passed as TORCH_CUDA_ARCH_LIST), MAX_JOBS, DEBUG=1. Install with `pip install --no-build-isolation -e .` (isolation would fetch another torch).
"""
import glob
import os

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CUDA_ARCHS = "8.0;8.6;8.9;9.0+PTX"


def want_cuda():
    flag = os.environ.get("VOCODER_EXT_CUDA")
    if flag is not None:
        return flag == "1"
    # Decide from the toolchain, never from torch.cuda.is_available(): GPU-less build boxes are normal.
    return torch.backends.cuda.is_built() and CUDA_HOME is not None


def extension():
    debug = os.environ.get("DEBUG") == "1"
    opt = ["-O0", "-g"] if debug else ["-O3"]
    cpp_sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    cuda_sources = sorted(glob.glob("csrc/cuda/*.cu") + glob.glob("csrc/cuda/*.cpp"))
    cxx = opt + ["-std=c++20", "-fopenmp"]  # at::parallel_for is OpenMP inline code: serial without it
    if want_cuda() and cuda_sources:
        # build-time only, in our own process
        os.environ["TORCH_CUDA_ARCH_LIST"] = os.environ.get("VOCODER_EXT_CUDA_ARCHS") or DEFAULT_CUDA_ARCHS
        nvcc = opt + ["-std=c++20", "--expt-relaxed-constexpr"]
        return CUDAExtension(
            "vocoder_ext._C", cpp_sources + cuda_sources,
            extra_compile_args={"cxx": cxx + ["-DVOCODER_EXT_WITH_CUDA"], "nvcc": nvcc},
        )
    return CppExtension("vocoder_ext._C", cpp_sources, extra_compile_args={"cxx": cxx}, extra_link_args=["-fopenmp"])


setup(
    name="vocoder_ext",
    version="0.1.0",
    description="Fused kernels and drop-in modules for HiFi-GAN and WaveGlow vocoders",
    packages=find_packages(include=["vocoder_ext", "vocoder_ext.*"]) + ["vocoder_ext.kernels"],
    package_dir={"vocoder_ext.kernels": "kernels"},
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension},
    python_requires=">=3.10",
    install_requires=["torch", "numpy", "soundfile", "tqdm", "safetensors", "pyyaml"],
)

"""The GPU kernels on a real GPU (skipped without one): gpu_checks.py (the Triton and the CUDA C++ backend) and
the GPU bench, each in a child process without TRITON_INTERPRET (this session runs Triton interpreted; see
conftest.py)."""
import os
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the Triton kernels "
                                "are checked on CPU through the interpreter in the other test files)")
HERE = os.path.dirname(os.path.abspath(__file__))


def _run(args, timeout):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "VOCODER_EXT_BACKEND")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.dirname(HERE), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def _cuda_kernels_built(monkeypatch):
    """Whether VOCODER_EXT_BACKEND=cuda serves (vocoder_ext._C built with its CUDA C++ kernels)."""
    from vocoder_ext.runtime import backend
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "cuda")
    try:
        backend.resolve("lrelu_conv1d", "cuda")
        return True
    except RuntimeError:
        return False
    finally:
        monkeypatch.delenv("VOCODER_EXT_BACKEND")


def test_kernels_model_autotune_and_cuda_graph_on_the_gpu(monkeypatch):
    done = _run([os.path.join(HERE, "gpu_checks.py")], timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert done.stdout.strip().splitlines()[-1] == "all GPU checks passed", done.stdout[-3000:]
    checked = done.stdout.strip().splitlines()[-2]
    assert checked.startswith("backends checked: triton"), done.stdout[-3000:]
    if _cuda_kernels_built(monkeypatch):  # built with CUDA kernels: they must have been checked, not skipped
        assert checked.startswith("backends checked: triton, cuda"), done.stdout[-3000:]


def test_gpu_bench_quick(tmp_path):
    done = _run(["-m", "vocoder_ext", "bench", "--device", "cuda", "--quick", "--out", str(tmp_path)], timeout=900)
    assert done.returncode == 0, done.stderr[-5000:]
    assert (tmp_path / "bench_cuda.md").exists() and (tmp_path / "bench_cuda.json").exists()

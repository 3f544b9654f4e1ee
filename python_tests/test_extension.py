"""Without a loadable vocoder_ext._C the package still imports and runs, on the eager path, saying why."""
import os
import shutil
import subprocess
import sys

import pytest

import vocoder_ext

PKG = os.path.dirname(vocoder_ext.__file__)
SCRIPT = """
import warnings, torch
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as rec:
    import vocoder_ext
    from vocoder_ext import HiFiGAN
print("FILE:", vocoder_ext.__file__)
print("WARN:", [str(r.message) for r in rec if "C++ extension not loaded" in str(r.message)])
print("BACKENDS:", vocoder_ext.backends()["lrelu_conv1d"]["cpu"])
m = HiFiGAN({"resblock": "2", "upsample_rates": [2], "upsample_kernel_sizes": [4], "upsample_initial_channel": 4,
             "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 2]]})
mel = torch.randn(1, 80, 5)
y = m(mel); m.fused = False
assert torch.equal(y, m(mel)) and y.shape == (1, 1, 10)
print("OK")
"""


def run_with_package_copy(tmp_path, so_bytes):
    copy = tmp_path / "vocoder_ext"
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("_C*.so", "__pycache__"))
    if so_bytes is not None:
        (copy / "_C.cpython-311-x86_64-linux-gnu.so").write_bytes(so_bytes)
        for name in os.listdir(PKG):
            if name.startswith("_C") and name.endswith(".so"):
                (copy / name).write_bytes(so_bytes)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("VOCODER_EXT_BACKEND", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"FILE: {copy}" in proc.stdout  # the copy ran, not the installed package
    return proc.stdout


@pytest.mark.parametrize("so_bytes,reason", [(None, "no compiled vocoder_ext/_C"), (b"not an ELF file", "failed")])
def test_import_works_without_extension(tmp_path, so_bytes, reason):
    out = run_with_package_copy(tmp_path, so_bytes)
    assert "OK" in out
    warn_line = next(line for line in out.splitlines() if line.startswith("WARN:"))
    assert reason in warn_line and "eager PyTorch references" in warn_line
    assert "eager (C++ extension not loaded" in out

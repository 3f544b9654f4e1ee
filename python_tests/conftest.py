import os

# Triton reads this when it is imported (its own tl.* helpers are jitted then) and when a kernel is
# decorated, so it must be set before anything imports triton (torch.compile does): the Triton kernels
# run through the interpreter on CPU tensors in this whole test session.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture
def backend(monkeypatch):
    """Force VOCODER_EXT_BACKEND for one test: backend('eager')."""
    def force(name):
        monkeypatch.setenv("VOCODER_EXT_BACKEND", name)
    return force


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(int.from_bytes(os.urandom(4), "little"))  # fresh random data every run

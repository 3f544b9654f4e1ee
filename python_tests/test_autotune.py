"""Per-shape Triton-vs-cuDNN choice (vocoder_ext/runtime/autotune.py): timing once, persisting, reusing, opting out.

The choice runs in the ops' CUDA kernels. Without a GPU, the tests call those kernel functions on CPU
tensors (the Triton kernels run through the interpreter, conftest.py) with a stand-in for the timer, so
the decision logic, the cache file and the wiring are checked here; only the CUDA-event timing itself
needs a GPU.
"""
import importlib
import json
import warnings

import pytest
import torch

pytest.importorskip("triton")

from triton_helpers import count_launches
from vocoder_ext.kernels import lrelu_conv1d as conv_kernels
from vocoder_ext.kernels import lrelu_conv_transpose1d as transpose_kernels

from vocoder_ext import backends
from vocoder_ext.runtime import autotune

# vocoder_ext.ops re-exports the op functions under the modules' names, so fetch the modules themselves.
conv_op = importlib.import_module("vocoder_ext.ops.lrelu_conv1d")
transpose_op = importlib.import_module("vocoder_ext.ops.lrelu_conv_transpose1d")

CPU = torch.device("cpu")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache folder, auto backend, autotune on; the in-memory choices forgotten before and after."""
    monkeypatch.setenv("VOCODER_EXT_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("VOCODER_EXT_BACKEND", raising=False)
    monkeypatch.delenv("VOCODER_EXT_AUTOTUNE", raising=False)
    autotune.reset()
    yield tmp_path / autotune.FILE_NAME
    autotune.reset()


@pytest.fixture
def timings(monkeypatch):
    """Replace the timer: ms per candidate name, read through the candidate functions' `name` attribute."""
    table, calls = {}, []

    def measure(fn, device):
        calls.append(fn.label)
        fn()  # still run it, as the real timer does
        return table[fn.label]
    monkeypatch.setattr(autotune, "measure", measure)
    return table, calls


def labelled(**fns):
    for name, fn in fns.items():
        fn.label = name
    return fns


def test_times_each_candidate_once_keeps_the_faster_and_persists_it(cache, timings):
    table, calls = timings
    table.update(fast=1.0, slow=3.0)
    ran = []
    candidates = labelled(slow=lambda: ran.append("slow"), fast=lambda: ran.append("fast"))
    assert autotune.choose("op", "shape A", candidates, CPU) == "fast"
    assert calls == ["slow", "fast"]
    stored = json.loads(cache.read_text())
    assert stored["format"] == autotune.FORMAT
    (key, entry), = stored["choices"].items()
    assert key.startswith("op | shape A | cpu | torch ")
    assert entry["choice"] == "fast" and entry["ms"] == {"slow": 3.0, "fast": 1.0}

    # Same process: no timing again. A new process (reset) reads the file: no timing either.
    assert autotune.choose("op", "shape A", candidates, CPU) == "fast"
    autotune.reset()
    assert autotune.choose("op", "shape A", candidates, CPU) == "fast"
    assert calls == ["slow", "fast"]
    # Another shape is a new choice, stored beside the first.
    table.update(fast=5.0)
    assert autotune.choose("op", "shape B", candidates, CPU) == "slow"
    assert len(json.loads(cache.read_text())["choices"]) == 2
    assert "2 choices in " + str(cache) in backends()["autotune"]


def test_autotune_off_or_a_forced_backend_runs_the_default_without_timing(cache, timings, monkeypatch):
    table, calls = timings
    table.update(triton=9.0, eager=1.0)
    candidates = labelled(triton=lambda: None, eager=lambda: None)
    monkeypatch.setenv("VOCODER_EXT_AUTOTUNE", "0")
    assert autotune.choose("op", "s", candidates, CPU) == "triton"
    assert backends()["autotune"].startswith("off (VOCODER_EXT_AUTOTUNE=0)")
    monkeypatch.setenv("VOCODER_EXT_AUTOTUNE", "1")
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "triton")
    assert autotune.choose("op", "s", candidates, CPU) == "triton"
    assert calls == [] and not cache.exists()
    monkeypatch.setenv("VOCODER_EXT_AUTOTUNE", "maybe")
    with pytest.raises(ValueError, match="VOCODER_EXT_AUTOTUNE must be 1 or 0, got 'maybe'"):
        autotune.choose("op", "s", candidates, CPU)


def test_an_unreadable_cache_file_warns_once_and_is_replaced(cache, timings):
    table, _ = timings
    table.update(a=2.0, b=1.0)
    cache.write_text("{not json")
    with pytest.warns(RuntimeWarning, match="cannot read .*autotune.json"):
        assert autotune.choose("op", "s", labelled(a=lambda: None, b=lambda: None), CPU) == "b"
    assert json.loads(cache.read_text())["choices"]  # rewritten as a valid file


def test_a_failing_candidate_is_not_chosen_and_its_error_is_kept(cache, timings):
    table, _ = timings
    table.update(broken=0.1, works=5.0)

    def broken():
        raise RuntimeError("out of shared memory")
    assert autotune.choose("op", "s", labelled(broken=broken, works=lambda: None), CPU) == "works"
    entry, = json.loads(cache.read_text())["choices"].values()
    assert "out of shared memory" in entry["errors"]["broken"]
    with pytest.raises(RuntimeError, match="out of shared memory"):
        autotune.choose("op", "other", labelled(broken=broken), CPU)


def test_a_fast_wrong_candidate_is_not_chosen(cache, timings):
    """Every candidate must agree with the reference on the real inputs before it is timed."""
    table, calls = timings
    table.update(wrong=0.1, right=2.0, eager=3.0)
    want = torch.randn(4, 9)
    candidates = labelled(wrong=lambda: (want * 1.01, want), right=lambda: (want + 1e-6, want.clone()),
                          eager=lambda: (want, want))
    with pytest.warns(RuntimeWarning, match=r"the wrong kernel of op gave a wrong result for s .*output 0 differs"):
        assert autotune.choose("op", "s", candidates, CPU) == "right"
    assert "wrong" not in calls
    entry, = json.loads(cache.read_text())["choices"].values()
    assert entry["errors"]["wrong"].startswith("wrong result: output 0 differs from the reference by")
    assert autotune.disagreement(torch.full((3,), float("nan")), torch.zeros(3)) is not None
    assert "the reference's torch.float32 (3,)" in autotune.disagreement(torch.zeros(3).double(), torch.zeros(3))
    half = torch.randn(50).half()
    assert autotune.disagreement(half + 1e-2 * half.abs().max(), half) is None  # rounding-sized: agrees


def test_bucket_rounds_lengths_up_to_a_power_of_two():
    assert [autotune.bucket(n) for n in (1, 2, 3, 64, 65, 1000)] == [1, 2, 4, 64, 128, 1024]


# ---- the ops' CUDA kernels choose (called here on CPU tensors; Triton through the interpreter) ----

class PreferName:
    """A timer that prefers one candidate, telling them apart by which kernel launches they make."""

    def __init__(self, launches, winner):
        self.launches, self.winner, self.calls = launches, winner, 0

    def __call__(self, fn, device):
        self.calls += 1
        before = len(self.launches["conv"].grids)
        fn()
        used_triton = len(self.launches["conv"].grids) > before
        return 1.0 if used_triton == (self.winner == "triton") else 2.0


@pytest.mark.parametrize("winner", ["eager", "triton"])
def test_lrelu_conv1d_cuda_kernel_runs_the_chosen_candidate(cache, monkeypatch, winner):
    launches = count_launches(monkeypatch, conv_kernels)
    timer = PreferName(launches, winner)
    monkeypatch.setattr(autotune, "measure", timer)
    x = torch.randn(2, 20, 37)[:, :, 2:]
    w, b, r = torch.randn(18, 20, 5) / 10, torch.randn(18), torch.randn(2, 18, 35)
    ref = conv_op.lrelu_conv1d_ref(x, w, b, 3, 0.1, r, "tanh")
    torch.testing.assert_close(conv_op.OP.cuda_forward(x, w, b, 3, 0.1, r, "tanh"), ref, rtol=1e-5, atol=1e-5)
    assert timer.calls == 2
    before = len(launches["conv"].grids)
    torch.testing.assert_close(conv_op.OP.cuda_forward(x, w, b, 3, 0.1, r, "tanh"), ref, rtol=1e-5, atol=1e-5)
    assert timer.calls == 2  # reused
    assert (len(launches["conv"].grids) > before) == (winner == "triton")

    g = torch.randn_like(ref)
    grads_ref = conv_op.lrelu_conv1d_backward_ref(g, x, w, b, 3, 0.1, "tanh")
    grads = conv_op.OP.cuda_backward(g, x, w, b, 3, 0.1, "tanh")
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert timer.calls == 4  # the backward is a choice of its own
    entries = json.loads(cache.read_text())["choices"]
    assert sorted(e["choice"] for e in entries.values()) == [winner, winner]
    assert sorted(k.split(" | ")[0] for k in entries) == ["lrelu_conv1d", "lrelu_conv1d_backward"]


@pytest.mark.parametrize("winner", ["eager", "triton"])
def test_lrelu_conv_transpose1d_cuda_kernel_runs_the_chosen_candidate(cache, monkeypatch, winner):
    launches = count_launches(monkeypatch, transpose_kernels)
    timer = PreferName(launches, winner)
    monkeypatch.setattr(autotune, "measure", timer)
    x, w, b = torch.randn(2, 20, 9), torch.randn(20, 18, 8) / 10, torch.randn(18)
    ref = transpose_op.lrelu_conv_transpose1d_ref(x, w, b, 4, 2, 0.1)
    torch.testing.assert_close(transpose_op.OP.cuda_forward(x, w, b, 4, 2, 0.1), ref, rtol=1e-5, atol=1e-5)
    before = len(launches["conv"].grids)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a stored choice is reused quietly
        transpose_op.OP.cuda_forward(x, w, b, 4, 2, 0.1)
    assert (len(launches["conv"].grids) > before) == (winner == "triton")
    g = torch.randn_like(ref)
    for got, want in zip(transpose_op.OP.cuda_backward(g, x, w, 4, 2, 0.1),
                         transpose_op.lrelu_conv_transpose1d_backward_ref(g, x, w, 4, 2, 0.1)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert timer.calls == 4


def test_a_non_finite_reference_decides_nothing(cache, timings):
    """Overflowed inputs (fp16 gradients before the GradScaler backs off: seen on an H100 under --amp) make
    the reference inf/NaN: no kernel is judged wrong, nothing is stored, the reference runs this once; the
    next call with finite inputs chooses as usual."""
    table, calls = timings
    table.update(fast=0.1, eager=3.0)
    result = {"value": torch.tensor([1.0, float("inf")])}
    candidates = labelled(fast=lambda: result["value"].clone(), eager=lambda: result["value"].clone())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert autotune.choose("op", "s", candidates, CPU) == "eager"
    assert not calls and not cache.exists()
    result["value"] = torch.randn(5)
    assert autotune.choose("op", "s", candidates, CPU) == "fast"
    entry, = json.loads(cache.read_text())["choices"].values()
    assert entry["choice"] == "fast" and "errors" not in entry

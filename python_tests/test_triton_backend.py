"""VOCODER_EXT_BACKEND=triton: the public ops and a whole HiFiGAN run the Triton kernels (CPU tensors,
through the interpreter: conftest.py sets TRITON_INTERPRET=1 before anything imports triton)."""
import pytest
import torch

pytest.importorskip("triton")

from original_hifigan import TINY  # noqa: E402
from vocoder_ext import HiFiGAN, backends  # noqa: E402
from vocoder_ext.runtime import backend  # noqa: E402
from vocoder_ext.kernels import lrelu_conv1d as conv_kernels  # noqa: E402
from vocoder_ext.kernels import lrelu_conv_transpose1d as transpose_kernels  # noqa: E402
from vocoder_ext.ops import lrelu_conv1d, lrelu_conv1d_ref  # noqa: E402
from vocoder_ext.ops.resblock import resblock, resblock_ref  # noqa: E402

assert conv_kernels.INTERPRET and transpose_kernels.INTERPRET, "conftest.py sets TRITON_INTERPRET=1 first"


@pytest.fixture
def triton_backend(monkeypatch):
    """Force the Triton backend and count the kernel launches it makes."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "triton")
    launches = []
    for module, prefix in ((conv_kernels, ""), (transpose_kernels, "transpose_")):
        for name in ("conv_kernel", "grad_weight_kernel"):
            kernel = getattr(module, name)

            class Counting:
                def __getitem__(self, grid, kernel=kernel, name=prefix + name):
                    launches.append(name)
                    return kernel[grid]
            monkeypatch.setattr(module, name, Counting())
    return launches


def test_lrelu_conv1d_forward_and_backward_run_on_triton(triton_backend):
    x = torch.randn(2, 19, 23)[:, 1:18].requires_grad_()  # non-contiguous channel slice
    w = torch.randn(20, 17, 5, requires_grad=True)
    b = torch.randn(20, requires_grad=True)
    r = torch.randn(2, 20, 23, requires_grad=True)
    y = lrelu_conv1d(x, w, b, dilation=3, residual=r)
    assert triton_backend == ["conv_kernel"]
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, w, b, r), g)
    assert triton_backend.count("grad_weight_kernel") == 1 and triton_backend.count("conv_kernel") == 2
    want = lrelu_conv1d_ref(x, w, b, dilation=3, residual=r)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())
    for got, exp in zip(grads, torch.autograd.grad(want, (x, w, b, r), g)):
        torch.testing.assert_close(got, exp, rtol=1e-5, atol=1e-5 * exp.abs().max().item())


def test_resblock_runs_as_a_chain_of_triton_convs(triton_backend):
    x = torch.randn(1, 16, 29)
    weights = [torch.randn(16, 16, 3) * 0.2 for _ in range(4)]
    biases = [torch.randn(16) for _ in range(4)]
    with torch.no_grad():  # no gradients: on the C++ backend this would be the whole-block kernel
        got = resblock(x, weights, biases, [1, 1, 3, 1], group=2)
    assert triton_backend == ["conv_kernel"] * 4
    want = resblock_ref(x, weights, biases, [1, 1, 3, 1], group=2)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


def test_triton_on_cpu_without_the_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "triton")
    with pytest.raises(RuntimeError, match="only under TRITON_INTERPRET=1"):
        lrelu_conv1d(torch.randn(1, 4, 9), torch.randn(4, 4, 3))


def test_whole_hifigan_on_triton_equals_eager(triton_backend):
    model = HiFiGAN(TINY, fused=True)
    mel = torch.randn(2, 80, 5)
    got = model(mel)
    g = torch.randn_like(got)
    got.backward(g)
    got_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    n_ups = len(TINY["upsample_rates"])
    assert triton_backend.count("transpose_conv_kernel") == 2 * n_ups  # forward + grad_x per layer
    assert triton_backend.count("transpose_grad_weight_kernel") == n_ups
    assert triton_backend.count("grad_weight_kernel") > 0
    model.zero_grad()
    model.fused = False
    want = model(mel)
    want.backward(g)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())
    for n, p in model.named_parameters():
        torch.testing.assert_close(got_grads[n], p.grad, rtol=1e-4, atol=1e-5 * p.grad.abs().max().item(), msg=n)


def test_backends_report_triton(monkeypatch):
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "triton")
    report = backends()
    for op in backend.OPS:  # an op without Triton kernels (nor a chain of one that has them) reports unavailable
        want = "triton" if op in backend.TRITON_OPS or op in backend.TRITON_CHAINS else "unavailable"
        assert report[op]["cpu"].startswith(want), (op, report[op])
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "auto")
    assert backend.triton_problem("lrelu_conv1d", "cuda") is not None  # interpreter on: CPU tensors only

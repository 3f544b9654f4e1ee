"""conv1d_lrelu in bf16 (the recipe's --amp on CPU): both sides of the op -- our kernels (bf16 products, fp32
sums; per-tap bf16 matmuls for the weight gradient) and oneDNN's bf16 convs -- forced in turn on every case of
test_conv1d_lrelu, forward and every gradient, against fp64 references on the same bf16-rounded operands; the
oneDNN side equals eager PyTorch exactly; without AVX512_BF16 the whole op is oneDNN's; the fused
discriminators under bf16 autocast agree with the eager ones."""
import pytest
import torch

from vocoder_ext import ops
from vocoder_ext.models.discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
from vocoder_ext.runtime import extension
from vocoder_ext.runtime.precision import compute_in_bf16

from test_conv1d_lrelu import CASES
from test_cpu_bf16 import _has_avx512_bf16

pytestmark = [
    pytest.mark.skipif(not extension.loaded, reason=f"vocoder_ext._C not loaded: {extension.load_error}"),
    pytest.mark.skipif(not _has_avx512_bf16(), reason="the CPU has no AVX512_BF16"),
]

SIDES = ["own", "onednn"]


@pytest.fixture(autouse=True)
def cpp_backend(monkeypatch):
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "cpp")
    monkeypatch.delenv("VOCODER_EXT_CPU_ISA", raising=False)
    monkeypatch.delenv("VOCODER_EXT_DISC_KERNELS", raising=False)


def _inputs(case, columns=None, seed=0):
    c_in, c_out, k, stride, padding, groups, slope, t = case
    gen = torch.Generator().manual_seed(seed)
    shape = (3, c_in, 2 * t + 1) if columns is None else (3, c_in, 2 * t + 1, columns)
    x = torch.randn(*shape, generator=gen)[:, :, 1::2]  # non-contiguous
    w = torch.randn(c_out, c_in // groups, k, generator=gen) / (c_in // groups * k) ** 0.5
    b = torch.randn(c_out, generator=gen)
    return x, w, b, (stride, padding, groups, slope)


def _close(got, want, what):
    """Within bf16's rounding of the result (and of the weight gradient's per-item partial sums)."""
    got, want = got.double(), want.double()
    scale = want.abs().max().clamp_min(1e-12)
    err = ((got - want).abs() - 2 ** -7 * want.abs()).max() / scale
    assert err <= 2 ** -8, f"{what}: error {err:.3g} of the scale beyond bf16 rounding"


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_bf16_forward_and_gradients_match_the_rounded_reference(monkeypatch, side, case):
    monkeypatch.setenv("VOCODER_EXT_DISC_KERNELS", side)
    x, w, b, args = _inputs(case)
    xb, wb, bb = (v.bfloat16().requires_grad_() for v in (x, w, b))
    y = ops.conv1d_lrelu(xb, wb, bb, *args)
    assert y.dtype == torch.bfloat16
    x64, w64, b64 = (v.detach().double().requires_grad_() for v in (xb, wb, bb))
    want = ops.conv1d_lrelu_ref(x64, w64, b64, *args)
    _close(y, want, "forward")

    g = torch.randn(y.shape).bfloat16()
    grads = torch.autograd.grad(y, (xb, wb, bb), g)
    # what both sides multiply: grad_out * leaky'(out), from bf16 values, rounded to bf16
    slope = args[3]
    g_act = torch.where(y.detach().float() > 0, g.float(), g.float() * slope)
    pre = ops.conv1d_lrelu_ref(x64, w64, b64, *args[:3], 1.0)
    want_grads = torch.autograd.grad(pre, (x64, w64), g_act.bfloat16().double())
    for got, expected, name in zip(grads, want_grads, ("grad_x", "grad_w")):
        assert got.dtype == torch.bfloat16 and got.shape == expected.shape
        assert name == "grad_x" or got.is_contiguous(), f"{name}: strides {got.stride()}"
        _close(got, expected, name)
    _close(grads[2], g_act.double().sum((0, 2)), "grad_b")


@pytest.mark.parametrize("side", SIDES)
def test_bf16_columns_and_masks(monkeypatch, side):
    """The MPD's [B, C, T/p, p] layout, and a backward asked for one gradient giving what the full one does."""
    monkeypatch.setenv("VOCODER_EXT_DISC_KERNELS", side)
    x, w, b, args = _inputs((32, 64, 5, 3, 2, 1, 0.1, 301), columns=5, seed=1)
    xb, wb, bb = x.bfloat16(), w.bfloat16(), b.bfloat16()
    y = torch.ops.vocoder_ext.conv1d_lrelu(xb, wb, bb, *args)
    x64, w64 = xb.double().requires_grad_(), wb.double().requires_grad_()
    _close(y, ops.conv1d_lrelu_ref(x64, w64, bb.double(), *args), "forward, columns")
    g = torch.randn(y.shape).bfloat16()
    full = torch.ops.vocoder_ext.conv1d_lrelu_backward(g, y, xb, wb, *args)
    g_act = torch.where(y.float() > 0, g.float(), g.float() * args[3]).bfloat16().double()
    want = torch.autograd.grad(ops.conv1d_lrelu_ref(x64, w64, None, *args[:3], 1.0), (x64, w64), g_act)
    _close(full[0], want[0], "grad_x, columns")
    _close(full[1], want[1], "grad_w, columns")
    for i in range(3):
        mask = [j == i for j in range(3)]
        one = torch.ops.vocoder_ext.conv1d_lrelu_backward(g, y, xb, wb, *args, mask)
        assert all(one[j].numel() == 0 for j in range(3) if j != i)
        assert torch.equal(one[i], full[i])


@pytest.mark.parametrize("case", [CASES[1], CASES[11], CASES[14]], ids=str)
def test_fp32_under_the_switch_computes_bf16_products_with_fp32_output(monkeypatch, case):
    monkeypatch.setenv("VOCODER_EXT_DISC_KERNELS", "own")
    x, w, b, args = _inputs(case, seed=2)
    with torch.no_grad(), compute_in_bf16():
        y = ops.conv1d_lrelu(x, w, b, *args)
    assert y.dtype == torch.float32
    want = ops.conv1d_lrelu_ref(x.bfloat16().double(), w.bfloat16().double(), b.double(), *args)
    assert ((y.double() - want).abs().max() / want.abs().max()).item() <= 1e-5
    exact = ops.conv1d_lrelu(x, w, b, *args)  # the switch off again: fp32 products
    assert not torch.equal(exact, y)


@pytest.mark.parametrize("how", ["VOCODER_EXT_DISC_KERNELS=onednn", "VOCODER_EXT_CPU_ISA=avx512"])
def test_onednn_side_and_cpus_without_avx512_bf16_compute_what_eager_does(monkeypatch, how):
    """oneDNN's bf16 convs, the eager layer's own numbers, for the grouped, long layers our kernels would take."""
    monkeypatch.setenv(*how.split("="))
    x, w, b, args = _inputs((16, 32, 41, 2, 20, 4, 0.1, 1100), seed=3)
    xb, wb, bb = (v.bfloat16().requires_grad_() for v in (x, w, b))
    y = ops.conv1d_lrelu(xb, wb, bb, *args)
    want = ops.conv1d_lrelu_ref(xb, wb, bb, *args)
    assert y.dtype == torch.bfloat16 and torch.equal(y, want)
    g = torch.randn_like(y)
    got, expected = torch.autograd.grad(y, (xb, wb, bb), g), torch.autograd.grad(want, (xb, wb, bb), g)
    for i in (0, 1):
        assert got[i].dtype == torch.bfloat16 and torch.equal(got[i], expected[i])
    # the bias gradient is summed in fp32 and rounded once (eager sums in bf16, less accurately)
    g_act = torch.where(y.detach().float() > 0, g.float(), g.float() * args[3])
    _close(got[2], g_act.double().sum((0, 2)), "grad_b")


def test_fused_discriminators_under_bf16_autocast_agree_with_eager():
    torch.manual_seed(4)
    for cls in (MultiPeriodDiscriminator, MultiScaleDiscriminator):
        eager, fused = cls(), cls(fused=True)
        fused.load_state_dict(eager.state_dict())
        y, y_hat = torch.randn(2, 1, 4096), torch.randn(2, 1, 4096)
        losses, grads = [], []
        for d in (eager, fused):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits_r, logits_g, fmaps_r, fmaps_g = d(y, y_hat)
                loss = sum(l.float().square().mean() for l in logits_r + logits_g)
                loss = loss + sum(f.float().abs().mean() for fm in fmaps_r + fmaps_g for f in fm)
            d.zero_grad()
            loss.backward()
            losses.append(loss.item())
            grads.append(torch.cat([p.grad.flatten() for p in d.parameters() if p.grad is not None]))
        assert losses[1] == pytest.approx(losses[0], rel=1e-2)
        assert grads[1].shape == grads[0].shape
        cos = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0).item()
        assert cos > 0.99, f"{cls.__name__}: fused and eager parameter gradients point apart (cosine {cos:.4f})"

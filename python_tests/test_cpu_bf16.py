"""The CPU conv kernels' bf16 path (AVX512_BF16: bf16 products, fp32 sums) against fp64 references computed on
the same bf16-rounded operands, and how it is asked for (bf16 tensors, PyTorch's fp32-precision switch,
HiFiGAN(compute_dtype=...)); the default stays exact fp32."""
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import vocoder_ext
from vocoder_ext import ops
from vocoder_ext.cli.precision import bf16_kernels
from vocoder_ext.ops.resblock import _chain
from vocoder_ext.runtime import extension
from vocoder_ext.runtime.precision import compute_in_bf16


def _has_avx512_bf16():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx512_bf16 " in f.read()
    except OSError:
        return False


pytestmark = [
    pytest.mark.skipif(not extension.loaded, reason=f"vocoder_ext._C not loaded: {extension.load_error}"),
    pytest.mark.skipif(not _has_avx512_bf16(), reason="the CPU has no AVX512_BF16"),
]


@pytest.fixture(autouse=True)
def cpp_backend(monkeypatch):
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "cpp")
    monkeypatch.delenv("VOCODER_EXT_CPU_ISA", raising=False)


def _act(x, slope):
    """What the kernel multiplies: leaky-ReLU in fp32, rounded to bf16 (nearest even)."""
    return F.leaky_relu(x.float(), slope).bfloat16().double()


def conv_ref(x, w, b, dilation, slope, residual=None, epilogue="none"):
    """lrelu_conv1d in fp64 on the bf16-rounded activation and weights (slope 1: the activation is applied)."""
    return ops.lrelu_conv1d_ref(_act(x, slope), w.bfloat16().double(), None if b is None else b.double(), dilation,
                                1.0, None if residual is None else residual.double(), epilogue)


def rel_err(got, want):
    return ((got.double() - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()


def _snr_db(ref, got):
    return 10 * math.log10(ref.double().pow(2).sum().item() / (got.double() - ref.double()).pow(2).sum().item())


# Every (K, dilation) of the presets' residual blocks (V1/V2: K 3/7/11, d 1/3/5; V3: K 3/5/7, d 1/2/6/12);
# odd channel counts (a zero pair partner), partial output blocks, odd lengths.
CASES = [(k, d) for k in (3, 5, 7, 11) for d in (1, 2, 3, 5, 6, 12)]


@pytest.mark.parametrize("i", range(len(CASES)))
def test_lrelu_conv1d_bf16_matches_the_rounded_reference(i):
    k, d = CASES[i]
    t = (1, 7, 129, 1003)[i % 4]
    batch, c_in, c_out = 1 + 2 * (i % 2), 1 + (i * 5) % 18, 1 + (i * 7) % 13
    residual, epilogue = (i % 2 == 0), ("tanh" if i % 5 == 0 else "none")
    x = torch.randn(batch, c_in, 2 * t + 1)[:, :, 1::2]  # non-contiguous
    w = torch.randn(c_out, c_in, k) / (c_in * k) ** 0.5
    b = torch.randn(c_out) if i % 3 else None
    r = torch.randn(batch, c_out, t) if residual else None
    want = conv_ref(x, w, b, d, 0.1, r, epilogue)
    with torch.no_grad(), compute_in_bf16():
        got = ops.lrelu_conv1d(x, w, b, d, 0.1, r, epilogue)
    assert got.dtype == torch.float32
    assert rel_err(got, want) <= 2e-6, "fp32 inputs under the switch: bf16 products, fp32 sums"

    # bf16 tensors: the same products, the output rounded once; within 2x eager PyTorch's bf16 error
    lo = [None if v is None else v.bfloat16() for v in (x, w, b, r)]
    exact = conv_ref(*lo[:3], d, 0.1, lo[3], epilogue)
    with torch.no_grad():
        got16 = ops.lrelu_conv1d(lo[0], lo[1], lo[2], d, 0.1, lo[3], epilogue)
    eager16 = ops.lrelu_conv1d_ref(lo[0], lo[1], lo[2], d, 0.1, lo[3], epilogue)
    assert got16.dtype == torch.bfloat16
    err, eager_err = (got16.double() - exact).abs().max(), (eager16.double() - exact).abs().max()
    assert err <= 2 * eager_err + 1e-6, (err, eager_err)


@pytest.mark.parametrize("c_in,c_out,t,k,stride,pad,out_pad", [
    (7, 5, 33, 16, 8, 4, 0), (4, 6, 129, 4, 2, 1, 0), (9, 3, 40, 8, 4, 2, 0), (5, 4, 11, 10, 5, 3, 1), (1, 3, 1, 16, 8, 4, 0),
])
def test_lrelu_conv_transpose1d_bf16_matches_the_rounded_reference(c_in, c_out, t, k, stride, pad, out_pad):
    x = torch.randn(2, c_in, 2 * t)[:, :, ::2]
    w, b = torch.randn(c_in, c_out, k) / (c_in * k) ** 0.5, torch.randn(c_out)
    want = F.conv_transpose1d(_act(x, 0.1), w.bfloat16().double(), b.double(), stride, pad, out_pad)
    with torch.no_grad(), compute_in_bf16():
        got = ops.lrelu_conv_transpose1d(x, w, b, stride, pad, 0.1, out_pad)
    assert got.shape == want.shape
    assert rel_err(got, want) <= 2e-6


@pytest.mark.parametrize("c,k,dilations,group", [(33, 3, [1, 1, 3, 1, 5, 1], 2), (16, 11, [1, 1, 3, 1, 5, 1], 2),
                                                 (5, 7, [3, 12], 1), (64, 3, [1, 3], 1)])
def test_resblock_bf16_matches_the_rounded_reference(c, k, dilations, group):
    t = 1003
    x = torch.randn(2, c, 2 * t)[:, :, ::2]
    ws = [torch.randn(c, c, k) / (c * k) ** 0.5 for _ in dilations]
    bs = [torch.randn(c) for _ in dilations]
    accum = torch.randn(2, c, t)
    with torch.no_grad(), compute_in_bf16():
        got = torch.ops.vocoder_ext.resblock(x, ws, bs, dilations, group, 0.1, accum, 1 / 3)
        chain = _chain(lambda h, w, b, d, slope, residual=None: ops.lrelu_conv1d(h, w, b, d, slope, residual),
                       x, ws, bs, dilations, group, 0.1, accum, 1 / 3)
    with torch.no_grad():
        exact32 = torch.ops.vocoder_ext.resblock(x, ws, bs, dilations, group, 0.1, accum, 1 / 3)
    want = _chain(conv_ref, x.double(), ws, bs, dilations, group, 0.1, accum.double(), 1 / 3)
    # The per-conv op matches its rounded reference to fp32 accuracy (above), and the fused block computes what
    # the chain of them computes. Against a chain in fp64 the agreement is looser: where an fp32 intermediate
    # lies within an ulp of a bf16 rounding boundary the two round apart by a bf16 ulp, and the next convs
    # spread that (measured up to 7e-4 of the scale, on up to ~10% of the outputs at K 11).
    assert rel_err(got, chain.double()) <= 1e-5
    assert rel_err(got, want) <= 3e-3
    assert not torch.equal(got, exact32), "the switch must reach the fused block"
    with torch.no_grad():
        got16 = torch.ops.vocoder_ext.resblock(x.bfloat16(), [w.bfloat16() for w in ws], [b.bfloat16() for b in bs],
                                               dilations, group, 0.1, accum.bfloat16(), 1 / 3)
    assert got16.dtype == torch.bfloat16 and rel_err(got16, want) <= 1e-2


def test_the_default_is_exact_fp32_and_the_switch_is_read_at_call_time(monkeypatch):
    x, w, b = torch.randn(1, 24, 301), torch.randn(24, 24, 7) / 13, torch.randn(24)
    with torch.no_grad():
        default = ops.lrelu_conv1d(x, w, b, 3)
        with compute_in_bf16():
            bf16 = ops.lrelu_conv1d(x, w, b, 3)
        again = ops.lrelu_conv1d(x, w, b, 3)
        monkeypatch.setenv("VOCODER_EXT_CPU_ISA", "avx512")  # the fp32 AVX-512 kernel, as before the bf16 path
        before = ops.lrelu_conv1d(x, w, b, 3)
    assert torch.equal(default, before) and torch.equal(again, before)
    assert not torch.equal(bf16, default)
    assert rel_err(default, ops.lrelu_conv1d_ref(x.double(), w.double(), b.double(), 3)) <= 1e-6


_FALLBACK = """
import warnings, torch, vocoder_ext
x, w = torch.randn(1, 8, 50), torch.randn(8, 8, 3)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    exact = torch.ops.vocoder_ext.lrelu_conv1d(x, w, None, 1, 0.1, None, "none")
    torch.backends.mkldnn.conv.fp32_precision = "bf16"
    for _ in range(3):
        asked = torch.ops.vocoder_ext.lrelu_conv1d(x, w, None, 1, 0.1, None, "none")
print(torch.equal(exact, asked), sum("without AVX512_BF16: computing in fp32" in str(c.message) for c in caught))
"""


@pytest.mark.parametrize("isa", ["avx512", "avx2"])
def test_without_avx512_bf16_the_fp32_kernel_runs_with_one_warning(isa):
    env = dict(os.environ, VOCODER_EXT_CPU_ISA=isa, VOCODER_EXT_BACKEND="cpp")
    out = subprocess.run([sys.executable, "-c", _FALLBACK], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # PyTorch hands a C++ warning to Python's warnings where its bindings install a handler, else to stderr
    equal, as_python_warnings = out.stdout.split()
    assert equal == "True", "the fallback must compute exactly what the fp32 default computes"
    assert int(as_python_warnings) + out.stderr.count("without AVX512_BF16: computing in fp32") == 1, out.stderr


def test_bf16_kernels_reports_the_level_the_kernels_run_at(monkeypatch):
    monkeypatch.delenv("VOCODER_EXT_CPU_ISA", raising=False)
    assert torch.ops.vocoder_ext.cpu_isa() == "avx512_bf16" and bf16_kernels()
    for isa in ("avx512", "avx2", "generic"):
        monkeypatch.setenv("VOCODER_EXT_CPU_ISA", isa)
        assert torch.ops.vocoder_ext.cpu_isa() == isa and not bf16_kernels()


@pytest.mark.parametrize("config", ["v1", "v2", "v3"])
def test_hifigan_compute_dtype_bf16(config):
    torch.manual_seed(0)
    exact = vocoder_ext.HiFiGAN(config).remove_weight_norm().eval()
    bf16 = vocoder_ext.HiFiGAN(config, compute_dtype=torch.bfloat16).remove_weight_norm().eval()
    bf16.load_state_dict(exact.state_dict())
    mel = torch.randn(1, 80, 24)
    with torch.no_grad():
        want = exact(mel)
        got = bf16(mel)
        with compute_in_bf16():
            switched = exact(mel)
        half = exact.to(torch.bfloat16)(mel.bfloat16())
    assert torch.backends.mkldnn.conv.fp32_precision == "none", "the forward restores PyTorch's switch"
    assert torch.equal(got, switched)
    assert not torch.equal(got, want)
    assert _snr_db(want, got) >= 30
    assert half.dtype == torch.bfloat16 and _snr_db(want, half.float()) >= 25
    with pytest.raises(ValueError, match="compute_dtype: expected None, torch.float32 or torch.bfloat16"):
        vocoder_ext.HiFiGAN("v2", compute_dtype=torch.float16)


@pytest.mark.parametrize("c,t,dilation,last", [(32, 301, 2, False), (17, 128, 1, True), (64, 1000, 8, False)])
def test_wn_layer_bf16_matches_the_rounded_reference(c, t, dilation, last):
    """WaveGlow's WN layer: both convs (dilated K 3, 1x1 res/skip) with bf16 products; gate and sums fp32."""
    audio, skip = torch.randn(1, c, t), torch.randn(1, c, t)
    cond = torch.randn(1, 2 * c, 2 * t)[:, :, ::2]
    iw, ib = torch.randn(2 * c, c, 3) / (3 * c) ** 0.5, torch.randn(2 * c)
    rows = c if last else 2 * c
    rw, rb = torch.randn(rows, c, 1) / c ** 0.5, torch.randn(rows)
    with torch.no_grad(), compute_in_bf16():
        got_audio, got_skip = ops.wn_layer(audio, skip, cond, iw, ib, rw, rb, dilation, last)
    with torch.no_grad():
        exact_audio, exact_skip = ops.wn_layer(audio, skip, cond, iw, ib, rw, rb, dilation, last)
    r16 = lambda v: v.bfloat16().double()  # noqa: E731
    a = F.conv1d(r16(audio), r16(iw), ib.double(), padding=dilation, dilation=dilation) + cond.double()
    acts = torch.tanh(a[:, :c]) * torch.sigmoid(a[:, c:])
    rs = F.conv1d(r16(acts.float()), r16(rw), rb.double())
    want_audio = audio.double() if last else audio.double() + rs[:, :c]
    want_skip = skip.double() + (rs if last else rs[:, c:])
    for got, exact, want in ((got_audio, exact_audio, want_audio), (got_skip, exact_skip, want_skip)):
        # acts are fp32 in the kernel, fp64 here: a few may round to bf16 apart (see the resblock test)
        err = (got.double() - want).abs() / want.abs().max()
        assert err.max() <= 3e-3 and (err > 1e-5).double().mean() <= 0.02, (err.max(), (err > 1e-5).double().mean())
    assert not torch.equal(got_skip, exact_skip)

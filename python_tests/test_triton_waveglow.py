"""Triton kernels of WaveGlow's ops (wn_layer, affine_coupling, invertible_conv1x1), forward and every
gradient, vs the eager references, on CPU through TRITON_INTERPRET=1 (conftest.py sets it before anything
imports triton). fp32 runs through the public ops with VOCODER_EXT_BACKEND=triton (the autograd path the
models take); fp16/bf16 call the kernel launchers and compare errors against an fp64 computation.
Kernel launches are counted to prove the Triton code ran. The interpreter runs each program in numpy,
so shapes are small: its tiles are 16 channels x 32 steps, and 24 channels / T = 33, 129 cross blocks.
"""
import ast
import importlib.util
import pathlib

import pytest
import torch

pytest.importorskip("triton")

from triton_helpers import assert_close_fp32, assert_within_twice_eager, count_kernels, f64, random_x  # noqa: E402
from vocoder_ext.kernels import affine_coupling as AC  # noqa: E402
from vocoder_ext.kernels import invertible_conv1x1 as IC  # noqa: E402
from vocoder_ext.kernels import lrelu_conv1d as LC  # noqa: E402
from vocoder_ext.kernels import wn_layer as WN  # noqa: E402
from vocoder_ext.ops import affine_coupling, invertible_conv1x1, wn_layer  # noqa: E402
from vocoder_ext.ops.affine_coupling import affine_coupling_backward_ref, affine_coupling_ref  # noqa: E402
from vocoder_ext.ops.invertible_conv1x1 import invertible_conv1x1_backward_ref, invertible_conv1x1_ref  # noqa: E402
from vocoder_ext.ops.wn_layer import wn_layer_backward_ref, wn_layer_ref  # noqa: E402

assert WN.INTERPRET and AC.INTERPRET and IC.INTERPRET, "conftest.py sets TRITON_INTERPRET=1 first"

LOW = [torch.float16, torch.bfloat16]


@pytest.fixture
def launches(monkeypatch):
    """Force the Triton backend; count every kernel the three ops can launch (wn_layer's backward also
    runs lrelu_conv1d's conv kernel, as grad_audio_kernel, and its grad-weight kernel)."""
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "triton")
    counters = {}
    for module, names in ((WN, ("gate_kernel", "res_skip_kernel", "gate_backward_kernel", "grad_audio_kernel")),
                          (LC, ("conv_kernel", "grad_weight_kernel")),
                          (AC, ("coupling_kernel", "coupling_backward_kernel")),
                          (IC, ("mix_kernel", "outer_kernel"))):
        counters.update(count_kernels(monkeypatch, module, names))
    return lambda name: len(counters[name].grids)


def _leaves(tensors):
    return [t.requires_grad_() for t in tensors if t is not None]


def _grad(batch, c, t_len, dtype, layout):
    """An upstream gradient; strided for the non-contiguous layouts."""
    if layout == "contiguous":
        return torch.randn(batch, c, t_len).to(dtype)
    return torch.randn(batch, c, 2 * t_len).to(dtype)[:, :, ::2]


# ------------------------------------------------------------------------------------------ wn_layer

def wn_inputs(batch, c, t_len, k, last, skip, dtype=torch.float32, layout="contiguous"):
    """(audio, skip, cond, in_w, in_b, rs_w, rs_b); weights scaled like a trained layer so the gate is
    not saturated. layout: triton_helpers.random_x's, for the [B, C, T] inputs and rs_w alike."""
    rows = c if last else 2 * c
    rs_w = torch.randn(rows, c + 2, 1)[:, 1:1 + c] if layout != "contiguous" else torch.randn(rows, c, 1)
    return (random_x(batch, c, t_len, dtype, layout), random_x(batch, c, t_len, dtype, layout) if skip else None,
            random_x(batch, 2 * c, t_len, dtype, layout), (torch.randn(2 * c, c, k) / (c * k) ** 0.5).to(dtype),
            (0.5 * torch.randn(2 * c)).to(dtype), (rs_w / c ** 0.5).to(dtype), (0.5 * torch.randn(rows)).to(dtype))


# (batch, C, T, K, dilation, last, skip given, layout). Dilations past T leave only the centre tap.
WN_CASES = [
    (3, 24, 129, 3, 5, False, True, "contiguous"),
    (1, 8, 7, 3, 20, True, False, "contiguous"),
    (3, 8, 1, 3, 1, False, False, "slice"),
    (1, 24, 33, 5, 64, True, True, "slice"),
    (3, 24, 7, 3, 3, False, True, "transposed"),
    (1, 64, 33, 3, 2, False, False, "contiguous"),
    (1, 8, 1003, 3, 256, False, True, "slice"),
]


def _wn_id(case):
    batch, c, t_len, k, d, last, skip, layout = case
    return f"B{batch}-C{c}-T{t_len}-K{k}-d{d}-{'last' if last else 'mid'}-{'skip' if skip else 'noskip'}-{layout}"


@pytest.mark.parametrize("case", WN_CASES, ids=lambda c: _wn_id(c))
def test_wn_layer_fp32_forward_and_gradients_match_reference(case, launches):
    batch, c, t_len, k, d, last, skip, layout = case
    inputs = wn_inputs(batch, c, t_len, k, last, skip, layout=layout)
    leaves = _leaves(inputs)
    got = wn_layer(*inputs, dilation=d, last=last)
    assert (launches("gate_kernel"), launches("res_skip_kernel")) == (1, 1)
    want = wn_layer_ref(*inputs, d, last)[:2]  # (audio, skip); the op keeps its preact to itself
    for g, w in zip(got, want):
        assert_close_fp32(g, w)

    upstream = [_grad(batch, c, t_len, torch.float32, layout) for _ in range(2)]
    got_grads = torch.autograd.grad(got, leaves, upstream)
    # The gate's backward, grad_audio's transposed conv, then grad-weight reductions: in_w, and rs_w as
    # one launch per half of rs (one half when last).
    assert (launches("gate_backward_kernel"), launches("grad_audio_kernel"), launches("conv_kernel")) == (1, 1, 0)
    assert launches("grad_weight_kernel") == (2 if last else 3)
    for g, w in zip(got_grads, torch.autograd.grad(want, leaves, upstream)):
        assert_close_fp32(g, w)


# (batch, C, T, dilation, last, skip given)
WN_LOW_CASES = [(2, 24, 33, 3, False, True), (1, 8, 129, 64, True, False)]


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("case", WN_LOW_CASES, ids=str)
def test_wn_layer_low_precision_error_at_most_twice_eager(case, dtype):
    batch, c, t_len, d, last, skip = case
    inputs = wn_inputs(batch, c, t_len, 3, last, skip, dtype)
    inputs64 = tuple(f64(t) for t in inputs)
    got, eager, ref64 = (fn(*x, d, last, True) for fn, x in ((WN.wn_layer_triton, inputs), (wn_layer_ref, inputs),
                                                              (wn_layer_ref, inputs64)))
    for name, out, e, r64 in zip(("audio", "skip", "preact"), got, eager, ref64):
        assert_within_twice_eager(name, out, e, r64, dtype)

    grads = [torch.randn(batch, c, t_len).to(dtype) for _ in range(2)]
    audio, in_w, rs_w = inputs[0], inputs[3], inputs[5]
    # Each side's backward from its own forward's preact (the eager one from eager's, fp64 from fp64's).
    names = ("grad_audio", "grad_cond", "grad_in_w", "grad_in_b", "grad_rs_w", "grad_rs_b")
    got = WN.wn_layer_backward_triton(*grads, audio, got[2], in_w, rs_w, d, last)
    eager = wn_layer_backward_ref(*grads, audio, eager[2], in_w, rs_w, d, last)
    ref64 = wn_layer_backward_ref(*(f64(g) for g in grads), f64(audio), ref64[2], f64(in_w), f64(rs_w), d, last)
    for name, out, e, r64 in zip(names, got, eager, ref64):
        assert_within_twice_eager(name, out, e, r64, dtype)


@pytest.mark.parametrize("case", WN_CASES[:5], ids=lambda c: _wn_id(c))
def test_wn_layer_keep_preact_writes_the_references_preact(case, launches):
    """keep_preact: the gate kernel also stores a = in-conv + in_b + cond as [B, 2C, T] (the reference's
    preact, the backward's input); without it the third output is empty, as the reference's."""
    batch, c, t_len, k, d, last, skip, layout = case
    inputs = wn_inputs(batch, c, t_len, k, last, skip, layout=layout)
    audio_out, skip_out, preact = WN.wn_layer_triton(*inputs, d, last, True)
    want = wn_layer_ref(*inputs, d, last, True)
    assert preact.shape == (batch, 2 * c, t_len) and preact.dtype == torch.float32
    for g, w in zip((audio_out, skip_out, preact), want):
        assert_close_fp32(g, w)
    without = WN.wn_layer_triton(*inputs, d, last)
    assert without[2].numel() == 0 and without[2].dtype == want[2].dtype
    for g, w in zip(without[:2], want[:2]):
        assert_close_fp32(g, w)
    assert launches("gate_kernel") == 2

    # The backward from a strided preact (the kernel reads it through its strides) gives what the
    # reference gives from the same preact.
    strided = torch.empty(batch, 2 * c, 2 * t_len)[:, :, ::2].copy_(want[2])
    grads = [_grad(batch, c, t_len, torch.float32, layout) for _ in range(2)]
    bwd = (inputs[0], strided, inputs[3], inputs[5], d, last)
    for g, w in zip(WN.wn_layer_backward_triton(*grads, *bwd), wn_layer_backward_ref(*grads, *bwd)):
        assert_close_fp32(g, w)
    assert launches("gate_backward_kernel") == 1


def test_wn_layer_backward_without_preact_raises_the_references_error():
    inputs = wn_inputs(1, 8, 9, 3, False, True)
    empty = WN.wn_layer_triton(*inputs, 1, False)[2]
    args = (torch.randn(1, 8, 9), torch.randn(1, 8, 9), inputs[0], empty, inputs[3], inputs[5], 1, False)
    with pytest.raises(RuntimeError) as want:
        wn_layer_backward_ref(*args)
    with pytest.raises(RuntimeError) as got:
        WN.wn_layer_backward_triton(*args)
    assert str(got.value) == str(want.value)


# ----------------------------------------------------------------------------------- affine_coupling

# (batch, n, T, x dtype, wn_out dtype, layout)
COUPLING_CASES = [
    (3, 4, 129, torch.float32, torch.float32, "contiguous"),
    (1, 2, 1, torch.float32, torch.float32, "slice"),
    (3, 3, 7, torch.float32, torch.float32, "transposed"),
    (1, 4, 1003, torch.float32, torch.float32, "slice"),
    (3, 4, 33, torch.float32, torch.float16, "contiguous"),  # the model's fp32 audio next to an fp16 WN
]


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("case", COUPLING_CASES, ids=str)
def test_affine_coupling_forward_and_gradients_match_reference(case, reverse, launches):
    batch, n, t_len, x_dtype, wn_dtype, layout = case
    x = random_x(batch, n, t_len, x_dtype, layout)
    wn_out = random_x(batch, 2 * n, t_len, wn_dtype, layout)
    leaves = _leaves((x, wn_out))
    got = affine_coupling(x, wn_out, reverse)
    assert launches("coupling_kernel") == 1
    want = affine_coupling_ref(x, wn_out, reverse)
    assert_close_fp32(got, want)
    upstream = _grad(batch, n, t_len, x_dtype, layout)
    got_grads = torch.autograd.grad(got, leaves, upstream)
    assert launches("coupling_backward_kernel") == 1
    for g, w in zip(got_grads, torch.autograd.grad(want, leaves, upstream)):
        assert g.dtype == w.dtype
        # fp16 grad_wn_out: the fp32 values agree to an ulp or so (numpy's exp vs torch's), which can round
        # to neighbouring fp16 values: one fp16 ulp allowed there.
        rtol = 1e-5 if w.dtype == torch.float32 else torch.finfo(w.dtype).eps
        torch.testing.assert_close(g.float(), w.float(), rtol=rtol, atol=1e-5 * w.abs().max().item())


def _check_low(name, out, eager, ref64):
    """2x eager's error for 16-bit results; fp32 results (an fp32 x next to a 16-bit wn_out) within 1e-5."""
    if out.dtype == torch.float32:
        assert_close_fp32(out, eager)
    else:
        assert_within_twice_eager(name, out, eager, ref64, out.dtype)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # the interpreter's fp16 inf
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("x_dtype,wn_dtype", [(torch.float16, torch.float16), (torch.bfloat16, torch.bfloat16),
                                              (torch.float32, torch.bfloat16)], ids=str)
def test_affine_coupling_low_precision_error_at_most_twice_eager(x_dtype, wn_dtype, reverse):
    x = torch.randn(3, 4, 129).to(x_dtype)
    wn_out = torch.randn(3, 8, 129).to(wn_dtype)
    wn_out[:, 4:, :7] = 12.0  # exp(12) > fp16's max: the math must stay in fp32 (inf only in an fp16 result)
    g = torch.randn(3, 4, 129).to(x_dtype)
    outs = [(("y",), (AC.affine_coupling_triton(x, wn_out, reverse),), (affine_coupling_ref(x, wn_out, reverse),),
             (affine_coupling_ref(f64(x), f64(wn_out), reverse),)),
            (("grad_x", "grad_wn_out"), AC.affine_coupling_backward_triton(g, x, wn_out, reverse),
             affine_coupling_backward_ref(g, x, wn_out, reverse),
             affine_coupling_backward_ref(f64(g), f64(x), f64(wn_out), reverse))]
    for names, got, eager, ref64 in outs:
        for name, out, e, r64 in zip(names, got, eager, ref64):
            assert out.dtype == e.dtype, name
            finite = torch.isfinite(e)
            assert torch.equal(finite, torch.isfinite(out)), name  # overflow exactly where the reference's does
            _check_low(name, out[finite], e[finite], r64[finite])


# -------------------------------------------------------------------------------- invertible_conv1x1

def _orthogonal(c, dtype=torch.float32):
    """WaveGlow's initialisation: a random orthogonal matrix with det +1, perturbed so W^-1 != W^T."""
    q = torch.linalg.qr(torch.randn(c, c))[0]
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return (q + 0.1 * torch.randn(c, c)).unsqueeze(-1).to(dtype)


# (batch, c, T, layout)
MIX_CASES = [(3, 8, 129, "contiguous"), (1, 6, 1, "slice"), (3, 4, 7, "transposed"), (1, 8, 1003, "slice"),
             (3, 2, 33, "contiguous")]


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("case", MIX_CASES, ids=str)
def test_invertible_conv1x1_forward_and_gradients_match_reference(case, reverse, launches):
    batch, c, t_len, layout = case
    x = random_x(batch, c, t_len, torch.float32, layout)
    w = _orthogonal(c + 1)[1:, 1:] if layout == "slice" else _orthogonal(c)  # a strided weight too
    leaves = _leaves((x, w))
    y, log_det = invertible_conv1x1(x, w, reverse)
    assert launches("mix_kernel") == 1
    want_y, want_log_det = invertible_conv1x1_ref(x, w, reverse)
    assert_close_fp32(y, want_y)
    torch.testing.assert_close(log_det, want_log_det, rtol=0, atol=0)  # the same torch slogdet
    upstream = (_grad(batch, c, t_len, torch.float32, layout), torch.randn(()))
    got_grads = torch.autograd.grad((y, log_det), leaves, upstream)
    assert (launches("mix_kernel"), launches("outer_kernel")) == (2, 1)  # + grad_x, the g x^T reduction
    for g, w_ in zip(got_grads, torch.autograd.grad((want_y, want_log_det), leaves, upstream)):
        assert_close_fp32(g, w_)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("x_dtype,w_dtype", [(torch.float16, torch.float16), (torch.bfloat16, torch.bfloat16),
                                             (torch.bfloat16, torch.float32)], ids=str)
def test_invertible_conv1x1_low_precision_error_at_most_twice_eager(x_dtype, w_dtype, reverse):
    x = torch.randn(3, 8, 129).to(x_dtype)
    w = _orthogonal(8, w_dtype)
    y, log_det = IC.invertible_conv1x1_triton(x, w, reverse)
    eager_y, eager_log_det = invertible_conv1x1_ref(x, w, reverse)
    assert log_det.dtype == eager_log_det.dtype == torch.float32
    torch.testing.assert_close(log_det, eager_log_det, rtol=0, atol=0)
    # fp64 on the same rounded inputs; the forward product's weights rounded to x's dtype, as the contract says.
    w64 = w.double() if reverse else w.to(x_dtype).double()
    assert_within_twice_eager("y", y, eager_y, invertible_conv1x1_ref(x.double(), w64, reverse)[0], x_dtype)
    g, g_log_det = torch.randn(3, 8, 129).to(x_dtype), torch.randn(())
    got = IC.invertible_conv1x1_backward_triton(g, g_log_det, x, w, reverse)
    eager = invertible_conv1x1_backward_ref(g, g_log_det, x, w, reverse)
    ref64 = invertible_conv1x1_backward_ref(f64(g), f64(g_log_det), f64(x), f64(w), reverse)
    for name, out, e, r64, dtype in zip(("grad_x", "grad_w"), got, eager, ref64, (x_dtype, w_dtype)):
        assert_within_twice_eager(name, out, e, r64, dtype)


# ----------------------------------------------------------------------------------------- all three

def test_fp64_runs_the_reference_on_the_triton_path(launches, monkeypatch):
    """fp64 (gradcheck's dtype) is no Triton kernel dtype here: the references serve it, with one warning
    per op, and no kernel launches."""
    from vocoder_ext.kernels import _launch
    monkeypatch.setattr(_launch, "_FP64_WARNED", set())
    inputs = _leaves(wn_inputs(1, 2, 5, 3, False, True, torch.float64))
    with pytest.warns(RuntimeWarning, match="Triton kernels of wn_layer take fp32/fp16/bf16"):
        got = wn_layer(*inputs, dilation=2)
    for g, want in zip(got, wn_layer_ref(*inputs, 2, False)):
        torch.testing.assert_close(g, want, rtol=0, atol=0)
    assert torch.autograd.gradcheck(lambda *a: wn_layer(*a, dilation=2), inputs)
    x, wn_out = _leaves((torch.randn(1, 2, 5, dtype=torch.float64), torch.randn(1, 4, 5, dtype=torch.float64)))
    with pytest.warns(RuntimeWarning, match="affine_coupling"):
        assert torch.autograd.gradcheck(affine_coupling, (x, wn_out))
    x, w = _leaves((torch.randn(1, 4, 5, dtype=torch.float64), _orthogonal(4, torch.float64)))
    with pytest.warns(RuntimeWarning, match="invertible_conv1x1"):
        assert torch.autograd.gradcheck(lambda a, b: invertible_conv1x1(a, b, True), (x, w))
    assert not any(launches(k) for k in ("gate_kernel", "gate_backward_kernel", "coupling_kernel",
                                         "coupling_backward_kernel", "mix_kernel", "outer_kernel"))


def test_bad_inputs_of_the_kernels_raise_clear_errors():
    x = torch.randn(1, 4, 9)
    with pytest.raises(TypeError, match="support"):
        WN.wn_layer_triton(*wn_inputs(1, 4, 9, 3, False, True, torch.float64), 1, False)
    with pytest.raises(TypeError, match="support"):
        AC.affine_coupling_triton(x, torch.randn(1, 8, 9, dtype=torch.float64))
    with pytest.raises(ValueError, match="at most 16 channels"):
        IC.invertible_conv1x1_triton(torch.randn(1, 17, 9), torch.randn(17, 17, 1))


def test_static_report_variants_cover_every_waveglow_kernel_constexpr():
    """static_compile lists each WaveGlow kernel's constexprs (flags + DOT_DTYPE + the tile's blocks) and
    pointers, as test_static_report checks for the HiFi-GAN kernels (read from the source: no compile)."""
    from vocoder_ext.cli.bench import static_compile as C
    folder = pathlib.Path(importlib.util.find_spec("vocoder_ext.kernels").submodule_search_locations[0])
    def functions(module):
        tree = ast.parse((folder / f"{module}.py").read_text())
        return {f.name: [(a.arg, ast.unparse(a.annotation) if a.annotation else None) for a in f.args.args]
                for f in tree.body if isinstance(f, ast.FunctionDef)}

    reused = functions("lrelu_conv1d")  # wn_layer's grad_audio runs lrelu_conv1d's _conv_kernel
    seen = set()
    for module in C.WAVEGLOW_KERNEL_MODULES:
        params = functions(module)
        kernels = {name for name in params if name.endswith("_kernel")}
        for mod, kernel, variant, pointers, flags, _ in C._variants():
            if mod != module:
                continue
            seen.add((module, kernel))
            args = params[kernel] if kernel in params else reused[kernel]
            constexprs = {n for n, ann in args if ann == "tl.constexpr"}
            config = getattr(importlib.import_module(f"vocoder_ext.kernels.{module}"),
                             C._CONFIG_LISTS.get((module, kernel)) or C._CONFIG_LISTS[kernel])
            blocks = set((config["fp16"] if isinstance(config, dict) else config)[0].kwargs)
            assert constexprs - {"DOT_DTYPE"} - blocks == set(flags), (kernel, variant)
            assert {n for n, _ in args if n.endswith("_ptr")} == set(pointers), (kernel, variant)
        assert {(module, k) for k in kernels} <= seen, module


def test_waveglow_kernels_compile_for_sm90_without_spills():
    """The interpreter is lenient; the compiler is not: each WaveGlow kernel (first variant, first config)
    lowers to sm_90 through ptxas, in a child process without TRITON_INTERPRET, and spills nothing."""
    from vocoder_ext.cli.bench import static as S
    from vocoder_ext.cli.bench import static_compile as C
    if C.find_ptxas() is None:
        pytest.skip("no ptxas found ($PTXAS, $CUDA_HOME/bin, /usr/local/cuda/bin or PATH)")
    result = S.report(first_config=True, variant_per_kernel=True, targets=(90,), dtypes=("fp16",), workers=1,
                      kernels=list(C.WAVEGLOW_KERNEL_MODULES), timeout_s=240)
    rows = result["rows"]
    assert {(r["module"], r["kernel"]) for r in rows} == {
        ("wn_layer", "_gate_kernel"), ("wn_layer", "_res_skip_kernel"), ("wn_layer", "_gate_backward_kernel"),
        ("wn_layer", "_conv_kernel"),
        ("affine_coupling", "_coupling_kernel"), ("affine_coupling", "_coupling_backward_kernel"),
        ("invertible_conv1x1", "_mix_kernel"), ("invertible_conv1x1", "_outer_kernel")}
    for r in rows:
        assert r["status"] == "ok" and r["ptxas_arch"] == "sm_90a", r
        assert r["spill_stores"] == 0 and r["spill_loads"] == 0, r

"""Triton conv1d_lrelu kernels (forward, grad_x, grad_w, grad_b) vs the eager reference, on CPU via
TRITON_INTERPRET=1 (conftest.py sets it before anything imports triton, so the kernel module imports
interpreted), and the op and the fused discriminators on VOCODER_EXT_BACKEND=triton.

The interpreter config has 16-wide tiles on every axis; the shapes below run every blocked axis across at
least two blocks (channels, the flattened (channel, tap) reductions, time x columns) where the case allows.
"""
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from gpu_checks_discriminators import _losses, _run  # the GPU check's loss over every output, and its pass
from triton_helpers import cdiv, check_close, count_kernels, f64, random_x

from vocoder_ext import ops
from vocoder_ext.kernels import conv1d_lrelu as K
from vocoder_ext.ops.conv1d_lrelu import conv1d_lrelu_backward_ref, conv1d_lrelu_ref

assert K.INTERPRET, "the kernel module under test must have been imported with TRITON_INTERPRET=1"

KERNELS = ("conv_kernel", "grad_x_kernel", "grad_weight_kernel")


@pytest.fixture
def launches(monkeypatch):
    return count_kernels(monkeypatch, K, KERNELS)


def _x(batch, c_in, t_len, cols, dtype, layout):
    """[B, C, T] (cols 0) or [B, C, T, W]. layout: triton_helpers.random_x's for 3-D; for 4-D "slice" (a view
    of a longer row, as the MPD's fold of sliced audio), "contiguous", or "transposed" (stored [B, C, W, T])."""
    if not cols:
        return random_x(batch, c_in, t_len, dtype, layout)
    if layout == "transposed":
        return torch.randn(batch, c_in, cols, t_len).to(dtype).transpose(2, 3)
    x = random_x(batch, c_in, t_len * cols, dtype, "slice" if layout == "slice" else "contiguous")
    return x.unflatten(2, (t_len, cols))


def _inputs(case, dtype=torch.float32):
    batch, c_in, c_out, k, stride, padding, groups, slope, t_len, cols, bias, layout = case
    x = _x(batch, c_in, t_len, cols, dtype, layout)
    cg = c_in // groups
    if layout == "contiguous":
        w = torch.randn(c_out, cg, k)
    else:  # a weight with non-unit tap stride too
        w = torch.randn(c_out, k, cg).transpose(1, 2)
    w = (w / (cg * k) ** 0.5).to(dtype)  # scaled like a trained conv
    b = (0.1 * torch.randn(c_out)).to(dtype) if bias else None
    return x, w, b, (stride, padding, groups, slope)


def _grad_out(y, layout):
    if layout == "contiguous":
        return torch.randn_like(y)
    return torch.randn(*y.shape[:-1], 2 * y.shape[-1]).to(y.dtype)[..., ::2]  # a strided upstream gradient


# (batch, C_in, C_out, K, stride, padding, groups, slope, T, W (0: a 3-D x), bias, layout)
CASES = [
    (2, 16, 32, 5, 1, 2, 1, 0.1, 37, 0, True, "contiguous"),     # 'same' padding, dense
    (1, 32, 32, 41, 4, 20, 16, 0.1, 37, 0, True, "slice"),       # the MSD's grouped k=41 layers, stride 4
    (1, 16, 32, 41, 2, 20, 4, 0.1, 33, 0, False, "transposed"),  # groups 4, stride 2, no bias
    (1, 32, 32, 15, 3, 0, 4, 0.1, 50, 0, True, "contiguous"),    # padding 0, stride 3
    (2, 32, 17, 3, 1, 1, 1, 1.0, 33, 0, True, "slice"),          # slope 1 (conv_post), odd C_out
    (1, 16, 16, 3, 4, 1, 1, 0.1, 29, 0, True, "contiguous"),     # stride > K: a phase of x no tap reaches
    (3, 5, 7, 3, 4, 4, 1, 0.1, 1, 0, True, "contiguous"),        # T = 1, padding > T
    (2, 1, 32, 5, 3, 2, 1, 0.1, 23, 2, True, "slice"),           # the MPD's first layer, 2 columns
    (1, 16, 32, 5, 3, 2, 1, 0.1, 12, 5, True, "transposed"),     # 5 columns, stored column-major
    (2, 32, 16, 7, 1, 3, 4, 0.1, 9, 3, False, "contiguous"),     # columns with groups
    (1, 16, 16, 3, 2, 20, 1, 1.0, 7, 1, True, "slice"),          # one column (4-D), padding 20 > T
]


def _case_id(case):
    batch, c_in, c_out, k, stride, padding, groups, slope, t_len, cols, bias, layout = case
    return (f"B{batch}-ci{c_in}-co{c_out}-K{k}-s{stride}-p{padding}-g{groups}-slope{slope}-T{t_len}-W{cols}-"
            f"{'bias' if bias else 'nobias'}-{layout}")


def _check_case(case, dtype):
    x, w, b, args = _inputs(case, dtype)
    y = K.conv1d_lrelu_triton(x, w, b, *args)
    check_close("y", y, conv1d_lrelu_ref(x, w, b, *args), conv1d_lrelu_ref(f64(x), f64(w), f64(b), *args), dtype)
    g = _grad_out(y, case[-1])
    # The backward reads leaky' off `out`: every path gets the kernel's own y (rounded alike).
    got = K.conv1d_lrelu_backward_triton(g, y, x, w, *args)
    eager = conv1d_lrelu_backward_ref(g, y, x, w, *args)
    ref64 = conv1d_lrelu_backward_ref(f64(g), f64(y), f64(x), f64(w), *args)
    for name, out, e, r in zip(("grad_x", "grad_w", "grad_b"), got, eager, ref64):
        assert out.shape == r.shape, (name, out.shape, r.shape)
        check_close(name, out, e, r, dtype)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_forward_and_gradients_fp32_match_reference(case, launches):
    _check_case(case, torch.float32)
    assert [len(launches[n].grids) for n in KERNELS] == [1, 1, 1]  # everything came out of the kernels
    batch, c_in, c_out, _, stride, _, groups, *_ = case
    assert launches["conv_kernel"].grids[0][1:] == (cdiv(c_out // groups, 16), batch * groups)
    assert launches["grad_x_kernel"].grids[0][1:] == (stride * cdiv(c_in // groups, 16), batch * groups)


# The reductions here are >= 16 products deep: over fewer, 2x eager's max error is a coin toss, not a check.
LOW_PRECISION_CASES = [
    (2, 16, 32, 5, 2, 2, 1, 0.1, 37, 0, True, "slice"),
    (1, 16, 16, 21, 2, 10, 4, 0.1, 37, 0, True, "contiguous"),
    (2, 16, 16, 5, 3, 2, 1, 0.1, 11, 3, False, "slice"),
]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", LOW_PRECISION_CASES, ids=_case_id)
def test_low_precision_error_at_most_twice_eager(case, dtype, launches):
    """Kernel error vs an fp64 reference (on the same rounded inputs) <= 2x eager PyTorch's + 0.1 ulp."""
    _check_case(case, dtype)
    assert all(launches[n].grids for n in KERNELS)


# The fp32 tile sets a GPU runs (gpu_checks launches the first of each set alone), on the structure of the
# MPD's 1024-channel layer (K 5, stride 1, padding 2, a sliced 2-column view, T not a multiple of the tile)
# scaled down: several C_in tiles, a (channel, tap) reduction over many BLOCK_CI chunks with a partial last
# one (og * K = 280 = 17.5 x 16), time x columns tiles that do (W 2) and do not (W 3) align to W, a stride-3
# layer's phases. The interpreter's own 16-wide tiles (CASES) cannot show an indexing slip that needs a
# 64- or 128-wide tile.
GPU_TILE_CASES = [
    (2, 48, 56, 5, 1, 2, 1, 0.1, 37, 2, True, "slice"),
    (1, 40, 56, 5, 3, 2, 1, 0.1, 61, 3, True, "slice"),
]


@pytest.mark.parametrize("config", range(3), ids=lambda i: f"fp32-config{i}")
@pytest.mark.parametrize("case", GPU_TILE_CASES, ids=_case_id)
def test_gpu_fp32_tile_sets_match_reference(case, config, monkeypatch):
    from vocoder_ext.kernels._tiles import CONV1D_LRELU_CONFIGS
    tiles = CONV1D_LRELU_CONFIGS["fp32"]
    if config >= len(tiles):
        pytest.skip(f"the fp32 set has {len(tiles)} configs")
    monkeypatch.setattr(K, "INTERPRETER_CONV1D_LRELU_CONFIG", dict(tiles[config].kwargs))
    _check_case(case, torch.float32)


def test_backward_takes_leaky_derivative_from_the_given_out():
    """grad_x/grad_w/grad_b use the sign of the `out` passed in, and nothing else: flip the sign of one
    output and the gradients move by exactly that output's term, (1 - slope) * g * its weight column (grad_x
    at the K input positions it reads, for every input channel). This is how an fp32 output within rounding
    of 0 (|pre-activation| ~ 1e-8..1e-6, about one per 10^6 outputs) gets the other sign than an fp64
    reference: gradients vs a reference that takes leaky' from its *own* fp64 output then differ by one
    weight x grad product (~1e-2 for 1024x5 reductions), which is what a GPU check reported for the
    (2, 1024, 1024, 5, 1, 2, 1, 0.1, 303, 2) case, not a kernel error. Compare with the same `out` (as
    _check_case does)."""
    x, w, b, args = _inputs((1, 16, 32, 5, 1, 2, 1, 0.1, 19, 2, True, "slice"))
    stride, padding, _, slope = args
    y = K.conv1d_lrelu_triton(x, w, b, *args)
    g = torch.randn_like(y)
    co, t_out, col = 5, 7, 1
    flipped = y.clone()
    flipped[0, co, t_out, col] = -y[0, co, t_out, col]
    base = K.conv1d_lrelu_backward_triton(g, y, x, w, *args)
    got = K.conv1d_lrelu_backward_triton(g, flipped, x, w, *args)
    ref64 = conv1d_lrelu_backward_ref(f64(g), f64(flipped), f64(x), f64(w), *args)
    for name, out, r in zip(("grad_x", "grad_w", "grad_b"), got, ref64):
        check_close(name, out, None, r, torch.float32)
    # The difference: one output's term, scaled by +-(1 - slope).
    gv = g[0, co, t_out, col].double()
    term = (1 - slope) * gv * (1 if y[0, co, t_out, col] > 0 else -1)
    want_dx = torch.zeros_like(f64(x))
    for k in range(w.shape[2]):
        t_in = t_out * stride + k - padding
        if 0 <= t_in < x.shape[2]:
            want_dx[0, :, t_in, col] = -term * f64(w)[co, :, k]
    torch.testing.assert_close(f64(got[0]) - f64(base[0]), want_dx, rtol=0, atol=1e-6)
    want_db = torch.zeros(w.shape[0], dtype=torch.float64)
    want_db[co] = -term
    torch.testing.assert_close(f64(got[2]) - f64(base[2]), want_db, rtol=0, atol=1e-6)

def test_grad_weight_of_a_long_input_is_split_over_time(launches):
    # Few channels and taps, many outputs: the reduction runs in chunks added up afterwards.
    case = (2, 16, 16, 3, 1, 1, 1, 0.1, 200, 0, True, "contiguous")
    _check_case(case, torch.float32)
    splits, _ = K.time_splits(1, 200, torch.device("cpu"), 16)
    assert splits > 1 and launches["grad_weight_kernel"].grids == [(1, 3, splits)]


def test_op_on_the_triton_backend_runs_the_kernels_with_autograd(launches, monkeypatch):
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "triton")
    x, w, b, args = _inputs((2, 16, 32, 5, 2, 2, 4, 0.1, 33, 0, True, "slice"))
    leaves = [t.detach().requires_grad_() for t in (x, w, b)]
    y = ops.conv1d_lrelu(*leaves, *args)
    assert len(launches["conv_kernel"].grids) == 1
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, leaves, g)
    assert len(launches["grad_x_kernel"].grids) == 1 and len(launches["grad_weight_kernel"].grids) == 1
    eager = [t.detach().double().requires_grad_() for t in (x, w, b)]
    want = conv1d_lrelu_ref(*eager, *args)
    check_close("y", y, None, want.detach(), torch.float32)
    for name, got, exp in zip("xwb", grads, torch.autograd.grad(want, eager, g.double())):
        check_close(f"grad {name}", got, None, exp, torch.float32)


def test_fp64_on_the_triton_backend_runs_the_reference(launches, monkeypatch):
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "triton")
    x, w, b, args = _inputs((1, 16, 16, 5, 2, 2, 4, 0.1, 19, 0, True, "contiguous"), torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # said once per op: "fp64 inputs run the eager reference"
        y = ops.conv1d_lrelu(x, w, b, *args)
    torch.testing.assert_close(y, conv1d_lrelu_ref(x, w, b, *args))
    assert not launches["conv_kernel"].grids


def test_bad_inputs_raise_clear_errors():
    x, w, b, args = _inputs((1, 8, 8, 3, 1, 1, 2, 0.1, 9, 0, True, "contiguous"))
    with pytest.raises(TypeError, match="supports"):
        K.conv1d_lrelu_triton(x.double(), w.double(), b.double(), *args)
    with pytest.raises(TypeError, match="bias: expected dtype torch.float32"):
        K.conv1d_lrelu_triton(x, w, b.half(), *args)
    with pytest.raises(ValueError, match="groups=4"):
        K.conv1d_lrelu_triton(x, w, b, 1, 1, 4, 0.1)
    with pytest.raises(ValueError, match="stride"):
        K.conv1d_lrelu_triton(x, w, b, 0, 1, 2, 0.1)
    with pytest.raises(ValueError, match="slope"):
        K.conv1d_lrelu_triton(x, w, b, 1, 1, 2, 0.0)
    with pytest.raises(ValueError, match="shorter than the kernel"):
        K.conv1d_lrelu_triton(x[..., :1], w, b, 1, 0, 2, 0.1)
    y = K.conv1d_lrelu_triton(x, w, b, *args)
    with pytest.raises(ValueError, match="grad_out: expected shape"):
        K.conv1d_lrelu_backward_triton(y[..., :-1], y, x, w, *args)
    with pytest.raises(ValueError, match="out: expected shape"):
        K.conv1d_lrelu_backward_triton(y, y.half(), x, w, *args)


def test_every_dot_tile_is_at_least_16_deep():
    """tl.dot's inner size must be >= 16 for Triton 3.6 on a GPU (see _tiles.py): the conv kernels' depth is
    BLOCK_CI (a block of the flattened (channel, tap) reduction), the weight gradient's BLOCK_T."""
    from vocoder_ext.kernels import _tiles as T
    for name, depth in (("CONV1D_LRELU_CONFIGS", "BLOCK_CI"), ("CONV1D_LRELU_GRAD_WEIGHT_CONFIGS", "BLOCK_T")):
        for width, configs in getattr(T, name).items():
            assert configs and all(c.kwargs[depth] >= 16 for c in configs), (name, width)
    assert all(v >= 16 for v in T.INTERPRETER_CONV1D_LRELU_CONFIG.values())


def test_compiles_for_a_gpu_without_one():
    """Without TRITON_INTERPRET the module imports on a GPU-less machine (autotuned kernels, each launch tuned
    over its operand width's set), and each kernel lowers to PTX for sm_90, fp32 and 16-bit operands: what
    only the compiler rejects (the interpreter is lenient)."""
    script = textwrap.dedent("""
        import os
        os.environ.pop("TRITON_INTERPRET", None)
        import triton, triton.language as tl
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
        import vocoder_ext.kernels.conv1d_lrelu as M
        assert not M.INTERPRET and isinstance(M.conv_kernel, triton.runtime.Autotuner)
        for kernel, configs in ((M.conv_kernel, M.CONV1D_LRELU_CONFIGS), (M.grad_x_kernel, M.CONV1D_LRELU_CONFIGS),
                                (M.grad_weight_kernel, M.CONV1D_LRELU_GRAD_WEIGHT_CONFIGS)):
            kernel.nargs = {}  # set by a launch; prune_configs hands it to the pruner
            for dot, name in ((tl.float32, "fp32"), (tl.bfloat16, "fp16")):
                assert kernel.prune_configs({"DOT_DTYPE": dot}) == configs[name], (dot, name)

        def compile(fn, pointer, flags, config):
            sig = {n: "constexpr" if p.is_constexpr else pointer if n.endswith("_ptr") else
                   "fp32" if n == "slope" else "i32" for n, p in zip(fn.arg_names, fn.params)}
            constexprs = {**flags, **config.kwargs}
            src = ASTSource(fn=fn, signature=sig,
                            constexprs={(fn.arg_names.index(n),): v for n, v in constexprs.items()})
            triton.compile(src, target=GPUTarget("cuda", 90, 32),
                           options={"num_warps": config.num_warps, "num_stages": config.num_stages})

        for pointer, dot, width in (("*fp32", tl.float32, "fp32"), ("*bf16", tl.bfloat16, "fp16")):
            compile(M._conv_kernel, pointer, dict(HAS_BIAS=True, ACTIVATED=True, DOT_DTYPE=dot),
                    M.CONV1D_LRELU_CONFIGS[width][0])
            compile(M._grad_x_kernel, pointer, dict(ACTIVATED=True, DOT_DTYPE=dot), M.CONV1D_LRELU_CONFIGS[width][0])
            compile(M._grad_weight_kernel, pointer, dict(ACTIVATED=True, DOT_DTYPE=dot),
                    M.CONV1D_LRELU_GRAD_WEIGHT_CONFIGS[width][0])
        print("compiled")
    """)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0 and "compiled" in done.stdout, done.stderr[-3000:]


def _narrowed(model, factor=8, keep=None):
    """model with every conv of every sub-discriminator replaced by one with 1/factor of its channels (the
    audio's one input channel and conv_post's one output stay): the same layer structure (kernel sizes,
    strides, paddings, groups, weight or spectral norm) and the same fused path, at a size the interpreter
    runs in seconds (the real 1024-channel layers take minutes there). keep: only the first `keep`
    sub-discriminators."""
    from vocoder_ext.models import discriminators as D

    def narrow(conv):
        c_in, c_out = (c if c == 1 else c // factor for c in (conv.in_channels, conv.out_channels))
        make = torch.nn.Conv2d if isinstance(conv, torch.nn.Conv2d) else torch.nn.Conv1d
        new = make(c_in, c_out, conv.kernel_size, conv.stride, conv.padding, groups=conv.groups)
        return (D.spectral_norm if hasattr(conv, "weight_orig") else D.weight_norm)(new)

    if keep is not None:
        model.discriminators = model.discriminators[:keep]
    for d in model.discriminators:
        d.convs = torch.nn.ModuleList(narrow(c) for c in d.convs)
        d.conv_post = narrow(d.conv_post)
    return model


@pytest.mark.parametrize("kind", ["mpd", "msd"])
def test_fused_discriminators_on_triton_equal_eager(kind, launches, monkeypatch):
    """The MPD and the MSD (narrowed: _narrowed) on tiny audio, every layer on the Triton kernels: the
    logits, feature maps and every gradient equal the eager modules' (in training mode: spectral norm's
    power iteration included). Larger interpreter tiles (still valid ones) keep the programs few: the
    interpreter's cost is per program and op, not per element."""
    monkeypatch.setattr(K, "INTERPRETER_CONV1D_LRELU_CONFIG", {"BLOCK_CO": 64, "BLOCK_CI": 128, "BLOCK_T": 64})
    from vocoder_ext.models.discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
    make = (lambda **kw: MultiPeriodDiscriminator(periods=(2, 3), **kw)) if kind == "mpd" else MultiScaleDiscriminator
    keep = None if kind == "mpd" else 1  # the MSD's first scale (spectral norm): its grouped layers run many programs
    eager = _narrowed(make(), keep=keep)
    fused = _narrowed(make(fused=True), keep=keep)
    fused.load_state_dict(eager.state_dict())
    y, y_hat = torch.randn(1, 1, 61).tanh(), torch.randn(1, 1, 61).tanh()  # odd length: the MPD pads
    want = _run(eager, y, y_hat)
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "triton")
    got = _run(fused, y, y_hat)
    assert all(launches[n].grids for n in KERNELS)
    assert len(got) == len(want)
    for i, (a, e) in enumerate(zip(got, want)):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5 * max(1.0, e.abs().max().item()), msg=f"tensor {i}")

"""The CUDA C++ backend's kernels, launchers and glue (csrc/cuda), run on the CPU through
csrc/cuda/emulate.h (see cuda_emulation.py), against the eager references: every op, forward and
backward, odd sizes and several tiles (channels > 64, steps > 64, input channels in several staged
chunks), non-contiguous inputs, fp32 and fp64, and fp16/bf16 within 2x eager's error.
"""
import importlib

import pytest
import torch

import cuda_emulation

pytestmark = pytest.mark.skipif(cuda_emulation.cuda_include_dir() is None,
                                reason="no CUDA toolkit headers to compile the CUDA sources against (set CUDA_HOME)")

conv = importlib.import_module("vocoder_ext.ops.lrelu_conv1d")
transpose = importlib.import_module("vocoder_ext.ops.lrelu_conv_transpose1d")
resblock = importlib.import_module("vocoder_ext.ops.resblock")
wn = importlib.import_module("vocoder_ext.ops.wn_layer")
affine = importlib.import_module("vocoder_ext.ops.affine_coupling")
inv = importlib.import_module("vocoder_ext.ops.invertible_conv1x1")
disc = importlib.import_module("vocoder_ext.ops.conv1d_lrelu")


@pytest.fixture(scope="module")
def emulated():
    return cuda_emulation.load()


def close(got, want, tol):
    got, want = (got,) if isinstance(got, torch.Tensor) else got, (want,) if isinstance(want, torch.Tensor) else want
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape and a.dtype == b.dtype, (i, a.shape, b.shape, a.dtype, b.dtype)
        scale = b.abs().max().item() or 1.0
        err = (a.double() - b.double()).abs().max().item()
        assert err <= tol * scale, f"output {i}: max error {err:.3g} vs {tol * scale:.3g} (peak {scale:.3g})"


def sliced(shape, dtype=torch.float32):
    """A non-contiguous tensor: every other step of a longer one."""
    *lead, t = shape
    return torch.randn(*lead, 2 * t + 1, dtype=dtype)[..., 1::2]


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("epilogue", ["none", "tanh"])
@pytest.mark.parametrize("c_in,c_out,k,dilation,t", [(30, 70, 5, 3, 131), (3, 1, 7, 1, 1), (8, 5, 11, 5, 9)])
def test_lrelu_conv1d(emulated, dtype, tol, epilogue, c_in, c_out, k, dilation, t):
    x = sliced((2, c_in, t), dtype)
    w, b = torch.randn(c_out, c_in, k, dtype=dtype) / k, torch.randn(c_out, dtype=dtype)
    r = sliced((2, c_out, t), dtype)
    close(emulated.lrelu_conv1d(x, w, b, dilation, 0.1, r, epilogue),
          conv.lrelu_conv1d_ref(x, w, b, dilation, 0.1, r, epilogue), tol)
    close(emulated.lrelu_conv1d(x, w, None, dilation, 0.2, None, epilogue),
          conv.lrelu_conv1d_ref(x, w, None, dilation, 0.2, None, epilogue), tol)
    g = sliced((2, c_out, t), dtype)
    close(emulated.lrelu_conv1d_backward(g, x, w, b, dilation, 0.1, epilogue),
          conv.lrelu_conv1d_backward_ref(g, x, w, b, dilation, 0.1, epilogue), 10 * tol)


@pytest.mark.parametrize("stride,k,padding,out_pad,t", [(8, 16, 4, 0, 13), (5, 11, 3, 0, 7), (2, 4, 1, 0, 70),
                                                        (3, 2, 0, 0, 5), (5, 10, 3, 1, 9), (3, 5, 0, 2, 6)])
def test_lrelu_conv_transpose1d(emulated, stride, k, padding, out_pad, t):
    x, w, b = sliced((2, 20, t)), torch.randn(20, 10, k) / k, torch.randn(10)
    close(emulated.lrelu_conv_transpose1d(x, w, b, stride, padding, 0.1, out_pad),
          transpose.lrelu_conv_transpose1d_ref(x, w, b, stride, padding, 0.1, out_pad), 2e-5)
    ref = transpose.lrelu_conv_transpose1d_ref(x, w, None, stride, padding, 0.1, out_pad)
    close(emulated.lrelu_conv_transpose1d(x, w, None, stride, padding, 0.1, out_pad), ref, 2e-5)
    g = torch.randn_like(ref)
    close(emulated.lrelu_conv_transpose1d_backward(g, x, w, stride, padding, 0.1, out_pad),
          transpose.lrelu_conv_transpose1d_backward_ref(g, x, w, stride, padding, 0.1, out_pad), 1e-4)


# The discriminators' layers: MSD's grouped strided k=41 convs, the MPD's (5, 1) conv (stride 3, padding 2),
# conv_post (no activation), a stride larger than K (phases of x no tap reaches).
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("c_in,c_out,k,stride,padding,groups,slope,t", [
    (32, 64, 41, 4, 20, 16, 0.1, 301), (8, 70, 5, 3, 2, 1, 0.1, 97), (12, 1, 3, 1, 1, 1, 1.0, 40),
    (6, 4, 2, 3, 0, 2, 0.2, 23)])
def test_conv1d_lrelu(emulated, dtype, tol, c_in, c_out, k, stride, padding, groups, slope, t):
    x = sliced((2, c_in, t), dtype)
    w, b = torch.randn(c_out, c_in // groups, k, dtype=dtype) / k, torch.randn(c_out, dtype=dtype)
    args = (stride, padding, groups, slope)
    y = disc.conv1d_lrelu_ref(x, w, b, *args)
    close(emulated.conv1d_lrelu(x, w, b, *args), y, tol)
    close(emulated.conv1d_lrelu(x, w, None, *args), disc.conv1d_lrelu_ref(x, w, None, *args), tol)
    g = sliced(tuple(y.shape), dtype)
    close(emulated.conv1d_lrelu_backward(g, y, x, w, *args), disc.conv1d_lrelu_backward_ref(g, y, x, w, *args),
          10 * tol)
    for mask in ([True, False, True], [False, True, False]):  # the generator step's, the discriminator step's
        got, want = (f(g, y, x, w, *args, mask) for f in (emulated.conv1d_lrelu_backward,
                                                          disc.conv1d_lrelu_backward_ref))
        assert [t.shape for t in got] == [t.shape for t in want]  # what autotune compares: [0] where masked off
        close([t for t in got if t.numel()], [t for t in want if t.numel()], 10 * tol)
    if groups == 1:  # columns [B, C, T, W]: the MPD's (K, 1) conv2d
        x4 = torch.randn(2, c_in, t // 3 + 1, 5, dtype=dtype)
        y4 = disc.conv1d_lrelu_ref(x4, w, b, *args)
        close(emulated.conv1d_lrelu(x4, w, b, *args), y4, tol)
        g4 = torch.randn_like(y4)
        close(emulated.conv1d_lrelu_backward(g4, y4, x4, w, *args), disc.conv1d_lrelu_backward_ref(g4, y4, x4, w, *args),
              10 * tol)


@pytest.mark.parametrize("group,dilations", [(2, [1, 1, 3, 1, 5, 1]), (1, [1, 3])])
def test_resblock(emulated, group, dilations):
    x, acc = sliced((2, 12, 75)), torch.randn(2, 12, 75)
    ws = [torch.randn(12, 12, 3) / 6 for _ in dilations]
    bs = [torch.randn(12) for _ in dilations]
    close(emulated.resblock(x, ws, bs, dilations, group, 0.1, acc, 0.5),
          resblock.resblock_ref(x, ws, bs, dilations, group, 0.1, acc, 0.5), 2e-5)
    close(emulated.resblock(x, ws, bs, dilations, group, 0.1, None, 1.0),
          resblock.resblock_ref(x, ws, bs, dilations, group, 0.1, None, 1.0), 2e-5)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("last", [False, True])
@pytest.mark.parametrize("with_skip", [False, True])
def test_wn_layer(emulated, dtype, tol, last, with_skip):
    c, t, dilation = 40, 77, 4  # 2C = 80 rows: two channel tiles
    audio = sliced((2, c, t), dtype)
    skip = torch.randn(2, c, t, dtype=dtype) if with_skip else None
    cond = torch.randn(2, 6 * c, t, dtype=dtype)[:, 2 * c:4 * c]  # a layer's slice of the flow's conditioning
    in_w, in_b = torch.randn(2 * c, c, 3, dtype=dtype) / 8, torch.randn(2 * c, dtype=dtype)
    rows = c if last else 2 * c
    rs_w, rs_b = torch.randn(rows, c, 1, dtype=dtype) / 6, torch.randn(rows, dtype=dtype)
    args = (audio, skip, cond, in_w, in_b, rs_w, rs_b, dilation, last, True)
    got, want = emulated.wn_layer(*args), wn.wn_layer_ref(*args)
    close(got, want, tol)
    grad_audio, grad_skip = torch.randn(2, c, t, dtype=dtype), sliced((2, c, t), dtype)
    bargs = (grad_audio, grad_skip, audio, want[2], in_w, rs_w, dilation, last)
    close(emulated.wn_layer_backward(*bargs), wn.wn_layer_backward_ref(*bargs), 20 * tol)
    assert emulated.wn_layer(*args[:-1], False)[2].numel() == 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_within_twice_eager_error(emulated, dtype):
    """fp16/bf16 I/O, fp32 accumulation: error vs fp64 no worse than 2x eager PyTorch's at that dtype."""
    def errors(kernel, reference, *args):
        exact = reference(*(a.double() if isinstance(a, torch.Tensor) else a for a in args))
        low = tuple(a.to(dtype) if isinstance(a, torch.Tensor) else a for a in args)
        ours, eager = kernel(*low), reference(*low)
        ours, eager, exact = [(v,) if isinstance(v, torch.Tensor) else v for v in (ours, eager, exact)]
        for o, e, x in zip(ours, eager, exact):
            if x.numel():
                assert o.dtype == dtype
                err, eager_err = (o.double() - x).abs().max().item(), (e.double() - x).abs().max().item()
                assert err <= 2 * eager_err + 1e-3 * x.abs().max().item(), (err, eager_err)

    x, w, b, r = torch.randn(2, 30, 70), torch.randn(20, 30, 5) / 5, torch.randn(20), torch.randn(2, 20, 70)
    errors(emulated.lrelu_conv1d, conv.lrelu_conv1d_ref, x, w, b, 3, 0.1, r, "tanh")
    errors(emulated.lrelu_conv1d_backward, conv.lrelu_conv1d_backward_ref, torch.randn(2, 20, 70), x, w, b, 3, 0.1,
           "none")
    c = 16
    audio, cond = torch.randn(2, c, 50), torch.randn(2, 2 * c, 50)
    in_w, in_b, rs_w, rs_b = torch.randn(2 * c, c, 3) / 8, torch.randn(2 * c), torch.randn(2 * c, c, 1) / 4, torch.randn(2 * c)
    errors(emulated.wn_layer, wn.wn_layer_ref, audio, None, cond, in_w, in_b, rs_w, rs_b, 2, False, True)
    x, o = torch.randn(2, 4, 50), torch.randn(2, 8, 50) / 2
    errors(emulated.affine_coupling, affine.affine_coupling_ref, x, o, False)


@pytest.mark.parametrize("reverse", [False, True])
def test_affine_coupling(emulated, reverse):
    x, o = sliced((2, 4, 301)), torch.randn(2, 8, 301) / 2
    close(emulated.affine_coupling(x, o, reverse), affine.affine_coupling_ref(x, o, reverse), 2e-6)
    g = torch.randn(2, 4, 301)
    close(emulated.affine_coupling_backward(g, x, o, reverse), affine.affine_coupling_backward_ref(g, x, o, reverse), 2e-6)


@pytest.mark.parametrize("reverse", [False, True])
def test_invertible_conv1x1(emulated, reverse):
    x = sliced((3, 8, 130))
    w = (torch.randn(8, 8) / 3 + torch.eye(8)).unsqueeze(-1)  # log|det W| well away from 0
    close(emulated.invertible_conv1x1(x, w, reverse), inv.invertible_conv1x1_ref(x, w, reverse), 2e-5)
    g, gl = torch.randn(3, 8, 130), torch.randn(())
    close(emulated.invertible_conv1x1_backward(g, gl, x, w, reverse),
          inv.invertible_conv1x1_backward_ref(g, gl, x, w, reverse), 5e-5)


def test_bad_input_says_what_was_expected(emulated):
    x, w = torch.randn(1, 4, 9), torch.randn(5, 3, 3)
    with pytest.raises(RuntimeError, match=r"lrelu_conv1d: weight must be \[C_out, 4, K\], got shape \[5, 3, 3\]"):
        emulated.lrelu_conv1d(x, w, None, 1, 0.1, None, "none")
    with pytest.raises(RuntimeError, match="exceeds shared memory"):
        emulated.lrelu_conv1d(x, torch.randn(5, 4, 3), None, 20000, 0.1, None, "none")
    with pytest.raises(RuntimeError, match="float32, float16, bfloat16 or float64"):
        emulated.affine_coupling(x.to(torch.float8_e4m3fn), torch.randn(1, 8, 9).to(torch.float8_e4m3fn), False)

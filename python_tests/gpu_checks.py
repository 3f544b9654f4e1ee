"""The Triton kernels on a real GPU: `python python_tests/gpu_checks.py` (run by test_triton_gpu.py).

A script, not a test module, because it must run without TRITON_INTERPRET (the pytest session sets it
for the interpreted tests, and Triton decides interpreter vs compiler at import). It checks, on CUDA
tensors, with the compiled (autotuned) kernels:

- every op forward and backward against its eager reference: fp32 to ~1e-5 relative (IEEE, TF32 off
  for the reference), fp16/bf16 error vs fp64 at most 2x eager PyTorch's + a tenth of an ulp; odd
  lengths, HiFi-GAN's kernel sizes/dilations/strides, non-contiguous inputs, bias/residual/tanh;
  launch counts prove the Triton kernels ran;
- a whole HiFiGAN (tiny config) on the fused path equals the eager model, forward and backward;
- WaveGlow's ops and a small WaveGlow the same way (gpu_checks_waveglow.py);
- the per-shape choice (vocoder_ext/runtime/autotune.py) times both candidates with CUDA events and stores it;
- the fused model replays correctly inside a CUDA graph once its choices are made.

`--device cpu` runs the op checks on CPU tensors through the interpreter instead (TRITON_INTERPRET=1 and
VOCODER_EXT_BACKEND=triton must be set by the caller): a way to check this script without a GPU.
Exit status 0 and "all GPU checks passed" on the last line mean success.
"""
import argparse
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # original_hifigan, triton_helpers
from gpu_checks_waveglow import check_waveglow_model, check_waveglow_ops  # noqa: E402
from triton_helpers import check_close, random_x  # noqa: E402


def count_launches(*modules):
    """Wrap every kernel object of the kernel modules; returns {name: launches}."""
    counts = {}
    for module in modules:
        for name in ("conv_kernel", "grad_weight_kernel"):
            kernel = getattr(module, name)
            key = f"{module.__name__.rsplit('.', 1)[-1]}.{name}"
            counts[key] = 0

            class Counting:
                def __getitem__(self, grid, kernel=kernel, key=key):
                    counts[key] += 1
                    return kernel[grid]
            setattr(module, name, Counting())
    return counts


def _grads(y, inputs, g):
    needs = [t for t in inputs if t is not None and t.requires_grad]
    return torch.autograd.grad(y, needs, g)


def check_op(op, ref, args_of, case, dtype, device):
    """Forward + backward of op (the public fused op) vs ref at dtype and in fp64."""
    tensors, extra = args_of(case, dtype, device)
    leaves = [t.detach().requires_grad_() if t is not None else None for t in tensors]
    y = op(*leaves, **extra)
    g = torch.randn_like(y)
    grads = _grads(y, leaves, g)
    eager_leaves = [t.detach().requires_grad_() if t is not None else None for t in tensors]
    y_eager = ref(*eager_leaves, **extra)
    grads_eager = _grads(y_eager, eager_leaves, g)
    ref_leaves = [t.detach().double().requires_grad_() if t is not None else None for t in tensors]
    y64 = ref(*ref_leaves, **extra)
    grads64 = _grads(y64, ref_leaves, g.double())
    check_close(f"{op.__name__} {case} y", y, y_eager, y64.detach(), dtype)
    for i, (a, e, r) in enumerate(zip(grads, grads_eager, grads64)):
        check_close(f"{op.__name__} {case} grad {i}", a, e, r, dtype)


def conv1d_args(case, dtype, device):
    batch, c_in, c_out, t_len, k, d, bias, residual, epilogue = case
    x = random_x(batch, c_in, t_len, dtype, "slice", device)  # strides of the wider tensor
    w = (torch.randn(c_out, c_in, k, device=device) / (c_in * k) ** 0.5).to(dtype)
    b = torch.randn(c_out, device=device).to(dtype) if bias else None
    r = torch.randn(batch, c_out, t_len, device=device).to(dtype) if residual else None
    return (x, w, b, r), dict(dilation=d, slope=0.1, epilogue=epilogue)


def transpose_args(case, dtype, device):
    batch, c_in, c_out, t_len, k, stride, bias = case
    x = random_x(batch, c_in, t_len, dtype, "transposed", device)  # time stride != 1
    w = (torch.randn(c_in, c_out, k, device=device) / (c_in * k) ** 0.5).to(dtype)
    b = torch.randn(c_out, device=device).to(dtype) if bias else None
    return (x, w, b), dict(stride=stride, padding=(k - stride) // 2, slope=0.1)


def _conv1d(x, w, b, r, **kw):
    from vocoder_ext.ops import lrelu_conv1d
    return lrelu_conv1d(x, w, b, residual=r, **kw)


def _conv1d_ref(x, w, b, r, **kw):
    from vocoder_ext.ops import lrelu_conv1d_ref
    return lrelu_conv1d_ref(x, w, b, residual=r, **kw)


def check_ops(device, big):
    from vocoder_ext.ops import lrelu_conv_transpose1d, lrelu_conv_transpose1d_ref
    # (batch, C_in, C_out, T, K, dilation, bias, residual, epilogue): HiFi-GAN's resblock taps and
    # dilations, conv_post (C_out 1, tanh), odd lengths; `big` adds GPU-sized channels and lengths.
    conv_cases = [(1, 32, 32, 1001, 3, 5, True, True, "none"), (2, 64, 64, 257, 7, 3, True, True, "none"),
                  (3, 24, 40, 33, 11, 1, False, False, "none"), (2, 32, 1, 999, 7, 1, True, False, "tanh"),
                  (1, 16, 16, 1, 3, 1, True, True, "none")]
    # (batch, C_in, C_out, T_in, K, stride, bias): HiFi-GAN's upsamplers (K = 2*stride, padding (K-s)/2)
    transpose_cases = [(1, 64, 32, 101, 16, 8, True), (2, 32, 16, 257, 4, 2, True), (1, 24, 20, 33, 11, 5, False)]
    if big:
        conv_cases += [(2, 512, 512, 1003, 3, 1, True, True, "none"), (1, 128, 128, 22051, 11, 5, True, True, "none")]
        transpose_cases += [(2, 512, 256, 431, 16, 8, True), (1, 64, 32, 22050, 4, 2, True)]
    dtypes = (torch.float32, torch.float16, torch.bfloat16)
    for dtype in dtypes:
        for case in conv_cases:
            check_op(_conv1d, _conv1d_ref, conv1d_args, case, dtype, device)
        for case in transpose_cases:
            check_op(lrelu_conv_transpose1d, lrelu_conv_transpose1d_ref, transpose_args, case, dtype, device)
    return len(dtypes) * (len(conv_cases) + len(transpose_cases))


def check_model(device):
    from original_hifigan import TINY
    from vocoder_ext import HiFiGAN
    torch.manual_seed(0)
    eager = HiFiGAN(TINY, fused=False).to(device)
    fused = HiFiGAN(TINY, fused=True).to(device)
    fused.load_state_dict(eager.state_dict())
    mel = torch.randn(2, eager.config["num_mels"], 37, device=device)
    y_eager, y_fused = eager(mel), fused(mel)
    torch.testing.assert_close(y_fused, y_eager, rtol=1e-4, atol=1e-5)
    g = torch.randn_like(y_eager)
    y_eager.backward(g)
    y_fused.backward(g)
    for (name, p_eager), p_fused in zip(eager.named_parameters(), fused.parameters()):
        torch.testing.assert_close(p_fused.grad, p_eager.grad, rtol=1e-4, atol=1e-4, msg=name)
    return fused.remove_weight_norm().eval(), mel


def check_autotune(model, mel):
    """auto backend: the first call at a shape times both candidates (CUDA events) and stores the choice."""
    import json

    from vocoder_ext.runtime import autotune
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["VOCODER_EXT_CACHE_DIR"] = tmp
        os.environ["VOCODER_EXT_BACKEND"] = "auto"
        autotune.reset()
        try:
            with torch.no_grad():
                y = model(mel)
            with open(os.path.join(tmp, autotune.FILE_NAME)) as f:
                choices = json.load(f)["choices"]
        finally:
            os.environ["VOCODER_EXT_BACKEND"] = "triton"
    assert choices, "no choices stored"
    for key, entry in choices.items():
        assert set(entry["ms"]) == {"triton", "eager"} and entry["choice"] in entry["ms"], (key, entry)
        assert all(ms > 0 for ms in entry["ms"].values()), (key, entry)
    assert torch.isfinite(y).all()
    return choices


def check_cuda_graph(model, mel):
    with torch.no_grad():
        expected = model(mel)
        static_mel = mel.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                model(static_mel)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = model(static_mel)
        static_mel.copy_(mel)
        graph.replay()
    torch.testing.assert_close(static_out, expected, rtol=1e-5, atol=1e-6)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--small", action="store_true", help="leave out the large shapes")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        if os.environ.get("TRITON_INTERPRET") == "1":
            raise SystemExit("run without TRITON_INTERPRET: the GPU checks need the compiled kernels")
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False  # the fp32 references in IEEE fp32, as the kernels
    elif os.environ.get("TRITON_INTERPRET") != "1" or os.environ.get("VOCODER_EXT_BACKEND") != "triton":
        raise SystemExit("--device cpu needs TRITON_INTERPRET=1 and VOCODER_EXT_BACKEND=triton")
    os.environ["VOCODER_EXT_BACKEND"] = "triton"  # every op on Triton (no per-shape choice) unless a check says
    from vocoder_ext.kernels import lrelu_conv1d, lrelu_conv_transpose1d
    counts = count_launches(lrelu_conv1d, lrelu_conv_transpose1d)
    torch.manual_seed(0)
    n = check_ops(device, big=device.type == "cuda" and not args.small)
    print(f"ops: {n} (op, shape, dtype) cases forward and backward match; launches {counts}")
    assert all(counts.values()), f"a Triton kernel never ran: {counts}"
    n = check_waveglow_ops(device, big=device.type == "cuda" and not args.small)
    print(f"waveglow ops: {n} (op, shape, dtype) cases forward and backward match")
    model, mel = check_model(device)
    print("model: tiny HiFiGAN fused == eager, forward and backward")
    check_waveglow_model(device)
    print("model: small WaveGlow fused == eager, inference and a training step")
    if device.type == "cuda":
        choices = check_autotune(model, mel)
        picked = sorted(e["choice"] for e in choices.values())
        print(f"autotune: {len(choices)} choices stored ({picked.count('triton')} triton, {picked.count('eager')} eager)")
        check_cuda_graph(model, mel)
        print("cuda graph: the fused model replays correctly")
    print("all GPU checks passed" if device.type == "cuda" else "all checks passed on CPU (interpreter)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

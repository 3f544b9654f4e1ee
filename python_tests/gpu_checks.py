"""The fused kernels on a real GPU, backend by backend: `python python_tests/gpu_checks.py`.

Run by test_triton_gpu.py. A script, not a test module, because it must run without TRITON_INTERPRET
(the pytest session sets it for the interpreted tests, and Triton decides interpreter vs compiler at
import). For each backend of --backends (default: triton, then cuda = the CUDA C++ kernels of
vocoder_ext._C), with VOCODER_EXT_BACKEND set to it (a forced backend never falls back: each op runs on
its kernels or raises), it checks on CUDA tensors:

- every op forward and backward against its eager reference: fp32 to ~1e-5 relative (IEEE, TF32 off
  for the reference), fp16/bf16 error vs fp64 at most 2x eager PyTorch's + a tenth of an ulp, and on the
  cuda backend fp64 too (within 1e-10 of the reference's scale); odd lengths, HiFi-GAN's kernel
  sizes/dilations/strides, non-contiguous inputs, bias/residual/tanh; Triton's launch counts prove its
  kernels ran on the triton backend, and that none ran on the cuda backend;
- resblock (a whole residual block in one op; inference only, as its CUDA kernel) the same way, forward;
- a whole HiFiGAN (tiny config) on the fused path equals the eager model, forward and backward, and in
  inference (no autograd: where the forward-only kernels serve);
- WaveGlow's ops and a small WaveGlow the same way (gpu_checks_waveglow.py);
- conv1d_lrelu and the fused MPD and MSD the same way (gpu_checks_discriminators.py; the full-size
  discriminators on CUDA tensors only, far too slow for the interpreter);
- the fused model replays correctly inside a CUDA graph once its choices are made.
Then once, with VOCODER_EXT_BACKEND=auto: the per-shape choice (vocoder_ext/runtime/autotune.py) times
every candidate (each available backend and eager) with CUDA events and stores it.

A backend that serves none of the fused ops here (an extension built without CUDA kernels, triton not
installed) is skipped with a line that says why, unless --backends names it: then that is an error, as is
a backend that serves only some of the ops, or no backend left to check.

`--device cpu` runs the op checks on CPU tensors through the interpreter instead (TRITON_INTERPRET=1 and
VOCODER_EXT_BACKEND=triton must be set by the caller): a way to check this script without a GPU (the
cuda backend, which serves CUDA tensors only, is skipped there).
Exit status 0 and "all GPU checks passed" on the last line mean success.
"""
import argparse
import importlib
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # original_hifigan, triton_helpers
from gpu_checks_discriminators import check_conv1d_lrelu, check_discriminators  # noqa: E402
from gpu_checks_waveglow import check_waveglow_model, check_waveglow_ops  # noqa: E402
from triton_helpers import check_close, random_x  # noqa: E402


BACKENDS = ("triton", "cuda")  # VOCODER_EXT_BACKEND values checked, in this order
LOW_PRECISION = (torch.float16, torch.bfloat16)
DTYPES = {"triton": (torch.float32, *LOW_PRECISION),  # fp64 on Triton runs the reference: nothing to check
          "cuda": (torch.float32, *LOW_PRECISION, torch.float64)}
KERNEL_MODULES = ("lrelu_conv1d", "lrelu_conv_transpose1d", "wn_layer", "affine_coupling", "invertible_conv1x1",
                  "conv1d_lrelu")


class CountedKernel:
    """Stands in for a kernel object: `kernel[grid]` launches as before and adds one to counts[key]."""

    def __init__(self, kernel, counts, key):
        self.kernel, self.counts, self.key = kernel, counts, key

    def __getitem__(self, grid):
        self.counts[self.key] += 1
        return self.kernel[grid]


def count_launches():
    """Wrap every kernel object the Triton launchers launch (each kernel module's public `*_kernel`, which the
    launchers look up at call time); returns {"module.kernel": launches}. Called again, it counts afresh."""
    from triton.runtime import KernelInterface
    counts = {}
    for module_name in KERNEL_MODULES:
        module = importlib.import_module(f"vocoder_ext.kernels.{module_name}")
        for name, kernel in list(vars(module).items()):
            if isinstance(kernel, CountedKernel):
                kernel = kernel.kernel
            if name.endswith("_kernel") and not name.startswith("_") and isinstance(kernel, KernelInterface):
                counts[f"{module_name}.{name}"] = 0
                setattr(module, name, CountedKernel(kernel, counts, f"{module_name}.{name}"))
    return counts


def kernel_ops(name):
    """The fused ops that backend `name` has kernels for (on Triton: kernels of their own, or a chain of an op's)."""
    from vocoder_ext.runtime import backend
    if name == "triton":
        return [op for op in backend.OPS if backend.TRITON_CHAINS.get(op, op) in backend.TRITON_OPS]
    return list(backend.OPS)


def unserved(name, device):
    """{op: why} for each fused op with a `name` kernel that VOCODER_EXT_BACKEND=name cannot serve here."""
    from vocoder_ext.runtime import backend
    saved = os.environ.get("VOCODER_EXT_BACKEND")
    os.environ["VOCODER_EXT_BACKEND"] = name
    problems = {}
    try:
        for op in kernel_ops(name):
            try:
                backend.resolve(op, device.type)
            except RuntimeError as e:
                problems[op] = str(e)
    finally:
        if saved is None:
            os.environ.pop("VOCODER_EXT_BACKEND")
        else:
            os.environ["VOCODER_EXT_BACKEND"] = saved
    return problems


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
    if stride % 2:  # ParallelWaveGAN's odd-scale padding: u//2 + 1, output_padding 1
        return (x, w, b), dict(stride=stride, padding=stride // 2 + 1, slope=0.1, output_padding=1)
    return (x, w, b), dict(stride=stride, padding=(k - stride) // 2, slope=0.1)


def _conv1d(x, w, b, r, **kw):
    from vocoder_ext.ops import lrelu_conv1d
    return lrelu_conv1d(x, w, b, residual=r, **kw)


def _conv1d_ref(x, w, b, r, **kw):
    from vocoder_ext.ops import lrelu_conv1d_ref
    return lrelu_conv1d_ref(x, w, b, residual=r, **kw)


def check_ops(device, big, dtypes):
    from vocoder_ext.ops import lrelu_conv_transpose1d, lrelu_conv_transpose1d_ref
    # (batch, C_in, C_out, T, K, dilation, bias, residual, epilogue): HiFi-GAN's resblock taps and
    # dilations, conv_post (C_out 1, tanh), odd lengths; `big` adds GPU-sized channels and lengths.
    conv_cases = [(1, 32, 32, 1001, 3, 5, True, True, "none"), (2, 64, 64, 257, 7, 3, True, True, "none"),
                  (3, 24, 40, 33, 11, 1, False, False, "none"), (2, 32, 1, 999, 7, 1, True, False, "tanh"),
                  (1, 16, 16, 1, 3, 1, True, True, "none")]
    # (batch, C_in, C_out, T_in, K, stride, bias): HiFi-GAN's upsamplers (K = 2*stride, padding (K-s)/2),
    # ParallelWaveGAN's odd ones (K = 2*stride, output_padding 1)
    transpose_cases = [(1, 64, 32, 101, 16, 8, True), (2, 32, 16, 257, 4, 2, True), (1, 24, 20, 33, 11, 5, False),
                       (2, 48, 24, 77, 6, 3, True)]
    if big:
        conv_cases += [(2, 512, 512, 1003, 3, 1, True, True, "none"), (1, 128, 128, 22051, 11, 5, True, True, "none")]
        transpose_cases += [(2, 512, 256, 431, 16, 8, True), (1, 64, 32, 22050, 4, 2, True)]
    for dtype in dtypes:
        for case in conv_cases:
            check_op(_conv1d, _conv1d_ref, conv1d_args, case, dtype, device)
        for case in transpose_cases:
            check_op(lrelu_conv_transpose1d, lrelu_conv_transpose1d_ref, transpose_args, case, dtype, device)
    return len(dtypes) * (len(conv_cases) + len(transpose_cases))


def check_forward(name, op, ref, tensors, extra, dtype):
    """op(*tensors, **extra) vs ref at dtype and in fp64, without autograd (a forward-only kernel)."""
    with torch.no_grad():
        y = op(*tensors, **extra)
        y_eager = ref(*tensors, **extra)
        y64 = ref(*(_nested_f64(t) for t in tensors), **{k: _nested_f64(v) for k, v in extra.items()})
    check_close(name, y, y_eager, y64, dtype)


def _nested_f64(value):
    if isinstance(value, torch.Tensor):
        return value.double()
    if isinstance(value, list):
        return [_nested_f64(v) for v in value]
    return value


def check_resblock(device, big, dtypes):
    """resblock (a whole residual block, accumulated into the MRF average; inference only) vs its reference."""
    from vocoder_ext.ops import resblock
    from vocoder_ext.ops.resblock import resblock_ref
    pairs = [1, 1, 3, 1, 5, 1]  # ResBlock1: (dilated conv, conv) pairs, dilations 1, 3, 5; group 2
    # (batch, C, T, K, dilations, group, accum, scale): V1/V2's ResBlock1 taps 3, 7, 11, V3's ResBlock2,
    # odd lengths, with and without the MRF accumulator
    cases = [(1, 32, 1001, 3, pairs, 2, True, 1 / 3), (2, 64, 257, 7, pairs, 2, True, 1 / 3),
             (1, 24, 33, 11, pairs, 2, False, 1.0), (3, 16, 129, 3, [1, 3], 1, True, 0.5),
             (1, 16, 1, 3, [1, 3], 1, False, 1.0)]
    if big:
        cases += [(2, 256, 1003, 11, pairs, 2, True, 1 / 3), (1, 32, 22051, 7, pairs, 2, True, 1 / 3)]
    n = 0
    for dtype in dtypes:
        for batch, c, t_len, k, dilations, group, accum, scale in cases:
            if t_len == 1 and dtype in LOW_PRECISION:
                continue  # 2x eager's max error over a handful of elements is a coin toss, not a check
            x = random_x(batch, c, t_len, dtype, "slice", device)
            weights = [(torch.randn(c, c, k, device=device) / (c * k) ** 0.5).to(dtype) for _ in dilations]
            biases = [(0.1 * torch.randn(c, device=device)).to(dtype) for _ in dilations]
            extra = dict(accum=torch.randn(batch, c, t_len, device=device).to(dtype) if accum else None, scale=scale)
            check_forward(f"resblock {(batch, c, t_len, k, group)}", resblock, resblock_ref,
                          (x, weights, biases, dilations, group, 0.1), extra, dtype)
            n += 1
    return n


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
    eager, fused = eager.remove_weight_norm().eval(), fused.remove_weight_norm().eval()
    with torch.no_grad():  # inference: where the forward-only kernels (resblock) serve
        torch.testing.assert_close(fused(mel), eager(mel), rtol=1e-4, atol=1e-5)
    return fused, mel


def check_autotune(model, mel, available):
    """auto backend: the first call at a shape times every candidate (CUDA events) and stores the choice.
    available: the backends that serve the ops here; each must be among the candidates timed."""
    import json

    from vocoder_ext.runtime import autotune
    saved = {name: os.environ.get(name) for name in ("VOCODER_EXT_CACHE_DIR", "VOCODER_EXT_BACKEND")}
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
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            autotune.reset()
    assert choices, "no choices stored"
    timed = set()
    for key, entry in choices.items():
        assert "eager" in entry["ms"] and len(entry["ms"]) >= 2, (key, entry)  # a fused kernel raced eager
        assert set(entry["ms"]) <= {*BACKENDS, "eager"} and entry["choice"] in entry["ms"], (key, entry)
        assert all(ms > 0 for ms in entry["ms"].values()) and not entry.get("errors"), (key, entry)
        timed |= set(entry["ms"])
    assert set(available) <= timed, f"auto never timed {sorted(set(available) - timed)}: {choices}"
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


def parse_backends(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or not set(names) <= set(BACKENDS):
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(BACKENDS)}, got {text!r}")
    return list(dict.fromkeys(names))


def check_backend(name, device, big, counts):
    """Every check of one backend, with VOCODER_EXT_BACKEND=name; prints one line per check."""
    os.environ["VOCODER_EXT_BACKEND"] = name
    counts.update(dict.fromkeys(counts, 0))
    torch.manual_seed(0)  # the same inputs for every backend
    n = check_ops(device, big, DTYPES[name])
    print(f"[{name}] ops: {n} (op, shape, dtype) cases forward and backward match")
    n = check_resblock(device, big, DTYPES[name])
    print(f"[{name}] resblock: {n} (shape, dtype) cases forward (inference) match")
    n = check_waveglow_ops(device, big, DTYPES[name])
    print(f"[{name}] waveglow ops: {n} (op, shape, dtype) cases forward and backward match")
    if "conv1d_lrelu" in kernel_ops(name):
        n = check_conv1d_lrelu(device, big, DTYPES[name])
        print(f"[{name}] conv1d_lrelu: {n} (shape, dtype) cases forward and backward match")
        if device.type == "cuda":
            n = check_discriminators(device)
            print(f"[{name}] discriminators: fused MPD and MSD == eager in {n} runs (outputs and gradients)")
        else:
            print(f"[{name}] discriminators: skipped on {device.type} (full size: far too slow for the interpreter)")
    if name == "triton":
        assert counts and all(counts.values()), f"a Triton kernel never ran: {counts}"
    else:
        assert not any(counts.values()), f"Triton kernels ran on the {name} backend: {counts}"
    print(f"[{name}] Triton launches {counts}")
    model, mel = check_model(device)
    print(f"[{name}] model: tiny HiFiGAN fused == eager, forward and backward, and inference")
    check_waveglow_model(device)
    print(f"[{name}] model: small WaveGlow fused == eager, inference and a training step")
    if device.type == "cuda":
        check_cuda_graph(model, mel)
        print(f"[{name}] cuda graph: the fused model replays correctly")
    return model, mel


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--small", action="store_true", help="leave out the large shapes")
    p.add_argument("--backends", type=parse_backends,
                   help=f"comma-separated subset of {','.join(BACKENDS)}: check each with VOCODER_EXT_BACKEND set "
                        f"to it (default: {','.join(BACKENDS)}, skipping one that serves none of the ops here with "
                        "a line that says why; one named here must serve)")
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
    importlib.import_module("vocoder_ext.ops")  # declares the fused ops (vocoder_ext.runtime.backend.OPS)
    from vocoder_ext.runtime import backend
    problems = {name: unserved(name, device) for name in BACKENDS}
    available = [name for name in BACKENDS if not problems[name]]  # serve every fused op here
    chosen, skipped = [], []
    for name in args.backends or BACKENDS:
        why = next(iter(problems[name].values()), None)
        total = len(kernel_ops(name))
        if why is None:
            chosen.append(name)
        elif len(problems[name]) < total:
            raise SystemExit(f"{name} backend serves only {total - len(problems[name])} of the {total} fused ops "
                             "here: " + "; ".join(problems[name].values()))
        elif args.backends:
            raise SystemExit(f"{name} backend: serves none of the {total} fused ops here: {why}")
        else:
            skipped.append(name)
            print(f"[{name}] skipped: serves none of the {total} fused ops here: {why}")
    if not chosen:
        raise SystemExit(f"no backend to check: {', '.join(skipped)} serve(s) none of the fused ops here")
    counts = count_launches() if backend.triton_installed() else {}
    big = device.type == "cuda" and not args.small
    requested = os.environ.get("VOCODER_EXT_BACKEND")
    try:
        for name in chosen:
            model, mel = check_backend(name, device, big, counts)
    finally:
        if requested is None:
            os.environ.pop("VOCODER_EXT_BACKEND", None)
        else:
            os.environ["VOCODER_EXT_BACKEND"] = requested
    if device.type == "cuda":
        choices = check_autotune(model, mel, available)
        picked = [e["choice"] for e in choices.values()]
        print(f"autotune: {len(choices)} choices stored ("
              + ", ".join(f"{picked.count(b)} {b}" for b in (*BACKENDS, "eager")) + ")")
    print(f"backends checked: {', '.join(chosen)}" + (f"; skipped: {', '.join(skipped)}" if skipped else ""))
    print("all GPU checks passed" if device.type == "cuda" else "all checks passed on CPU (interpreter)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the Triton tests share: counting kernel launches (to prove the Triton code ran), inputs, tolerances."""
import torch


class CountLaunches:
    """Stands in for a kernel object: records each `kernel[grid](...)` launch's grid, then really launches."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.grids = []

    def __getitem__(self, grid):
        launch = self.kernel[grid]

        def run(*args, **kwargs):
            self.grids.append(grid(kwargs) if callable(grid) else grid)
            return launch(*args, **kwargs)
        return run


def count_launches(monkeypatch, module):
    """{"conv", "grad_weight"}: counters of the module's two kernels (the launchers look them up at call time)."""
    counters = {"conv": CountLaunches(module.conv_kernel), "grad_weight": CountLaunches(module.grad_weight_kernel)}
    monkeypatch.setattr(module, "conv_kernel", counters["conv"])
    monkeypatch.setattr(module, "grad_weight_kernel", counters["grad_weight"])
    return counters


def count_kernels(monkeypatch, module, names):
    """{name: counter} for the named kernel objects of any kernel module (count_launches' pattern)."""
    counters = {}
    for name in names:
        counters[name] = CountLaunches(getattr(module, name))
        monkeypatch.setattr(module, name, counters[name])
    return counters


# ---- inputs and tolerances shared by the Triton kernel tests (and gpu_checks.py) ----

def random_x(batch, channels, t_len, dtype, layout="contiguous", device="cpu"):
    """A fresh random [B, C, T] input. layout: "contiguous", "slice" (cut out of a bigger tensor along C
    and T) or "transposed" (stored [B, T, C], so its time stride is not 1)."""
    if layout == "slice":
        return torch.randn(batch, channels + 3, t_len + 5, device=device).to(dtype)[:, 1:1 + channels, 2:2 + t_len]
    if layout == "transposed":
        return torch.randn(batch, t_len, channels, device=device).to(dtype).transpose(1, 2)
    return torch.randn(batch, channels, t_len, device=device).to(dtype)


def cdiv(a, b):
    return -(-a // b)


def f64(t):
    return t.double() if t is not None else None


def max_err(out, ref64):
    return (out.double() - ref64).abs().max().item()


def assert_close_fp32(actual, expected):
    """fp32: within 1e-5 relative, measured against the tensor's scale (elements near 0 are noise)."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * max(scale, 1e-6))


def assert_within_twice_eager(name, out, eager, ref64, dtype):
    """fp16/bf16: the kernel's error vs an fp64 reference <= 2x eager PyTorch's + a tenth of an ulp."""
    assert out.dtype == dtype, name
    err, eager_err = max_err(out, ref64), max_err(eager, ref64)
    atol = 0.1 * torch.finfo(dtype).eps * ref64.abs().max().item()  # a tenth of an ulp at the scale
    assert err <= 2 * eager_err + atol, f"{name} {dtype}: kernel error {err:.3g}, eager {eager_err:.3g}"


# Relative to the reference's scale: fp32 to 1e-5 (the 1e-5 rule); fp64, which is its own reference (eager
# fp64 = the reference), to 1e-10, far above a different summation order's rounding, far below any bug.
SCALE_TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


def check_close(name, out, eager, ref64, dtype):
    """fp32 (fp64): within 1e-5 (1e-10) of the reference's scale; fp16/bf16: <= 2x eager's error + 0.1 ulp
    (gpu_checks)."""
    assert out.dtype == dtype and out.shape == ref64.shape, (name, out.dtype, out.shape, ref64.shape)
    if dtype not in SCALE_TOLERANCE:
        return assert_within_twice_eager(name, out, eager, ref64, dtype)
    scale = ref64.abs().max().item() or 1.0
    err = max_err(out, ref64)
    tolerance = SCALE_TOLERANCE[dtype]
    assert err <= tolerance * scale, f"{name} {dtype}: error {err:.3g} > {tolerance:g} x {scale:.3g}"

"""The discriminators' part of gpu_checks.py: conv1d_lrelu on the kernels of the backend under check against
its eager reference (forward and every gradient; fp32 to 1e-5 of the reference's scale, fp16/bf16 within 2x
eager's error vs fp64, fp64 within 1e-10), and the fused MPD and MSD equal to the eager ones (logits, feature
maps, every gradient), separate passes and concat_fwd."""
import torch

from triton_helpers import check_close, random_x

# (batch, C_in, C_out, K, stride, padding, groups, slope, T, W): the MSD's layers (grouped k=41, strided),
# the MPD's (W columns), conv_post (slope 1), odd lengths; `big` adds the real channel counts.
CASES = [(2, 1, 16, 15, 1, 7, 1, 0.1, 997, 0), (1, 16, 16, 41, 2, 20, 4, 0.1, 131, 0),
         (2, 32, 48, 41, 4, 20, 16, 0.1, 203, 0), (1, 48, 32, 41, 1, 20, 16, 0.1, 77, 0),
         (2, 32, 1, 3, 1, 1, 1, 1.0, 50, 0), (2, 1, 8, 5, 3, 2, 1, 0.1, 34, 3), (1, 8, 24, 5, 3, 2, 1, 0.1, 12, 5),
         (3, 5, 7, 3, 4, 4, 1, 0.1, 1, 0)]
BIG = [(2, 256, 1024, 41, 4, 20, 16, 0.1, 2049, 0), (2, 512, 1024, 5, 3, 2, 1, 0.1, 455, 11),
       (2, 1024, 1024, 5, 1, 2, 1, 0.1, 303, 2)]


def _grads(y, leaves, g):
    return torch.autograd.grad(y, [t for t in leaves if t is not None], g)


def check_conv1d_lrelu(device, big, dtypes):
    from vocoder_ext import ops
    from vocoder_ext.ops.conv1d_lrelu import conv1d_lrelu_backward_ref
    n = 0
    for dtype in dtypes:
        for b, c_in, c_out, k, stride, padding, groups, slope, t, w in CASES + (BIG if big else []):
            if dtype != torch.float32 and c_in * k // groups < 16:
                continue  # 2x eager's max error over a handful of products is a coin toss, not a check
            x = random_x(b, c_in, t * max(w, 1), dtype, "slice", device)
            if w:  # [B, C, T, W], the MPD's folded audio (a view, not contiguous)
                x = x[..., :t * w].unflatten(2, (t, w))
            weight = (torch.randn(c_out, c_in // groups, k, device=device) / (c_in // groups * k) ** 0.5).to(dtype)
            bias = (0.1 * torch.randn(c_out, device=device)).to(dtype)
            args = (stride, padding, groups, slope)
            outs = []
            for fn, cast in ((ops.conv1d_lrelu, None), (ops.conv1d_lrelu_ref, None),
                             (ops.conv1d_lrelu_ref, torch.float64)):
                leaves = [(t.to(cast) if cast else t).detach().requires_grad_() for t in (x, weight, bias)]
                y = fn(*leaves, *args)
                if not outs:
                    g = torch.randn_like(y, dtype=torch.float32)
                outs.append((y, _grads(y, leaves, g.to(y.dtype))))
            (y, grads), (y_eager, _), (y64, _) = outs
            name = f"conv1d_lrelu {(b, c_in, c_out, k, stride, padding, groups, slope, t, w)}"
            check_close(f"{name} y", y, y_eager, y64.detach(), dtype)
            # The references' gradients take leaky' from the checked path's own output, as the op does: an output
            # within rounding of 0 may have the other sign in fp64, which moves grad_x by a whole weight x grad
            # term there (seen on an H200, 2026-11-26), a difference of the forward's rounding, not the backward's.
            y_given = y.detach()
            grads_eager = conv1d_lrelu_backward_ref(g.to(dtype), y_given, x, weight, *args)
            grads64 = conv1d_lrelu_backward_ref(g.double(), y_given.double(), x.double(), weight.double(), *args)
            for i, (a, e, r) in enumerate(zip(grads, grads_eager, grads64)):
                check_close(f"{name} grad {i}", a, e, r, dtype)
            n += 1
    return n


def _losses(outputs):
    y_d_rs, y_d_gs, fmap_rs, fmap_gs = outputs
    total = sum(((1 - r) ** 2).mean() + (g ** 2).mean() for r, g in zip(y_d_rs, y_d_gs))
    # squared, not the recipe's L1: |a - b|'s gradient flips sign on rounding where a ~ b
    return total + sum(((a - b) ** 2).mean() for fr, fg in zip(fmap_rs, fmap_gs) for a, b in zip(fr, fg))


def _run(model, y, y_hat):
    model.zero_grad()
    y_hat = y_hat.clone().requires_grad_()
    out = model(y, y_hat)
    _losses(out).backward()
    flat = [t for group in out for item in group for t in (item if isinstance(item, list) else [item])]
    return flat + [y_hat.grad] + [p.grad for p in model.parameters()]


def check_discriminators(device):
    """Fused MPD and MSD (fp32) equal the eager modules: every output and every gradient within 1e-5 (relative, and of its
    scale), as test_discriminators_fused on CPU."""
    from vocoder_ext.models.discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
    n = 0
    for make in (MultiPeriodDiscriminator, MultiScaleDiscriminator):
        for concat_fwd in (False, True):
            torch.manual_seed(0)
            eager = make(concat_fwd=concat_fwd).to(device)
            fused = make(fused=True, concat_fwd=concat_fwd).to(device)
            fused.load_state_dict(eager.state_dict())
            y, y_hat = (torch.randn(2, 1, 4001, device=device).tanh() for _ in range(2))
            for i, (got, want) in enumerate(zip(_run(fused, y, y_hat), _run(eager, y, y_hat))):
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * max(1.0, want.abs().max().item()),
                                           msg=f"{make.__name__} concat_fwd={concat_fwd} tensor {i}")
            n += 1
    return n

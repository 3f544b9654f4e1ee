"""WaveGlow's part of gpu_checks.py: its three ops on the kernels of the backend under check (whatever
VOCODER_EXT_BACKEND forces: triton or cuda) against their eager references (forward and every gradient; fp32
to 1e-5 of the reference's scale, fp16/bf16 within 2x eager's error vs fp64, fp64 within 1e-10 of the
reference's scale), and a whole WaveGlow (8 channels) fused vs eager, inference and a training step."""
import importlib

import torch

from triton_helpers import check_close

REFS = {name: importlib.import_module(f"vocoder_ext.ops.{name}")
        for name in ("wn_layer", "affine_coupling", "invertible_conv1x1")}


def _outputs_and_grads(fn, tensors, grads_out):
    leaves = [t.detach().requires_grad_() if t is not None else None for t in tensors]
    outs = fn(*leaves)
    outs = outs if isinstance(outs, tuple) else (outs,)
    outs = tuple(o for o in outs if o.is_floating_point() and o.dim() > 0)
    grads = torch.autograd.grad(outs, [t for t in leaves if t is not None],
                                [g.to(o.dtype) for g, o in zip(grads_out, outs)])
    return outs, grads


def _check_op(name, op, ref, tensors, dtype, device):
    """op(*tensors) vs ref at dtype and in fp64; tensors built in fp32 on device, cast here."""
    low = [t.to(dtype) if t is not None else None for t in tensors]
    probe = op(*low)
    probe = probe if isinstance(probe, tuple) else (probe,)
    grads_out = [torch.randn(o.shape, device=device) for o in probe if o.is_floating_point() and o.dim() > 0]
    got, got_g = _outputs_and_grads(op, low, grads_out)
    eager, eager_g = _outputs_and_grads(ref, low, grads_out)
    exact, exact_g = _outputs_and_grads(ref, [t.double() if t is not None else None for t in tensors], grads_out)
    for i, (g, e, x) in enumerate(zip(got + got_g, eager + eager_g, exact + exact_g)):
        check_close(f"{name} {dtype} {i}", g, e, x.detach(), dtype)


def check_waveglow_ops(device, big, dtypes=(torch.float32, torch.float16, torch.bfloat16)):
    from vocoder_ext import ops
    # (batch, C, T, dilation, last, skip): WaveGlow's dilations, odd lengths, the last layer's skip-only shape
    cases = [(1, 8, 1, 1, False, False), (3, 24, 129, 16, False, True), (2, 16, 257, 128, True, True)]
    if big:
        cases += [(1, 256, 4001, 8, False, True), (2, 256, 2003, 64, True, True)]
    n = 0
    for dtype in dtypes:
        for b, c, t, d, last, skip in cases:
            if t == 1 and dtype in (torch.float16, torch.bfloat16):
                continue  # 2x eager's max error over a handful of elements is a coin toss, not a check
            rows = c if last else 2 * c
            tensors = [torch.randn(b, c, t, device=device), torch.randn(b, c, t, device=device) if skip else None,
                       torch.randn(b, 2 * c, t, device=device), torch.randn(2 * c, c, 3, device=device) / (3 * c) ** 0.5,
                       torch.randn(2 * c, device=device), torch.randn(rows, c, 1, device=device) / c ** 0.5,
                       torch.randn(rows, device=device)]
            _check_op("wn_layer", lambda *a: ops.wn_layer(*a, d, last),
                      lambda *a: REFS["wn_layer"].wn_layer_ref(*a, d, last)[:2], tensors, dtype, device)
            n += 1
        for reverse in (False, True):
            x, out = torch.randn(2, 4, 1003, device=device), torch.randn(2, 8, 1003, device=device)
            _check_op("affine_coupling", lambda a, o: ops.affine_coupling(a, o, reverse),
                      lambda a, o: REFS["affine_coupling"].affine_coupling_ref(a, o, reverse), [x, out], dtype, device)
            w = torch.linalg.qr(torch.randn(8, 8))[0].unsqueeze(-1).to(device)
            _check_op("invertible_conv1x1", lambda a, m: ops.invertible_conv1x1(a, m, reverse)[0],
                      lambda a, m: REFS["invertible_conv1x1"].invertible_conv1x1_ref(a, m, reverse)[0],
                      [torch.randn(3, 8, 999, device=device), w], dtype, device)
            n += 2
    return n


def check_waveglow_model(device):
    from vocoder_ext import WaveGlow, losses
    torch.manual_seed(0)
    config = dict(WN_config={"n_layers": 4, "n_channels": 8, "kernel_size": 3})
    eager, fused = WaveGlow(**config, fused=False).to(device), WaveGlow(**config, fused=True).to(device)
    for wn in eager.WN:
        torch.nn.init.normal_(wn.end.weight, std=0.05)
    fused.load_state_dict(eager.state_dict())
    mel, audio = torch.randn(2, 80, 12, device=device), 0.1 * torch.randn(2, 12 * 256, device=device)
    loss_eager, loss_fused = losses.waveglow_loss(eager(mel, audio)), losses.waveglow_loss(fused(mel, audio))
    torch.testing.assert_close(loss_fused, loss_eager, rtol=1e-5, atol=1e-6)
    loss_eager.backward()
    loss_fused.backward()
    for (name, p_eager), p_fused in zip(eager.named_parameters(), fused.parameters()):
        torch.testing.assert_close(p_fused.grad, p_eager.grad, rtol=1e-4, atol=1e-5, msg=name)
    z = torch.randn(eager.noise_shape(mel), device=device)
    with torch.no_grad():
        torch.testing.assert_close(fused.infer(mel, 0.9, z), eager.infer(mel, 0.9, z), rtol=1e-5, atol=1e-5)

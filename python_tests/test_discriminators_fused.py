"""Fused discriminators (ops.conv1d_lrelu; the MPD's (k, 1) conv2ds as conv1ds over its columns) and
concat_fwd: the same logits, feature maps and parameter gradients as the eager modules, in training mode
(spectral norm's power iteration included)."""
import pytest
import torch

from vocoder_ext.models.discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator


def losses(outputs):
    """A loss touching every output: the logits and every feature map."""
    y_d_rs, y_d_gs, fmap_rs, fmap_gs = outputs
    total = sum(((1 - r) ** 2).mean() + (g ** 2).mean() for r, g in zip(y_d_rs, y_d_gs))
    return total + sum((a - b).abs().mean() for fr, fg in zip(fmap_rs, fmap_gs) for a, b in zip(fr, fg))


def run(model, y, y_hat):
    model.zero_grad()
    y_hat = y_hat.clone().requires_grad_()
    out = model(y, y_hat)
    loss = losses(out)
    loss.backward()
    return out, loss, y_hat.grad, {n: p.grad.clone() for n, p in model.named_parameters()}


def assert_close(a, b, what, tol=1e-5):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol * max(1.0, b.abs().max().item()), msg=what)


@pytest.mark.parametrize("make", [lambda **kw: MultiPeriodDiscriminator(periods=(2, 3, 5), **kw),
                                  lambda **kw: MultiScaleDiscriminator(**kw)], ids=["mpd", "msd"])
@pytest.mark.parametrize("concat_fwd", [False, True])
def test_fused_equals_eager(make, concat_fwd):
    torch.manual_seed(0)
    eager = make(concat_fwd=concat_fwd)
    fused = make(fused=True, concat_fwd=concat_fwd)
    fused.load_state_dict(eager.state_dict())  # (legacy weight norm cannot be deep-copied)
    y, y_hat = torch.randn(2, 1, 601).tanh(), torch.randn(2, 1, 601).tanh()  # odd length: the MPD pads
    want_out, want_loss, want_gx, want_grads = run(eager, y, y_hat)
    got_out, got_loss, got_gx, got_grads = run(fused, y, y_hat)
    tol = 1e-5
    assert_close(got_loss, want_loss, "loss", tol)
    for want_list, got_list in zip(want_out, got_out):
        for i, (w, g) in enumerate(zip(want_list, got_list)):
            if isinstance(w, list):
                for j, (wf, gf) in enumerate(zip(w, g)):
                    assert wf.shape == gf.shape
                    assert_close(gf, wf, f"feature map {i}.{j}", tol)
            else:
                assert_close(g, w, f"logits {i}", tol)
    assert_close(got_gx, want_gx, "grad y_hat", tol)
    for name, g in want_grads.items():
        assert_close(got_grads[name], g, name, tol)


def test_fused_flag_reaches_every_sub_discriminator():
    mpd, msd = MultiPeriodDiscriminator(fused=True), MultiScaleDiscriminator(fused=True)
    assert all(d.fused for d in mpd.discriminators) and all(d.fused for d in msd.discriminators)
    msd.fused = False
    assert not any(d.fused for d in msd.discriminators) and not msd.fused


@pytest.mark.parametrize("make", [MultiPeriodDiscriminator, MultiScaleDiscriminator], ids=["mpd", "msd"])
def test_concat_fwd_is_the_separate_passes_batched(make):
    """Real and generated audio in one pass give the separate passes' results; the MSD's spectral norm runs one
    power iteration per pass instead of two, so its generated half differs slightly once the iteration has
    converged, as in any trained model (NVIDIA's flag does the same)."""
    torch.manual_seed(1)
    separate, together = make(), make(concat_fwd=True)
    with torch.no_grad():
        for m in separate.modules():
            for hook in list(m._forward_pre_hooks.values()) * 30:
                hook(m, ())
    together.load_state_dict(separate.state_dict())
    y, y_hat = torch.randn(2, 1, 601).tanh(), torch.randn(2, 1, 601).tanh()
    with torch.no_grad():
        want, got = separate(y, y_hat), together(y, y_hat)
    torch.testing.assert_close(losses(got), losses(want), rtol=1e-3, atol=1e-3)
    for w, g in zip(want[2][0], got[2][0]):  # the real pass: the same weights either way
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)

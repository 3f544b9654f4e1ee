"""Tests for vocoder_ext.models.discriminators and vocoder_ext.losses.

The expected key names, shapes and parameter counts are written out here from the original
HiFi-GAN (jik876) architecture, and the forward passes are checked against an independent
implementation built from torch.nn.functional and the modules' *effective* weights (weight norm
and spectral norm recomputed here from the stored g/v and orig/u/v tensors).
"""
import io
import math
import warnings
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vocoder_ext.models.discriminators import (
    DiscriminatorP,
    DiscriminatorS,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)
from vocoder_ext.losses import discriminator_loss, feature_loss, generator_loss, mel_loss

SLOPE = 0.1
PERIODS = [2, 3, 5, 7, 11]

# Original architecture, written out by hand.
# DiscriminatorP convs: (in, out, kernel_h, stride_h, pad_h); conv_post separately.
P_CONVS = [(1, 32, 5, 3, 2), (32, 128, 5, 3, 2), (128, 512, 5, 3, 2),
           (512, 1024, 5, 3, 2), (1024, 1024, 5, 1, 2)]
P_POST = (1024, 1, 3, 1, 1)
# DiscriminatorS convs: (in, out, kernel, stride, groups, pad); conv_post separately.
S_CONVS = [(1, 128, 15, 1, 1, 7), (128, 128, 41, 2, 4, 20), (128, 256, 41, 2, 16, 20),
           (256, 512, 41, 4, 16, 20), (512, 1024, 41, 4, 16, 20),
           (1024, 1024, 41, 1, 16, 20), (1024, 1024, 5, 1, 1, 2)]
S_POST = (1024, 1, 3, 1, 1, 1)


@pytest.fixture(autouse=True)
def _seed(request):
    # fresh random data per test, reproducible per test name
    torch.manual_seed(zlib.crc32(request.node.name.encode()))


# Modules are large (MPD 41.1 M, MSD 29.6 M parameters): build each once per test module, with
# random non-default weights; tests that read them leave them unchanged (eval mode).
@pytest.fixture(scope="module")
def mpd():
    torch.manual_seed(1234)
    return randomize_(MultiPeriodDiscriminator()).eval()


@pytest.fixture(scope="module")
def msd():
    torch.manual_seed(4321)
    return randomize_(MultiScaleDiscriminator()).eval()


def wave(b, t):
    """Random audio-like waveform [b, 1, t] in (-1, 1)."""
    return torch.tanh(torch.randn(b, 1, t))


# --------------------------------------------------------------------------------------------
# state-dict keys, shapes, parameter counts
# --------------------------------------------------------------------------------------------

def expected_mpd_keys():
    keys = set()
    for i in range(5):
        for j in range(5):
            for name in ("weight_g", "weight_v", "bias"):
                keys.add(f"discriminators.{i}.convs.{j}.{name}")
        for name in ("weight_g", "weight_v", "bias"):
            keys.add(f"discriminators.{i}.conv_post.{name}")
    return keys


def expected_msd_keys():
    keys = set()
    for j in range(7):
        for name in ("weight_orig", "weight_u", "weight_v", "bias"):
            keys.add(f"discriminators.0.convs.{j}.{name}")
    for name in ("weight_orig", "weight_u", "weight_v", "bias"):
        keys.add(f"discriminators.0.conv_post.{name}")
    for i in (1, 2):
        for j in range(7):
            for name in ("weight_g", "weight_v", "bias"):
                keys.add(f"discriminators.{i}.convs.{j}.{name}")
        for name in ("weight_g", "weight_v", "bias"):
            keys.add(f"discriminators.{i}.conv_post.{name}")
    return keys


def expected_mpd_shapes():
    shapes = {}
    layers = [("convs.%d" % j, c) for j, c in enumerate(P_CONVS)] + [("conv_post", P_POST)]
    for i in range(5):
        for name, (cin, cout, k, _, _) in layers:
            pre = f"discriminators.{i}.{name}"
            shapes[pre + ".weight_g"] = (cout, 1, 1, 1)
            shapes[pre + ".weight_v"] = (cout, cin, k, 1)
            shapes[pre + ".bias"] = (cout,)
    return shapes


def expected_msd_shapes():
    shapes = {}
    layers = [("convs.%d" % j, c) for j, c in enumerate(S_CONVS)] + [("conv_post", S_POST)]
    for i in range(3):
        for name, (cin, cout, k, _, g, _) in layers:
            pre = f"discriminators.{i}.{name}"
            shapes[pre + ".bias"] = (cout,)
            if i == 0:  # spectral norm: u over output rows, v over flattened (in/g * k)
                shapes[pre + ".weight_orig"] = (cout, cin // g, k)
                shapes[pre + ".weight_u"] = (cout,)
                shapes[pre + ".weight_v"] = (cin // g * k,)
            else:
                shapes[pre + ".weight_g"] = (cout, 1, 1)
                shapes[pre + ".weight_v"] = (cout, cin // g, k)
    return shapes


def test_mpd_state_dict_keys_and_shapes(mpd):
    sd = mpd.state_dict()
    assert set(sd) == expected_mpd_keys()
    assert len(sd) == 5 * 6 * 3
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected_mpd_shapes()
    assert [d.period for d in mpd.discriminators] == PERIODS


def test_msd_state_dict_keys_and_shapes(msd):
    sd = msd.state_dict()
    assert set(sd) == expected_msd_keys()
    assert len(sd) == 8 * 4 + 2 * 8 * 3
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected_msd_shapes()
    assert len(msd.meanpools) == 2
    for pool in msd.meanpools:
        assert isinstance(pool, torch.nn.AvgPool1d)
        assert (pool.kernel_size, pool.stride, pool.padding) == ((4,), (2,), (2,))
    with torch.device("meta"):
        dle_style = MultiScaleDiscriminator(meanpool_padding=1)
    assert all(p.padding == (1,) for p in dle_style.meanpools)
    assert set(dle_style.state_dict()) == expected_msd_keys()


def test_parameter_counts_by_hand(mpd, msd):
    # weight norm: weight_v (out*in*k) + weight_g (out) + bias (out)
    p_count = (32 * 1 * 5 + 2 * 32) + (128 * 32 * 5 + 2 * 128) + (512 * 128 * 5 + 2 * 512) \
        + (1024 * 512 * 5 + 2 * 1024) + (1024 * 1024 * 5 + 2 * 1024) + (1 * 1024 * 3 + 2 * 1)
    assert p_count == 8_221_154
    for d in mpd.discriminators:
        assert isinstance(d, DiscriminatorP)
        assert sum(t.numel() for t in d.parameters()) == p_count
    assert sum(t.numel() for t in mpd.parameters()) == 5 * p_count == 41_105_770
    assert list(mpd.buffers()) == []

    # DiscriminatorS weights: out * (in/groups) * k
    s_weights = 128 * 1 * 15 + 128 * 32 * 41 + 256 * 8 * 41 + 512 * 16 * 41 + 1024 * 32 * 41 \
        + 1024 * 64 * 41 + 1024 * 1024 * 5 + 1 * 1024 * 3
    s_out = 128 + 128 + 256 + 512 + 1024 + 1024 + 1024 + 1
    assert (s_weights, s_out) == (9_866_112, 4097)
    sn_params = s_weights + s_out          # weight_orig + bias (u, v are buffers)
    wn_params = s_weights + 2 * s_out      # weight_v + weight_g + bias
    sn_disc, *wn_discs = msd.discriminators
    assert sum(t.numel() for t in sn_disc.parameters()) == sn_params
    for d in wn_discs:
        assert sum(t.numel() for t in d.parameters()) == wn_params
    assert sum(t.numel() for t in msd.parameters()) == sn_params + 2 * wn_params == 29_618_821
    # spectral-norm buffers: u has `out` entries, v has `in/groups * k` entries per conv
    sn_buffers = s_out + (1 * 15 + 32 * 41 + 8 * 41 + 16 * 41 + 32 * 41 + 64 * 41 + 1024 * 5 + 1024 * 3)
    assert sum(t.numel() for t in msd.buffers()) == sn_buffers


def test_construction_emits_no_deprecation_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.device("meta"):
            MultiPeriodDiscriminator(periods=(2,))
            MultiScaleDiscriminator()
    assert not [w for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))]


# --------------------------------------------------------------------------------------------
# independent reference implementation (torch.nn.functional + effective weights)
# --------------------------------------------------------------------------------------------

def wn_weight(g, v):
    """Weight norm over all dims but 0: w = g * v / ||v||."""
    norm = v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))
    return g * v / norm


def sn_weight(w, u, v):
    """Spectral norm with the stored power-iteration vectors: w / (u^T W v)."""
    sigma = torch.dot(u, w.flatten(1) @ v)
    return w / sigma


def effective_weight(sd, prefix):
    if prefix + ".weight_orig" in sd:
        return sn_weight(sd[prefix + ".weight_orig"], sd[prefix + ".weight_u"], sd[prefix + ".weight_v"])
    return wn_weight(sd[prefix + ".weight_g"], sd[prefix + ".weight_v"])


def ref_discriminator_p(sd, period, x):
    """DiscriminatorP from the original math; x [B, 1, T]."""
    b, c, t = x.shape
    n_pad = (-t) % period
    if n_pad:  # reflect (mirror without repeating the edge sample), built by index
        idx = torch.arange(t - 2, t - 2 - n_pad, -1)
        x = torch.cat([x, x[..., idx]], dim=-1)
    rows = x.shape[-1] // period
    fold = torch.arange(rows)[:, None] * period + torch.arange(period)[None, :]
    h = x[:, :, fold]  # [B, 1, rows, period]
    fmap = []
    for j, (_, _, _, s, p) in enumerate(P_CONVS):
        h = F.conv2d(h, effective_weight(sd, f"convs.{j}"), sd[f"convs.{j}.bias"], stride=(s, 1), padding=(p, 0))
        h = F.leaky_relu(h, SLOPE)
        fmap.append(h)
    h = F.conv2d(h, effective_weight(sd, "conv_post"), sd["conv_post.bias"], padding=(1, 0))
    fmap.append(h)
    return h.reshape(b, -1), fmap


def ref_discriminator_s(sd, x):
    """DiscriminatorS from the original math; x [B, 1, T]."""
    fmap = []
    h = x
    for j, (_, _, _, s, g, p) in enumerate(S_CONVS):
        h = F.conv1d(h, effective_weight(sd, f"convs.{j}"), sd[f"convs.{j}.bias"], stride=s, padding=p, groups=g)
        h = F.leaky_relu(h, SLOPE)
        fmap.append(h)
    h = F.conv1d(h, effective_weight(sd, "conv_post"), sd["conv_post.bias"], padding=1)
    fmap.append(h)
    return h.reshape(x.shape[0], -1), fmap


def randomize_(module):
    """Random (non-default) weights, so g != ||v|| and biases are non-zero."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight_g"):
                p.mul_(torch.empty_like(p).uniform_(0.5, 1.5))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
    return module


def assert_close(a, b, tol=1e-5):
    scale = max(1.0, b.abs().max().item())
    torch.testing.assert_close(a, b, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("period,t", [(2, 4096), (3, 4097), (11, 4097), (5, 2048)])
def test_discriminator_p_matches_reference(mpd, period, t):
    # (2, 4096) takes the no-padding path; the others reflect-pad by 2, 5 and 2 samples
    d = mpd.discriminators[PERIODS.index(period)]
    x = wave(2, t)
    with torch.no_grad():
        logits, fmap = d(x)
        ref_logits, ref_fmap = ref_discriminator_p(d.state_dict(), period, x)
    assert len(fmap) == len(ref_fmap) == 6
    for a, b in zip(fmap, ref_fmap):
        assert a.shape == b.shape
        assert_close(a, b)
    assert_close(logits, ref_logits)


def test_discriminator_s_spectral_norm_train_mode_matches_reference():
    # eval-mode DiscriminatorS (spectral and weight norm) is checked in test_msd_matches_reference
    d = randomize_(DiscriminatorS(use_spectral_norm=True)).train()
    x = wave(2, 2049)
    u0 = [c.weight_u.clone() for c in d.convs]
    with torch.no_grad():
        logits, fmap = d(x)
    # train mode: one power iteration per forward, stored in weight_u / weight_v; the weight the
    # forward used is the one recomputed from the stored vectors afterwards
    assert all(not torch.equal(c.weight_u, u) for c, u in zip(d.convs, u0))
    ref_logits, ref_fmap = ref_discriminator_s(d.state_dict(), x)
    assert len(fmap) == len(ref_fmap) == 8
    for a, b in zip(fmap, ref_fmap):
        assert a.shape == b.shape
        assert_close(a, b)
    assert_close(logits, ref_logits)
    # eval mode: no power iteration
    d.eval()
    u1 = d.convs[3].weight_u.clone()
    with torch.no_grad():
        d(x)
    assert torch.equal(d.convs[3].weight_u, u1)


# --------------------------------------------------------------------------------------------
# shapes for odd lengths; whole MPD / MSD against the reference
# --------------------------------------------------------------------------------------------

def conv_len(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def expected_mpd_fmap_shapes(b, t, p):
    h = math.ceil(t / p)  # after right reflect padding to a multiple of p
    shapes = []
    for cin, cout, k, s, pad in P_CONVS:
        h = conv_len(h, k, s, pad)
        shapes.append((b, cout, h, p))
    shapes.append((b, 1, h, p))
    return shapes


def expected_msd_fmap_shapes(b, t, pool_pad):
    per_scale = []
    for i in range(3):
        if i:
            t = (t + 2 * pool_pad - 4) // 2 + 1
        h = t
        shapes = []
        for cin, cout, k, s, g, pad in S_CONVS:
            h = conv_len(h, k, s, pad)
            shapes.append((b, cout, h))
        shapes.append((b, 1, h))
        per_scale.append(shapes)
    return per_scale


@pytest.mark.parametrize("t", [8191, 4097])
def test_mpd_output_shapes(t):
    # shape propagation only: on the meta device, so full-size inputs cost nothing
    assert all(t % p for p in PERIODS)  # every period takes the reflect-padding path
    with torch.device("meta"):
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = MultiPeriodDiscriminator()(torch.empty(2, 1, t), torch.empty(2, 1, t))
    assert len(y_d_rs) == len(y_d_gs) == len(fmap_rs) == len(fmap_gs) == 5
    for i, p in enumerate(PERIODS):
        shapes = expected_mpd_fmap_shapes(2, t, p)
        for fmaps in (fmap_rs[i], fmap_gs[i]):
            assert [tuple(f.shape) for f in fmaps] == shapes
        assert tuple(y_d_rs[i].shape) == tuple(y_d_gs[i].shape) == (2, shapes[-1][2] * p)


@pytest.mark.parametrize("t,pool_pad", [(8191, 2), (4097, 2), (8191, 1), (4097, 1)])
def test_msd_output_shapes(t, pool_pad):
    with torch.device("meta"):
        msd = MultiScaleDiscriminator(meanpool_padding=pool_pad)
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = msd(torch.empty(2, 1, t), torch.empty(2, 1, t))
    assert len(y_d_rs) == len(y_d_gs) == len(fmap_rs) == len(fmap_gs) == 3
    for i, shapes in enumerate(expected_msd_fmap_shapes(2, t, pool_pad)):
        for fmaps in (fmap_rs[i], fmap_gs[i]):
            assert [tuple(f.shape) for f in fmaps] == shapes
        assert tuple(y_d_rs[i].shape) == tuple(y_d_gs[i].shape) == (2, shapes[-1][2])


def test_mpd_matches_reference(mpd):
    b, t = 2, 2047
    assert all(t % p for p in PERIODS)  # every period reflect-pads
    y, y_hat = wave(b, t), wave(b, t)
    with torch.no_grad():
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = mpd(y, y_hat)
        for i, p in enumerate(PERIODS):
            # reference on real and generated at once (batch-concatenated)
            ref_logits, ref_fmap = ref_discriminator_p(mpd.discriminators[i].state_dict(), p, torch.cat([y, y_hat]))
            assert [tuple(f.shape) for f in fmap_rs[i]] == expected_mpd_fmap_shapes(b, t, p)
            for a, g, ref in zip(fmap_rs[i], fmap_gs[i], ref_fmap):
                assert_close(torch.cat([a, g]), ref)
            assert_close(torch.cat([y_d_rs[i], y_d_gs[i]]), ref_logits)
            assert torch.isfinite(ref_logits).all()
    # real and generated inputs differ, so do the logits
    assert not torch.allclose(y_d_rs[0], y_d_gs[0])


def avg_pool_ref(x, pad):
    """AvgPool1d(4, 2, padding=pad) with count_include_pad=True: mean of 4 taps over zero padding."""
    return F.pad(x, (pad, pad)).unfold(-1, 4, 2).mean(-1)


def test_msd_matches_reference(msd):
    b, t = 2, 2047
    y, y_hat = wave(b, t), wave(b, t)
    with torch.no_grad():
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = msd(y, y_hat)
    shapes = expected_msd_fmap_shapes(b, t, 2)
    x = torch.cat([y, y_hat])
    for i in range(3):
        if i:
            x = avg_pool_ref(x, 2)
        with torch.no_grad():
            ref_logits, ref_fmap = ref_discriminator_s(msd.discriminators[i].state_dict(), x)
        assert [tuple(f.shape) for f in fmap_rs[i]] == shapes[i]
        for a, g, ref in zip(fmap_rs[i], fmap_gs[i], ref_fmap):
            assert_close(torch.cat([a, g]), ref)
        assert_close(torch.cat([y_d_rs[i], y_d_gs[i]]), ref_logits)


@pytest.mark.parametrize("pool_pad", [2, 1])
@pytest.mark.parametrize("t", [2047, 2048, 4097])
def test_msd_meanpools_match_reference(pool_pad, t):
    with torch.device("meta"):  # the pools hold no tensors; the rest of the module is not needed
        pools = MultiScaleDiscriminator(meanpool_padding=pool_pad).meanpools
    x = wave(2, t)
    expected = avg_pool_ref(x, pool_pad)
    assert expected.shape[-1] == (t + 2 * pool_pad - 4) // 2 + 1
    torch.testing.assert_close(pools[0](x), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(pools[1](expected), avg_pool_ref(expected, pool_pad), rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------

def rand_list(shapes):
    return [torch.randn(*s, dtype=torch.float64) for s in shapes]


def test_discriminator_loss_by_hand():
    shapes = [(2, 37), (2, 5), (3, 11)]
    dr, dg = rand_list(shapes), rand_list(shapes)
    loss, r_losses, g_losses = discriminator_loss(dr, dg)
    exp_r = [float(np.mean((1.0 - a.numpy()) ** 2)) for a in dr]
    exp_g = [float(np.mean(b.numpy() ** 2)) for b in dg]
    assert all(isinstance(v, float) for v in r_losses + g_losses)  # original: .item()
    np.testing.assert_allclose(r_losses, exp_r, rtol=1e-12)
    np.testing.assert_allclose(g_losses, exp_g, rtol=1e-12)
    assert loss.dim() == 0
    np.testing.assert_allclose(loss.item(), sum(exp_r) + sum(exp_g), rtol=1e-12)
    # sync=False: same values as detached tensors
    loss2, r2, g2 = discriminator_loss(dr, dg, sync=False)
    assert all(torch.is_tensor(v) and v.dim() == 0 and not v.requires_grad for v in r2 + g2)
    np.testing.assert_allclose([v.item() for v in r2], exp_r, rtol=1e-12)
    np.testing.assert_allclose([v.item() for v in g2], exp_g, rtol=1e-12)
    assert loss2.item() == loss.item()


def test_generator_loss_by_hand():
    dg = rand_list([(2, 37), (2, 5), (4, 3)])
    loss, gen_losses = generator_loss(dg)
    exp = [float(np.mean((1.0 - a.numpy()) ** 2)) for a in dg]
    assert len(gen_losses) == 3 and all(torch.is_tensor(v) for v in gen_losses)
    np.testing.assert_allclose([v.item() for v in gen_losses], exp, rtol=1e-12)
    np.testing.assert_allclose(loss.item(), sum(exp), rtol=1e-12)


def test_feature_loss_by_hand():
    shapes = [[(2, 4, 9, 3), (2, 1, 9, 3)], [(2, 8, 17), (2, 16, 5), (2, 1, 5)]]
    fr = [rand_list(s) for s in shapes]
    fg = [rand_list(s) for s in shapes]
    loss = feature_loss(fr, fg)
    exp = 0.0
    for dr, dg in zip(fr, fg):
        for a, b in zip(dr, dg):
            exp += np.abs(a.numpy() - b.numpy()).sum() / a.numel()
    np.testing.assert_allclose(loss.item(), 2.0 * exp, rtol=1e-12)


def test_mel_loss_by_hand():
    a = torch.randn(2, 80, 33, dtype=torch.float64)
    b = torch.randn(2, 80, 33, dtype=torch.float64)
    np.testing.assert_allclose(mel_loss(a, b).item(), 45.0 * np.abs(a.numpy() - b.numpy()).mean(), rtol=1e-12)


def test_loss_gradients_by_hand():
    dr = rand_list([(2, 7), (3, 5)])
    dg = [t.requires_grad_() for t in rand_list([(2, 7), (3, 5)])]
    generator_loss(dg)[0].backward()
    for t in dg:  # d/dD mean((1 - D)^2) = -2 (1 - D) / N
        torch.testing.assert_close(t.grad, -2.0 * (1.0 - t.detach()) / t.numel())
        t.grad = None
    discriminator_loss(dr, dg)[0].backward()
    for t in dg:  # d/dD mean(D^2) = 2 D / N
        torch.testing.assert_close(t.grad, 2.0 * t.detach() / t.numel())


def test_losses_backward_through_discriminators():
    mpd = MultiPeriodDiscriminator(periods=(3,))
    msd = MultiScaleDiscriminator()
    y = wave(1, 2047)
    y_hat = (0.5 * wave(1, 2047)).requires_grad_()

    total = 0
    for disc in (mpd, msd):
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = disc(y, y_hat)
        total = total + discriminator_loss(y_d_rs, y_d_gs)[0] + generator_loss(y_d_gs)[0] \
            + feature_loss(fmap_rs, fmap_gs)
    total = total + mel_loss(y.squeeze(1), y_hat.squeeze(1))
    assert total.dim() == 0 and torch.isfinite(total)
    total.backward()
    assert y_hat.grad is not None and torch.isfinite(y_hat.grad).all()
    assert y_hat.grad.abs().sum() > 0
    for disc in (mpd, msd):
        for name, p in disc.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name


# --------------------------------------------------------------------------------------------
# checkpoint round trip (original do_XXXXXXXX layout)
# --------------------------------------------------------------------------------------------

def test_checkpoint_round_trip_strict(mpd):
    msd = randomize_(MultiScaleDiscriminator()).train()
    with torch.no_grad():  # one train-mode pass moves the spectral-norm u/v away from init
        msd(wave(1, 512), wave(1, 512))
    buf = io.BytesIO()
    torch.save({"mpd": mpd.state_dict(), "msd": msd.state_dict(), "steps": 1, "epoch": 0}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, map_location="cpu", weights_only=True)

    mpd2, msd2 = MultiPeriodDiscriminator(), MultiScaleDiscriminator()
    mpd2.load_state_dict(ckpt["mpd"], strict=True)
    msd2.load_state_dict(ckpt["msd"], strict=True)
    for a, b in ((mpd, mpd2), (msd, msd2)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)

    y = wave(2, 1023)
    for a, b in ((mpd, mpd2), (msd, msd2)):
        a.eval()
        b.eval()
        with torch.no_grad():  # each sub-discriminator once (the wrappers are checked elsewhere)
            for da, db in zip(a.discriminators, b.discriminators):
                (la, fa), (lb, fb) = da(y), db(y)
                assert torch.equal(la, lb)
                assert all(torch.equal(u, v) for u, v in zip(fa, fb))


def test_strict_load_rejects_foreign_keys(mpd):
    # e.g. a checkpoint saved with weight norm removed (plain `weight`) is not the original layout
    sd = dict(mpd.state_dict())
    sd["discriminators.0.convs.0.weight"] = sd.pop("discriminators.0.convs.0.weight_v")
    with torch.device("meta"):
        target = MultiPeriodDiscriminator()
    with pytest.raises(RuntimeError, match="Missing key"):
        target.load_state_dict(sd, strict=True, assign=True)
